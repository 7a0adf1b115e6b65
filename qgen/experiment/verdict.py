"""Does the claim hold? "The quantum bottleneck beats its parameter-matched classical counterpart
with < 100 images": supported, not supported, or inconclusive, decided by a rule fixed in advance.

The rule (primary metric FLD, lower is better; quantum minus classical, paired by dataset, N, seed):
  per dataset, over all pairs with N <= claim_max_n:
    95% t-interval of the mean difference entirely below 0  -> quantum better
    entirely above 0                                         -> quantum worse
    containing 0, or fewer than 2 pairs                     -> no clear difference
  overall:
    every dataset "quantum better"                           -> supported
    no dataset better and at least one "quantum worse"       -> not supported
    anything else (overlap, too few pairs, mixed results)    -> inconclusive
Requiring *every* dataset keeps one favourable dataset from carrying the claim (no cherry-picking),
and the interval excluding 0 is the same as a paired t-test with p < 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass

from qgen.experiment.arms import CLAIM_COMPARISON
from qgen.experiment.pairing import compare_arms
from qgen.experiment.stats import PairedComparison
from qgen.experiment.summary import PRIMARY_METRIC, Metric

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
BETTER, WORSE, UNCLEAR = "quantum better", "quantum worse", "no clear difference"


@dataclass(frozen=True)
class DatasetFinding:
    dataset: str
    sizes: tuple[int, ...]
    comparison: PairedComparison
    finding: str


@dataclass(frozen=True)
class Verdict:
    outcome: str
    reason: str
    metric: Metric
    findings: tuple[DatasetFinding, ...]


def classify(comparison: PairedComparison, lower_is_better: bool) -> str:
    if comparison.n_pairs < 2 or comparison.ci_low is None:
        return UNCLEAR
    # "better" means the interval lies on the favourable side of 0
    if comparison.ci_high < 0:
        return BETTER if lower_is_better else WORSE
    if comparison.ci_low > 0:
        return WORSE if lower_is_better else BETTER
    return UNCLEAR


def decide(rows: list[dict], claim_max_n: int, metric: Metric = PRIMARY_METRIC,
           arms: tuple[str, str] = CLAIM_COMPARISON) -> Verdict:
    quantum, classical = arms
    present = {r["arm"] for r in rows}
    if quantum not in present or classical not in present:
        missing = [a for a in arms if a not in present]
        return Verdict(INCONCLUSIVE, f"no finished cells of arm(s) {', '.join(missing)}", metric, ())
    findings = []
    for dataset in sorted({r["dataset"] for r in rows}):
        sizes = tuple(sorted({int(r["n_train"]) for r in rows
                              if r["dataset"] == dataset and int(r["n_train"]) <= claim_max_n}))
        comparison = compare_arms(rows, quantum, classical, metric.column, datasets=[dataset], sizes=sizes)
        findings.append(DatasetFinding(dataset, sizes, comparison, classify(comparison, metric.lower_is_better)))
    outcome, reason = combine(findings, claim_max_n)
    return Verdict(outcome, reason, metric, tuple(findings))


def combine(findings: list[DatasetFinding], claim_max_n: int) -> tuple[str, str]:
    if not findings or all(f.comparison.n_pairs == 0 for f in findings):
        return INCONCLUSIVE, f"no quantum/classical pairs with N <= {claim_max_n}"
    kinds = [f.finding for f in findings]
    if all(k == BETTER for k in kinds):
        return SUPPORTED, "the quantum arm is better on every dataset (95% CI of the paired difference excludes 0)"
    if BETTER not in kinds and WORSE in kinds:
        worse = [f.dataset for f in findings if f.finding == WORSE]
        return NOT_SUPPORTED, f"the quantum arm is significantly worse on {', '.join(worse)} and better on none"
    if BETTER in kinds and WORSE in kinds:
        return INCONCLUSIVE, "mixed: the quantum arm is better on some datasets and worse on others"
    too_few = [f.dataset for f in findings if f.comparison.n_pairs < 2]
    if too_few:
        return INCONCLUSIVE, f"fewer than 2 pairs on {', '.join(too_few)}: no interval can be formed"
    unclear = [f.dataset for f in findings if f.finding == UNCLEAR]
    return INCONCLUSIVE, f"the 95% CI of the paired difference contains 0 on {', '.join(unclear)}"
