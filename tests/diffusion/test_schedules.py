"""Beta schedules (incl. the tailored ones) and the quantum/classical noise mixing."""

import math

import pytest
import torch

from qgen.diffusion.schedules import (
    SCHEDULES,
    CosineSchedule,
    LinearSchedule,
    NoiseMixing,
    ShiftedCosineSchedule,
    SigmoidSchedule,
    make_schedule,
)
from qgen.errors import QgenError


def log_snr(schedule):
    abar = schedule.alphas_cumprod
    return torch.log(abar / (1 - abar))


@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_is_a_valid_forward_process(name, T):
    schedule = make_schedule(name, T)
    betas, abar = schedule.betas, schedule.alphas_cumprod
    assert betas.shape == (T,) and betas.dtype == torch.float64
    assert bool(((betas > 0) & (betas < 1)).all())
    assert bool((abar[1:] < abar[:-1]).all()), "alpha_bar must strictly decrease"
    assert abar[0] > 0.98, "the first step must keep almost all signal"
    assert abar[-1] < 1e-3, "the last step must be almost pure noise"


def test_existing_api_is_unchanged_and_new_names_are_registered():
    assert SCHEDULES["linear"] is LinearSchedule and SCHEDULES["cosine"] is CosineSchedule
    assert SCHEDULES["shifted_cosine"] is ShiftedCosineSchedule
    assert SCHEDULES["sigmoid"] is SigmoidSchedule
    tailored = make_schedule("tailored", 100)
    assert isinstance(tailored, ShiftedCosineSchedule)
    assert tailored.describe()["name"] == "shifted_cosine"  # manifests record the real schedule


def test_shift_moves_log_snr_by_exactly_the_shift_in_the_middle():
    T = 1000
    base, shifted = CosineSchedule(T=T), ShiftedCosineSchedule(T=T)
    assert shifted.shift == pytest.approx(2 * math.log(28 / 64))
    diff = log_snr(shifted) - log_snr(base)
    assert log_snr(shifted)[T // 2] < log_snr(base)[T // 2]
    # Constant offset wherever beta clipping does not act (it only acts at the very end).
    middle = diff[T // 10: 9 * T // 10]
    assert torch.allclose(middle, torch.full_like(middle, shifted.shift), atol=1e-6)
    higher = ShiftedCosineSchedule(T=T, shift=+1.0)
    assert log_snr(higher)[T // 2] > log_snr(base)[T // 2]


def test_sigmoid_schedule_matches_its_closed_form_at_mid_t():
    # start=-3, end=3 is symmetric: the sigmoid argument is 0 at t = 1/2, so alpha_bar = 1/2 there.
    schedule = SigmoidSchedule(T=1000)
    assert schedule.alphas_cumprod[499].item() == pytest.approx(0.5, abs=1e-9)
    flatter = SigmoidSchedule(T=1000, tau=2.0)
    assert flatter.alphas_cumprod[99] < schedule.alphas_cumprod[99]


def test_bad_schedule_parameters_are_one_line_errors():
    with pytest.raises(QgenError, match="tau"):
        make_schedule("sigmoid", 100, tau=0.0)
    with pytest.raises(QgenError, match="bad parameters"):
        make_schedule("shifted_cosine", 100, bogus=1)


def test_mixing_weight_runs_from_min_to_max_and_follows_the_schedule():
    mixing = NoiseMixing(T=100, lam_min=0.1, lam_max=0.9)
    lam = mixing.lam(torch.arange(100))
    assert lam[0].item() == pytest.approx(0.1) and lam[-1].item() == pytest.approx(0.9)
    assert bool((lam[1:] >= lam[:-1]).all())
    schedule = CosineSchedule(T=100)
    following = NoiseMixing(T=100, schedule=schedule)
    assert torch.allclose(following.lam(torch.arange(100)), 1 - schedule.alphas_cumprod)
    with pytest.raises(QgenError):
        NoiseMixing(T=100, lam_max=1.5)
    with pytest.raises(QgenError):
        NoiseMixing(T=50, schedule=schedule)


def test_mixing_preserves_unit_variance_and_a_naive_mix_would_not():
    gen = torch.Generator().manual_seed(0)
    n = 4096
    eps_q = torch.randn(n, 64, generator=gen, dtype=torch.float64)
    eps_c = torch.randn(n, 64, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 1000, (n,), generator=gen)  # one timestep per batch element
    mixing = NoiseMixing(T=1000, lam_min=0.2, lam_max=1.0)
    mixed = mixing.mix(eps_q, eps_c, t)
    assert mixed.shape == eps_q.shape
    sd_of_var = math.sqrt(2 / mixed.numel())
    assert abs(mixed.var().item() - 1) < 4 * sd_of_var
    assert abs(mixed.mean().item()) < 4 / math.sqrt(mixed.numel())
    lam = mixing.lam(t).view(-1, 1)
    naive = lam * eps_q + (1 - lam) * eps_c  # weights summing to 1 shrink the variance
    assert naive.var().item() < 1 - 10 * sd_of_var


def test_plot_schedule_writes_a_png(tmp_path):
    from qgen.noise.schedule_plot import plot_schedule

    schedule = make_schedule("tailored", 200)
    path = plot_schedule(schedule, NoiseMixing(T=200, schedule=schedule), tmp_path / "schedule.png",
                         compare=(CosineSchedule(T=200),))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_schedule_params_are_set_validated_saved_and_old_configs_still_load(tmp_path):
    from qgen.config import DiffusionConfig, RunConfig, load_run_config, save_run_config

    cfg = DiffusionConfig(schedule="shifted_cosine", T=100, schedule_params={"shift": -1})
    assert cfg.make_schedule() == ShiftedCosineSchedule(T=100, shift=-1.0)
    assert cfg.schedule_params == {"max_beta": 0.999, "s": 0.008, "shift": -1.0}  # every parameter, for reproduction
    with pytest.raises(QgenError, match="unknown key 'beta_end'; valid keys: max_beta, s, shift"):
        DiffusionConfig(schedule="shifted_cosine", schedule_params={"beta_end": 0.02})
    with pytest.raises(QgenError, match="must be a number"):
        DiffusionConfig(schedule_params={"beta_end": "high"})
    save_run_config(RunConfig(name="r", diffusion=cfg), tmp_path / "config.toml")
    assert "[diffusion.schedule_params]" in (tmp_path / "config.toml").read_text()
    assert load_run_config(tmp_path / "config.toml").diffusion.make_schedule() == cfg.make_schedule()
    # a config.toml written before schedule_params existed
    (tmp_path / "old.toml").write_text('name = "r"\n[diffusion]\nschedule = "tailored"\nT = 100\n')
    old = load_run_config(tmp_path / "old.toml").diffusion.make_schedule()
    assert old == make_schedule("tailored", 100)
    assert torch.equal(old.betas, make_schedule("tailored", 100).betas)
