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


@torch.no_grad()
def sample(
    model: nn.Module,
    scheduler: Scheduler,
    shape: tuple[int, ...],
    noise: NoiseSource,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Draw x_T, then one model call and one scheduler step per timestep; ``progress(1)`` after each."""
    x = scheduler.initial_noise(shape, noise)
    for i in scheduler.timesteps:
        t = torch.full((shape[0],), i, dtype=torch.long)
        x = scheduler.step(model(x, t), i, x, noise)
        if progress:
            progress(1)
    return x


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """How ``n`` samples split into batches of at most ``batch_size`` (the last one may be smaller)."""
    return [min(batch_size, n - i) for i in range(0, n, batch_size)]
