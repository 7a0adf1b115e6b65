"""The two baselines every quality number is read against: the real-data floor and the memorizer.

With 10-100 training images an FLD means nothing on its own: its small-sample bias is larger than
most model differences, and a model can score well by copying. So each FLD is reported next to
  * the **real-data floor**: fresh real images (never trained on, disjoint from the reference) scored
    exactly like the samples, at the same sample and reference sizes -- what a perfect generator gets;
  * the **memorizer baseline**: the N training images replayed to the same sample size -- what a
    generator that only copies gets.
A model above the memorizer is under-trained (worse than a copy of its data); one near the floor
with a low copy fraction generalizes; one near the memorizer with a high copy fraction copies.

All functions take feature arrays (N, D) from the same feature net, so they are pure and cheap to
test; ``qgen.evaluation`` and the in-training evaluator feed them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from qgen.errors import QgenError
from qgen.metrics.frechet import frechet_distance

DEFAULT_SPLITS = 10
# verdict thresholds: above this copy fraction a model counts as copying, whatever its FLD
COPYING_FRACTION = 0.5
NEAR_FLOOR_RATIO = 2.0


@dataclass(frozen=True)
class Baseline:
    """One baseline FLD: mean and sd over ``n_splits`` draws, with the sizes it was computed at."""

    mean: float
    sd: float
    n_splits: int
    n_samples: int
    n_reference: int
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def _summary(values: list[float], n_samples: int, n_reference: int, method: str) -> Baseline:
    arr = np.asarray(values, dtype=np.float64)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return Baseline(float(arr.mean()), sd, len(arr), n_samples, n_reference, method)


def real_floor(pool: np.ndarray, reference: np.ndarray, n_samples: int, *,
               n_splits: int = DEFAULT_SPLITS, seed: int = 0) -> Baseline:
    """FLD of ``n_samples`` real images drawn from ``pool`` against the whole ``reference``.

    ``pool`` must be real images disjoint from ``reference`` and from the training images (the
    validation part of the held-out data): the model's FLD is ``samples`` vs the same
    ``reference``, so both numbers have identical sample and reference sizes. Where the pool is
    smaller than ``n_samples`` the draws are made with replacement (said in ``method``): repeated
    images lower the sample diversity, so the floor is then slightly pessimistic, never flattering.
    """
    _check_sizes(pool, reference, n_samples)
    rng = np.random.default_rng(seed)
    replace = len(pool) < n_samples
    values = []
    for _ in range(n_splits):
        pick = rng.choice(len(pool), size=n_samples, replace=replace)
        values.append(frechet_distance(pool[pick], reference))
    method = "real images disjoint from the reference" + (" (drawn with replacement: pool too small)"
                                                          if replace else "")
    return _summary(values, n_samples, len(reference), method)


def memorizer(train: np.ndarray, reference: np.ndarray, n_samples: int, *,
              n_splits: int = DEFAULT_SPLITS, seed: int = 0) -> Baseline:
    """FLD of the training images replayed to ``n_samples`` against the ``reference``.

    The replay uses every training image as evenly as possible: ``n_samples // N`` copies of each,
    plus a random subset for the remainder (which is where the splits differ).
    """
    _check_sizes(train, reference, n_samples)
    rng = np.random.default_rng(seed)
    whole, rest = divmod(n_samples, len(train))
    base = np.tile(np.arange(len(train)), whole)
    values = []
    draws = n_splits if rest else 1  # an exact multiple replays the same set every time
    for _ in range(draws):
        pick = np.concatenate([base, rng.choice(len(train), size=rest, replace=False)])
        values.append(frechet_distance(train[pick], reference))
    return _summary(values, n_samples, len(reference), "training images replayed")


def read_against_baselines(fld: float, copy_fraction: float | None, floor: Baseline,
                           memorized: Baseline) -> dict:
    """FLD next to both baselines, their ratios, and what they say about the model."""
    out = {
        "fld": fld,
        "copy_fraction": copy_fraction,
        "floor": floor.as_dict(),
        "memorizer": memorized.as_dict(),
        "fld_over_floor": fld / floor.mean if floor.mean > 0 else None,
        "fld_over_memorizer": fld / memorized.mean if memorized.mean > 0 else None,
    }
    out["reading"] = reading(fld, copy_fraction, floor.mean, memorized.mean)
    return out


def reading(fld: float, copy_fraction: float | None, floor: float, memorized: float) -> str:
    """One word a reader can act on: copying, under-trained, generalizing or near-real."""
    if copy_fraction is not None and copy_fraction > COPYING_FRACTION:
        return "copying"
    if fld > memorized:
        return "under-trained"
    if fld <= NEAR_FLOOR_RATIO * floor:
        return "near-real"
    return "generalizing"


def _check_sizes(images: np.ndarray, reference: np.ndarray, n_samples: int) -> None:
    if n_samples < 2:
        raise QgenError(f"a baseline needs at least 2 samples, got {n_samples}")
    if len(images) < 1 or len(reference) < 2:
        raise QgenError(f"a baseline needs images to draw from and >= 2 reference images, got "
                        f"{len(images)} and {len(reference)}")
