"""Training-recipe ablation: validation FLD against CPU minutes, one variant per recipe knob.

Each (variant, seed, N, model) cell is an ordinary ``qgen train`` run with in-training evaluation
(metrics.csv: validation FLD, copy fraction, floor and memorizer baselines, training CPU seconds),
so what is measured is exactly what users run. Cells run as subprocesses, ``--workers`` at a time,
one torch thread each; a finished cell is skipped and an interrupted one resumed, so the script can
be stopped and started again. Results go to ``--out``: results.csv (every evaluation of every
cell), summary.md (the table) and fld_vs_minutes.png.

    python benchmarks/recipe_ablation.py --out docs/results/recipe --work /tmp/qgen-recipe \\
        --variants old eps eps_minsnr v v_minsnr aug1 --seeds 0 --n 64 --steps 2000

Run it from a snapshot of the code (PYTHONPATH=<copy>) if you edit qgen while it runs: every cell
starts a fresh process, and cells of one table must run the same code.
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

# Everything not listed keeps the recipe default (qgen.training.recipe); "old" is the loop before it.
VARIANTS: dict[str, list[str]] = {
    "old": ["--prediction", "eps", "--lr", "1e-3", "--lr-warmup", "0", "--lr-schedule", "constant",
            "--ema-decay", "0.999", "--ema-power", "0"],
    "recipe": [],
    "eps": ["--prediction", "eps"],
    "eps_minsnr": ["--prediction", "eps", "--loss-weighting", "min_snr"],
    "v": ["--prediction", "v"],
    "v_minsnr": ["--prediction", "v", "--loss-weighting", "min_snr"],
    "lr1e-3": ["--lr", "1e-3"],
    "lr4e-3": ["--lr", "4e-3"],
    "constant_lr": ["--lr-schedule", "constant"],
    "aug1": ["--augment-shift", "1"],
    "aug2": ["--augment-shift", "2"],
    "cosine_schedule": ["--schedule", "cosine"],
    "batch32": ["--batch-size", "32"],
    "ema_timm": ["--ema-power", "0", "--ema-decay", "0.999"],
    "wide": ["--widths", "48,96,96"],
    "t500": ["--timesteps", "500"],
    "shifted_schedule": ["--schedule", "shifted_cosine"],
    "aug1_wide": ["--augment-shift", "1", "--widths", "48,96,96"],
}


def cell_name(variant: str, model: str, n: int, seed: int) -> str:
    return f"{variant}_{model}_n{n}_s{seed}"


def run_cell(work: Path, variant: str, model: str, n: int, seed: int, steps: int, eval_every: int,
             dataset_args: list[str]) -> Path:
    work = work.resolve()  # the cell runs with cwd=work (see below)
    runs = work / "runs"
    name = cell_name(variant, model, n, seed)
    existing = sorted(runs.glob(f"*-{name}"))
    env = {**os.environ, "QGEN_THREADS": "1", "OMP_NUM_THREADS": "1"}
    qgen = [sys.executable, "-m", "qgen.cli"]
    if existing:
        run = existing[-1]
        manifest = json.loads((run / "manifest.json").read_text())
        if manifest.get("status") == "finished":
            return run
        cmd = [*qgen, "train", "--resume", str(run), "--no-progress"]
    else:
        cmd = [*qgen, "train", "--model", model, *dataset_args, "--n-train", str(n), "--seed", str(seed),
               "--steps", str(steps), "--eval-every", str(eval_every), "--runs-dir", str(runs), "--name", name,
               "--no-progress", *VARIANTS[variant]]
    log = work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        # cwd outside the checkout: ``python -m`` puts the cwd first on sys.path, ahead of PYTHONPATH,
        # so a run started in the checkout would import its code instead of the snapshot's
        subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False, cwd=work)
    found = sorted(runs.glob(f"*-{name}"))
    if not found:
        raise RuntimeError(f"cell {name} made no run directory; see {log}")
    return found[-1]


def collect(work: Path, cells: list[tuple]) -> list[dict]:
    rows = []
    for variant, model, n, seed in cells:
        found = sorted((work / "runs").glob(f"*-{cell_name(variant, model, n, seed)}"))
        if not found or not (found[-1] / "metrics.csv").is_file():
            continue
        status = json.loads((found[-1] / "manifest.json").read_text()).get("status")
        with open(found[-1] / "metrics.csv") as fh:
            for r in csv.DictReader(fh):
                rows.append({"variant": variant, "model": model, "n": n, "seed": seed, "status": status, **r})
    return rows


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
        groups.setdefault((r["variant"], r["model"], r["n"]), []).append(r)
    lines = ["# Recipe ablation", "", f"Command: `{command}`", "",
             "Validation FLD (qgen LeNet features, the run's --eval-samples of the EMA weights (recipe: 96), DPM-Solver++ 10 steps) at the "
             "last evaluation of each cell; mean ± sd over seeds. Floor: as many real held-out images; memorizer: the "
             "N training images replayed; same sizes and reference. CPU minutes: training steps only "
             "(process time, one thread).", "",
             "| variant | model | N | seeds | CPU min | final FLD | best FLD | FLD/memorizer | copy | floor | memorizer | status |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for (variant, model, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        by_seed: dict = {}
        for r in rs:
            by_seed.setdefault(r["seed"], []).append(r)
        finals = [max(v, key=lambda r: int(r["step"])) for v in by_seed.values()]
        fld = np.array([float(r["fld"]) for r in finals])
        best = np.array([min(float(r["fld"]) for r in v) for v in by_seed.values()])
        mem = float(finals[0]["memorizer"])
        cpu = np.mean([float(r["train_cpu_seconds"]) for r in finals]) / 60
        status = ",".join(sorted({r["status"] for r in finals}))
        sd = f" ± {fld.std(ddof=1):.1f}" if len(fld) > 1 else ""
        lines.append(f"| {variant} | {model} | {n} | {len(finals)} | {cpu:.1f} | {fld.mean():.1f}{sd} | "
                     f"{best.mean():.1f} | {fld.mean() / mem:.2f} | "
                     f"{np.mean([float(r['copy_fraction']) for r in finals]):.0%} | {float(finals[0]['floor']):.1f} | "
                     f"{mem:.1f} | {status} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    plot(out / "fld_vs_minutes.png", groups)


def plot(path: Path, groups: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    baselines: dict[int, tuple[float, float]] = {}
    for (variant, model, n), rs in sorted(groups.items()):
        for seed in sorted({r["seed"] for r in rs}):
            pts = sorted((float(r["train_cpu_seconds"]) / 60, float(r["fld"])) for r in rs if r["seed"] == seed)
            ax.plot(*zip(*pts), marker="o", ms=2.5, lw=1.2, label=f"{variant} {model} N={n} s{seed}")
        baselines[n] = (float(rs[0]["floor"]), float(rs[0]["memorizer"]))
    for i, (n, (floor, memorizer)) in enumerate(sorted(baselines.items())):  # the memorizer depends on N
        ax.axhline(memorizer, color="k", ls="--", lw=1, alpha=1 - 0.25 * i, label=f"memorizer N={n}")
    if baselines:
        ax.axhline(min(f for f, _ in baselines.values()), color="k", ls=":", lw=1, label="real-data floor")
    ax.set_xlabel("training CPU minutes (one thread)")
    ax.set_ylabel("validation FLD")
    ax.set_yscale("log")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="where the run directories live (large)")
    p.add_argument("--variants", nargs="+", default=["old", "recipe"], choices=sorted(VARIANTS))
    p.add_argument("--models", nargs="+", default=["classical"])
    p.add_argument("--n", nargs="+", type=int, default=[64])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--digit", type=int, default=3, help="the MNIST class to train on")
    p.add_argument("--collect-only", action="store_true")
    a = p.parse_args()
    cells = [(v, m, n, s) for s in a.seeds for n in a.n for m in a.models for v in a.variants]
    command = " ".join(["python", "benchmarks/recipe_ablation.py", *(a for a in sys.argv[1:] if a != "--collect-only")])
    if not a.collect_only:
        with ThreadPoolExecutor(a.workers) as pool:
            dataset = ["--class", str(a.digit), "--no-download"]
            list(pool.map(lambda c: run_cell(a.work, *c, a.steps, a.eval_every, dataset), cells))
    write_outputs(a.out, collect(a.work, cells), command)


if __name__ == "__main__":
    main()
