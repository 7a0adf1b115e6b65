"""Does the claim hold? "The quantum bottleneck beats its parameter-matched classical twin with
~100 images or fewer": supported, not supported, equivalent within the margin, or inconclusive,
decided by a rule fixed before the data (docs/results/experiment/PROTOCOL.md, section "Decision rule").

The unit is the seed (all N of a seed share its images and initialisation). For each dataset and
each seed finished at every N <= claim_max_n in both arms, L = mean over N of log(FLD_quantum /
FLD_classical) (negative: quantum better). Over the seeds of a dataset (alpha = 0.05):

  equivalent  the TOST of L against +-log(1 + margin) has p < alpha (the 90% CI of mean L lies
              inside the bounds) -- checked first: a difference smaller than the margin is no
              advantage, even when it is statistically significant (the report says so);
  better      else the paired t-test of mean L = 0 has p < alpha with mean L < 0, and the
              Wilcoxon signed-rank test agrees (p < alpha): a result that only the t-test sees
              is not robust and counts as unclear;
  worse       the same with mean L > 0;
  unclear     anything else, including fewer than 2 complete seeds.

Across datasets (``combine``): every dataset better -> SUPPORTED; every dataset equivalent ->
EQUIVALENT WITHIN THE MARGIN; none better and at least one worse -> NOT SUPPORTED; anything else
(mixed, too few seeds, unclear anywhere) -> INCONCLUSIVE. Requiring every dataset keeps one
favourable dataset from carrying the claim. The controls (quantum vs frozen, separable, plain;
quantum noise vs quantum) get the same per-dataset findings, reported next to the verdict; they
do not enter it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qgen.experiment.arms import CLAIM_COMPARISON
from qgen.experiment.pairing import log_ratios_by_seed
from qgen.experiment.stats import ALPHA, LogRatioTest, log_ratio_test
from qgen.experiment.summary import PRIMARY_METRIC, Metric

SUPPORTED, NOT_SUPPORTED, EQUIVALENT, INCONCLUSIVE = (
    "supported", "not supported", "equivalent within the margin", "inconclusive")
BETTER, WORSE, SAME, UNCLEAR = "better", "worse", "equivalent", "no clear difference"


@dataclass(frozen=True)
class PairFinding:
    """arm_a vs arm_b on one dataset: the test of the per-seed log-ratios and what it says."""

    arm_a: str
    arm_b: str
    dataset: str
    sizes: tuple[int, ...]
    test: LogRatioTest
    finding: str          # BETTER / WORSE / SAME / UNCLEAR, from arm_a's side (lower FLD is better)
    note: str = ""


@dataclass(frozen=True)
class Verdict:
    outcome: str
    reason: str
    metric: Metric
    margin: float
    findings: tuple[PairFinding, ...]


def classify(test: LogRatioTest, alpha: float = ALPHA) -> tuple[str, str]:
    """The per-dataset finding of the rule above, with a note when the numbers need one."""
    if test.n < 2 or test.sd is None:
        return UNCLEAR, f"{test.n} complete seed(s): no test possible"
    significant = test.t_p is not None and test.t_p < alpha
    robust = test.wilcoxon_p is not None and test.wilcoxon_p < alpha
    if test.tost_p is not None and test.tost_p < alpha:
        note = "significant but smaller than the margin" if significant and robust else ""
        return SAME, note
    if significant and robust:
        return (BETTER if test.mean < 0 else WORSE), ""
    if significant:
        return UNCLEAR, "t-test significant, Wilcoxon not: not robust"
    return UNCLEAR, ""


def analyse_pair(rows: list[dict], arm_a: str, arm_b: str, datasets: Iterable[str], sizes: Sequence[int],
                 margin: float, metric: Metric = PRIMARY_METRIC) -> tuple[PairFinding, ...]:
    """One finding per dataset for log(arm_a / arm_b) of ``metric``, per seed averaged over ``sizes``."""
    out = []
    for dataset in datasets:
        by_seed = log_ratios_by_seed(rows, arm_a, arm_b, dataset, sizes, metric.column)
        test = log_ratio_test(list(by_seed.values()), margin)
        finding, note = classify(test)
        out.append(PairFinding(arm_a, arm_b, dataset, tuple(sizes), test, finding, note))
    return tuple(out)


def combine(findings: Sequence[PairFinding]) -> tuple[str, str]:
    """The verdict from the claim's per-dataset findings: the rule of the module docstring."""
    if not findings or all(f.test.n == 0 for f in findings):
        return INCONCLUSIVE, "no seed has finished both arms at every N yet"
    kinds = [f.finding for f in findings]
    names = lambda kind: ", ".join(f.dataset for f in findings if f.finding == kind)  # noqa: E731
    if all(k == BETTER for k in kinds):
        return SUPPORTED, "quantum FLD is lower than classical on every dataset (paired t and Wilcoxon p < 0.05, " \
                          "outside the equivalence margin)"
    if all(k == SAME for k in kinds):
        return EQUIVALENT, "quantum and classical FLD are equivalent within the margin on every dataset (TOST p < 0.05)"
    if BETTER not in kinds and WORSE in kinds:
        return NOT_SUPPORTED, f"quantum FLD is higher than classical on {names(WORSE)} and lower on none"
    if BETTER in kinds and WORSE in kinds:
        return INCONCLUSIVE, f"mixed: quantum better on {names(BETTER)}, worse on {names(WORSE)}"
    parts = []
    if BETTER in kinds:
        parts.append(f"quantum better on {names(BETTER)} only")
    if SAME in kinds:
        parts.append(f"equivalent on {names(SAME)}")
    if UNCLEAR in kinds:
        parts.append(f"no clear difference on {names(UNCLEAR)}")
    return INCONCLUSIVE, "; ".join(parts)


def decide(rows: list[dict], *, datasets: Sequence[str], sizes: Sequence[int], margin: float,
           metric: Metric = PRIMARY_METRIC, arms: tuple[str, str] = CLAIM_COMPARISON) -> Verdict:
    """The verdict on the claim: ``arms`` = (quantum, classical), ``sizes`` = the N of the claim."""
    findings = analyse_pair(rows, *arms, datasets, sizes, margin, metric)
    outcome, reason = combine(findings)
    return Verdict(outcome, reason, metric, margin, findings)
