"""Matching the cells of two arms into pairs: same dataset, same N, same seed (= same training images)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from qgen.experiment.stats import PairedComparison, paired_comparison

PairKey = tuple[str, int, int]   # (dataset, n_train, seed)


def values_by_key(rows: Iterable[dict], arm: str, column: str) -> dict[PairKey, float | None]:
    return {(r["dataset"], int(r["n_train"]), int(r["seed"])): r.get(column) for r in rows if r["arm"] == arm}


def compare_arms(rows: list[dict], arm_a: str, arm_b: str, column: str, *,
                 datasets: Iterable[str] | None = None, sizes: Iterable[int] | None = None) -> PairedComparison:
    """Paired differences ``arm_a - arm_b`` of ``column`` over the pairs both arms finished."""
    keep_datasets = set(datasets) if datasets is not None else None
    keep_sizes = set(sizes) if sizes is not None else None
    a, b = values_by_key(rows, arm_a, column), values_by_key(rows, arm_b, column)
    keys = sorted(k for k in a.keys() & b.keys()
                  if (keep_datasets is None or k[0] in keep_datasets) and (keep_sizes is None or k[1] in keep_sizes))
    return paired_comparison([a[k] for k in keys], [b[k] for k in keys])


def log_ratios_by_seed(rows: list[dict], arm_a: str, arm_b: str, dataset: str, sizes: Iterable[int],
                       column: str = "fd") -> dict[int, float]:
    """Per seed, log(a / b) of ``column`` averaged over ``sizes`` -- the protocol's unit of analysis.

    All N of one seed share images and initialisation, so they are one unit, not |sizes| pairs. A
    seed counts only when both arms finished at *every* size (a partial seed averaged over fewer N
    would be another quantity); values that are missing or not positive make the seed incomplete.
    """
    sizes = tuple(sizes)
    a, b = values_by_key(rows, arm_a, column), values_by_key(rows, arm_b, column)
    seeds = sorted({seed for (d, _, seed) in a.keys() & b.keys() if d == dataset})
    out = {}
    for seed in seeds:
        logs = []
        for n in sizes:
            x, y = a.get((dataset, n, seed)), b.get((dataset, n, seed))
            if x is None or y is None or not (x > 0 and y > 0) or not math.isfinite(x * y):
                break
            logs.append(math.log(x / y))
        else:
            if logs:
                out[seed] = sum(logs) / len(logs)
    return out
