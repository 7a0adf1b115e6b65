"""``report.md`` and ``tables.md``: the verdict in plain words, with its numbers and its caveats."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qgen.experiment.arms import ARMS, CLAIM_COMPARISON, CONTROL_COMPARISONS, EXTRA_COMPARISONS
from qgen.experiment.config import ExperimentConfig
from qgen.experiment.environment import environment
from qgen.experiment.pairing import compare_arms, log_ratios_by_seed
from qgen.experiment.stats import detectable_effect, mean_ci
from qgen.experiment.summary import MAIN_METRICS
from qgen.experiment.tables import (
    baseline_table,
    dependence_table,
    findings_table,
    fmt,
    fmt_ci,
    fmt_p,
    metric_table,
    paired_table,
    per_n_log_ratio_table,
)
from qgen.experiment.verdict import Verdict, analyse_pair
from qgen.rundir import RunDir
from qgen.tomlconfig import atomic_write_bytes

# Below this many training steps the numbers say whether the pipeline works, not whether the claim holds.
MIN_STEPS_FOR_EVIDENCE = 200

# What each control asks (a / b), in the words of the report
CONTROL_QUESTIONS = {
    ("quantum", "quantum_frozen"): "does training the circuit matter, against the same circuit as fixed random features?",
    ("quantum", "separable"): "does entanglement matter, against the same circuit without entangling gates?",
    ("quantum", "plain"): "does the bottleneck block matter at all, against the U-Net without it?",
    ("quantum_noise", "quantum"): "does quantum-generated diffusion noise change anything, against pseudo-random noise?",
}


def pair_datasets(cfg: ExperimentConfig, a: str, b: str) -> list[str]:
    """The datasets on which both arms run (``arm_datasets`` may restrict one)."""
    return [d.label for d in cfg.datasets if cfg.runs_on(a, d.label) and cfg.runs_on(b, d.label)]


def claim_sizes(cfg: ExperimentConfig) -> list[int]:
    return [n for n in cfg.sizes if n <= cfg.claim_max_n]


def _comparisons(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    return [c for c in (CLAIM_COMPARISON, *EXTRA_COMPARISONS) if c[0] in cfg.arms and c[1] in cfg.arms]


def tables_markdown(cfg: ExperimentConfig, rows: list[dict]) -> str:
    datasets = [d.label for d in cfg.datasets]
    parts = ["# Tables", "",
             "Mean ± 95% CI half-width (t-distribution over seeds; n = finished cells). ↓ lower is better, "
             "↑ higher is better. FLD is the Fréchet distance in the small feature net's space "
             "(fd_small_cnn for RGB datasets); copy fraction = samples flagged as near-copies of a training image "
             "(pixel space).", ""]
    for dataset in datasets:
        parts += [f"## {dataset}", "", metric_table(rows, dataset, cfg.arms, cfg.sizes), "",
                  "Baselines at the cells' sizes (same reference images, same sample count; mean ± 95% CI over "
                  "the seeds' training subsets):", "", baseline_table(rows, dataset, cfg.sizes), "",
                  "Dependence ratios (FLD with the middle's readouts replaced, over FLD as trained; ≈ 1: the images "
                  "do not need the middle):", "", dependence_table(rows, dataset, cfg.arms, cfg.sizes), ""]
    parts += ["# Paired comparisons", "",
              "Pairs share dataset, N and seed (same training images, initialisation and batches). The protocol's "
              "analysis is the FLD ratio a/b: the geometric mean over seeds of exp(mean over N of log(FLD_a / "
              "FLD_b)), one value per seed (the unit), then per single N. t p: paired t-test of the log-ratio; "
              "Wilcoxon and sign p: its distribution-free checks; TOST p: equivalence within "
              f"±{cfg.equivalence_margin:.0%} (log-ratio within ±log(1 + margin)). The differences tables below them "
              "are a − b of every metric over the (N, seed) pairs, context only. All p two-sided except TOST, "
              "uncorrected for the number of comparisons.", ""]
    for a, b in _comparisons(cfg):
        on = pair_datasets(cfg, a, b)
        parts += [f"## {a} vs {b}", "",
                  findings_table(analyse_pair(rows, a, b, on, claim_sizes(cfg), cfg.equivalence_margin)), "",
                  per_n_log_ratio_table(rows, a, b, on, cfg.sizes, cfg.equivalence_margin), "",
                  paired_table(rows, a, b, on, cfg.sizes, cfg.claim_max_n), ""]
    return "\n".join(parts)


def _secondary_lines(cfg: ExperimentConfig, rows: list[dict]) -> list[str]:
    quantum, classical = CLAIM_COMPARISON
    lines = []
    for metric in MAIN_METRICS[1:]:
        for dataset in (d.label for d in cfg.datasets):
            c = compare_arms(rows, quantum, classical, metric.column, datasets=[dataset], sizes=claim_sizes(cfg))
            if not c.n_pairs:
                continue
            ci = "no CI" if c.ci_low is None else f"95% CI [{fmt(c.ci_low)}, {fmt(c.ci_high)}]"
            better = "lower" if metric.lower_is_better else "higher"
            lines.append(f"- {metric.label} ({better} is better), {dataset}: mean diff {fmt(c.mean_diff)}, {ci}, "
                         f"paired t p = {fmt_p(c.t_p)}, {c.n_pairs} (N, seed) pairs")
    return lines


def _control_lines(cfg: ExperimentConfig, rows: list[dict]) -> list[str]:
    lines = []
    for a, b in CONTROL_COMPARISONS:
        if a not in cfg.arms or b not in cfg.arms:
            continue
        findings = analyse_pair(rows, a, b, pair_datasets(cfg, a, b), claim_sizes(cfg), cfg.equivalence_margin)
        lines += [f"### {a} vs {b}: {CONTROL_QUESTIONS[(a, b)]}", "", findings_table(findings), ""]
    return lines or ["(no control arms in this experiment)", ""]


def _dependence_lines(cfg: ExperimentConfig, rows: list[dict]) -> list[str]:
    """The claim is only worth testing on models that use their middle: the removal ratio per arm."""
    lines = []
    for dataset in (d.label for d in cfg.datasets):
        for arm in cfg.arms:
            values = [r.get("dep_removal_mean") for r in rows if r["dataset"] == dataset and r["arm"] == arm]
            ci = mean_ci(values)
            if ci.n:
                content = mean_ci([r.get("dep_content_shuffle") for r in rows
                                   if r["dataset"] == dataset and r["arm"] == arm])
                lines.append(f"- {dataset}, `{arm}`: removal (mean) {fmt_ci(ci)}, content (shuffle) {fmt_ci(content)}")
    if not lines:
        return ["- (no dependence ratios yet)"]
    return lines


def _power_lines(cfg: ExperimentConfig, rows: list[dict]) -> list[str]:
    """The power this design has, from the spread of the claim's per-seed log-ratios seen so far."""
    quantum, classical = CLAIM_COMPARISON
    planned = len(cfg.seeds)
    lines = []
    for dataset in pair_datasets(cfg, quantum, classical):
        values = list(log_ratios_by_seed(rows, quantum, classical, dataset, claim_sizes(cfg)).values())
        if len(values) < 2:
            continue
        sd = float(np.std(values, ddof=1))
        effect = detectable_effect(sd, planned)
        detect = "–" if effect is None else f"a geometric-mean FLD ratio of {math.exp(-effect):.3g} or {math.exp(effect):.3g}"
        lines.append(f"- {dataset}: sd of the per-seed log-ratio {fmt(sd)} over {len(values)} seeds; with "
                     f"{planned} seeds the paired t-test (α = 0.05, two-sided) detects {detect} with 80% power "
                     f"(equivalence margin: {1 / (1 + cfg.equivalence_margin):.3g}–{1 + cfg.equivalence_margin:.3g}).")
    return lines or ["- (needs at least 2 complete seeds)"]


def _data_notes(out: Path, rows: list[dict]) -> list[str]:
    """Caveats the data loaders recorded (e.g. the offline MNIST fallback), once per dataset."""
    notes = {}
    for row in rows:
        if row["dataset"] in notes or not row.get("run_dir"):
            continue
        try:
            source = RunDir(Path(out) / row["run_dir"]).manifest().get("data_source", {})
        except Exception:
            continue
        notes[row["dataset"]] = source.get("note")
    return [f"- {dataset}: {note}" for dataset, note in notes.items() if note]


def _environment_lines(out: Path, cells_metrics: Sequence[dict]) -> list[str]:
    """The distinct environments the finished cells recorded (one line each, with its cell count)."""
    seen: dict[str, int] = {}
    for env in cells_metrics:
        if env:
            line = (f"qgen {env.get('qgen_commit', '?')}; torch {env.get('torch', '?')}, qiskit {env.get('qiskit', '?')}, "
                    f"qiskit-aer {env.get('qiskit-aer', '?')}, qiskit-machine-learning "
                    f"{env.get('qiskit-machine-learning', '?')}, numpy {env.get('numpy', '?')}, scipy "
                    f"{env.get('scipy', '?')}, Python {env.get('python', '?')}; CPU {env.get('cpu', '?')} "
                    f"({env.get('platform', '?')})")
            seen[line] = seen.get(line, 0) + 1
    if not seen:
        env = environment()
        return [f"- (no finished cell recorded one; this report was written with torch {env['torch']}, qiskit "
                f"{env['qiskit']}, CPU {env['cpu']}, qgen {env['qgen_commit']})"]
    return [f"- {count} cell(s): {line}" for line, count in seen.items()]


def _parameter_line(rows: list[dict]) -> str:
    middles = {}
    for arm in ("quantum", "classical"):
        values = {r.get("parameters_gate_middle") for r in rows if r["arm"] == arm}
        middles[arm] = ", ".join(str(v) for v in sorted(v for v in values if v is not None)) or "–"
    totals = []
    for arm in ARMS:
        values = sorted({r.get("parameters_total") for r in rows if r["arm"] == arm} - {None})
        if values:
            totals.append(f"{arm} {', '.join(map(str, values))}")
    total_text = "; ".join(totals) or "–"
    return (f"Trainable parameters of the middle map: quantum {middles['quantum']}, classical "
            f"{middles['classical']} (they must match; the frozen circuit has none). Whole model: {total_text}.")


def report_markdown(cfg: ExperimentConfig, rows: list[dict], verdict: Verdict, *, out: Path,
                    n_cells: int, failed: Sequence[str], preset: str | None,
                    environments: Sequence[dict] = ()) -> str:
    quantum, classical = CLAIM_COMPARISON
    smoke = cfg.train.steps < MIN_STEPS_FOR_EVIDENCE
    n_done = len(rows)
    in_claim = claim_sizes(cfg)
    samples = sorted({r.get("n_samples") for r in rows if r.get("n_samples") is not None})
    references = sorted({r.get("n_reference") for r in rows if r.get("n_reference") is not None})
    bound = math.log1p(cfg.equivalence_margin)
    m = cfg.model
    lines = [
        f"# Experiment report: {cfg.name}",
        "",
        f"**Claim:** the quantum bottleneck beats its parameter-matched classical twin with N ≤ {cfg.claim_max_n} "
        "training images (lower FLD).",
        "",
        f"**Verdict: {verdict.outcome.upper()}** — {verdict.reason}.",
        "",
    ]
    if smoke:
        lines += [f"> This is a smoke-sized run ({cfg.train.steps} training steps, preset {preset or 'custom'}): "
                  "it shows that the pipeline works end to end. Its numbers are **not evidence** for or against "
                  "the claim.", ""]
    if n_done < n_cells:
        lines += [f"> Incomplete (partial): {n_done} of {n_cells} cells finished"
                  + (f"; failed: {', '.join(failed)}" if failed else "")
                  + ". Resume with `qgen experiment --out <this folder>`.", ""]
    lines += [
        "## How the verdict was decided",
        "",
        f"Fixed before the data (docs/results/experiment/PROTOCOL.md; code: qgen/experiment/verdict.py). Per "
        f"dataset, the unit is the seed: L = mean over N ∈ {{{', '.join(map(str, in_claim))}}} of log(FLD_{quantum} / "
        f"FLD_{classical}), from seeds that finished both arms at every N. *Equivalent*: TOST against "
        f"±log(1 + {cfg.equivalence_margin:g}) = ±{bound:.4f} has p < 0.05 (90% CI inside; FLD ratio "
        f"{1 / (1 + cfg.equivalence_margin):.3g}–{1 + cfg.equivalence_margin:.3g}), checked first. *Better* / "
        "*worse*: otherwise the paired t-test of mean L = 0 has p < 0.05 and the Wilcoxon signed-rank test agrees. "
        "**Supported**: better on every dataset; **equivalent within the margin**: equivalent on every dataset; "
        "**not supported**: worse somewhere and better nowhere; anything else **inconclusive**.",
        "",
        findings_table(verdict.findings),
        "",
        "Per N, and every other metric: tables.md.",
        "",
        "Secondary metrics (context, not part of the decision; differences quantum − classical over (N, seed) pairs):",
        "",
        *(_secondary_lines(cfg, rows) or ["- (none finished)"]),
        "",
        "## Controls: what the quantum arm's result is owed to",
        "",
        "Same test, a / b; they inform the reading of the verdict and do not enter it.",
        "",
        *_control_lines(cfg, rows),
        "## Do the models use their bottleneck?",
        "",
        "Dependence ratio = FLD with the middle's readouts replaced by their batch mean (removal) or by another "
        "image's (content shuffle), over FLD as trained; ≈ 1 means the images do not need the middle, and a "
        "comparison of middles then compares nothing. Mean ± 95% CI over cells (per N: tables.md).",
        "",
        *_dependence_lines(cfg, rows),
        "",
        "## Power",
        "",
        *_power_lines(cfg, rows),
        "",
        "## Setup",
        "",
        f"- Arms: {', '.join(f'`{a}` ({ARMS[a].description})' for a in cfg.arms)}.",
        *(f"- `{s.arm}` runs on {', '.join(s.datasets)} only." for s in cfg.arm_datasets),
        f"- Datasets: {', '.join(f'{d.label} (`{d.dataset}`' + (f', classes {list(d.classes)}' if d.classes else ', all classes') + ')' for d in cfg.datasets)}.",
        f"- Training-set sizes N: {', '.join(map(str, cfg.sizes))}; seeds: {', '.join(map(str, cfg.seeds))} "
        "(a seed fixes the image subset, the initialisation of the shared layers, the batch order and the noise, "
        "shared by all arms).",
        f"- Training (identical for all arms): {cfg.train.steps} steps, batch {cfg.train.batch_size}, AdamW lr "
        f"{cfg.train.lr} ({cfg.train.lr_schedule}, {cfg.train.lr_warmup} warm-up), EMA {cfg.train.ema_decay}"
        f"{f' (power {cfg.train.ema_power:g})' if cfg.train.ema_power else ''}; validation FLD every "
        f"{cfg.train.eval_every or '–'} steps; U-Net widths {list(m.widths)}, bottleneck `{m.bottleneck}` "
        f"(readout {m.readout}, skips {list(m.skips) or 'none'}), {m.qubits} qubits × {m.layers} layers "
        f"({m.entanglement}; {m.circuit_rows_per_image if m.kind == 'quantum' else '–'} circuit rows per image), "
        f"T = {cfg.diffusion.T} ({cfg.diffusion.schedule}, {cfg.diffusion.prediction}-prediction).",
        f"- Sampling: up to {cfg.sampling.n} samples per cell (as many as the test part has, if fewer) with "
        f"{cfg.sampling.sampler.upper()} ({cfg.sampling.steps} steps) from the {cfg.sampling.weights.upper()} "
        f"weights; metrics against up to {cfg.heldout_limit} test images (the validation part chose the best "
        "checkpoint; the test part is scored).",
        f"- {_parameter_line(rows)}",
        f"- Cells finished: {n_done} of {n_cells}.",
        "",
        "## Environment",
        "",
        *_environment_lines(out, environments),
        "",
        "## Caveats",
        "",
        f"- Sample sizes: {', '.join(map(str, samples)) or '–'} generated images per cell, "
        f"{', '.join(map(str, references)) or '–'} reference images, {len(cfg.seeds)} seeds per arm × N. "
        "Fréchet distances and KID are biased at these sizes; compare arms within this experiment only, and read "
        "each FLD against the floor and the memorizer of the same size (tables.md).",
        "- The feature network is a small CNN (LeNet-style) trained on the dataset itself, **not Inception**: "
        "FLD/KID values are not comparable with published FID numbers.",
        "- The copy fraction is a nearest-neighbour heuristic (train distance < 1/3 of held-out distance); "
        "0 does not prove the absence of memorization.",
        "- Several datasets, sizes, metrics and controls are reported; only the primary rule above is the test. "
        "The other p-values are uncorrected for multiple comparisons.",
        f"- The quantum arms are simulated exactly ({cfg.backend}); this says nothing about hardware noise"
        + (" beyond the `noisy_device` arm." if "noisy_device" in cfg.arms else
           " (the protocol's hardware question is answered separately: `qgen experiment --out <this folder> "
           "--hardware` samples the quantum arm's largest-N models on fake_fez with shot noise into hardware/)."),
        *(["- `quantum_noise`: on a simulator the 'quantum' bits come from a seeded simulation, i.e. a "
           "pseudo-random generator; only a device gives physical randomness."] if "quantum_noise" in cfg.arms else []),
        *(["- PathMNIST (the seed paper's headline dataset) was not available on this machine and is not in "
           "the grid; it runs as is when its file is present."] if not any(d.label == "pathmnist" for d in cfg.datasets)
          else []),
        *_data_notes(out, rows),
        "",
        "## Files",
        "",
        "- `summary.csv`: one row per finished cell (metrics, baselines, dependence ratios, sample sizes, times).",
        "- `tables.md`: mean ± 95% CI per arm × N, baselines, dependence ratios, and every paired comparison.",
        "- `plots/`: metric vs N per arm (error bars: 95% CI). `grids/`: samples per arm (largest N, lowest seed).",
        "- `cells/<cell-id>/metrics.json` and `cells/<cell-id>/run/`: everything per cell; `state.json`: progress.",
        "",
    ]
    return "\n".join(lines)


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
