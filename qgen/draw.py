"""What a sample set is drawn with (``SampleRequest``) and the drawing itself, batch by batch.

Sampling a run (``qgen.sampling``), a model folder (``qgen.pretrained.PretrainedModel.draw``) and
the dependence ablations (``qgen.dependence``) all draw through ``draw_samples``: the same request,
weights and noise give the same images whichever of them asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from qgen.config import NOISE_KINDS
from qgen.diffusion.pipeline import batch_sizes, sample
from qgen.diffusion.samplers import make_scheduler, scheduler_class
from qgen.diffusion.schedulers import Scheduler
from qgen.errors import QgenError
from qgen.noise_protocol import NoiseSource
from qgen.seed import check_seed

ETA_SAMPLER = "ddim"  # the one sampler with a noise scale eta
WEIGHTS = ("ema", "last", "best")  # a run's checkpoints: EMA at the end, raw last, EMA with the best validation FLD


@dataclass(frozen=True)
class SampleRequest:
    """The options of ``qgen sample`` that decide the images (the samples' metadata records them).

    Checked when made, except what depends on the model's schedule (``validate``)."""

    n: int = 64
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    seed: int = 0
    noise: str = "classical"
    weights: str = "ema"
    batch_size: int = 64
    backend: str | None = None
    shot_budget: int | None = None
    reuse_noise: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise QgenError(f"--n must be >= 1, got {self.n}")
        if self.batch_size < 1:
            raise QgenError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.steps < 1:
            raise QgenError(f"--steps must be >= 1, got {self.steps}")
        check_seed(self.seed, "--seed")
        scheduler_class(self.sampler)  # an unknown sampler: one line naming the known ones
        if self.eta and self.sampler != ETA_SAMPLER:  # it would be silently ignored
            raise QgenError(f"--eta applies to --sampler {ETA_SAMPLER} only; --sampler {self.sampler} has no eta")
        if self.noise not in NOISE_KINDS:
            raise QgenError(f"unknown --noise {self.noise!r}; choose one of {', '.join(NOISE_KINDS)}")
        if self.weights not in WEIGHTS:
            raise QgenError(f"unknown --weights {self.weights!r}; choose one of {', '.join(WEIGHTS)}")
        if self.shot_budget is not None and self.shot_budget < 0:
            raise QgenError(f"--shot-budget must be >= 0, got {self.shot_budget}")

    def validate(self, T: int) -> None:
        """What depends on the model: the sampler's steps and eta against its ``T`` timesteps."""
        scheduler_class(self.sampler).check_options(T, self.steps, eta=self.eta)

    def make_scheduler(self, schedule) -> Scheduler:
        """The request's sampler over ``schedule``, timesteps set (DDPM ignores steps and eta)."""
        return make_scheduler(self.sampler, schedule, steps=self.steps, eta=self.eta)


def draw_samples(eps_model: torch.nn.Module, scheduler: Scheduler, image_shape: tuple[int, ...], noise: NoiseSource,
                 req: SampleRequest, show_progress: bool = False, device: torch.device | None = None) -> torch.Tensor:
    """``req.n`` images of ``image_shape`` (the model's: ``UNet.image_shape``) in batches of
    ``req.batch_size``, one scheduler and noise source throughout; the model runs on ``device``
    (default: where its weights are), the images come back to the host."""
    chunks = batch_sizes(req.n, req.batch_size)
    bar = tqdm(total=scheduler.model_calls() * len(chunks), desc=f"{req.sampler}", unit="step",
               disable=not show_progress)
    try:
        out = [sample(eps_model, scheduler, (size, *image_shape), noise, progress=bar.update, device=device).cpu()
               for size in chunks]
    finally:
        bar.close()
    return torch.cat(out)


def check_finite(images: torch.Tensor, ckpt: dict, source: Path) -> None:
    """Refuse to write samples that are not all finite numbers (a diverged model)."""
    bad = int((~torch.isfinite(images)).sum())
    if bad:
        raise QgenError(f"sampling produced {bad:,} non-finite pixel values (NaN/inf) with the "
                        f"{ckpt.get('weights', 'ema')} weights of {source} at step {ckpt.get('step')}: the model "
                        "has diverged; nothing was written. Resume training from an earlier state or retrain")
