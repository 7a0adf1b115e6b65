"""Small-sample statistics: t-intervals for means and paired comparisons.

With 3 seeds per cell the t-distribution (not the normal) is the honest interval: its critical
value for 2 degrees of freedom is 4.30, not 1.96. Intervals and p-values are None when the data
cannot give them (fewer than 2 values), never a made-up number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class MeanCI:
    mean: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.mean is None else self.mean - self.low


def _finite(values: Sequence[float | None]) -> np.ndarray:
    arr = np.array([v for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def mean_ci(values: Sequence[float | None], confidence: float = CONFIDENCE) -> MeanCI:
    """Mean and two-sided t-interval; missing values (None, NaN) are dropped and not counted."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        return MeanCI(None, None, None, 0)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, None, None, n)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sem
    return MeanCI(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class PairedComparison:
    """Differences a - b over matched pairs (same dataset, N and seed)."""

    n_pairs: int
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    t_p: float | None          # paired t-test, two-sided
    wilcoxon_p: float | None   # Wilcoxon signed-rank, two-sided (exact for small n)

    @property
    def ci_excludes_zero(self) -> bool:
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)


def paired_comparison(a: Sequence[float | None], b: Sequence[float | None],
                      confidence: float = CONFIDENCE) -> PairedComparison:
    """Compare paired samples; a pair is used only when both of its values exist."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    pairs = [(x, y) for x, y in zip(a, b)
             if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    diffs = np.array([x - y for x, y in pairs], dtype=float)
    ci = mean_ci(diffs, confidence)
    t_p = wilcoxon_p = None
    if len(diffs) >= 2 and np.ptp(diffs) > 0:  # zero variance: the t statistic is undefined
        t_p = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    if len(diffs) >= 1 and np.any(diffs != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns that tiny n gives coarse p-values; we report n
            try:
                wilcoxon_p = float(stats.wilcoxon(diffs).pvalue)
            except ValueError:
                wilcoxon_p = None
    return PairedComparison(len(diffs), ci.mean, ci.low, ci.high, t_p, wilcoxon_p)
