"""TensorBoard event files for a training run, through ``torch.utils.tensorboard``.

What is written (all into the run's ``tensorboard/`` folder, so ``tensorboard --logdir runs/`` shows
every run): the loss and learning rate at every step, the in-training validation FLD, copy fraction
and their floor / memorizer baselines at each evaluation with a grid of the samples scored, the
end-of-run preview grid, and the run's hyper-parameters with its final metrics (the HParams tab).

The CSV files stay the canonical record; this is a view. Images are written only at evaluations
and at the end (never per step), so the cost is a few scalars per step.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import torch

from qgen.errors import QgenError

# images in one grid at an evaluation: enough to judge, small enough to keep event files light
GRID_IMAGES = 16


def require_tensorboard() -> None:
    """Fail before a run directory exists when the tensorboard package is missing."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError as exc:
        raise QgenError(f"TensorBoard logging needs the tensorboard package ({exc}); install it with "
                        "pip install tensorboard, or pass --no-tensorboard") from None


class TrainingBoard:
    """One run's SummaryWriter. ``purge_step`` (a resume): events an interrupted process wrote at or
    after that step are discarded by TensorBoard, as the CSV logs are cut back."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        require_tensorboard()
        # deferred, like the two imports below: a run with --no-tensorboard needs neither the package nor
        # its import time (torch.utils.tensorboard ~0.2 s, torchvision ~3.5 s after torch, measured)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step or None)

    def step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def quality(self, row, images: torch.Tensor) -> None:
        """One in-training evaluation (a ``qgen.training.quality.QualityRow``) and the samples it scored."""
        for key in ("fld", "copy_fraction", "floor", "memorizer"):
            value = getattr(row, key)
            if math.isfinite(value):
                self.writer.add_scalar(f"quality/{key}", value, row.step)
        self.writer.add_scalar("quality/cpu_seconds", row.seconds, row.step)
        self.images("samples/evaluation", images, row.step)

    def images(self, tag: str, images: torch.Tensor, step: int) -> None:
        from torchvision.utils import make_grid

        x = images[:GRID_IMAGES].detach().float().clamp(-1, 1)
        self.writer.add_image(tag, make_grid((x + 1) / 2, nrow=4, padding=2, pad_value=1.0), step)

    def hparams(self, hparams: dict, metrics: dict, step: int) -> None:
        """The run's settings and final metrics, in the run's own event file (not a sub-run)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        metrics = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
        experiment, start, end = hparams_summary(hparams, metrics)
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary)
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


def run_hparams(cfg) -> dict:
    """A RunConfig flattened to the scalars and strings TensorBoard's HParams tab takes."""
    out = {"backend": cfg.backend}
    for section in ("data", "model", "diffusion", "train"):
        for key, value in asdict(getattr(cfg, section)).items():
            if isinstance(value, bool | int | float | str):
                out[f"{section}.{key}"] = value
            elif isinstance(value, tuple | list):
                out[f"{section}.{key}"] = ",".join(str(v) for v in value)
    return out


def final_metrics(losses: list[float], quality_rows: list[dict]) -> dict:
    """The metrics the HParams tab shows next to the settings: the mean loss of the last 10% of steps
    and, when the run was evaluated, its last and best validation FLD and last copy fraction."""
    out = {}
    if losses:
        tail = losses[-max(1, len(losses) // 10):]
        out["hparam/final_loss"] = sum(tail) / len(tail)
    if quality_rows:
        last = quality_rows[-1]
        out["hparam/validation_fld"] = float(last["fld"])
        out["hparam/best_validation_fld"] = min(float(r["fld"]) for r in quality_rows)
        out["hparam/copy_fraction"] = float(last["copy_fraction"])
    return out
