"""The training loop with the recipe: in-training quality, best checkpoint, clean stops and failures."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from qgen.backends.registry import load_backend
from qgen.config import DiffusionConfig, RunConfig, TrainConfig, load_run_config
from qgen.data import DataConfig, load_dataset
from qgen.errors import QgenError
from qgen.models.config import ModelConfig
from qgen.noise import ClassicalNoise
from qgen.rundir import RunDir, base_manifest
from qgen.training.recipe import recipe_train_config
from qgen.training.trainer import Trainer, TrainingFailed, _StopRequests
from tests.helpers import TESTS, qgen

LEGACY_CONFIG = TESTS / "rundir" / "legacy-run-1bad57f" / "config.toml"


def _cfg(**train) -> RunConfig:
    return RunConfig(
        name="t",
        data=DataConfig(dataset="mnist", classes=(3,), n_train=16, seed=0, download=False),
        model=ModelConfig(kind="classical", widths=(8, 8, 8), qubits=4, layers=1),
        diffusion=DiffusionConfig(T=40),
        train=replace(recipe_train_config(steps=12, batch_size=4, checkpoint_every=4, eval_every=0), **train),
    )


def _trainer(tmp_path: Path, cfg: RunConfig, name: str = "run") -> Trainer:
    run = RunDir.create(tmp_path, name, config=cfg, manifest=base_manifest() | {"status": "created"})
    data = load_dataset(cfg.data)
    return Trainer(run, cfg, data, load_backend(cfg.backend), ClassicalNoise(cfg.train.seed))


def _losses(trainer: Trainer) -> list[str]:
    return [r["loss"] for r in trainer.run.loss_log().rows()]


def test_config_written_before_the_recipe_keys_means_the_original_loop():
    cfg = load_run_config(LEGACY_CONFIG)
    assert (cfg.train.lr_schedule, cfg.train.lr_warmup, cfg.train.ema_power, cfg.train.eval_every) == (
        "constant", 0, 0.0, 0)
    assert (cfg.diffusion.prediction, cfg.diffusion.loss_weighting, cfg.train.augment_shift) == ("eps", "uniform", 0)


def test_recipe_defaults_and_eval_interval_follow_the_run_length():
    assert recipe_train_config().lr_schedule == "cosine" and recipe_train_config().ema_power > 0
    assert recipe_train_config(steps=2000).eval_every == 400
    assert recipe_train_config(steps=300).eval_every == 0       # a short run is not evaluated
    assert recipe_train_config(steps=2000, eval_every=0).eval_every == 0


@pytest.mark.parametrize("bad", [dict(lr=math.nan), dict(lr=math.inf), dict(ema_power=-1.0),
                                 dict(lr_schedule="step"), dict(eval_sampler="euler"), dict(augment_shift=9)])
def test_train_config_rejects_what_would_silently_misbehave(bad):
    with pytest.raises(QgenError):
        replace(recipe_train_config(), **bad)


def test_a_second_signal_mid_step_never_saves_the_torn_step_and_the_resume_matches(tmp_path):
    cfg = _cfg()
    reference = _trainer(tmp_path, cfg, "reference")
    reference.train(show_progress=False)

    torn = _trainer(tmp_path, cfg, "torn")
    step = torn.optimizer.step
    calls = {"n": 0}

    def interrupted_step(*args, **kwargs):  # the second Ctrl-C lands after the update of step 7
        step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt

    torn.optimizer.step = interrupted_step
    with pytest.raises(KeyboardInterrupt):
        torn.train(show_progress=False)
    run = torn.run
    assert run.load_checkpoint("last")["step"] == 4          # the periodic checkpoint, not the torn step 7
    manifest = run.manifest()
    assert manifest["status"] == "interrupted" and manifest["steps_done"] == 4

    resumed = Trainer(run, cfg, load_dataset(cfg.data), load_backend(cfg.backend), ClassicalNoise(cfg.train.seed))
    resumed.restore()
    assert resumed.step == 4
    resumed.train(show_progress=False)
    assert _losses(resumed) == _losses(reference)


def test_a_non_finite_loss_fails_the_run_and_keeps_the_last_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, _cfg())
    loss = trainer.diffusion.training_loss
    calls = {"n": 0}

    def diverging(*args, **kwargs):
        calls["n"] += 1
        value = loss(*args, **kwargs)
        return value * math.nan if calls["n"] == 6 else value

    trainer.diffusion.training_loss = diverging
    with pytest.raises(TrainingFailed, match=r"the loss became nan at step 6.*last checkpoint \(step 4\) is intact"):
        trainer.train(show_progress=False)
    manifest = trainer.run.manifest()
    assert manifest["status"] == "failed" and manifest["failed_at_step"] == 6 and manifest["steps_done"] == 4
    state = trainer.run.load_checkpoint("last")
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_checkpoints_keep_the_manifest_steps_current(tmp_path):
    trainer = _trainer(tmp_path, _cfg(steps=8))
    original = trainer.save
    seen = []

    def save():
        original()
        seen.append(trainer.run.manifest()["steps_done"])

    trainer.save = save
    trainer.train(show_progress=False)
    assert seen[:2] == [4, 8]


def test_a_stop_request_after_the_last_step_skips_only_the_preview(tmp_path):
    trainer = _trainer(tmp_path, _cfg(steps=4))
    trainer.train(show_progress=False)
    (trainer.run.path / "samples.png").unlink()
    signals = _StopRequests()
    signals.requested.append(15)
    trainer.finish(signals)
    manifest = trainer.run.manifest()
    assert manifest["status"] == "finished" and "skipped" in manifest["preview_note"]
    assert not (trainer.run.path / "samples.png").exists()


def test_in_training_quality_best_checkpoint_and_evaluate_baselines_from_the_cli(tmp_path):
    env = {**os.environ, "QGEN_RUNS": str(tmp_path / "runs"), "QGEN_CIRCUITS": str(tmp_path / "circuits"),
           "QGEN_DATA": str(tmp_path / "data")}
    res = qgen(["train", "--model", "classical", "--class", "3", "--n-train", "16", "--batch-size", "4",
                "--widths", "8,8,8", "--timesteps", "40", "--steps", "12", "--eval-every", "4",
                "--eval-samples", "16", "--no-download", "--no-progress", "--name", "q"], env, timeout=600)
    assert res.returncode == 0, res.stderr
    run = next((tmp_path / "runs").iterdir())
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    # 16 samples from 16 training images: the memorizer is 16 real images, statistically the floor
    assert all(float(r["memorizer"]) > 0 and float(r["floor"]) > 0 and r["reading"] for r in rows)
    assert all(float(r["train_cpu_seconds"]) > 0 for r in rows)
    best = min(rows, key=lambda r: float(r["fld"]))
    state = torch.load(run / "checkpoint-best.pt", weights_only=False)
    assert state["step"] == int(best["step"]) and state["validation_fld"] == pytest.approx(float(best["fld"]), abs=1e-3)
    assert (run / "quality.png").is_file()
    config = load_run_config(run / "config.toml")
    assert config.train.lr_schedule == "cosine" and config.train.eval_every == 4

    res = qgen(["sample", "--run", str(run), "--weights", "best", "--sampler", "dpm", "--steps", "5", "--n", "6",
                "--no-progress"], env, timeout=600)
    assert res.returncode == 0, res.stderr
    res = qgen(["evaluate", "--run", str(run)], env, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "read against baselines (same sizes): real-data floor" in res.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    base = metrics["baselines"]
    assert base["floor"]["n_samples"] == base["memorizer"]["n_samples"] == 6
    assert base["floor"]["n_reference"] == metrics["fld"]["n_reference"] == metrics["heldout_sizes"]["test"]
    assert base["fld_over_memorizer"] == pytest.approx(base["fld"] / base["memorizer"]["mean"])


def test_train_help_states_the_recipe_defaults():
    """The CLI's help spells the defaults out (importing the recipe would slow every command's
    start); they must follow the recipe when it changes."""
    from qgen.cli import cli
    from qgen.training.recipe import RECIPE_TRAIN

    helps = {p.name: p.help for p in cli.commands["train"].params}
    assert f"the recipe's, {RECIPE_TRAIN['steps']}" in helps["steps"]
    assert f"default {RECIPE_TRAIN['batch_size']})" in helps["batch_size"]
    assert float(helps["lr"].split("default ")[1].rstrip(")")) == RECIPE_TRAIN["lr"]
    assert f"default {RECIPE_TRAIN['lr_warmup']})" in helps["lr_warmup"]
    assert f"default {RECIPE_TRAIN['ema_decay']})" in helps["ema_decay"]
    assert f"default {RECIPE_TRAIN['ema_power']};" in helps["ema_power"]
    assert f"default {RECIPE_TRAIN['augment_shift']})" in helps["augment_shift"]
    assert f"default {RECIPE_TRAIN['eval_samples']})" in helps["eval_samples"]


def test_a_shot_spending_backend_draws_its_preview_with_the_exact_backend(tmp_path):
    """Previews and in-training evaluations would submit dozens of hardware jobs outside the training
    budget: on a backend that spends shots they run the same weights on the exact backend."""
    from qgen.training.trainer import EXACT_PREVIEW_NOTE

    cfg = replace(_cfg(steps=4), model=ModelConfig(kind="quantum", widths=(8, 8, 8), qubits=2, layers=1))
    trainer = _trainer(tmp_path, cfg)
    reference = trainer.sample_ema("ddim", 5, 3, seed=7)  # the model itself, exact backend

    class SpendingBackend(type(trainer.backend)):  # the same backend, claiming to spend shots
        spends_shots = True

    trainer.backend.__class__ = SpendingBackend
    calls = {"n": 0}
    connector = trainer.model.gate.middle.qnn
    original = connector.forward

    def counting(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    connector.forward = counting
    drawn = trainer.sample_ema("ddim", 5, 3, seed=7)
    trainer.train(show_progress=False)  # ends with finish(): the preview grid
    assert torch.equal(drawn, reference)  # same weights, drawn by the exact twin
    training_calls = 4  # one forward per training step on the training backend, none for previews
    assert calls["n"] == training_calls
    assert trainer.run.manifest()["preview_note"] == EXACT_PREVIEW_NOTE
    assert (trainer.run.path / "samples.png").is_file()
