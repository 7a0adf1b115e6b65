"""The backend layer: ISA + layout-mapped observables, fake-device reduction, artifacts, journaling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qiskit import qpy
from qiskit.primitives import StatevectorEstimator

from qgen.backends.artifacts import write_prepared_artifacts
from qgen.backends.base import QuantumBackend
from qgen.backends.registry import REPO_BACKENDS, backend_for, get_backend, load_backend
from qgen.circuits import AnsatzSpec, build_ansatz
from qgen.errors import QgenError
from qgen.rundir import RunDir
from tests.helpers import qgen

RNG = np.random.default_rng(7)


def backend(name: str) -> QuantumBackend:
    return load_backend(name, REPO_BACKENDS)


def ideal_values(qc, x, w) -> np.ndarray:
    params = np.concatenate([x, np.broadcast_to(w, (len(x), len(w)))], axis=1)
    bound = {p: params[:, i] for i, p in enumerate([*qc.input_params, *qc.weight_params])}
    pubs = [(qc.circuit, obs, [ [bound[p][b] for p in qc.circuit.parameters] for b in range(len(x)) ])
            for obs in qc.observables]
    return np.stack([r.data.evs for r in StatevectorEstimator().run(pubs).result()], axis=1)


def test_fake_device_qnn_agrees_with_ideal_within_noise() -> None:
    qc = build_ansatz(AnsatzSpec(4, 1, "linear"))
    fake = backend("fake_brisbane")
    prepared = fake.prepare(qc)
    assert prepared.isa.num_qubits == 127, "the ISA circuit is device-wide"
    assert prepared.executable.num_qubits == 4, "only the active qubits are simulated"
    assert fake.prepare(qc) is prepared, "transpiled once, reused"
    x = RNG.uniform(-np.pi, np.pi, (6, 4))
    w = RNG.uniform(-1, 1, qc.circuit.num_parameters - 4)
    noisy = fake.make_qnn(qc).forward(x, w)
    ideal = ideal_values(qc, x, w)
    diff = np.abs(noisy - ideal)
    assert diff.max() < 0.2, "a mapped observable on the wrong qubit would be off by O(1)"
    assert diff.max() > 1e-3, "device noise must show"


def test_fake_brisbane_bits_are_biased_before_and_fair_after_extraction():
    from qiskit_ibm_runtime.fake_provider import FakeBrisbane

    from qgen.backends.reduced_device import readout_flip_probabilities, reduce_device
    from qgen.noise import QuantumBitSource, SeedChain, default_extractors, extract, format_report, noise_report
    from qgen.noise.circuits import hadamard_circuit

    backend = FakeBrisbane()
    # the four qubits whose readout asymmetry |P(1|0) - P(0|1)| (hence bit bias) is largest
    asymmetry = [abs(np.subtract(*readout_flip_probabilities(backend, q))) for q in range(backend.num_qubits)]
    device = reduce_device(backend, [int(q) for q in np.argsort(asymmetry)[::-1][:4]], hadamard_circuit)
    assert device.circuit.num_qubits == 4  # only the active qubits are simulated
    batch = QuantumBitSource.from_bit_sampling(device.bit_sampling(), seeds=SeedChain(11)).fetch(60_000)
    per_qubit = batch.bits.reshape(4, -1).mean(axis=1)
    p10, p01 = np.array(device.readout).T  # P(read 1) of a fair coin under readout error alone
    assert np.allclose(per_qubit, 0.5 * (1 - p01) + 0.5 * p10, atol=0.015)
    assert np.abs(per_qubit - 0.5).max() > 0.15  # readout asymmetry, not an ideal coin
    raw = noise_report(bits=batch.bits)
    assert not raw["pass"], format_report(raw)
    cleaned = noise_report(bits=extract(batch.bits, default_extractors()))
    assert cleaned["pass"], format_report(cleaned)


def test_aer_and_statevector_qnns_agree_exactly() -> None:
    qc = build_ansatz(AnsatzSpec(5, 2, "ring"))
    x = RNG.uniform(-np.pi, np.pi, (4, 5))
    w = RNG.uniform(-1, 1, qc.circuit.num_parameters - 5)
    exact = backend("statevector").make_qnn(qc)
    aer = backend("aer_simulator").make_qnn(qc)
    np.testing.assert_allclose(aer.forward(x, w), ideal_values(qc, x, w), atol=1e-6)
    np.testing.assert_allclose(exact.forward(x, w), ideal_values(qc, x, w), atol=1e-6)
    gi_a, gw_a = aer.backward(x, w)
    gi_e, gw_e = exact.backward(x, w)
    np.testing.assert_allclose(gi_a, gi_e, atol=1e-6)
    np.testing.assert_allclose(gw_a, gw_e, atol=1e-6)


def test_single_precision_statevector_computes_in_complex64_and_agrees_with_double() -> None:
    """The shipped ``statevector`` entry runs complex64 amplitudes; values and gradients stay within
    float32 rounding of the double-precision entry (and of Qiskit's reference)."""
    qc = build_ansatz(AnsatzSpec(8, 3, "linear"))  # the default model's circuit
    x = RNG.uniform(-np.pi, np.pi, (6, 8))
    w = RNG.uniform(-1, 1, qc.circuit.num_parameters - 8)
    single, double = backend("statevector").make_qnn(qc), backend("statevector_double").make_qnn(qc)
    assert single.estimator.dtype == np.complex64 and double.estimator.dtype == np.complex128
    assert get_backend("statevector", REPO_BACKENDS).simulation_precision == "single"
    np.testing.assert_allclose(double.forward(x, w), ideal_values(qc, x, w), atol=1e-10)
    got = single.forward(x, w)
    np.testing.assert_allclose(got, ideal_values(qc, x, w), atol=1e-5)
    assert np.abs(got - double.forward(x, w)).max() > 0  # really another arithmetic, not the same one
    for s, d in zip(single.backward(x, w), double.backward(x, w)):
        np.testing.assert_allclose(s, d, atol=1e-5)


def test_ideal_aer_uses_its_mps_method_where_qgen_would_and_agrees_with_exact() -> None:
    wide, narrow = build_ansatz(AnsatzSpec(12, 2, "linear")), build_ansatz(AnsatzSpec(4, 2, "linear"))
    aer = backend("aer_simulator")
    assert aer.simulation_method(wide) == "matrix_product_state"
    assert aer.simulation_method(narrow) == "automatic"  # small: Aer's own (statevector) choice
    assert backend("aer_noisy").simulation_method(wide) == "density_matrix"
    qnn = aer.make_qnn(wide)
    assert qnn.estimator.options.backend_options["method"] == "matrix_product_state"
    x = RNG.uniform(-np.pi, np.pi, (3, 12))
    w = RNG.uniform(-1, 1, wide.circuit.num_parameters - 12)
    exact = backend("statevector").make_qnn(wide)
    np.testing.assert_allclose(qnn.forward(x, w), exact.forward(x, w), atol=1e-6)
    for a, e in zip(qnn.backward(x, w), exact.backward(x, w)):
        np.testing.assert_allclose(a, e, atol=1e-6)


def test_noisy_aer_backend_damps_expectation_values() -> None:
    qc = build_ansatz(AnsatzSpec(3, 1, "linear"))
    x = np.zeros((1, 3))
    w = np.zeros(qc.circuit.num_parameters - 3)
    noisy = backend("aer_noisy").make_qnn(qc).forward(x, w)
    # all-zero angles: the ideal state is |000>, <Z> = 1; depolarizing noise pulls it below 1
    assert np.all(noisy < 0.999) and np.all(noisy > 0.9)


def test_circuit_artifacts_are_complete_and_round_trip(tmp_path) -> None:
    qc = build_ansatz(AnsatzSpec(4, 2, "linear"))
    fake = backend("fake_fez")
    prepared = fake.prepare(qc)
    out = write_prepared_artifacts(fake, prepared, tmp_path)
    assert out == tmp_path / "fake_fez" / qc.name
    for name in ("circuit.qpy", "circuit.qasm3", "diagram.png", "diagram.txt", "stats.json"):
        assert (out / name).stat().st_size > 0, name
    stats = json.loads((out / "stats.json").read_text())
    assert stats["backend"] == "ibm_fez" and stats["optimization_level"] == 2
    assert stats["active_qubits"] == 4 and stats["num_qubits"] == 156
    assert stats["two_qubit_depth"] >= 1 and "cz" in stats["count_ops"]
    assert 0 < stats["estimated_success_probability"] < 1
    with open(out / "circuit.qpy", "rb") as fh:
        loaded = qpy.load(fh)[0]
    assert loaded.layout is not None
    assert loaded.layout.final_index_layout() == prepared.isa.layout.final_index_layout()
    assert "OPENQASM 3" in (out / "circuit.qasm3").read_text()


def test_qgen_circuits_cli_writes_qnn_and_noise_circuits(tmp_path) -> None:
    env = {"QGEN_CIRCUITS": str(tmp_path), "QGEN_BACKENDS": str(REPO_BACKENDS), "PATH": ""}
    res = qgen(["circuits", "--backend", "fake_brisbane", "--qubits", "4", "--layers", "1"], env)
    assert res.returncode == 0, res.stderr
    dirs = sorted(p.name for p in (tmp_path / "fake_brisbane").iterdir())
    assert "qnn_linear_q4_l1" in dirs and any(d.startswith("hadamard") for d in dirs)


def test_unknown_noise_for_aer_is_a_clear_error() -> None:
    from dataclasses import replace

    spec = replace(get_backend("aer_simulator", REPO_BACKENDS), noise="thermal")
    with pytest.raises(QgenError, match="unknown noise 'thermal'"):
        backend_for(spec).noise_model()


class CountingEstimator(StatevectorEstimator):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def run(self, pubs, *, precision=None):
        self.calls += 1
        return super().run(pubs, precision=precision)


def journaled(tmp_path, shot_budget=None):
    from dataclasses import replace

    from qgen.backends.journaled import JournaledEstimator

    spec = replace(get_backend("ibm_fez", REPO_BACKENDS), shot_budget=shot_budget)
    inner = CountingEstimator()
    est = JournaledEstimator(inner, spec)
    est.attach(RunDir(tmp_path))
    return est, inner


def test_journaled_estimator_records_before_result_and_resumes_without_resubmitting(tmp_path) -> None:
    from qgen.rundir import RunDir

    qc = build_ansatz(AnsatzSpec(2, 1, "linear"))
    params = RNG.uniform(-1, 1, (3, qc.circuit.num_parameters))
    pubs = [(qc.circuit, obs, params) for obs in qc.observables]
    # one PUB for both readouts: 3 bindings x 32 twirls x 128 shots, plus 32 x 128 TREX calibration shots
    job_shots = (3 * 32 + 32) * 128
    with RunDir(tmp_path).lock():
        est, inner = journaled(tmp_path)
        first = est.run(pubs).result()
        lines = [json.loads(ln) for ln in (tmp_path / "jobs.jsonl").read_text().splitlines()]
        assert [ln["status"] for ln in lines] == ["submitted", "done"]
        assert lines[0]["pub_shapes"] == [[2, 3]] and lines[0]["executions"] == job_shots
        # a new process (fresh wrapper, circuit rebuilt: new Parameter objects) asking for the same PUBs
        # gets the journaled result
        est2, inner2 = journaled(tmp_path)
        rebuilt = build_ansatz(AnsatzSpec(2, 1, "linear"))
        again = est2.run([(rebuilt.circuit, obs, params) for obs in rebuilt.observables]).result()
        assert inner2.calls == 0
        np.testing.assert_allclose(again[0].data.evs, first[0].data.evs)
        # different parameter values are a different job
        est2.run([(qc.circuit, qc.observables[0], params + 0.1)]).result()
        assert inner2.calls == 1
    budget = json.loads((tmp_path / "budget.json").read_text())["ibm_fez"]
    assert budget["spent"] == 2 * job_shots


def test_journaled_estimator_refuses_over_budget_before_submitting(tmp_path) -> None:
    qc = build_ansatz(AnsatzSpec(2, 1, "linear"))
    params = RNG.uniform(-1, 1, (10, qc.circuit.num_parameters))
    est, inner = journaled(tmp_path, shot_budget=40_000)
    with pytest.raises(QgenError, match=r"needs 45,056 shots .* \(over by 5,056\)"):  # (10 x 32 + 32) x 128
        est.run([(qc.circuit, obs, params) for obs in qc.observables])
    assert inner.calls == 0 and not (tmp_path / "jobs.jsonl").exists()
