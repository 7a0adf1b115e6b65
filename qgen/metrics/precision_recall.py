"""k-NN precision and recall (Kynkaanniemi et al. 2019).

Each set's manifold is the union of balls around its points, with radius the distance to the
point's k-th nearest neighbour. Precision: fraction of generated samples inside the real
manifold (fidelity). Recall: fraction of real images inside the generated manifold (coverage).
A memorizing model gets high precision and low recall; noise gets precision near 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qgen.errors import QgenError
from qgen.metrics._distances import distance_blocks, kth_neighbour_radii
from qgen.metrics._validation import check_features


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int


def fraction_inside_manifold(queries: np.ndarray, points: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of ``queries`` that lie within radii[j] of at least one points[j]."""
    inside = np.zeros(len(queries), dtype=bool)
    for rows, distances in distance_blocks(queries, points):
        inside[rows] = (distances <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real_features: np.ndarray, sample_features: np.ndarray, *, k: int = 3) -> PrecisionRecall:
    """Improved precision/recall of ``sample_features`` against ``real_features``; both need > k rows."""
    real = check_features(real_features, what="real_features")
    samples = check_features(sample_features, what="sample_features")
    if k < 1:
        raise QgenError(f"precision/recall needs k >= 1, got {k}")
    if min(len(real), len(samples)) <= k:
        raise QgenError(
            f"precision/recall with k={k} needs more than {k} real and generated images, "
            f"got {len(real)} and {len(samples)}"
        )
    precision = fraction_inside_manifold(samples, real, kth_neighbour_radii(real, k))
    recall = fraction_inside_manifold(real, samples, kth_neighbour_radii(samples, k))
    return PrecisionRecall(precision, recall, k)
