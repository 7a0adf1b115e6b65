"""``summary.csv``: one row per finished cell with the main metrics, their sample sizes and timings."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qgen.experiment.cells import CELL_METRICS, Cell
from qgen.tomlconfig import atomic_write_bytes


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    lower_is_better: bool


# The metrics the tables, plots and verdict use. "fd" is FLD for grey images and the small-CNN
# Frechet distance for RGB ones (the metric name of each row is in fd_metric).
MAIN_METRICS = (
    Metric("fd", "FLD", True),
    Metric("kid", "KID", True),
    Metric("precision", "precision", False),
    Metric("recall", "recall", False),
    Metric("copy_fraction", "copy fraction", True),
)
PRIMARY_METRIC = MAIN_METRICS[0]

# The dependence ratios (qgen.dependence): FLD with the middle's readouts replaced, over FLD as
# trained. ~1: the images do not need the middle; well above 1: they pass through it.
DEPENDENCE_MODES = ("removal_mean", "removal_shuffle", "content_mean", "content_shuffle")
DEPENDENCE_COLUMNS = tuple(f"dep_{mode}" for mode in DEPENDENCE_MODES)

COLUMNS = (
    "cell_id", "dataset", "arm", "n_train", "seed",
    "fd_metric", "fd", "kid", "kid_std", "kid_subset_size", "precision", "recall", "pr_k",
    "copy_fraction", "copy_fraction_features", "nn_ratio_pixels",
    "floor_fd", "floor_fd_sd", "memorizer_fd", "memorizer_fd_sd", "baseline_reading",
    "dep_fd", *DEPENDENCE_COLUMNS,
    "classifier_accuracy", "n_samples", "n_reference", "n_train_images", "weights",
    "train_seconds", "train_step_seconds", "trainings", "sample_seconds", "eval_seconds",
    "parameters_total", "parameters_gate_middle", "parameters_frozen", "feature_net", "run_dir", "samples_file",
    "qgen_commit",
)

def _get(d: dict, *keys):
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def row_from_metrics(metrics: dict) -> dict:
    cell = metrics["cell"]
    fd_metric = "fld" if "fld" in metrics else "fd_small_cnn"
    fd = metrics.get(fd_metric, {})
    mem = _get(metrics, "memorization") or {}
    dep = _get(metrics, "dependence") or {}
    return {
        "cell_id": cell["id"], "dataset": cell["dataset"], "arm": cell["arm"],
        "n_train": cell["n_train"], "seed": cell["seed"],
        "fd_metric": fd_metric, "fd": fd.get("value"),
        "kid": _get(metrics, "kid", "mean"), "kid_std": _get(metrics, "kid", "std"),
        "kid_subset_size": _get(metrics, "kid", "subset_size"),
        "precision": _get(metrics, "precision_recall", "precision"),
        "recall": _get(metrics, "precision_recall", "recall"),
        "pr_k": _get(metrics, "precision_recall", "k"),
        "copy_fraction": _get(mem, "pixels", "fraction_flagged_as_copies"),
        "copy_fraction_features": _get(mem, "features", "fraction_flagged_as_copies"),
        "nn_ratio_pixels": _get(mem, "pixels", "ratio_of_medians"),
        "floor_fd": _get(metrics, "baselines", "floor", "mean"),
        "floor_fd_sd": _get(metrics, "baselines", "floor", "sd"),
        "memorizer_fd": _get(metrics, "baselines", "memorizer", "mean"),
        "memorizer_fd_sd": _get(metrics, "baselines", "memorizer", "sd"),
        "baseline_reading": _get(metrics, "baselines", "reading"),
        # FLD of the samples the ablations are compared with (exact backend, classical noise)
        "dep_fd": dep.get("fld"),
        **{f"dep_{mode}": _get(dep, mode, "ratio") for mode in DEPENDENCE_MODES},
        "classifier_accuracy": _get(metrics, "classifier", "accuracy"),
        "n_samples": _get(metrics, "sizes", "n_samples"),
        "n_reference": _get(metrics, "sizes", "n_heldout"),
        "n_train_images": _get(metrics, "sizes", "n_train"),
        "train_seconds": cell.get("train_wall_seconds"),
        "train_step_seconds": cell.get("train_step_seconds"),
        "trainings": cell.get("trainings"),
        "sample_seconds": cell.get("sample_seconds"),
        "eval_seconds": cell.get("eval_seconds"),
        "parameters_total": _get(cell, "parameters", "total"),
        "parameters_gate_middle": _get(cell, "parameters", "gate_middle"),
        "parameters_frozen": _get(cell, "parameters", "frozen"),
        "feature_net": _get(metrics, "feature_net", "arch"),
        "run_dir": cell.get("run_dir"),
        "samples_file": cell.get("samples_file"),
        "weights": cell.get("weights"),
        "qgen_commit": _get(cell, "environment", "qgen_commit"),
    }


def collect_rows(out: Path, cells: Iterable[Cell]) -> list[dict]:
    """Rows of the finished cells, in grid order."""
    rows = []
    for cell in cells:
        path = cell.directory(out) / CELL_METRICS
        if path.is_file():
            rows.append(row_from_metrics(json.loads(path.read_text())))
    return rows


def write_summary_csv(rows: list[dict], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    atomic_write_bytes(path, buf.getvalue().encode())
