"""Forward process, schedules in use, and the samplers' arithmetic."""

from __future__ import annotations

import pytest
import torch

from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.pipeline import batch_sizes, sample
from qgen.diffusion.samplers import SCHEDULERS, make_scheduler
from qgen.diffusion.schedulers import DDIMScheduler, DDPMScheduler, ddim_timesteps
from qgen.diffusion.schedules import make_schedule
from qgen.errors import QgenError
from qgen.noise_protocol import NoiseSourceBase

def ddim_sample(model, d, shape, noise, steps=50, eta=0.0):
    return sample(model, make_scheduler("ddim", d.schedule, steps=steps, eta=eta), shape, noise)


def ddpm_sample(model, d, shape, noise):
    return sample(model, make_scheduler("ddpm", d.schedule), shape, noise)


def noise_draws(sampler, steps, T, eta):
    return make_scheduler(sampler, make_schedule("linear", T), steps=steps, eta=eta).noise_draws()


class CountingNoise(NoiseSourceBase):
    def __init__(self, seed: int = 0):
        self.g = torch.Generator().manual_seed(seed)
        self.calls = 0

    def randn(self, shape, *, dtype=torch.float32, device="cpu"):
        self.calls += 1
        return torch.randn(shape, generator=self.g, dtype=dtype)


class OracleEps(torch.nn.Module):
    """The exact ε-predictor for data that is a single point x*: ε = (x_t - sqrt(ab) x*) / sqrt(1-ab)."""

    def __init__(self, diffusion: GaussianDiffusion, target: torch.Tensor):
        super().__init__()
        self.d, self.target = diffusion, target

    def forward(self, x, t):
        ab = self.d.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        return (x - ab.sqrt() * self.target) / (1 - ab).sqrt()


def test_q_sample_matches_marginal_statistics() -> None:
    d = GaussianDiffusion(make_schedule("linear", 1000))
    x0 = torch.full((20000, 1, 1, 1), 0.5)
    t = torch.full((20000,), 300)
    xt = d.q_sample(x0, t, torch.randn_like(x0, generator=None))
    ab = d.alphas_cumprod[300]
    assert abs(xt.mean() - ab.sqrt() * 0.5) < 0.02
    assert abs(xt.var() - (1 - ab)) < 0.02


def test_samplers_recover_a_point_mass_with_oracle_denoiser() -> None:
    target = torch.linspace(-0.9, 0.9, 28 * 28).reshape(1, 1, 28, 28)
    d = GaussianDiffusion(make_schedule("cosine", 200))
    oracle = OracleEps(d, target)
    for run in (lambda n: ddim_sample(oracle, d, (2, 1, 28, 28), n, steps=20),
                lambda n: ddim_sample(oracle, d, (2, 1, 28, 28), n, steps=20, eta=1.0),
                lambda n: ddpm_sample(oracle, d, (2, 1, 28, 28), n)):
        x = run(CountingNoise())
        assert torch.allclose(x, target.expand_as(x), atol=1e-3)


def test_ddim_eta0_draws_noise_only_for_x_T() -> None:
    d = GaussianDiffusion(make_schedule("linear", 100))
    oracle = OracleEps(d, torch.zeros(1, 1, 28, 28))
    for eta, steps in [(0.0, 10), (0.5, 10), (1.0, 25)]:
        noise = CountingNoise()
        ddim_sample(oracle, d, (1, 1, 28, 28), noise, steps=steps, eta=eta)
        assert noise.calls == noise_draws("ddim", steps, 100, eta)
    noise = CountingNoise()
    ddpm_sample(oracle, d, (1, 1, 28, 28), noise)
    assert noise.calls == noise_draws("ddpm", None, 100, 0.0) == 100
    assert noise_draws("ddim", 10, 100, 0.0) == 1


def test_ddim_timesteps_cover_range() -> None:
    ts = ddim_timesteps(1000, 50)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50
    assert all(a > b for a, b in zip(ts, ts[1:]))


def test_training_loss_is_small_for_oracle_and_large_for_zero() -> None:
    target = torch.zeros(1, 1, 28, 28)
    d = GaussianDiffusion(make_schedule("linear", 1000))
    g = torch.Generator().manual_seed(0)
    x0 = target.expand(32, 1, 28, 28)
    oracle_loss = d.training_loss(OracleEps(d, target), x0, CountingNoise(), g)
    zero_loss = d.training_loss(lambda x, t: torch.zeros_like(x), x0, CountingNoise(), g)
    assert oracle_loss < 1e-8
    assert 0.9 < zero_loss < 1.1


class Wobbly(torch.nn.Module):
    """A fixed, nonlinear stand-in for a trained ε-model."""

    def forward(self, x, t):
        return 0.3 * torch.sin(3 * x) + 0.001 * t.float().view(-1, 1, 1, 1).to(x.dtype) * x.flip(-1)


def textbook_sample(betas, timesteps, eta, shape, noise, ancestral):
    """Ho et al. (2020) ancestral sampling / Song et al. (2021) DDIM written out in float64, step by
    step from the papers' formulas (x0 clipped to [-1, 1], ε recomputed from it for DDIM), drawing
    the same noise in the same order as the schedulers. The reference the schedulers must match to
    float32 rounding on any CPU (a recorded tensor would only match bit for bit on the CPU it came from)."""
    betas = betas.double()
    abar = torch.cumprod(1 - betas, 0)
    x = noise.randn(shape).double()
    model = Wobbly()
    for i, t in enumerate(timesteps):
        tt = torch.full((shape[0],), t, dtype=torch.long)
        eps = model(x, tt).double()
        x0 = ((x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(-1, 1)
        if ancestral:
            a_prev = abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
            mean = (betas[t] * a_prev.sqrt() * x0 + (1 - a_prev) * (1 - betas[t]).sqrt() * x) / (1 - abar[t])
            if t == 0:
                x = mean
                continue
            # posterior variance beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t); t > 0 here
            x = mean + (betas[t] * (1 - a_prev) / (1 - abar[t])).sqrt() * noise.randn(shape).double()
        else:
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else None
            a_prev = abar[prev] if prev is not None else torch.tensor(1.0, dtype=torch.float64)
            eps = (x - abar[t].sqrt() * x0) / (1 - abar[t]).sqrt()
            sigma = eta * ((1 - a_prev) / (1 - abar[t]) * (1 - abar[t] / a_prev)).clamp(min=0).sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev - sigma ** 2).clamp(min=0).sqrt() * eps
            if eta > 0 and prev is not None:
                x = x + sigma * noise.randn(shape).double()
    return x


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("sampler,steps,eta", [("ddpm", None, 0.0), ("ddim", 9, 0.0), ("ddim", 9, 0.5),
                                               ("ddim", 40, 1.0)])
def test_schedulers_match_the_papers_formulas(schedule, sampler, steps, eta) -> None:
    from qgen.noise.sources import ClassicalNoise

    s, shape = make_schedule(schedule, 40), (2, 1, 28, 28)
    scheduler = make_scheduler(sampler, s, steps=steps, eta=eta)
    got = sample(Wobbly(), scheduler, shape, ClassicalNoise(7))
    want = textbook_sample(s.betas, scheduler.timesteps, eta, shape, ClassicalNoise(7), sampler == "ddpm")
    assert got.dtype == torch.float32
    # float32 against float64 over up to 40 steps: agreement to ~1e-6 is rounding; a wrong
    # coefficient, a skipped clip or a noise drawn out of order is off by orders of magnitude more
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-5)
    assert (got - want.float()).abs().max() < 2e-5


def test_schedulers_report_calls_draws_and_options() -> None:
    s = make_schedule("linear", 100)
    assert set(SCHEDULERS) == {"ddpm", "ddim", "dpm", "unipc"}
    ddpm = make_scheduler("ddpm", s, steps=7, eta=0.3)  # DDPM visits every step and reads no eta
    assert ddpm.model_calls() == 100 and ddpm.noise_draws() == 100 and ddpm.timesteps[0] == 99
    ddim = make_scheduler("ddim", s, steps=10, eta=0.5)
    assert ddim.model_calls() == 10 and ddim.noise_draws() == 10
    assert ddim.describe()["eta"] == 0.5 and ddim.describe()["schedule"]["name"] == "linear"
    with pytest.raises(QgenError, match="unknown sampler 'euler'; choose one of ddpm, ddim"):
        make_scheduler("euler", s)
    with pytest.raises(QgenError, match="--eta must be >= 0"):
        make_scheduler("ddim", s, steps=10, eta=-1)
    with pytest.raises(QgenError, match="--steps must be between 1 and T=100"):
        DDIMScheduler.check_options(100, 101)
    assert batch_sizes(10, 4) == [4, 4, 2] and batch_sizes(3, 64) == [3]


def test_timestep_aware_noise_is_told_each_draws_timestep() -> None:
    class Recording(NoiseSourceBase):
        def __init__(self):
            self.g, self.ts = torch.Generator().manual_seed(0), []

        def at(self, t):
            self.ts.append(int(t))
            return self

        def randn(self, shape, *, dtype=torch.float32, device="cpu"):
            return torch.randn(shape, generator=self.g, dtype=dtype)

    s = make_schedule("linear", 20)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    noise = Recording()
    sample(zero, make_scheduler("ddpm", s), (1, 1, 4, 4), noise)
    assert noise.ts == [19, *range(18, -1, -1)]
    noise = Recording()
    scheduler = make_scheduler("ddim", s, steps=5, eta=1.0)
    sample(zero, scheduler, (1, 1, 4, 4), noise)
    assert noise.ts == scheduler.timesteps
