"""Few-step solvers (qgen.diffusion.dpm_solver) against closed forms and qgen's own DDIM."""

from __future__ import annotations

import pytest
import torch

from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.dpm_solver import MultistepSolverScheduler
from qgen.diffusion.samplers import ddim_sample, ddim_timesteps
from qgen.diffusion.schedules import make_schedule
from qgen.errors import QgenError
from qgen.noise import ClassicalNoise

MU, S = 0.1, 0.3


class GaussianDataEps(torch.nn.Module):
    """The exact ε-predictor for data x0 ~ N(MU, S²) per pixel: E[ε | x_t]."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.abar = alphas_cumprod.double()

    def forward(self, x, t):
        a = self.abar[t].view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * S**2 + 1 - a)


def _solve(scheduler, model, x):
    for t in scheduler.timesteps:
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x = scheduler.step(eps, t, x)
    return x


@pytest.mark.parametrize("solver", ["dpm", "unipc"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_solver_reaches_the_data_distribution_and_beats_ddim_at_equal_calls(solver, schedule):
    """Exact ε of Gaussian data: the probability-flow ODE must end at N(MU, S²); a second-order solver
    gets there in fewer model calls than DDIM (a first-order solver of the same ODE)."""
    sched = make_schedule(schedule, 1000)
    model = GaussianDataEps(sched.alphas_cumprod)
    diffusion = GaussianDiffusion(sched)
    for steps, tolerance in ((50, 0.01), (10, None)):
        scheduler = MultistepSolverScheduler(sched.betas, solver)
        scheduler.set_timesteps(steps)
        assert len(scheduler.timesteps) == steps and scheduler.timesteps[0] == 999
        x = torch.randn(5000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
        out = _solve(scheduler, model, x)
        ddim = ddim_sample(model, diffusion, (5000, 1, 2, 2), ClassicalNoise(0), steps=steps)
        assert float(out.mean()) == pytest.approx(MU, abs=0.01)
        if tolerance is not None:
            assert float(out.std()) == pytest.approx(S, abs=tolerance)
        assert abs(float(out.std()) - S) < abs(float(ddim.std()) - S)


def test_first_order_dpm_solver_is_ddim_on_the_same_timesteps():
    """DPM-Solver++(1) is DDIM (Lu et al. 2022, §3.3): checks betas, clipping and timestep conventions."""
    sched = make_schedule("linear", 200)
    diffusion = GaussianDiffusion(sched)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                                torch.nn.Unflatten(1, (1, 4, 4)))
    wrapped = lambda x, t: 2.0 * model(x) + 1e-3 * t.view(-1, 1, 1, 1)  # noqa: E731 - big ε so clipping acts
    ref = ddim_sample(wrapped, diffusion, (8, 1, 4, 4), ClassicalNoise(3), steps=12)
    scheduler = MultistepSolverScheduler(sched.betas, "dpm", order=1)
    scheduler.set_timesteps(12, timesteps=ddim_timesteps(200, 12))
    x = ClassicalNoise(3).randn((8, 1, 4, 4))
    with torch.no_grad():
        out = _solve(scheduler, wrapped, x)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)


def test_solver_draws_noise_only_for_x_T_and_rejects_bad_arguments():
    scheduler = MultistepSolverScheduler(make_schedule("linear", 100).betas)
    assert scheduler.noise_draws() == 1
    with pytest.raises(QgenError):
        scheduler.set_timesteps(0)
    with pytest.raises(QgenError):
        MultistepSolverScheduler(make_schedule("linear", 100).betas, "euler")
