"""The protocol's analysis (docs/results/experiment/PROTOCOL.md): per-seed log-ratios, superiority,
TOST equivalence, power, the decision rule, and the full/smoke grids."""

from __future__ import annotations

import math
from dataclasses import replace

import click
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from qgen.errors import QgenError
from qgen.experiment.config import experiment_from_dict
from qgen.experiment.stats import detectable_effect, log_ratio_test, t_test_power
from qgen.experiment.verdict import (
    BETTER, EQUIVALENT, INCONCLUSIVE, NOT_SUPPORTED, SAME, SUPPORTED, UNCLEAR, WORSE, PairFinding, classify, combine,
)
from tests.experiment.test_experiment import TINY

BOUND = math.log(1.1)


# -- statistics ----------------------------------------------------------------------------------

def test_log_ratio_test_matches_scipy_and_the_textbook_tost():
    x = np.array([0.05, -0.02, 0.03, 0.01, 0.04, -0.01, 0.02, 0.00, 0.06, 0.03])
    t = log_ratio_test(x, 0.10)
    assert t.n == 10 and t.mean == pytest.approx(x.mean()) and t.sd == pytest.approx(x.std(ddof=1))
    assert t.t_p == pytest.approx(stats.ttest_1samp(x, 0).pvalue)
    assert t.wilcoxon_p == pytest.approx(stats.wilcoxon(x).pvalue)
    se = x.std(ddof=1) / math.sqrt(10)
    p_low = 1 - stats.t.cdf((x.mean() + BOUND) / se, 9)    # H0: mean <= -bound
    p_high = stats.t.cdf((x.mean() - BOUND) / se, 9)       # H0: mean >= +bound
    assert t.tost_p == pytest.approx(max(p_low, p_high))
    # TOST at 0.05 is the 90% CI inside the bounds
    assert (t.tost_p < 0.05) == (-BOUND < t.ci90[0] and t.ci90[1] < BOUND)
    assert t.ci95 == pytest.approx(stats.t.interval(0.95, 9, loc=x.mean(), scale=se))
    nonzero = x[x != 0]
    assert t.sign_p == pytest.approx(stats.binomtest(int((nonzero > 0).sum()), len(nonzero)).pvalue)
    assert t.ratio == pytest.approx(math.exp(x.mean()))


def test_log_ratio_test_gives_nothing_it_cannot_compute():
    assert log_ratio_test([], 0.1).mean is None
    one = log_ratio_test([0.2, None, float("nan")], 0.1)
    assert one.n == 1 and one.ci95 is None and one.t_p is None and one.tost_p is None
    flat = log_ratio_test([0.1, 0.1, 0.1], 0.1)
    assert flat.t_p is None and flat.tost_p is None  # zero variance: no t statistic


def test_power_matches_known_values():
    # G*Power / statsmodels TTestPower: one-sample two-sided t-test, alpha 0.05, d = 0.5, n = 34 -> 0.8078
    assert t_test_power(0.5, 1.0, 34) == pytest.approx(0.8078, abs=1e-4)
    assert t_test_power(0.5, 1.0, 33) < 0.80 < t_test_power(0.5, 1.0, 34)
    # n = 10: d = 0.9962 for 80% power (statsmodels TTestPower().solve_power(nobs=10, power=0.8))
    assert detectable_effect(1.0, 10) == pytest.approx(0.9962, abs=1e-3)
    assert detectable_effect(0.2, 10) == pytest.approx(0.2 * detectable_effect(1.0, 10))  # in the sd's units
    assert detectable_effect(0.2, 1) is None and t_test_power(-0.5, 1.0, 34) == t_test_power(0.5, 1.0, 34)


def test_power_agrees_with_simulation():
    rng = np.random.default_rng(3)
    effect, sd, n = 0.1, 0.12, 10
    x = rng.normal(effect, sd, size=(20000, n))
    tstat = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(n))
    simulated = float((np.abs(tstat) > stats.t.ppf(0.975, n - 1)).mean())
    assert t_test_power(effect, sd, n) == pytest.approx(simulated, abs=0.015)


# -- the decision rule, one verdict at a time ------------------------------------------------------

def _finding(dataset: str, values, margin: float = 0.10) -> PairFinding:
    test = log_ratio_test(values, margin)
    finding, note = classify(test)
    return PairFinding("quantum", "classical", dataset, (10, 30, 100), test, finding, note)


BETTER_SEEDS = [-0.30, -0.25, -0.35, -0.28, -0.32, -0.27, -0.31, -0.29, -0.26, -0.33]
WORSE_SEEDS = [-v for v in BETTER_SEEDS]
SAME_SEEDS = [0.01, -0.01, 0.02, 0.00, -0.02, 0.01, 0.015, -0.005, 0.0, -0.01]
NOISY_SEEDS = [0.5, -0.6, 0.3, -0.2, 0.8, -0.7, 0.1, -0.4, 0.6, -0.3]


@pytest.mark.parametrize("values, finding", [
    (BETTER_SEEDS, BETTER), (WORSE_SEEDS, WORSE), (SAME_SEEDS, SAME), (NOISY_SEEDS, UNCLEAR), ([-0.3], UNCLEAR),
])
def test_classify(values, finding):
    assert _finding("d", values).finding == finding


def test_a_significant_difference_inside_the_margin_is_equivalence():
    small = [-0.04 + 0.005 * ((i % 3) - 1) for i in range(10)]  # ~4% lower, very tight
    f = _finding("d", small)
    assert f.test.t_p < 0.05 and f.finding == SAME and "smaller than the margin" in f.note


def test_a_t_test_result_the_wilcoxon_test_does_not_share_is_not_robust():
    # five seeds: the exact Wilcoxon test cannot go below p = 0.0625, however clear the t-test is
    f = _finding("d", BETTER_SEEDS[:5])
    assert f.test.t_p < 0.05 and f.test.wilcoxon_p >= 0.05
    assert f.finding == UNCLEAR and "not robust" in f.note


@pytest.mark.parametrize("per_dataset, outcome", [
    ({"a": BETTER_SEEDS, "b": BETTER_SEEDS}, SUPPORTED),
    ({"a": SAME_SEEDS, "b": SAME_SEEDS}, EQUIVALENT),
    ({"a": WORSE_SEEDS, "b": SAME_SEEDS}, NOT_SUPPORTED),
    ({"a": WORSE_SEEDS, "b": NOISY_SEEDS}, NOT_SUPPORTED),
    ({"a": BETTER_SEEDS, "b": WORSE_SEEDS}, INCONCLUSIVE),
    ({"a": BETTER_SEEDS, "b": SAME_SEEDS}, INCONCLUSIVE),
    ({"a": SAME_SEEDS, "b": NOISY_SEEDS}, INCONCLUSIVE),
    ({"a": BETTER_SEEDS, "b": []}, INCONCLUSIVE),
    ({"a": [], "b": []}, INCONCLUSIVE),
])
def test_combine_gives_each_verdict_by_the_protocol(per_dataset, outcome):
    outcome_found, reason = combine([_finding(d, v) for d, v in per_dataset.items()])
    assert outcome_found == outcome, reason
    assert reason and "\n" not in reason


# -- the grids -----------------------------------------------------------------------------------

def test_full_preset_is_the_protocol():
    from qgen.experiment.cells import expand_cells, run_config
    from qgen.experiment.presets import full_preset
    from qgen.models.config import NEW_RUN_MODEL
    from qgen.training.recipe import RECIPE_DIFFUSION, RECIPE_TRAIN

    cfg = full_preset()
    assert cfg.arms == ("plain", "classical", "quantum", "quantum_frozen", "separable", "quantum_noise")
    assert cfg.sizes == (10, 30, 100) and cfg.seeds == tuple(range(10)) and len(cfg.seeds) >= 10
    labels = [d.label for d in cfg.datasets]
    assert labels[:2] == ["mnist-c3", "pneumonia"]
    assert (cfg.sampling.sampler, cfg.sampling.steps, cfg.sampling.weights) == ("dpm", 10, "best")
    assert cfg.sampling.n >= 256 and cfg.dependence and cfg.equivalence_margin == 0.10
    # the recipe and the default design of a new run, read when the preset is built
    for key, value in RECIPE_TRAIN.items():
        assert getattr(cfg.train, key) == value, key
    for key, value in RECIPE_DIFFUSION.items():
        assert getattr(cfg.diffusion, key) == value, key
    for key, value in NEW_RUN_MODEL.items():
        assert getattr(cfg.model, key) == (tuple(value) if isinstance(value, (list, tuple)) else value), key
    assert cfg.train.eval_every > 0  # the best-validation checkpoint exists
    cells = expand_cells(cfg)
    noise = [c for c in cells if c.arm.name == "quantum_noise"]
    assert {c.dataset.label for c in noise} == {"mnist-c3"}  # quantum noise on MNIST only
    assert len(cells) == len(cfg.seeds) * len(cfg.sizes) * (6 + 5 * (len(labels) - 1))
    assert run_config(cfg, cells[0]).train.tensorboard is False


def test_presets_follow_the_default_design_when_it_changes(monkeypatch):
    import qgen.models.config as model_config
    from qgen.experiment.presets import full_preset, smoke_preset

    monkeypatch.setattr(model_config, "NEW_RUN_MODEL", dict(bottleneck="site", readout="zz", skips=(28,)))
    for cfg in (full_preset(), smoke_preset()):
        assert (cfg.model.bottleneck, cfg.model.readout, cfg.model.skips) == ("site", "zz", (28,))


def test_dry_run_shows_cells_and_cpu_time_and_prices_per_site_designs():
    from qgen.cli.experiment import experiment_command
    from qgen.experiment.cells import expand_cells
    from qgen.experiment.estimate import estimate_cell
    from qgen.experiment.presets import full_preset

    group = click.Group(commands=[experiment_command])
    result = CliRunner().invoke(group, ["experiment", "--preset", "full", "--dry-run", "--executor", "ray",
                                        "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert f"{len(expand_cells(full_preset()))} cells: 0 done" in result.output
    assert "CPU" in result.output and "with 2 cells at a time" in result.output
    cfg = full_preset()
    quantum, classical = (next(c for c in expand_cells(cfg) if c.arm.name == arm) for arm in ("quantum", "classical"))
    site = replace(cfg, run=replace(cfg.run, model=replace(cfg.model, bottleneck="site")))
    channel = replace(cfg, run=replace(cfg.run, model=replace(cfg.model, bottleneck="channel_gate")))

    def circuit_seconds(c):  # what the circuit adds to the cell's training, over its classical twin
        return estimate_cell(c, quantum).train_s - estimate_cell(c, classical).train_s

    assert circuit_seconds(site) / circuit_seconds(channel) > 5  # 49 circuit rows per image, not 1


@pytest.mark.parametrize("patch, message", [
    ({"arm_datasets": [{"arm": "quantum_noise", "datasets": ["mnist-c3"]}]}, "not among the arms"),
    ({"arm_datasets": [{"arm": "quantum", "datasets": ["pathmnist"]}]}, "names dataset 'pathmnist'"),
    ({"arm_datasets": [{"arm": "quantum", "datasets": []}]}, "names no dataset"),
    ({"arm_datasets": [{"arm": "quantum", "dataset": ["mnist-c3"]}]}, "unknown key"),
    ({"equivalence_margin": 0.0}, "equivalence_margin must be in (0, 1)"),
    ({"sampling": {**TINY["sampling"], "weights": "best"}}, "needs in-training evaluation"),
    ({"train": {**TINY["train"], "freeze": ["circuit"]}}, "train.freeze is set per cell"),
])
def test_protocol_config_errors_are_one_line(patch, message):
    with pytest.raises(QgenError) as err:
        experiment_from_dict({**TINY, **patch})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_arm_datasets_round_trip_and_restrict_the_grid(tmp_path):
    from qgen.experiment.cells import expand_cells
    from qgen.experiment.config import load_experiment_config, save_experiment_config

    cfg = experiment_from_dict({**TINY, "datasets": [*TINY["datasets"], {"label": "other", "dataset": "mnist"}],
                                "arm_datasets": [{"arm": "quantum", "datasets": ["other"]}]})
    ids = [c.id for c in expand_cells(cfg)]
    assert ids == ["mnist-c3_classical_n10_s0", "other_classical_n10_s0", "other_quantum_n10_s0"]
    save_experiment_config(cfg, tmp_path / "e.toml")
    assert load_experiment_config(tmp_path / "e.toml") == cfg


# -- the hardware question -------------------------------------------------------------------------

def test_hardware_needs_an_existing_experiment(tmp_path):
    from qgen.cli.experiment import experiment_command

    group = click.Group(commands=[experiment_command])
    result = CliRunner().invoke(group, ["experiment", "--preset", "smoke", "--out", str(tmp_path / "new"),
                                        "--hardware"])
    assert isinstance(result.exception, QgenError) and "existing experiment" in str(result.exception)
    assert not (tmp_path / "new").exists()


@pytest.mark.slow  # trains one tiny cell, then a density-matrix simulation of the device (~20 CPU-s)
def test_hardware_question_samples_the_quantum_cells_on_a_noisy_device(tmp_path, monkeypatch):
    import csv
    import json

    import numpy as np
    import torch

    from qgen.experiment.cells import expand_cells
    from qgen.experiment.config import save_experiment_config
    from qgen.experiment.hardware import HardwareOptions, hardware_cells, run_hardware, score_fld
    from qgen.experiment.cell_run import RunnerOptions
    from qgen.experiment.runner import run_experiment

    monkeypatch.setenv("QGEN_CIRCUITS", str(tmp_path / "circuits"))
    cfg = experiment_from_dict({**TINY, "arms": ["classical", "quantum"], "sizes": [4, 10], "seeds": [0, 1],
                                "sampling": {**TINY["sampling"], "n": 6}})
    out = tmp_path / "exp"
    cells = [c for c in expand_cells(cfg) if c.arm.name == "quantum" and c.n == 10]
    assert [c.id for c in hardware_cells(cfg)] == [c.id for c in cells]  # the quantum arm at the largest N
    run_experiment(cfg, cells[:1], RunnerOptions(out=out, log=lambda line: None))
    save_experiment_config(cfg, out / "experiment.toml")
    metrics = json.loads((out / "cells" / cells[0].id / "metrics.json").read_text())
    with np.load(out / metrics["cell"]["samples_file"]) as npz:
        exact = torch.from_numpy(npz["samples"])
    # the hardware question scores exactly as the cell was scored
    assert score_fld(out / metrics["cell"]["run_dir"], exact, cfg.heldout_limit) == pytest.approx(metrics["fld"]["value"])

    rows = run_hardware(cfg, HardwareOptions(out=out, log=lambda line: None))
    assert len(rows) == 1 and rows[0]["cell_id"] == cells[0].id  # only finished cells
    row = rows[0]
    assert row["backend"] == "fake_fez_s1024" and int(row["shots"]) == 1024 and int(row["n"]) == 6
    assert float(row["fld_exact"]) == pytest.approx(metrics["fld"]["value"], rel=1e-5)
    assert float(row["ratio"]) == pytest.approx(float(row["fld_device"]) / float(row["fld_exact"]), rel=1e-4)
    with np.load(out / row["samples_file"]) as npz:
        device = torch.from_numpy(npz["samples"])
        request = json.loads(str(npz["metadata"]))["request"]
    assert request["seed"] == 1000 and request["backend"] == "fake_fez_s1024"
    assert not torch.equal(device, exact)  # shot noise moved the samples ...
    assert (device - exact).abs().max() < 1.0  # ... from the same x_T
    again = run_hardware(cfg, HardwareOptions(out=out, log=lambda line: None))  # resumable: nothing redone
    assert again == [dict(r) for r in csv.DictReader(open(out / "hardware" / "hardware.csv"))]
    assert len(again) == 1 and "FLD device" in (out / "hardware" / "hardware.md").read_text()


# -- sample grids when a cell's samples stayed on another machine ---------------------------------

def test_arm_grid_is_kept_not_repicked_when_the_picked_samples_are_gone(tmp_path):
    from qgen.experiment.figures import save_arm_grids

    def row(arm, n, seed):
        return {"dataset": "mnist-c3", "arm": arm, "n_train": n, "seed": seed,
                "samples_file": f"cells/{arm}_n{n}_s{seed}/samples.npz"}

    rows = [row(arm, n, s) for arm in ("quantum", "classical") for n in (10, 100) for s in (0, 1)]
    for r in rows:  # every cell's samples exist except the pick of "classical" (largest N, lowest seed)
        if (r["arm"], r["n_train"], r["seed"]) != ("classical", 100, 0):
            path = tmp_path / r["samples_file"]
            path.parent.mkdir(parents=True)
            np.savez(path, samples=np.zeros((4, 1, 28, 28), np.float32))
    grids = tmp_path / "grids"
    written = save_arm_grids(tmp_path, rows, grids)
    assert [p.name for p in written] == ["mnist-c3_quantum_n100_s0.png"]  # no other cell drawn in its place
    assert sorted(p.name for p in grids.iterdir()) == ["mnist-c3_quantum_n100_s0.png"]

    kept = grids / "mnist-c3_classical_n100_s0.png"
    kept.write_bytes(b"drawn where the samples were")
    assert kept in save_arm_grids(tmp_path, rows, grids)
    assert kept.read_bytes() == b"drawn where the samples were"
