"""Figures written into run directories (matplotlib, headless)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from qgen.data.scaling import to_uint8_pixels  # noqa: E402
from qgen.fileio import atomic_write_bytes  # noqa: E402


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 grid (H', W', C) with C in {1, 3}."""
    x = to_uint8_pixels(images).numpy()
    n, c, h, w = x.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = (
            x[i].transpose(1, 2, 0)
        )
    return grid


def save_image_grid(images: torch.Tensor, path: Path, scale: int = 3) -> None:
    grid = image_grid(images)
    img = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def save_loss_plot(loss_csv: Path, path: Path) -> None:
    with open(loss_csv) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="loss")
    if len(loss) >= 10:
        k = max(5, len(loss) // 20)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"moving average ({k})")
    ax.set_xlabel("step")
    ax.set_ylabel("ε-MSE")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def save_quality_plot(rows: list[dict], path: Path) -> None:
    """Validation FLD against the step, with the floor and memorizer baselines as lines."""
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    fld = np.array([float(r["fld"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, fld, marker="o", ms=3, lw=1.5, label="validation FLD (EMA)")
    ax.axhline(float(rows[-1]["memorizer"]), color="tab:red", ls="--", lw=1, label="memorizer (training images)")
    ax.axhline(float(rows[-1]["floor"]), color="tab:green", ls="--", lw=1, label="real-data floor")
    ax.set_xlabel("step")
    ax.set_ylabel("FLD")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
