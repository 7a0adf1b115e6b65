"""Reverse-process samplers: DDPM ancestral sampling and DDIM (Song et al. 2021) with eta."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from qgen.diffusion.ddpm import GaussianDiffusion, NoiseLike, draw_noise
from qgen.errors import QgenError

SAMPLERS = ("ddpm", "ddim")


@torch.no_grad()
def ddpm_sample(
    model: nn.Module,
    diffusion: GaussianDiffusion,
    shape: tuple[int, ...],
    noise: NoiseLike,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Ancestral sampling through all T steps: noise for x_T plus one draw per step t > 0."""
    x = draw_noise(noise, shape, diffusion.T - 1)
    for i in reversed(range(diffusion.T)):
        t = torch.full((shape[0],), i, dtype=torch.long)
        eps = model(x, t)
        x0 = diffusion.predict_x0(x, t, eps).clamp(-1, 1)
        mean = diffusion._at(diffusion.coef_x0, t, x.ndim) * x0 + diffusion._at(diffusion.coef_xt, t, x.ndim) * x
        if i > 0:
            std = torch.exp(0.5 * diffusion._at(diffusion.posterior_log_var, t, x.ndim))
            x = mean + std * draw_noise(noise, shape, i - 1)
        else:
            x = mean
        if progress:
            progress(1)
    return x


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """Evenly spaced timesteps from T-1 down to 0 ("trailing" spacing: always includes T-1)."""
    if not 1 <= steps <= T:
        raise QgenError(f"--steps must be between 1 and T={T}, got {steps}")
    ts = torch.linspace(T - 1, 0, steps).round().long().tolist()
    return sorted(set(ts), reverse=True)


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    diffusion: GaussianDiffusion,
    shape: tuple[int, ...],
    noise: NoiseLike,
    steps: int = 50,
    eta: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """DDIM; eta=0 is deterministic given x_T (noise is drawn only for x_T), eta=1 ~ DDPM."""
    if eta < 0:
        raise QgenError(f"--eta must be >= 0, got {eta}")
    ts = ddim_timesteps(diffusion.T, steps)
    abar = diffusion.alphas_cumprod
    x = draw_noise(noise, shape, ts[0])
    for k, i in enumerate(ts):
        t = torch.full((shape[0],), i, dtype=torch.long)
        eps = model(x, t)
        x0 = diffusion.predict_x0(x, t, eps).clamp(-1, 1)
        # recompute ε from the clipped x0 so that x0 and ε stay consistent
        eps = (x - abar[i].sqrt() * x0) / (1 - abar[i]).sqrt()
        a_prev = abar[ts[k + 1]] if k + 1 < len(ts) else torch.tensor(1.0)
        sigma = eta * ((1 - a_prev) / (1 - abar[i]) * (1 - abar[i] / a_prev)).clamp(min=0).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0 and k + 1 < len(ts):
            x = x + sigma * draw_noise(noise, shape, ts[k + 1])
        if progress:
            progress(1)
    return x


def noise_draws(sampler: str, steps: int, T: int, eta: float) -> int:
    """How many full-size noise tensors a sampler draws (for quantum-noise budgeting)."""
    if sampler == "ddpm":
        return T
    if sampler == "ddim":
        n = len(ddim_timesteps(T, steps))
        return 1 + (n - 1 if eta > 0 else 0)
    raise QgenError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
