"""Bottleneck designs: quality, dependence on the middle map, and cost, for each design and arm.

Each (variant, arm, seed) cell is what a user runs: ``qgen train`` with the recipe (in-training
validation FLD in metrics.csv), then ``qgen sample --sampler dpm --steps 10 --n 128`` and
``qgen evaluate --ablate`` (test FLD against floor and memorizer; the dependence ratios: FLD with
the middle's readouts replaced by their mean / a shuffle, over all rows (removal) and per site
across images (content), over FLD as trained). Arms: ``quantum`` (the circuit), ``classical``
(the parameter-matched twin in the same shell) and ``separable`` (the circuit without entangling
gates). Cells run as subprocesses, ``--workers`` at a time, one torch thread each; finished steps
of a cell are skipped, an interrupted training resumed, so the script can be stopped and started
again. Results: ``--out``/results.csv (one row per cell), summary.md, dependence.png.

    python benchmarks/bottleneck_ablation.py --out docs/results/bottleneck --work /tmp/qgen-bottleneck \\
        --variants channel_gate site patch film --arms quantum classical separable --seeds 0 1 2

Run it from a frozen checkout (a git worktree at a tag, PYTHONPATH pointing at it) when qgen is
edited meanwhile: every step starts a fresh process, and the cells of one table must run one code.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The design flags of each variant; everything else is the recipe (qgen.training.recipe).
VARIANTS: dict[str, list[str]] = {
    "channel_gate": ["--bottleneck", "channel_gate", "--readout", "z", "--skips", "28,14"],
    "site": ["--bottleneck", "site", "--readout", "z", "--skips", "28,14"],
    "patch": ["--bottleneck", "patch", "--readout", "z", "--skips", "28,14"],
    "film": ["--bottleneck", "film", "--readout", "z", "--skips", "28,14"],
    "patch_zz": ["--bottleneck", "patch", "--readout", "zz", "--skips", "28,14"],
    "site_zz": ["--bottleneck", "site", "--readout", "zz", "--skips", "28,14"],
    "site_skip28": ["--bottleneck", "site", "--readout", "z", "--skips", "28"],
    "patch_skip28": ["--bottleneck", "patch", "--readout", "z", "--skips", "28"],
    "site_noskip": ["--bottleneck", "site", "--readout", "z", "--skips", "none"],
    "patch_noskip": ["--bottleneck", "patch", "--readout", "z", "--skips", "none"],
    "site_skip14": ["--bottleneck", "site", "--readout", "z", "--skips", "14"],
    # weaker 14-px skips on the default design: narrowed, dropped in training, both
    "site_skip14_c8": ["--bottleneck", "site", "--readout", "z", "--skips", "14", "--skip-channels", "8"],
    "site_skip14_drop50": ["--bottleneck", "site", "--readout", "z", "--skips", "14", "--skip-drop", "0.5"],
    "site_skip14_drop25": ["--bottleneck", "site", "--readout", "z", "--skips", "14", "--skip-drop", "0.25"],
    "site_skip14_c8_drop50": ["--bottleneck", "site", "--readout", "z", "--skips", "14", "--skip-channels", "8",
                              "--skip-drop", "0.5"],
}
ARMS: dict[str, list[str]] = {
    "quantum": ["--model", "quantum"],
    "classical": ["--model", "classical"],
    "separable": ["--model", "quantum", "--entanglement", "none"],
}
SAMPLE = ["--sampler", "dpm", "--steps", "10", "--n", "128", "--seed", "0"]


def cell_name(variant: str, arm: str, n: int, seed: int) -> str:
    return f"{variant}_{arm}_n{n}_s{seed}"


def _run(cmd: list[str], log: Path, work: Path) -> int:
    env = {**os.environ, "QGEN_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        # cwd outside the checkout: ``python -m`` puts the cwd first on sys.path, ahead of PYTHONPATH
        return subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False, cwd=work).returncode


def run_cell(work: Path, variant: str, arm: str, n: int, seed: int, steps: int, digit: int,
             extra: list[str]) -> Path | None:
    work = work.resolve()
    runs = work / "runs"
    name = cell_name(variant, arm, n, seed)
    log = work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    qgen = [sys.executable, "-m", "qgen.cli"]
    for _ in range(3):  # a cell killed from outside (out of threads, a reboot) resumes where it stopped
        existing = sorted(runs.glob(f"*-{name}"))
        if existing and _status(existing[-1]) == "finished":
            break
        if existing:
            _run([*qgen, "train", "--resume", str(existing[-1]), "--no-progress"], log, work)
        else:
            _run([*qgen, "train", *ARMS[arm], *VARIANTS[variant], "--class", str(digit), "--no-download",
                  "--n-train", str(n), "--seed", str(seed), "--steps", str(steps), "--runs-dir", str(runs),
                  "--name", name, "--no-progress", *extra], log, work)
    found = sorted(runs.glob(f"*-{name}"))
    if not found or _status(found[-1]) != "finished":
        return None
    run = found[-1]
    if not list(run.glob("samples-dpm10-*.npz")):
        _run([*qgen, "sample", "--run", str(run), *SAMPLE, "--no-progress"], log, work)
    if not _has_dependence(run):
        _run([*qgen, "evaluate", "--run", str(run), "--ablate"], log, work)
    return run


def _status(run: Path) -> str | None:
    try:
        return json.loads((run / "manifest.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _has_dependence(run: Path) -> bool:
    path = run / "metrics.json"
    return path.is_file() and "removal_mean" in json.loads(path.read_text()).get("dependence", {})


def collect_row(run: Path, variant: str, arm: str, n: int, seed: int) -> dict | None:
    if not (run / "metrics.csv").is_file() or not (run / "metrics.json").is_file():
        return None
    with open(run / "metrics.csv") as fh:
        evals = list(csv.DictReader(fh))
    metrics = json.loads((run / "metrics.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    dep = metrics.get("dependence", {})
    base = metrics.get("baselines", {})
    last = max(evals, key=lambda r: int(r["step"]))
    steps = int(last["step"])
    return {
        "variant": variant, "arm": arm, "n": n, "seed": seed, "steps": steps,
        "val_fld": float(last["fld"]), "val_best_fld": min(float(r["fld"]) for r in evals),
        "val_memorizer": float(last["memorizer"]), "val_floor": float(last["floor"]),
        "val_copy": float(last["copy_fraction"]),
        "train_cpu_min": float(last["train_cpu_seconds"]) / 60,
        "test_fld": metrics[base.get("metric", "fld")]["value"],
        "test_memorizer": base.get("memorizer", {}).get("mean"), "test_floor": base.get("floor", {}).get("mean"),
        "test_copy": base.get("copy_fraction"),
        **{f"{m}": (dep.get(m) or {}).get("ratio") for m in
           ("removal_mean", "removal_shuffle", "content_mean", "content_shuffle")},
        "params": json.dumps(manifest.get("parameters", {})),
        "run": run.name,
    }


def write_outputs(out: Path, rows: list[dict], command: str) -> None:
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    if not rows:
        return
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["arm"], r["n"]), []).append(r)
    twin_cpu = {(v, n): np.mean([r["train_cpu_min"] for r in rs]) for (v, a, n), rs in groups.items()
                if a == "classical"}

    def cell(values, fmt="{:.2f}"):
        values = [v for v in values if v is not None]
        if not values:
            return "–"
        text = fmt.format(np.mean(values))
        return text + (f" ± {fmt.format(np.std(values, ddof=1))}" if len(values) > 1 else "")

    lines = ["# Bottleneck designs (MNIST \"3\", partial until the status says otherwise)", "",
             f"Command: `{command}`", "",
             "Validation FLD: the last in-training evaluation (96 DPM-Solver++ 10-step samples of the EMA weights "
             "against the validation images); test FLD: `qgen evaluate` on 128 samples against the test images. "
             "Dependence: FLD with the middle's readouts ablated over FLD as trained (same x_T and sampler, exact "
             "backend); removal = mean / shuffle over all rows, content = per-site mean / shuffle across images. "
             "Mean ± sd over seeds. CPU min: training (one thread, evaluations included); step ratio: CPU "
             "minutes over the classical twin's in the same variant.", "",
             "| variant | arm | seeds | val FLD | val FLD/mem | test FLD | test FLD/mem | removal mean | "
             "removal shuffle | content mean | content shuffle | CPU min | ×twin |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (variant, arm, n), rs in sorted(groups.items()):
        twin = twin_cpu.get((variant, n))
        cpu = np.mean([r["train_cpu_min"] for r in rs])
        ratio = f"{cpu / twin:.2f}" if twin else "–"
        lines.append(
            f"| {variant} | {arm} | {len(rs)} | {cell([r['val_fld'] for r in rs], '{:.1f}')} | "
            f"{cell([r['val_fld'] / r['val_memorizer'] for r in rs])} | {cell([r['test_fld'] for r in rs], '{:.1f}')} | "
            f"{cell([r['test_fld'] / r['test_memorizer'] for r in rs if r['test_memorizer']])} | "
            f"{cell([r['removal_mean'] for r in rs])} | {cell([r['removal_shuffle'] for r in rs])} | "
            f"{cell([r['content_mean'] for r in rs])} | {cell([r['content_shuffle'] for r in rs])} | "
            f"{cpu:.1f} | {ratio} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    plot(out / "dependence.png", groups)


def plot(path: Path, groups: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (label, modes) in zip(axes, [("removal", ("removal_mean", "removal_shuffle")),
                                         ("content", ("content_mean", "content_shuffle"))]):
        for (variant, arm, n), rs in sorted(groups.items()):
            xs = [np.mean([r[m] for r in rs if r[m] is not None] or [np.nan]) for m in modes]
            y = np.mean([r["val_fld"] / r["val_memorizer"] for r in rs])
            marker = {"quantum": "o", "classical": "s", "separable": "^"}.get(arm, "x")
            ax.scatter([max(xs)], [y], marker=marker, s=40)
            ax.annotate(f"{variant} {arm[0]}", (max(xs), y), fontsize=6)
        ax.axvline(2.0, color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} ratio (max of mean/shuffle; FLD ablated / as trained)")
    axes[0].set_ylabel("validation FLD / memorizer")
    axes[0].axhline(1.5, color="k", ls=":", lw=0.8)
    fig.suptitle("Bottleneck designs: quality vs dependence (o quantum, s classical twin, ^ separable)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="where the run directories live (large)")
    p.add_argument("--variants", nargs="+", default=["channel_gate", "site", "patch"], choices=list(VARIANTS))
    p.add_argument("--arms", nargs="+", default=["quantum"], choices=list(ARMS))
    p.add_argument("--n", nargs="+", type=int, default=[64])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--digit", type=int, default=3, help="the MNIST class to train on")
    p.add_argument("--eval-every", type=int, default=None, help="default: the recipe's (about 5 per run)")
    p.add_argument("--collect-only", action="store_true")
    a = p.parse_args()
    extra = ["--eval-every", str(a.eval_every)] if a.eval_every is not None else []
    cells = [(v, arm, n, s) for s in a.seeds for n in a.n for v in a.variants for arm in a.arms]
    command = " ".join(["python", "benchmarks/bottleneck_ablation.py", *(x for x in sys.argv[1:] if x != "--collect-only")])
    # rows already in --out/results.csv are finished cells, possibly of another machine or session
    # whose run directories are gone: kept, and not run again
    previous = {(r["variant"], r["arm"], int(r["n"]), int(r["seed"])): r for r in read_rows(a.out / "results.csv")}
    if not a.collect_only:
        todo = [c for c in cells if c not in previous]
        with ThreadPoolExecutor(a.workers) as pool:
            list(pool.map(lambda c: run_cell(a.work, *c, a.steps, a.digit, extra), todo))
    rows = []
    for variant, arm, n, seed in cells:
        found = sorted((a.work / "runs").glob(f"*-{cell_name(variant, arm, n, seed)}"))
        row = collect_row(found[-1], variant, arm, n, seed) if found else None
        row = row or previous.pop((variant, arm, n, seed), None)
        if row:
            rows.append(row)
    write_outputs(a.out, rows + [r for key, r in previous.items() if key not in set(cells)], command)


def read_rows(path: Path) -> list[dict]:
    """results.csv as written by ``write_outputs``: numbers back as numbers, empty cells as None."""
    if not path.is_file():
        return []
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key, value in row.items():
            if key in ("variant", "arm", "params", "run"):
                continue
            row[key] = None if value == "" else (int(value) if key in ("n", "seed", "steps") else float(value))
    return rows


if __name__ == "__main__":
    main()
