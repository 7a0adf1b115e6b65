"""The protocol's hardware question: does device + shot noise erase what the circuit contributes?

Sampling only. For every finished ``quantum`` cell at the largest N, the cell's own sampling request
(same weights, sampler, steps, n, x_T seed) is drawn again on a fake IBM device *with shot noise*
(``fake_fez``: device gate noise, readout error, multinomial shots per expectation value) at the
hardware route's recommended setting (docs/results/hardware/: 1,024 shots per expectation value,
DPM-Solver++ 10 steps), scored by FLD against the same test images as the cell, and compared with
the cell's exact FLD, per seed: ratio device / exact and the protocol's log-ratio test.

Writes ``<out>/hardware/``: ``backends.toml`` (the device entry used), ``hardware.csv`` (one row per
cell, resumable: rows present are skipped) and ``hardware.md``. The samples stay in the cells' runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from qgen.commands import SampleCommand
from qgen.data import load_dataset
from qgen.data.heldout import limit_images
from qgen.draw import SampleRequest
from qgen.evaluation import feature_net_for, heldout_for
from qgen.experiment.cell_run import EVALUATION_SEED
from qgen.experiment.cells import CELL_METRICS, Cell, expand_cells
from qgen.experiment.config import ExperimentConfig
from qgen.experiment.stats import log_ratio_test
from qgen.experiment.tables import LOG_RATIO_HEADER, _markdown, fmt, log_ratio_cells
from qgen.experiment.verdict import classify
from qgen.metrics.feature_net import extract_features
from qgen.metrics.frechet import frechet_distance
from qgen.rundir import RunDir
from qgen.sampling import sample
from qgen.tomlconfig import atomic_write_bytes

HARDWARE_ARM = "quantum"
DEVICE = "fez"              # FakeFez: the device of the hardware route
SHOTS = 1024                # the route's recommendation (docs/results/hardware/README.md)
SIMULATOR_SEED = 1234
FIELDS = ("cell_id", "dataset", "seed", "n_train", "backend", "shots", "sampler", "steps", "n", "weights",
          "fld_exact", "fld_device", "ratio", "samples_file", "wall_seconds")


@dataclass(frozen=True)
class HardwareOptions:
    out: Path
    shots: int = SHOTS
    device: str = DEVICE
    log: object = print


def backend_name(opts: HardwareOptions) -> str:
    return f"fake_{opts.device}_s{opts.shots}"


def backends_toml(opts: HardwareOptions) -> str:
    """The fake device with a finite shot count, as the hardware route samples it."""
    return (f'[backends.{backend_name(opts)}]\nkind = "fake"\ndevice = "ibm_{opts.device}"\n'
            f'method = "density_matrix"\noptimization_level = 2\nseed_transpiler = 1234\n'
            f"seed_simulator = {SIMULATOR_SEED}\nshots = {int(opts.shots)}\n")


def hardware_cells(cfg: ExperimentConfig) -> list[Cell]:
    """The quantum arm's cells at the largest N of the grid: what the hardware question samples."""
    largest = max(cfg.sizes)
    return [c for c in expand_cells(cfg) if c.arm.name == HARDWARE_ARM and c.n == largest]


def score_fld(run_dir: Path, images: torch.Tensor, heldout_limit: int) -> float:
    """FLD of ``images`` against the cell's reference, exactly as ``qgen.evaluation`` scores the cell
    (same feature net, same test subset), without writing the run's metrics.json."""
    cfg = RunDir(run_dir).config()
    held = heldout_for(cfg.data, load_dataset(cfg.data))
    test = limit_images(held.test, heldout_limit, EVALUATION_SEED)
    net = feature_net_for(cfg.data, EVALUATION_SEED)
    return float(frechet_distance(extract_features(net, images.float()), extract_features(net, test)))


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def run_hardware(cfg: ExperimentConfig, opts: HardwareOptions) -> list[dict]:
    """Sample every finished hardware cell on the device (skipping those already in the CSV)."""
    folder = Path(opts.out) / "hardware"
    folder.mkdir(parents=True, exist_ok=True)
    backends = folder / "backends.toml"
    atomic_write_bytes(backends, backends_toml(opts).encode())
    csv_path = folder / "hardware.csv"
    rows = _read_rows(csv_path)
    done = {(r["cell_id"], r["shots"]) for r in rows}
    for cell in hardware_cells(cfg):
        metrics_path = cell.directory(opts.out) / CELL_METRICS
        if not metrics_path.is_file() or (cell.id, str(opts.shots)) in done:
            continue
        metrics = json.loads(metrics_path.read_text())
        info = metrics["cell"]
        run_dir = Path(opts.out) / info["run_dir"]
        with np.load(Path(opts.out) / info["samples_file"]) as npz:
            request = json.loads(str(npz["metadata"]))["request"]
        known = {k: v for k, v in request.items() if k in SampleRequest.__dataclass_fields__}
        req = replace(SampleRequest(**known), backend=backend_name(opts), shot_budget=None, reuse_noise=False)
        opts.log(f"qgen experiment: hardware: {cell.id} on {backend_name(opts)} ({req.n} samples, {req.steps} steps)")
        t0 = time.perf_counter()
        samples = sample(SampleCommand(req, run=run_dir, backends_file=backends))
        fld_device = score_fld(run_dir, samples["images"], cfg.heldout_limit)
        fld_exact = metrics["fld" if "fld" in metrics else "fd_small_cnn"]["value"]
        rows.append({"cell_id": cell.id, "dataset": cell.dataset.label, "seed": cell.seed, "n_train": cell.n,
                     "backend": backend_name(opts), "shots": opts.shots, "sampler": req.sampler, "steps": req.steps,
                     "n": req.n, "weights": req.weights, "fld_exact": f"{fld_exact:.6g}",
                     "fld_device": f"{fld_device:.6g}", "ratio": f"{fld_device / fld_exact:.6g}",
                     "samples_file": str(Path(samples["npz"]).relative_to(opts.out)),
                     "wall_seconds": f"{time.perf_counter() - t0:.1f}"})
        _write_rows(csv_path, rows)  # after every cell: an interrupt keeps what is done
    atomic_write_bytes(folder / "hardware.md", hardware_markdown(cfg, rows).encode())
    return rows


def hardware_markdown(cfg: ExperimentConfig, rows: list[dict]) -> str:
    """Per dataset: device / exact FLD per seed and the protocol's log-ratio test of it."""
    lines = ["# Hardware question: does device + shot noise erase what the circuit contributes?", "",
             f"The `{HARDWARE_ARM}` arm's N = {max(cfg.sizes)} models, sampled again with the cells' own requests "
             f"(same weights, x_T, sampler and steps) on a fake IBM device with shot noise, scored against the same "
             "test images. Ratio = FLD on the device / FLD exact (1: the device changes nothing measurable).", ""]
    if not rows:
        return "\n".join(lines + ["(no finished quantum cells at the largest N yet)", ""])
    backends = sorted({f"{r['backend']} ({r['shots']} shots, {r['sampler']} {r['steps']} steps)" for r in rows})
    lines += [f"Device: {', '.join(backends)}.", "", "| cell | FLD exact | FLD device | ratio |", "|---|---|---|---|"]
    lines += [f"| {r['cell_id']} | {fmt(float(r['fld_exact']))} | {fmt(float(r['fld_device']))} | "
              f"{fmt(float(r['ratio']))} |" for r in rows]
    body = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        logs = [math.log(float(r["ratio"])) for r in rows if r["dataset"] == dataset and float(r["ratio"]) > 0]
        test = log_ratio_test(logs, cfg.equivalence_margin)
        finding, note = classify(test)
        body.append([dataset, *log_ratio_cells(test), finding.replace("better", "device better").replace(
            "worse", "device worse") + (f" ({note})" if note else "")])
    lines += ["", "Per dataset (seeds as units; a = device, b = exact; margin as the protocol's):", "",
              _markdown(["dataset", *LOG_RATIO_HEADER, "finding"], body), ""]
    return "\n".join(lines)
