"""Forward process, schedules in use, and the samplers' arithmetic."""

from __future__ import annotations

import torch

from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.samplers import ddim_sample, ddim_timesteps, ddpm_sample, noise_draws
from qgen.diffusion.schedules import make_schedule


class CountingNoise:
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
    assert noise.calls == noise_draws("ddpm", 0, 100, 0.0) == 100
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
