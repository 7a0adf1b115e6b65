"""Plots (metric vs N per arm, 95% CI error bars) and one sample grid per arm."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display: the experiment runs headless

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from qgen.experiment.summary import MAIN_METRICS  # noqa: E402
from qgen.experiment.tables import metric_ci  # noqa: E402
from qgen.plots import save_image_grid  # noqa: E402

GRID_IMAGES = 64


def plot_metrics_vs_n(rows: list[dict], dataset: str, arms: Sequence[str], sizes: Sequence[int],
                      path: Path) -> Path:
    fig, axes = plt.subplots(1, len(MAIN_METRICS), figsize=(4 * len(MAIN_METRICS), 3.4), squeeze=False)
    # a small horizontal offset per arm keeps overlapping error bars readable
    offsets = np.linspace(-0.06, 0.06, max(1, len(arms)))
    for ax, metric in zip(axes[0], MAIN_METRICS):
        for arm, offset in zip(arms, offsets):
            xs, ys, errs = [], [], []
            for n in sizes:
                ci = metric_ci(rows, dataset, arm, n, metric.column)
                if ci.mean is None:
                    continue
                xs.append(n * (1 + offset))
                ys.append(ci.mean)
                errs.append(ci.half_width or 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=arm)
        ax.set_xscale("log")
        ax.set_xticks(list(sizes), [str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training images N")
        ax.set_title(f"{metric.label} ({'lower' if metric.lower_is_better else 'higher'} is better)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{dataset}: mean ± 95% CI over seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_arm_grids(out: Path, rows: list[dict], grids_dir: Path) -> list[Path]:
    """One grid per dataset x arm: the samples of the largest N, lowest seed (fixed, not cherry-picked)."""
    written = []
    for dataset in sorted({r["dataset"] for r in rows}):
        for arm in dict.fromkeys(r["arm"] for r in rows if r["dataset"] == dataset):
            mine = [r for r in rows if r["dataset"] == dataset and r["arm"] == arm and r.get("samples_file")]
            if not mine:
                continue
            pick = max(mine, key=lambda r: (int(r["n_train"]), -int(r["seed"])))
            path = grids_dir / f"{dataset}_{arm}_n{pick['n_train']}_s{pick['seed']}.png"
            samples = Path(out) / pick["samples_file"]
            if not samples.is_file():
                # a long experiment keeps only its cells' metrics between machines: the grid drawn
                # where the samples existed stays; another cell's samples would be a different pick
                if path.is_file():
                    written.append(path)
                continue
            with np.load(samples) as npz:
                images = torch.from_numpy(npz["samples"][:GRID_IMAGES]).float()
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image_grid(images, path)
            written.append(path)
    return written
