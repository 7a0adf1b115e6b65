"""Chunked Euclidean distances, so 10k x 10k comparisons never hold a full matrix in memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# About 32 MB of float64 per block: small enough for a shared laptop, large enough to be fast.
_BLOCK_ELEMENTS = 4_000_000


def distance_blocks(queries: np.ndarray, references: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (row slice of ``queries``, Euclidean distances of those rows to all ``references``)."""
    reference_sq = np.einsum("ij,ij->i", references, references)
    rows = max(1, _BLOCK_ELEMENTS // max(1, len(references)))
    for start in range(0, len(queries), rows):
        block = queries[start : start + rows]
        block_sq = np.einsum("ij,ij->i", block, block)
        # The expanded form is fast; clipping removes tiny negatives from cancellation.
        squared = block_sq[:, None] + reference_sq[None, :] - 2.0 * block @ references.T
        yield slice(start, start + len(block)), np.sqrt(np.clip(squared, 0.0, None))


def nearest_neighbour_distances(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """For each query row, the distance to its nearest row in ``references``."""
    out = np.empty(len(queries))
    for rows, distances in distance_blocks(queries, references):
        out[rows] = distances.min(axis=1)
    return out


def kth_neighbour_radii(points: np.ndarray, k: int) -> np.ndarray:
    """For each point, the distance to its k-th nearest *other* point in the same set."""
    out = np.empty(len(points))
    for rows, distances in distance_blocks(points, points):
        # Index k (not k-1) because each point's zero distance to itself sorts first.
        out[rows] = np.partition(distances, k, axis=1)[:, k]
    return out
