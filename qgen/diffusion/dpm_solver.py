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

from qgen.errors import QgenError

SOLVERS = ("dpm", "unipc")


class MultistepSolverScheduler:
    """A diffusers multistep scheduler behind qgen's scheduler calls (set_timesteps / timesteps / step)."""

    def __init__(self, betas: torch.Tensor, solver: str = "dpm", order: int = 2) -> None:
        if solver not in SOLVERS:
            raise QgenError(f"unknown few-step solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        if order not in (1, 2, 3):
            raise QgenError(f"solver order must be 1, 2 or 3, got {order}")
        self.solver, self.order = solver, order
        self.T = len(betas)
        common = dict(num_train_timesteps=self.T, trained_betas=betas.double().numpy(), solver_order=order,
                      prediction_type="epsilon", thresholding=True, sample_max_value=1.0,
                      timestep_spacing="trailing")
        if solver == "dpm":
            from diffusers import DPMSolverMultistepScheduler

            self._inner = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_type="midpoint",
                                                      lower_order_final=True, final_sigmas_type="zero", **common)
        else:
            from diffusers import UniPCMultistepScheduler

            self._inner = UniPCMultistepScheduler(predict_x0=True, lower_order_final=True,
                                                  final_sigmas_type="zero", **common)
        self._timesteps: list[int] = []

    def set_timesteps(self, steps: int, timesteps: list[int] | None = None) -> None:
        """``steps`` model calls on the trailing grid, or exactly the given descending ``timesteps``."""
        if timesteps is not None:
            self._inner.set_timesteps(timesteps=list(timesteps))
        else:
            if not 1 <= steps <= self.T:
                raise QgenError(f"--steps must be between 1 and T={self.T}, got {steps}")
            self._inner.set_timesteps(steps)
        self._timesteps = [int(t) for t in self._inner.timesteps]

    @property
    def timesteps(self) -> list[int]:
        return list(self._timesteps)

    def noise_draws(self) -> int:
        """Full-size noise tensors one sampling run draws: x_T only (the solvers are deterministic)."""
        return 1

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, noise=None) -> torch.Tensor:  # noqa: ARG002
        # ``noise`` is part of the scheduler call for stochastic samplers; these ODE solvers use none.
        return self._inner.step(eps, int(t), x, return_dict=False)[0]
