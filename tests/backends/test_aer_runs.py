"""Aer runs in pieces and on qgen's threads (qgen.backends.aer_runs): same numbers as one run."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.library import real_amplitudes
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp

from qgen.backends import aer_runs
from qgen.backends.aer import reseeded_aer_estimator
from qgen.backends.shot_estimator import ShotNoiseEstimator

OBSERVABLES = [["ZII"], [SparsePauliOp.from_list([("XXI", 0.5), ("IZZ", 2.0)])]]


def _aer(precision: float = 0.0):
    return reseeded_aer_estimator(seed=1, options={"default_precision": precision,
                                                   "backend_options": {"method": "statevector"}})


@pytest.mark.parametrize("per_run", [1, 3, 1000])
def test_estimator_pieces_match_statevector_estimator(monkeypatch, per_run):
    monkeypatch.setattr(aer_runs, "BINDINGS_PER_RUN", per_run)
    qc = real_amplitudes(3, reps=2)
    values = np.random.default_rng(0).random((1, 7, qc.num_parameters))
    ref = StatevectorEstimator().run([(qc, OBSERVABLES, values)]).result()[0].data.evs
    got = _aer().run([(qc, OBSERVABLES, values)]).result()[0].data.evs
    assert got.shape == ref.shape == (2, 7)
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_estimator_without_parameters_and_with_precision(monkeypatch):
    monkeypatch.setattr(aer_runs, "BINDINGS_PER_RUN", 2)
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    ref = StatevectorEstimator().run([(qc, OBSERVABLES)]).result()[0].data.evs
    np.testing.assert_allclose(_aer().run([(qc, OBSERVABLES)]).result()[0].data.evs, ref, atol=1e-12)
    # precision > 0: Gaussian noise of that width around the exact values, as Aer's own estimator
    qc2 = real_amplitudes(3, reps=1)
    values = np.random.default_rng(1).random((400, qc2.num_parameters))
    exact = StatevectorEstimator().run([(qc2, "ZII", values)]).result()[0].data.evs
    result = _aer(precision=0.05).run([(qc2, "ZII", values)]).result()[0]
    assert np.all(result.data.stds == 0.05)
    assert np.std(result.data.evs - exact) == pytest.approx(0.05, rel=0.15)


def test_shot_noise_estimator_pieces_match_one_run(monkeypatch):
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.05, 1), ["ry", "rz", "sx", "x"])
    qc = real_amplitudes(3, reps=1)
    values = np.random.default_rng(2).random((5, qc.num_parameters))
    whole = ShotNoiseEstimator(noise, shots=None, seed=0).run([(qc, "ZZI", values)]).result()[0].data.evs
    monkeypatch.setattr(aer_runs, "BINDINGS_PER_RUN", 2)
    pieces = ShotNoiseEstimator(noise, shots=None, seed=0).run([(qc, "ZZI", values)]).result()[0].data.evs
    np.testing.assert_allclose(pieces, whole, atol=1e-12)
    # the noise is really there: the noisy values are pulled towards 0 against the ideal ones
    ideal = StatevectorEstimator().run([(qc, "ZZI", values)]).result()[0].data.evs
    assert np.all(np.abs(pieces) < np.abs(ideal) + 1e-12)


def test_aer_runs_qgen_threads(monkeypatch):
    monkeypatch.setenv("QGEN_THREADS", "2")
    assert _aer()._backend.options.max_parallel_threads == 2
    monkeypatch.delenv("QGEN_THREADS")
    assert _aer()._backend.options.max_parallel_threads == 1


def test_pubs_sharing_circuit_and_bindings_are_simulated_once(monkeypatch):
    """EstimatorQNN's forward: one PUB per observable, same circuit and bindings."""
    import qgen.backends.aer as aer_module

    calls = []
    real = aer_module.run_bindings
    monkeypatch.setattr(aer_module, "run_bindings", lambda *a, **k: calls.append(1) or real(*a, **k))
    qc = real_amplitudes(3, reps=2)
    values = np.random.default_rng(3).random((5, qc.num_parameters))
    other = values + 0.1
    pubs = [(qc, "ZII", values), (qc, "IZI", values), (qc, "XXI", values), (qc, "ZII", other)]
    got = [r.data.evs for r in _aer().run(pubs).result()]
    ref = [r.data.evs for r in StatevectorEstimator().run(pubs).result()]
    assert len(calls) == 2  # the three PUBs on `values` share one simulation
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, atol=1e-12)
