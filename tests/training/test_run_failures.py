"""Runs that cannot start or that die (issue #21, sections 2-4): what does not fit the machine or the
device is refused before a run directory exists, and a run that dies is never left ``running``."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from qgen.backends.aer_memory import check_fits_in_memory, state_bytes
from qgen.backends.registry import load_backend
from qgen.config import DiffusionConfig, RunConfig
from qgen.data import DataConfig, load_dataset
from qgen.errors import QgenError
from qgen.models.config import ModelConfig
from qgen.noise import ClassicalNoise
from qgen.rundir import RunDir, base_manifest
from qgen.training.recipe import recipe_train_config
from qgen.training.trainer import Trainer, TrainingFailed
from tests.helpers import TINY, make_env, one_error_line, qgen, without


def test_an_aer_state_that_cannot_fit_in_memory_is_refused_before_the_run_exists(tmp_path: Path) -> None:
    args = ["train", "--backend", "aer_simulator", "--qubits", "40", "--entanglement", "full", "--steps", "2",
            *without(TINY, "--qubits")]
    line = one_error_line(qgen(args, make_env(tmp_path)))
    assert "Aer's automatic method needs 16.0 TiB for 40 qubits" in line and "qubits fit" in line
    assert not (tmp_path / "runs").exists()


def test_memory_estimates_per_method() -> None:
    assert state_bytes("statevector", 10) == 16 * 2**10
    assert state_bytes("density_matrix", 10) == 16 * 4**10
    assert state_bytes("matrix_product_state", 100) is None
    check_fits_in_memory("statevector", 20, "aer", limit=16 * 2**20)  # exactly fits
    with pytest.raises(QgenError, match=r"needs 32.0 MiB for 21 qubits but this machine has 16.0 MiB of memory; "
                                        r"at most 20 qubits fit"):
        check_fits_in_memory("statevector", 21, "aer", limit=16 * 2**20)
    check_fits_in_memory("matrix_product_state", 500, "aer", limit=1)


@pytest.mark.parametrize("command", [
    ["train", "--steps", "2", *without(TINY, "--qubits")],
    ["circuits", "--layers", "1", "--no-noise-circuit"],
])
def test_more_qubits_than_the_device_has_is_one_line(tmp_path: Path, command) -> None:
    line = one_error_line(qgen([*command, "--backend", "fake_brisbane", "--qubits", "200"], make_env(tmp_path)))
    assert "the circuit needs 200 qubits but device ibm_brisbane has 127; use --qubits 127 or fewer" in line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "circuits").exists()


def _cfg() -> RunConfig:
    return RunConfig(
        name="t", data=DataConfig(dataset="mnist", classes=(3,), n_train=16, seed=0, download=False),
        model=ModelConfig(kind="classical", widths=(8, 8, 8), qubits=4, layers=1), diffusion=DiffusionConfig(T=40),
        train=replace(recipe_train_config(steps=8, batch_size=4, checkpoint_every=4, eval_every=0)))


def _trainer(tmp_path: Path) -> Trainer:
    cfg = _cfg()
    run = RunDir.create(tmp_path, "run", config=cfg, manifest=base_manifest() | {"status": "created"})
    return Trainer(run, cfg, load_dataset(cfg.data), load_backend(cfg.backend), ClassicalNoise(0))


def test_a_run_that_dies_of_an_unexpected_error_is_marked_failed(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)

    def out_of_memory():
        raise RuntimeError("Insufficient memory to run circuit")

    trainer.train_step = out_of_memory
    with pytest.raises(RuntimeError):
        trainer.train(show_progress=False)
    manifest = trainer.run.manifest()
    assert manifest["status"] == "failed" and manifest["failed_at_step"] == 1 and manifest["steps_done"] == 0
    assert manifest["error"] == "RuntimeError: Insufficient memory to run circuit"


def test_a_failure_before_the_first_checkpoint_does_not_claim_one_is_intact(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    loss = trainer.diffusion.training_loss
    trainer.diffusion.training_loss = lambda *a, **k: loss(*a, **k) * math.inf
    with pytest.raises(TrainingFailed) as err:
        trainer.train(show_progress=False)
    assert "is intact" not in str(err.value) and "no checkpoint had been saved yet" in str(err.value)
