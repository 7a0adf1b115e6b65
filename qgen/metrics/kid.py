"""Unbiased kernel distance (KID, Binkowski et al. 2018) between two feature sets.

Unlike the Frechet distance, the unbiased MMD^2 estimator has no small-sample bias: its
expectation is 0 when both sets come from one distribution, so it can be slightly negative.
That makes it the better headline number when only 10-100 samples exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qgen.errors import QgenError
from qgen.metrics._validation import check_features


@dataclass(frozen=True)
class KernelDistance:
    """Mean and spread of the unbiased MMD^2 over random subsets."""

    mean: float
    std: float
    subset_size: int
    n_subsets: int


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The KID kernel k(x, y) = (x.y / d + 1)^3, d = feature dimension."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equally sized sets (diagonal self-similarities excluded)."""
    m = len(x)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    subset_size: int = 100,
    n_subsets: int = 100,
    seed: int = 0,
) -> KernelDistance:
    """KID over ``n_subsets`` random subsets of size min(subset_size, N_a, N_b), without replacement.

    If both sets are no larger than ``subset_size`` every subset is the whole set and the std is 0:
    that is the honest spread of one estimate, not a claim of certainty.
    """
    a = check_features(features_a, what="features_a", min_rows=2)
    b = check_features(features_b, what="features_b", min_rows=2)
    if a.shape[1] != b.shape[1]:
        raise QgenError(f"KID feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if subset_size < 2 or n_subsets < 1:
        raise QgenError(f"KID needs subset_size >= 2 and n_subsets >= 1, got {subset_size}, {n_subsets}")
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    estimates = np.array([
        unbiased_mmd2(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)])
        for _ in range(n_subsets)
    ])
    # ddof=0 matches torch-fidelity / the reference KID implementation.
    return KernelDistance(float(estimates.mean()), float(estimates.std()), m, n_subsets)
