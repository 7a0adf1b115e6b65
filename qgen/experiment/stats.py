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
from scipy.optimize import brentq

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


# -- the protocol's analysis: per-seed log-ratios, superiority, equivalence, power ----------------

ALPHA = 0.05


@dataclass(frozen=True)
class LogRatioTest:
    """One sample of per-seed log-ratios log(FLD_a / FLD_b) (negative: a better), tested three ways.

    ``t_p``: two-sided one-sample t-test of mean 0 (the paired superiority test on the log scale);
    ``wilcoxon_p`` / ``sign_p``: its distribution-free robustness checks; ``tost_p``: the larger of
    the two one-sided t-tests against the margin bounds -log(1+m) and +log(1+m) (equivalence when
    < alpha, i.e. the 90% CI lies inside the bounds). Anything the data cannot give is None.
    """

    n: int
    mean: float | None
    sd: float | None
    ci95: tuple[float, float] | None
    ci90: tuple[float, float] | None
    t_p: float | None
    wilcoxon_p: float | None
    sign_p: float | None
    tost_p: float | None
    bound: float                      # log(1 + margin)

    @property
    def ratio(self) -> float | None:
        """The geometric-mean FLD ratio a / b."""
        return None if self.mean is None else math.exp(self.mean)


def t_interval(x: np.ndarray, confidence: float) -> tuple[float, float] | None:
    if len(x) < 2:
        return None
    low, high = stats.t.interval(confidence, df=len(x) - 1, loc=float(x.mean()), scale=float(stats.sem(x)))
    return (float(low), float(high)) if math.isfinite(low) else (float(x.mean()), float(x.mean()))


def log_ratio_test(values: Sequence[float | None], margin: float) -> LogRatioTest:
    x = _finite(values)
    n, bound = len(x), math.log1p(margin)
    if n == 0:
        return LogRatioTest(0, None, None, None, None, None, None, None, None, bound)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n >= 2 else None
    t_p = tost_p = wilcoxon_p = sign_p = None
    if n >= 2 and np.ptp(x) > 0:  # identical values: the t statistic is undefined (not ~1e-17 noise)
        t_p = float(stats.ttest_1samp(x, 0.0).pvalue)
        above_lower = float(stats.ttest_1samp(x, -bound, alternative="greater").pvalue)
        below_upper = float(stats.ttest_1samp(x, bound, alternative="less").pvalue)
        tost_p = max(above_lower, below_upper)
    nonzero = x[x != 0]
    if len(nonzero):
        sign_p = float(stats.binomtest(int((nonzero > 0).sum()), len(nonzero), 0.5).pvalue)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns that tiny n gives coarse p-values; n is reported
            try:
                wilcoxon_p = float(stats.wilcoxon(x).pvalue)
            except ValueError:
                wilcoxon_p = None
    return LogRatioTest(n, mean, sd, t_interval(x, 0.95), t_interval(x, 0.90), t_p, wilcoxon_p, sign_p, tost_p,
                        bound)


def t_test_power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample (paired) t-test of mean 0 with ``n`` units when the true
    mean is ``effect`` and the units' sd is ``sd``: the non-central t distribution, exactly."""
    if n < 2 or sd <= 0:
        return float("nan")
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / sd * math.sqrt(n)  # symmetric in the sign of the effect
    # the far tail (rejecting on the wrong side) is ~0 for a large nc, where scipy returns NaN
    wrong_side = float(np.nan_to_num(stats.nct.cdf(-crit, df, nc), nan=0.0))
    return float(stats.nct.sf(crit, df, nc)) + wrong_side


def detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = 0.80) -> float | None:
    """The smallest true mean (same units as ``sd``: log-ratio) the two-sided paired t-test finds
    with probability ``power`` at level ``alpha`` with ``n`` units; None below 2 units."""
    if n < 2 or not sd or sd <= 0:
        return None
    high = 20.0  # standardised effects; a design that needs more than 20 sd has no useful power
    if not t_test_power(high, 1.0, n, alpha) >= power:
        return None
    d = brentq(lambda e: t_test_power(e, 1.0, n, alpha) - power, 1e-9, high, xtol=1e-12)
    return float(d * sd)
