"""Frechet distance between Gaussians fitted to two feature sets (the formula behind FID).

With Inception features this is FID; with qgen's LeNet features it is FLD. The formula is
    ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr( (S_a S_b)^(1/2) ).
Note the estimate is biased upwards for small sample sizes, so only compare values computed
with the same number of samples and reference images (both are reported alongside the value).
"""

from __future__ import annotations

import numpy as np

from qgen.metrics._validation import check_features


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, N >= 2."""
    features = check_features(features, what="features", min_rows=2)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """tr((S_a S_b)^(1/2)) for covariance matrices, computed stably.

    S_a S_b is not symmetric, and scipy.linalg.sqrtm on it can return complex parts or fail on
    the singular covariances that fewer samples than feature dimensions produce. It is similar
    to S_a^(1/2) S_b S_a^(1/2), which is symmetric positive semi-definite, so the trace of its
    square root is the sum of square roots of real, clipped eigenvalues.
    """
    sqrt_a = _psd_sqrt(sigma_a)
    middle = sqrt_a @ sigma_b @ sqrt_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of two (N, D) feature sets (each N >= 2)."""
    mu_a, sigma_a = gaussian_statistics(features_a)
    mu_b, sigma_b = gaussian_statistics(features_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"feature dimensions differ: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    mean_term = float(np.sum((mu_a - mu_b) ** 2))
    covariance_term = float(np.trace(sigma_a) + np.trace(sigma_b)) - 2.0 * trace_sqrt_product(sigma_a, sigma_b)
    # Round-off can push identical distributions a hair below zero; a distance is never negative.
    return max(0.0, mean_term + covariance_term)
