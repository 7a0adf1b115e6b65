"""The one sampling loop: a model, a scheduler and a noise source in, images out.

Every sampler runs through ``sample`` (``qgen sample``, the trainer's end-of-run grid, the
experiment runner), so a scheduler is all a new sampler needs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from qgen.diffusion.schedulers import Scheduler
from qgen.noise_protocol import NoiseSource
from qgen.torch_device import module_device


@torch.no_grad()
def sample(
    model: nn.Module,
    scheduler: Scheduler,
    shape: tuple[int, ...],
    noise: NoiseSource,
    progress: Callable[[int], None] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw x_T, then one model call and one scheduler step per timestep; ``progress(1)`` after each.

    Runs on ``device`` (default: the model's); noise is drawn on the host and moved, so the same
    seed gives the same x_T and per-step noise on every device. The images stay on ``device``.
    """
    device = module_device(model) if device is None else torch.device(device)
    scheduler.to(device)
    x = scheduler.initial_noise(shape, noise, device)
    for i in scheduler.timesteps:
        t = torch.full((shape[0],), i, dtype=torch.long, device=device)
        x = scheduler.step(model(x, t), i, x, noise)
        if progress:
            progress(1)
    return x


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """How ``n`` samples split into batches of at most ``batch_size`` (the last one may be smaller)."""
    return [min(batch_size, n - i) for i in range(0, n, batch_size)]
