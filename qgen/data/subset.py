"""Choosing which images of a split to train on: class selection, then a seeded subset."""

from __future__ import annotations

import numpy as np

from qgen.errors import QgenError


def select_classes(labels: np.ndarray, classes: tuple[int, ...] | None,
                   known_classes: tuple[int, ...] | None, what: str) -> np.ndarray:
    """Indices (ascending) of images whose label is in ``classes``; all images when ``classes`` is None."""
    if classes is None:
        return np.arange(len(labels))
    known = known_classes if known_classes is not None else tuple(int(v) for v in np.unique(labels))
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise QgenError(f"unknown class {', '.join(map(str, unknown))} for {what}: "
                        f"its classes are {', '.join(map(str, known))}")
    indices = np.flatnonzero(np.isin(labels, classes))
    if indices.size == 0:
        raise QgenError(f"{what} has no images of class {', '.join(map(str, classes))}")
    return indices


def seeded_subset(indices: np.ndarray, n: int, seed: int, what: str) -> np.ndarray:
    """``n`` of ``indices``, chosen by ``seed`` and returned in dataset order.

    Taking a prefix of one seeded permutation makes subsets nested: with the same seed, a larger n
    keeps every image of a smaller n, so runs that vary only n_train differ only by the added images.
    """
    if n > len(indices):
        raise QgenError(f"asked for {n} images but {what} has only {len(indices)}")
    chosen = np.random.default_rng(seed).permutation(len(indices))[:n]
    return indices[np.sort(chosen)]
