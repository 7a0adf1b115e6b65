"""Few-step solvers (qgen.diffusion.dpm_solver) against closed forms and qgen's own DDIM."""

from __future__ import annotations

import pytest
import torch

from qgen.diffusion.dpm_solver import DPMSolverScheduler
from qgen.diffusion.pipeline import sample
from qgen.diffusion.samplers import SCHEDULERS, make_scheduler
from qgen.diffusion.schedulers import ddim_timesteps
from qgen.diffusion.schedules import make_schedule
from qgen.errors import QgenError
from qgen.noise import ClassicalNoise

MU, S = 0.1, 0.3


class FirstOrderDPMSolverScheduler(DPMSolverScheduler):
    """DPM-Solver++(1): the same solver at first order, which is DDIM (eta = 0)."""

    name = "dpm1"
    order = 1


class GaussianDataEps(torch.nn.Module):
    """The exact ε-predictor for data x0 ~ N(MU, S²) per pixel: E[ε | x_t]."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.abar = alphas_cumprod.double()

    def forward(self, x, t):
        a = self.abar[t].view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * S**2 + 1 - a)


@pytest.mark.parametrize("solver", ["dpm", "unipc"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_solver_reaches_the_data_distribution_and_beats_ddim_at_equal_calls(solver, schedule):
    """Exact ε of Gaussian data: the probability-flow ODE must end at N(MU, S²); a second-order solver
    gets there in fewer model calls than DDIM (a first-order solver of the same ODE)."""
    sched = make_schedule(schedule, 1000)
    model = GaussianDataEps(sched.alphas_cumprod)
    for steps, tolerance in ((50, 0.01), (10, None)):
        scheduler = make_scheduler(solver, sched, steps=steps)
        assert len(scheduler.timesteps) == steps and scheduler.timesteps[0] == 999
        out = sample(model, scheduler, (5000, 1, 2, 2), ClassicalNoise(0))
        ddim = sample(model, make_scheduler("ddim", sched, steps=steps), (5000, 1, 2, 2), ClassicalNoise(0))
        assert float(out.mean()) == pytest.approx(MU, abs=0.01)
        if tolerance is not None:
            assert float(out.std()) == pytest.approx(S, abs=tolerance)
        assert abs(float(out.std()) - S) < abs(float(ddim.std()) - S)


def test_first_order_dpm_solver_is_ddim_on_the_same_timesteps():
    """DPM-Solver++(1) is DDIM (Lu et al. 2022, §3.3): checks betas, clipping and timestep conventions."""
    sched = make_schedule("linear", 200)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                                torch.nn.Unflatten(1, (1, 4, 4)))
    wrapped = lambda x, t: 2.0 * model(x) + 1e-3 * t.view(-1, 1, 1, 1)  # noqa: E731 - big ε so clipping acts
    ref = sample(wrapped, make_scheduler("ddim", sched, steps=12), (8, 1, 4, 4), ClassicalNoise(3))
    scheduler = FirstOrderDPMSolverScheduler(sched)
    scheduler.set_timesteps(12, timesteps=ddim_timesteps(200, 12))
    out = sample(wrapped, scheduler, (8, 1, 4, 4), ClassicalNoise(3))
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)


def test_solvers_are_registered_draw_noise_only_for_x_T_and_reject_bad_steps():
    assert {"dpm", "unipc"} <= set(SCHEDULERS)
    scheduler = make_scheduler("dpm", make_schedule("linear", 100), steps=10)
    assert scheduler.noise_draws() == 1 and scheduler.model_calls() == 10
    with pytest.raises(QgenError):
        scheduler.set_timesteps(0)
    with pytest.raises(QgenError):
        SCHEDULERS["unipc"].check_options(100, 101)


@pytest.mark.parametrize("solver", ["dpm", "unipc"])
def test_one_scheduler_samples_several_batches_each_from_a_clean_solver(solver):
    """qgen sample reuses one scheduler for every batch: batch 2 must equal a fresh solver's run."""
    sched = make_schedule("linear", 100)
    model = GaussianDataEps(sched.alphas_cumprod)
    scheduler = make_scheduler(solver, sched, steps=8)
    first = sample(model, scheduler, (4, 1, 2, 2), ClassicalNoise(1))
    second = sample(model, scheduler, (4, 1, 2, 2), ClassicalNoise(2))
    torch.testing.assert_close(first, sample(model, make_scheduler(solver, sched, steps=8), (4, 1, 2, 2),
                                             ClassicalNoise(1)))
    torch.testing.assert_close(second, sample(model, make_scheduler(solver, sched, steps=8), (4, 1, 2, 2),
                                              ClassicalNoise(2)))
