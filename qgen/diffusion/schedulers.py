"""Reverse-process schedulers, one class per sampler, in the shape of diffusers' schedulers.

A scheduler is built from a ``NoiseSchedule`` (its betas) plus its own options (DDIM's ``eta``);
``set_timesteps(steps)`` picks the timesteps it visits, ``step(eps, t, x, noise)`` turns the model's
ε at timestep ``t`` into the next, less noisy sample, drawing any fresh noise from the qgen noise
source (so quantum noise feeds DDPM and DDIM η > 0 alike). The one sampling loop is
``qgen.diffusion.pipeline.sample``. ``noise_draws()`` and ``model_calls()`` are what budgets and dry
runs plan with, so nobody recomputes them.

The interface maps onto diffusers' (``set_timesteps``, ``timesteps``, ``step(model_output, timestep,
sample, variance_noise=...)``): a wrapper around e.g. ``DPMSolverMultistepScheduler`` built with
``trained_betas=schedule.betas`` would pass ``noise.at(t_prev).randn(...)`` as ``variance_noise``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from qgen.diffusion.ddpm import GaussianDiffusion, draw_noise
from qgen.diffusion.schedules import NoiseSchedule
from qgen.errors import QgenError
from qgen.noise_protocol import NoiseSource


class Scheduler(ABC):
    """Base class: the timesteps to visit and the update from x_t to the next sample."""

    name: ClassVar[str] = "base"
    # the sampling-request options (``qgen sample --eta``) that this scheduler reads
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self.T = schedule.T
        self.diffusion = GaussianDiffusion(schedule)  # the float32 terms both samplers read
        self.timesteps: list[int] = []

    @classmethod
    def check_options(cls, T: int, steps: int | None, **options) -> None:
        """Raise the error ``set_timesteps``/the constructor would, without building the schedule."""

    @abstractmethod
    def set_timesteps(self, steps: int | None) -> None:
        """Choose the timesteps (descending) a run visits; one model call each."""

    def to(self, device: torch.device | str) -> Scheduler:
        """Keep the schedule terms on ``device`` (the samples' device); returns self."""
        self.diffusion.to(device)
        return self

    def initial_noise(self, shape: tuple[int, ...], noise: NoiseSource,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        """x_T, drawn on the host for the first timestep, then moved to ``device``."""
        return draw_noise(noise, shape, self.timesteps[0], device=device)

    @abstractmethod
    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
        """The sample after timestep ``t`` (``t`` one of ``timesteps``), given the model's ε at ``t``."""

    def model_calls(self) -> int:
        """Model evaluations per batch of one run."""
        return len(self.timesteps)

    @abstractmethod
    def noise_draws(self) -> int:
        """Full-size noise tensors one run draws per batch, x_T included."""

    def describe(self) -> dict:
        """For sample metadata and manifests."""
        return {"sampler": self.name, "steps": self.model_calls(),
                **{k: getattr(self, k) for k in self.options}, "schedule": self.schedule.describe()}

    def _batch_t(self, t: int, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


class DDPMScheduler(Scheduler):
    """Ancestral sampling (Ho et al. 2020) through all T steps: fresh noise at every step t > 0."""

    name = "ddpm"

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__(schedule)
        self.set_timesteps(None)

    def set_timesteps(self, steps: int | None) -> None:
        # ancestral sampling is only correct step by step: it visits every timestep whatever ``steps`` says
        self.timesteps = list(reversed(range(self.T)))

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
        d, tt = self.diffusion, self._batch_t(t, x)
        x0 = d.predict_x0(x, tt, eps).clamp(-1, 1)
        mean = d.posterior_mean(x0, x, tt)
        if t == 0:
            return mean  # x_0 is the posterior mean: no noise after the last step
        return mean + d.posterior_std(tt, x.ndim) * draw_noise(noise, tuple(x.shape), t - 1, device=x.device)

    def noise_draws(self) -> int:
        return self.T  # x_T plus one per step t > 0


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """Evenly spaced timesteps from T-1 down to 0 ("trailing" spacing: always includes T-1)."""
    if not 1 <= steps <= T:
        raise QgenError(f"--steps must be between 1 and T={T}, got {steps}")
    ts = torch.linspace(T - 1, 0, steps).round().long().tolist()
    return sorted(set(ts), reverse=True)


def _check_eta(eta: float) -> None:
    # eta scales DDIM's per-step noise between none (0) and DDPM's posterior (1); above 1 the step's
    # variance exceeds what the marginal allows and the update is clamped into a different process
    if eta < 0:
        raise QgenError(f"--eta must be >= 0, got {eta}")
    if eta > 1:
        raise QgenError(f"--eta must be <= 1 (0: deterministic DDIM, 1: DDPM-like), got {eta}")


class DDIMScheduler(Scheduler):
    """DDIM (Song et al. 2021); eta=0 is deterministic given x_T (noise only for x_T), eta=1 ~ DDPM."""

    name = "ddim"
    options = ("eta",)

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0) -> None:
        _check_eta(eta)
        super().__init__(schedule)
        self.eta = eta
        self._prev: dict[int, int | None] = {}

    @classmethod
    def check_options(cls, T: int, steps: int | None, eta: float = 0.0, **_) -> None:
        ddim_timesteps(T, steps)
        _check_eta(eta)

    def set_timesteps(self, steps: int | None) -> None:
        self.timesteps = ddim_timesteps(self.T, steps)
        self._prev = dict(zip(self.timesteps, [*self.timesteps[1:], None]))

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
        abar = self.diffusion.alphas_cumprod
        prev = self._prev[t]
        x0 = self.diffusion.predict_x0(x, self._batch_t(t, x), eps).clamp(-1, 1)
        # recompute ε from the clipped x0 so that x0 and ε stay consistent
        eps = (x - abar[t].sqrt() * x0) / (1 - abar[t]).sqrt()
        a_prev = abar[prev] if prev is not None else abar.new_tensor(1.0)
        sigma = self.eta * ((1 - a_prev) / (1 - abar[t]) * (1 - abar[t] / a_prev)).clamp(min=0).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if self.eta > 0 and prev is not None:
            x = x + sigma * draw_noise(noise, tuple(x.shape), prev, device=x.device)
        return x

    def noise_draws(self) -> int:
        return 1 + (len(self.timesteps) - 1 if self.eta > 0 else 0)
