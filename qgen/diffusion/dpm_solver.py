"""Few-step samplers from diffusers: DPM-Solver++ (2M) and UniPC, on qgen's own betas.

On hardware every sampling step is one estimator job, so the number of model calls is the cost.
DPM-Solver++ (Lu et al. 2022) and UniPC (Zhao et al. 2023) are multistep ODE solvers that reach
DDIM-50 quality in ~10 calls. diffusers implements both carefully (order switching at the end,
final step to sigma 0); we use its schedulers rather than rewriting them and only adapt:

  * betas: ``trained_betas`` = the run's schedule, so any qgen schedule (linear, cosine, shifted,
    sigmoid) is sampled exactly as it was trained;
  * clipping: ``thresholding`` with ``sample_max_value = 1`` clamps the predicted x0 to [-1, 1],
    which is what qgen's DDIM does (dynamic thresholding's scale s is clamped to [1, 1]);
  * noise: both are deterministic given x_T, and x_T comes from qgen's noise source (classical or
    quantum), so they draw one noise tensor per image batch -- the fewest quantum bits of any sampler;
  * timesteps: "trailing" spacing (Lin et al. 2024) starts at t = T-1, where x_T ~ N(0, I) is the
    right start, and does not spend a model call at t = 0.

Each instance holds the solver's history of model outputs, so use one per sampling loop.
"""

from __future__ import annotations

import torch

from qgen.diffusion.schedulers import Scheduler
from qgen.diffusion.schedules import NoiseSchedule
from qgen.errors import QgenError
from qgen.noise_protocol import NoiseSource


class MultistepSolverScheduler(Scheduler):
    """A diffusers multistep ODE solver behind qgen's scheduler interface."""

    solver = "dpm"
    order = 2

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__(schedule)
        common = dict(num_train_timesteps=self.T, trained_betas=schedule.betas.double().numpy(),
                      solver_order=self.order, prediction_type="epsilon", thresholding=True,
                      sample_max_value=1.0, timestep_spacing="trailing", lower_order_final=True,
                      final_sigmas_type="zero")
        self._inner = self._make(common)

    def _make(self, common: dict):
        raise NotImplementedError

    @classmethod
    def check_options(cls, T: int, steps: int | None, **_) -> None:
        if steps is None or not 1 <= steps <= T:
            raise QgenError(f"--steps must be between 1 and T={T}, got {steps}")

    def set_timesteps(self, steps: int | None, timesteps: list[int] | None = None) -> None:
        """``steps`` model calls on the trailing grid, or exactly the given descending ``timesteps``."""
        if timesteps is None:
            self.check_options(self.T, steps)
        self._request = (steps, None if timesteps is None else list(timesteps))
        self._restart_solver()
        self.timesteps = [int(t) for t in self._inner.timesteps]

    def initial_noise(self, shape: tuple[int, ...], noise: NoiseSource,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        # diffusers' multistep schedulers keep the previous model outputs and a step index: every
        # sampling run (each batch) must start from a clean solver, or the second batch would
        # continue the first one's history
        self._restart_solver()
        return super().initial_noise(shape, noise, device)

    def _restart_solver(self) -> None:
        steps, timesteps = self._request
        if timesteps is not None:
            self._inner.set_timesteps(timesteps=timesteps)
        else:
            self._inner.set_timesteps(steps)

    def noise_draws(self) -> int:
        """x_T only: the solvers are deterministic given it (the fewest quantum bits of any sampler)."""
        return 1

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, noise: NoiseSource | None = None) -> torch.Tensor:
        # ``noise`` belongs to the scheduler call for stochastic samplers; these ODE solvers use none
        return self._inner.step(eps, int(t), x, return_dict=False)[0]


class DPMSolverScheduler(MultistepSolverScheduler):
    """DPM-Solver++(2M) (Lu et al. 2022), data prediction, midpoint second-order update."""

    name = "dpm"

    def _make(self, common: dict):
        # deferred: diffusers is ~5 s of import after torch (measured), and every run imports the
        # samplers, but only runs that use a few-step solver need it
        from diffusers import DPMSolverMultistepScheduler

        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_type="midpoint", **common)


class UniPCScheduler(MultistepSolverScheduler):
    """UniPC (Zhao et al. 2023): a predictor-corrector of order 2 on the same ODE."""

    name = "unipc"

    def _make(self, common: dict):
        from diffusers import UniPCMultistepScheduler  # deferred: see DPMSolverScheduler._make

        return UniPCMultistepScheduler(predict_x0=True, **common)
