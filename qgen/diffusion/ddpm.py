"""Gaussian diffusion (Ho et al. 2020): forward process and the ε-prediction training loss.

Noise is drawn from a ``qgen.noise_protocol.NoiseSource`` so that classical pseudo-random and
quantum-generated noise are interchangeable. The reverse process (sampling) lives in the
schedulers (``qgen.diffusion.schedulers``), which read the posterior terms precomputed here.

Devices: the terms move once with ``to(device)``; noise and timesteps are always drawn on the host
(CPU generators, the quantum entropy pool) and then moved, so a seed means the same ε and t on
every device.
"""

from __future__ import annotations

import torch
from torch import nn

from qgen.diffusion.objectives import Objective
from qgen.diffusion.schedules import NoiseSchedule
from qgen.noise_protocol import NoiseSource


def draw_noise(noise: NoiseSource, shape: tuple[int, ...], t, dtype=torch.float32,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """ε for timestep(s) ``t``, drawn (and mixed) on the host, then moved to ``device``.

    Timestep-aware sources (quantum/classical mixing) get told ``t`` (as host values).
    """
    if isinstance(t, torch.Tensor):
        t = t.cpu()
    return noise.at(t).randn(shape, dtype=dtype).to(device)


class GaussianDiffusion:
    """Precomputed schedule terms (float32); pure functions of (x0, t, ε)."""

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule
        self.T = schedule.T
        betas = schedule.betas
        abar = torch.cumprod(1.0 - betas, dim=0)
        abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
        self.betas = betas.float()
        self.alphas_cumprod = abar.float()
        self.alphas_cumprod_prev = abar_prev.float()
        self.sqrt_abar = abar.sqrt().float()
        self.sqrt_one_minus_abar = (1 - abar).sqrt().float()
        # posterior q(x_{t-1} | x_t, x_0) variance (clipped at t=0 for the log) and coefficients
        post_var = betas * (1 - abar_prev) / (1 - abar)
        self.posterior_variance = post_var.float()
        self.posterior_log_var = torch.log(torch.cat([post_var[1:2], post_var[1:]])).float()
        self.coef_x0 = (betas * abar_prev.sqrt() / (1 - abar)).float()
        self.coef_xt = ((1 - abar_prev) * (1 - betas).sqrt() / (1 - abar)).float()
        self.device = torch.device("cpu")

    _TERMS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_abar", "sqrt_one_minus_abar",
              "posterior_variance", "posterior_log_var", "coef_x0", "coef_xt")

    def to(self, device: torch.device | str) -> GaussianDiffusion:
        """Move the precomputed terms to ``device`` (once, instead of at every lookup); returns self."""
        self.device = torch.device(device)
        for name in self._TERMS:
            setattr(self, name, getattr(self, name).to(self.device))
        return self

    @staticmethod
    def extract(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """``values[t]`` shaped to broadcast over a batch of ``ndim``-dimensional tensors."""
        return values.to(t.device)[t].reshape(-1, *([1] * (ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return (self.extract(self.sqrt_abar, t, x0.ndim) * x0
                + self.extract(self.sqrt_one_minus_abar, t, x0.ndim) * eps)

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return ((xt - self.extract(self.sqrt_one_minus_abar, t, xt.ndim) * eps)
                / self.extract(self.sqrt_abar, t, xt.ndim))

    def posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x_0)."""
        return self.extract(self.coef_x0, t, xt.ndim) * x0 + self.extract(self.coef_xt, t, xt.ndim) * xt

    def posterior_std(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """Standard deviation of q(x_{t-1} | x_t, x_0), from the clipped log variance."""
        return torch.exp(0.5 * self.extract(self.posterior_log_var, t, ndim))

    def training_loss(
        self,
        model: nn.Module,
        x0: torch.Tensor,
        noise: NoiseSource,
        generator: torch.Generator,
        objective: Objective | None = None,
    ) -> torch.Tensor:
        """The objective's loss at uniformly drawn timesteps (default: plain ε-MSE, Ho et al. 2020).

        ``generator`` is a CPU generator: t is drawn on the host and moved, like ε.
        """
        t_host = torch.randint(0, self.T, (x0.shape[0],), generator=generator)
        eps = draw_noise(noise, tuple(x0.shape), t_host, dtype=x0.dtype, device=x0.device)
        t = t_host.to(x0.device)
        xt = self.q_sample(x0, t, eps)
        if objective is None or objective == Objective():
            return nn.functional.mse_loss(model(xt, t), eps)  # the original loss, bit for bit
        return objective.loss(model(xt, t), x0, eps, self.alphas_cumprod.to(t.device)[t])
