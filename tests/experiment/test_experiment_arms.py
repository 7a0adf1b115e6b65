"""The experiment's arms: controls that differ from the quantum arm in one thing only.

``quantum_frozen`` keeps its circuit weights at their initial values (the optimizer never holds
them, a resumed run is frozen again), ``separable`` has no entangling gates; every arm of a cell
starts its shared layers from the same weights and trains on the same batches.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qgen.errors import QgenError
from qgen.experiment.arms import ARMS
from qgen.experiment.cells import expand_cells, run_config
from qgen.experiment.config import experiment_from_dict
from qgen.experiment.cell_run import RunnerOptions
from qgen.experiment.cells import find_run_dir
from qgen.experiment.runner import run_experiment
from qgen.training.freeze import circuit_weights
from tests.experiment.test_experiment import TINY

CONTROL_GRID = {**TINY, "arms": ["plain", "classical", "quantum", "quantum_frozen", "separable"]}


@pytest.fixture(autouse=True)
def _circuits_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("QGEN_CIRCUITS", str(tmp_path / "circuits"))


def _exact_backend():
    from qgen.backends.registry import backend_for
    from qgen.backends.spec import BackendSpec

    return backend_for(BackendSpec(name="statevector", kind="statevector"))


def _initial_model(run):
    from qgen.models.build import build_model

    return build_model(run.model, 1, run.train.seed, _exact_backend() if run.model.kind == "quantum" else None)


def test_arms_set_only_their_own_fields():
    cfg = experiment_from_dict(CONTROL_GRID)
    runs = {c.arm.name: run_config(cfg, c) for c in expand_cells(cfg)}
    quantum = runs["quantum"]
    assert runs["quantum_frozen"].train.freeze == ("circuit",) and quantum.train.freeze == ()
    assert runs["separable"].model.entanglement == "none" and quantum.model.entanglement == "linear"
    for name, run in runs.items():
        # everything but the arm's own fields is the quantum arm's
        same_model = {k: v for k, v in vars(run.model).items() if k not in ("kind", "entanglement")}
        assert same_model == {k: v for k, v in vars(quantum.model).items() if k not in ("kind", "entanglement")}
        assert run.data == quantum.data and run.diffusion == quantum.diffusion
        assert {k: v for k, v in vars(run.train).items() if k != "freeze"} == \
               {k: v for k, v in vars(quantum.train).items() if k != "freeze"}, name


def test_shared_layers_start_from_the_same_weights_in_every_arm_of_a_cell():
    cfg = experiment_from_dict(CONTROL_GRID)
    shared = {}
    for cell in expand_cells(cfg):
        state = _initial_model(run_config(cfg, cell)).state_dict()
        shared[cell.arm.name] = {k: v for k, v in state.items() if not k.startswith("gate.")}
    reference = shared["quantum"]
    assert len(reference) > 20
    for arm, state in shared.items():
        assert state.keys() == reference.keys(), arm
        assert all(torch.equal(state[k], reference[k]) for k in reference), arm  # the plain U-Net too


def test_gated_arms_also_share_the_block_around_the_middle():
    cfg = experiment_from_dict(CONTROL_GRID)
    blocks = {}
    for cell in expand_cells(cfg):
        if cell.arm.gated:
            state = _initial_model(run_config(cfg, cell)).state_dict()
            blocks[cell.arm.name] = {k: v for k, v in state.items() if k.startswith("gate.") and ".middle." not in k}
    for arm, state in blocks.items():
        assert all(torch.equal(state[k], blocks["quantum"][k]) for k in state), arm


def test_the_separable_circuit_has_no_entangling_gates_and_the_same_weights():
    cfg = experiment_from_dict(CONTROL_GRID)
    cells = {c.arm.name: c for c in expand_cells(cfg)}
    models = {a: _initial_model(run_config(cfg, cells[a])) for a in ("quantum", "separable")}
    circuits = {a: m.gate.middle.qnn.neural_network.circuit for a, m in models.items()}
    two_qubit = {a: sum(1 for inst in c.decompose().data if inst.operation.num_qubits > 1) for a, c in circuits.items()}
    assert two_qubit["quantum"] > 0 and two_qubit["separable"] == 0
    assert torch.equal(models["quantum"].gate.middle.qnn.weight, models["separable"].gate.middle.qnn.weight)


def test_freezing_a_circuit_a_model_does_not_have_is_an_error():
    from qgen.models.build import build_model
    from qgen.models.config import ModelConfig
    from qgen.training.freeze import freeze

    with pytest.raises(QgenError, match="needs a model with a circuit"):
        freeze(build_model(ModelConfig(kind="classical", widths=(8, 8, 8), qubits=2, layers=1), 1, 0), ("circuit",))
    from qgen.config import TrainConfig

    with pytest.raises(QgenError, match="unknown train.freeze entry 'decoder'"):
        TrainConfig(freeze=("decoder",))


def _circuit_weight(path, key="model"):
    state = torch.load(path, map_location="cpu", weights_only=False)[key]
    return next(v for k, v in state.items() if k.endswith("middle.qnn.weight"))


def test_frozen_circuit_stays_at_its_initial_weights_through_training_and_resume(tmp_path, monkeypatch):
    from qgen.backends.base import initial_weights
    from qgen.training.trainer import Trainer

    cfg = experiment_from_dict({**CONTROL_GRID, "arms": ["quantum_frozen", "quantum"]})
    cells = expand_cells(cfg)
    opts = RunnerOptions(out=tmp_path, log=lambda line: None)
    original = Trainer.train_step
    seen = {}

    def interrupt_at_step_7(self):
        seen.setdefault("frozen" if self.cfg.train.freeze else "trained", []).append(
            sum(p.numel() for group in self.optimizer.param_groups for p in group["params"]))
        if self.step == 6 and not seen.get("interrupted"):
            seen["interrupted"] = True
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, cells, opts)
    result = run_experiment(cfg, cells, opts)  # resumes the frozen cell, then trains the quantum one
    assert sorted(result.done) == sorted(c.id for c in cells)

    frozen_cell, quantum_cell = cells
    frozen_run, quantum_run = (find_run_dir(c.directory(tmp_path)) for c in cells)
    n_weights = 2 * 2 * 1  # TINY: 2 qubits x 1 layer, two angles each
    start = torch.tensor(initial_weights(n_weights, frozen_cell.seed), dtype=torch.float32)  # the connector's dtype
    assert torch.equal(_circuit_weight(frozen_run / "checkpoint-last.pt"), start)  # bit for bit
    assert torch.equal(_circuit_weight(frozen_run / "checkpoint-ema.pt"), start)  # the EMA does not round it
    assert not torch.allclose(_circuit_weight(quantum_run / "checkpoint-last.pt"), start, rtol=0, atol=1e-4)
    # the optimizer holds exactly the trainable numbers, before and after the resume
    frozen_counts, quantum_counts = set(seen["frozen"]), set(seen["trained"])
    assert len(frozen_counts) == 1 and frozen_counts == {quantum_counts.pop() - n_weights}
    last = torch.load(frozen_run / "checkpoint-last.pt", map_location="cpu", weights_only=False)
    assert sum(len(g["params"]) for g in last["optimizer"]["param_groups"]) == len(last["optimizer"]["state"])
    manifest = json.loads((frozen_run / "manifest.json").read_text())
    assert manifest["parameters"]["gate_middle"] == 0 and manifest["parameters"]["frozen"] == n_weights
    from qgen.config import load_run_config

    assert load_run_config(frozen_run / "config.toml").train.freeze == ("circuit",)  # what the resume rebuilt from
    from qgen.rundir import RunDir
    from qgen.trained_model import load_trained_model

    *_, model, _ = load_trained_model(RunDir(frozen_run), None, "ema", None)  # sampling rebuilds it frozen too
    assert [p.requires_grad for p in circuit_weights(model)] == [False]
    state = json.loads((tmp_path / "state.json").read_text())["cells"][frozen_cell.id]
    assert state["trainings"] == 2  # interrupted once, resumed once
