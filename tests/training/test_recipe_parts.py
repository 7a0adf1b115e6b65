"""Pieces of the training recipe: objectives (ε/v, min-SNR), lr schedule, EMA warm-up, translations."""

from __future__ import annotations

import math

import pytest
import torch

from qgen.diffusion.objectives import Objective
from qgen.diffusion.schedules import make_schedule
from qgen.errors import QgenError
from qgen.training.augment import random_translate
from qgen.training.ema import EMA
from qgen.training.lr_schedule import lr_factor


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(6, 1, 4, 4, generator=g) * 2 - 1
    eps = torch.randn(6, 1, 4, 4, generator=g)
    abar = make_schedule("cosine", 100).alphas_cumprod.float()[torch.tensor([0, 10, 30, 50, 80, 99])]
    return x0, eps, abar


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_a_perfect_prediction_has_zero_loss_and_converts_back_to_eps(prediction):
    x0, eps, abar = _batch()
    obj = Objective(prediction=prediction, weighting="min_snr")
    a = abar.view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    target = obj.target(x0, eps, a)
    assert float(obj.loss(target, x0, eps, abar)) == 0.0
    torch.testing.assert_close(obj.to_eps(target, xt, a), eps, atol=1e-5, rtol=0)


def test_min_snr_weights_equal_in_x0_space_for_both_parametrizations():
    """min-SNR-γ is a weight on the x0 error: ε and v weightings must give the same x0-space weight."""
    abar = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    snr = abar / (1 - abar)
    gamma = 5.0
    # MSE_eps = SNR * MSE_x0 and MSE_v = (SNR + 1) * MSE_x0 for the same x0 error
    w_eps = Objective("eps", "min_snr", gamma).weight(abar) * snr
    w_v = Objective("v", "min_snr", gamma).weight(abar) * (snr + 1)
    torch.testing.assert_close(w_eps, w_v)
    torch.testing.assert_close(w_eps, snr.clamp(max=gamma))
    assert torch.all(Objective("eps", "uniform").weight(abar) == 1)


def test_objective_rejects_unknown_names():
    with pytest.raises(QgenError):
        Objective(prediction="x0")
    with pytest.raises(QgenError):
        Objective(weighting="p2")


def test_lr_warmup_then_cosine_to_the_final_fraction():
    f = [lr_factor(s, 100, warmup=10, schedule="cosine", final_fraction=0.1) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[100] == pytest.approx(0.1)
    assert f[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert lr_factor(500, 100) == 1.0
    with pytest.raises(QgenError):
        lr_factor(0, 10, schedule="step")


def test_ema_power_warmup_follows_the_formula_and_survives_a_state_round_trip():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.9999, power=2 / 3)
    for n in (0, 10, 1000):
        ema.num_updates = n
        assert ema.effective_decay() == pytest.approx(1 - (1 + n) ** (-2 / 3))
    legacy = ema.state_dict()
    legacy.pop("power")  # a checkpoint written before the power warm-up existed
    old = EMA(model, 0.999)
    old.load_state_dict(legacy)
    old.num_updates = 10
    assert old.effective_decay() == pytest.approx(11 / 20)


def test_the_power_warm_up_is_diffusers_ema_model_decay_and_the_timm_one_differs_only_at_the_first_update():
    """What qgen/training/ema.py says about diffusers' EMAModel (why qgen keeps its own EMA)."""
    from diffusers.training_utils import EMAModel

    model = torch.nn.Linear(2, 2)
    ours, timm = EMA(model, decay=0.9999, power=0.75), EMA(model, decay=0.9999)
    theirs = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    theirs_timm = EMAModel(model.parameters(), decay=0.9999)
    for n in (0, 1, 10, 1000, 10 ** 6):
        ours.num_updates = timm.num_updates = n
        assert ours.effective_decay() == pytest.approx(theirs.get_decay(n + 1))
        if n:
            assert timm.effective_decay() == pytest.approx(theirs_timm.get_decay(n + 1))
    timm.num_updates = 0
    assert timm.effective_decay() == pytest.approx(0.1) and theirs_timm.get_decay(1) == 0.0


def test_translations_move_content_and_keep_the_background():
    x = -torch.ones(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    out = random_translate(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.all(out.sum(dim=(1, 2, 3)) == x.sum(dim=(1, 2, 3)))
    assert not torch.equal(out, x)
    moved = {tuple(torch.nonzero(o[0] > 0)[0].tolist()) for o in out}
    assert len(moved) > 5 and all(1 <= r <= 5 and 1 <= c <= 5 for r, c in moved)
    assert torch.equal(random_translate(x, 0, torch.Generator()), x)


def test_eps_model_turns_a_v_network_into_an_eps_predictor():
    from qgen.diffusion.objectives import EpsModel

    x0, eps, abar_all = _batch()
    abar = make_schedule("cosine", 100).alphas_cumprod
    t = torch.tensor([0, 10, 30, 50, 80, 99])
    a = abar.float()[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * x0

    class Oracle(torch.nn.Module):
        def forward(self, x, tt):
            return v

    torch.testing.assert_close(EpsModel(Oracle(), Objective("v"), abar)(xt, t), eps, atol=1e-5, rtol=0)
    net = Oracle()
    assert EpsModel(net, Objective("eps"), abar)(xt, t) is v
