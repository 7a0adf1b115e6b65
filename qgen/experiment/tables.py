"""Markdown tables: mean ± 95% CI per arm x N, and the paired comparisons."""

from __future__ import annotations

import math
from collections.abc import Sequence

from qgen.experiment.pairing import compare_arms, log_ratios_by_seed
from qgen.experiment.stats import MeanCI, PairedComparison, log_ratio_test, mean_ci
from qgen.experiment.summary import DEPENDENCE_MODES, MAIN_METRICS, Metric


def fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.4g}"


def fmt_ci(ci: MeanCI) -> str:
    if ci.mean is None:
        return "–"
    if ci.low is None:
        return f"{fmt(ci.mean)} (n={ci.n}, no CI)"
    return f"{fmt(ci.mean)} ± {fmt(ci.half_width)} (n={ci.n})"


def fmt_p(p: float | None) -> str:
    return "–" if p is None else (f"{p:.2g}" if p >= 1e-3 else "<0.001")


def _markdown(header: Sequence[str], body: list[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def metric_ci(rows: list[dict], dataset: str, arm: str, n: int, column: str) -> MeanCI:
    return mean_ci([r.get(column) for r in rows if r["dataset"] == dataset and r["arm"] == arm
                    and int(r["n_train"]) == n])


def metric_table(rows: list[dict], dataset: str, arms: Sequence[str], sizes: Sequence[int],
                 metrics: Sequence[Metric] = MAIN_METRICS) -> str:
    """One line per arm x N: every main metric as mean ± 95% CI half-width over seeds."""
    header = ["arm", "N"] + [f"{m.label} {'↓' if m.lower_is_better else '↑'}" for m in metrics] + ["train s"]
    body = []
    for arm in arms:
        for n in sizes:
            if not any(r["dataset"] == dataset and r["arm"] == arm and int(r["n_train"]) == n for r in rows):
                continue
            cis = [fmt_ci(metric_ci(rows, dataset, arm, n, m.column)) for m in metrics]
            seconds = metric_ci(rows, dataset, arm, n, "train_seconds").mean
            body.append([arm, str(n), *cis, fmt(seconds)])
    return _markdown(header, body)


def comparison_cells(c: PairedComparison) -> list[str]:
    ci = "–" if c.ci_low is None else f"[{fmt(c.ci_low)}, {fmt(c.ci_high)}]"
    return [str(c.n_pairs), fmt(c.mean_diff), ci, fmt_p(c.t_p), fmt_p(c.wilcoxon_p)]


def paired_table(rows: list[dict], arm_a: str, arm_b: str, datasets: Sequence[str], sizes: Sequence[int],
                 claim_max_n: int, metrics: Sequence[Metric] = MAIN_METRICS) -> str:
    """Differences ``arm_a - arm_b`` per dataset and N, plus the pooled N <= claim_max_n line."""
    header = ["dataset", "N", "metric", "pairs", f"mean diff ({arm_a} − {arm_b})", "95% CI", "paired t p",
              "Wilcoxon p"]
    body = []
    for dataset in datasets:
        groups = [(str(n), [n]) for n in sizes]
        in_claim = [n for n in sizes if n <= claim_max_n]
        if len(in_claim) > 1:
            groups.append((f"≤{claim_max_n} (pooled)", in_claim))
        for label, group in groups:
            for m in metrics:
                c = compare_arms(rows, arm_a, arm_b, m.column, datasets=[dataset], sizes=group)
                if c.n_pairs:
                    body.append([dataset, label, m.label, *comparison_cells(c)])
    return _markdown(header, body) if body else f"(no finished {arm_a}/{arm_b} pairs)"


def baseline_table(rows: list[dict], dataset: str, sizes: Sequence[int]) -> str:
    """The real-data floor and the memorizer per N (same sample size and reference as the cells):
    an arm's FLD means something only between these two."""
    header = ["N", "floor FLD (real images)", "memorizer FLD (training images replayed)", "samples per cell"]
    body = []
    for n in sizes:
        mine = [r for r in rows if r["dataset"] == dataset and int(r["n_train"]) == n]
        if not mine:
            continue
        samples = sorted({r.get("n_samples") for r in mine} - {None})
        body.append([str(n), fmt_ci(mean_ci([r.get("floor_fd") for r in mine])),
                     fmt_ci(mean_ci([r.get("memorizer_fd") for r in mine])), ", ".join(map(str, samples)) or "–"])
    return _markdown(header, body) if body else "(no finished cells)"


def dependence_table(rows: list[dict], dataset: str, arms: Sequence[str], sizes: Sequence[int]) -> str:
    """Dependence ratios (ablated FLD / FLD as trained) per gated arm x N, mean ± 95% CI over seeds."""
    header = ["arm", "N", *(m.replace("_", " ") for m in DEPENDENCE_MODES)]
    body = []
    for arm in arms:
        for n in sizes:
            mine = [r for r in rows if r["dataset"] == dataset and r["arm"] == arm and int(r["n_train"]) == n]
            if not any(r.get("dep_removal_mean") is not None for r in mine):
                continue
            body.append([arm, str(n), *(fmt_ci(mean_ci([r.get(f"dep_{m}") for r in mine])) for m in DEPENDENCE_MODES)])
    return _markdown(header, body) if body else "(no dependence ratios: no finished gated cells, or dependence off)"


def _ratio_interval(ci: tuple[float, float] | None) -> str:
    return "–" if ci is None else f"[{fmt(math.exp(ci[0]))}, {fmt(math.exp(ci[1]))}]"


def log_ratio_cells(test) -> list[str]:
    """A ``LogRatioTest`` as table cells: FLD ratio (geometric mean) with its 95% and 90% intervals."""
    return [str(test.n), fmt(test.ratio), _ratio_interval(test.ci95), _ratio_interval(test.ci90),
            fmt_p(test.t_p), fmt_p(test.wilcoxon_p), fmt_p(test.sign_p), fmt_p(test.tost_p)]


LOG_RATIO_HEADER = ["seeds", "FLD ratio a/b", "95% CI", "90% CI", "t p", "Wilcoxon p", "sign p", "TOST p"]


def findings_table(findings) -> str:
    """One line per dataset of ``verdict.analyse_pair`` findings (seeds averaged over N)."""
    header = ["dataset", "N averaged", *LOG_RATIO_HEADER, "finding"]
    body = [[f.dataset, ", ".join(map(str, f.sizes)), *log_ratio_cells(f.test),
             f.finding + (f" ({f.note})" if f.note else "")] for f in findings]
    return _markdown(header, body) if body else "(no pairs)"


def per_n_log_ratio_table(rows: list[dict], arm_a: str, arm_b: str, datasets: Sequence[str], sizes: Sequence[int],
                          margin: float) -> str:
    """log(FLD a / FLD b) per dataset and single N (one value per seed), tested like the pooled line."""
    header = ["dataset", "N", *LOG_RATIO_HEADER]
    body = []
    for dataset in datasets:
        for n in sizes:
            by_seed = log_ratios_by_seed(rows, arm_a, arm_b, dataset, [n])
            if by_seed:
                body.append([dataset, str(n), *log_ratio_cells(log_ratio_test(list(by_seed.values()), margin))])
    return _markdown(header, body) if body else f"(no finished {arm_a}/{arm_b} pairs)"
