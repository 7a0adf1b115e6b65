"""Circuit-library ansätze, feature maps and observables as the bottleneck circuit (issue #24, part 1).

Every circuit is checked against Qiskit's ``StatevectorEstimator`` through the model's own quantum
middle, its gradients against finite differences, its classical twin for an equal parameter count,
and the original circuit for being rebuilt exactly as before.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.primitives import StatevectorEstimator

from qgen.backends.registry import load_backend
from qgen.circuits import AnsatzSpec, build_ansatz
from qgen.errors import QgenError
from qgen.models.build import build_model, count_parameters
from qgen.models.config import ModelConfig
from qgen.quantum.exact_estimator import circuit_structure_key

STATEVECTOR = load_backend("statevector")

LIBRARY = {
    "real_amplitudes+zz": dict(ansatz_family="real_amplitudes", entanglement="full", feature_map="zz_feature_map"),
    "efficient_su2 circular": dict(ansatz_family="efficient_su2", entanglement="circular"),
    "n_local rx,ry+crz": dict(ansatz_family="n_local", rotation_blocks=("rx", "ry"), entanglement_blocks=("crz",)),
    "pauli_two_design+z": dict(ansatz_family="pauli_two_design", feature_map="z_feature_map", feature_reps=2),
    "real_amplitudes reupload, Pauli sums": dict(ansatz_family="real_amplitudes", feature_map="reupload",
                                                 observables=("ZZI", "XIX", "0.5*YYI + -0.25*IZZ")),
    "qgen layers reupload": dict(feature_map="reupload"),
}


def config(kind: str = "quantum", **circuit) -> ModelConfig:
    return ModelConfig(kind=kind, widths=(8, 8, 8), qubits=3, layers=2, **circuit)


def reference(qnn, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Qiskit's reference estimator on the logical circuit, bound by parameter (not position)."""
    pubs = []
    for row in inputs:
        bound = dict(zip(qnn.input_params, row)) | dict(zip(qnn.weight_params, weights))
        pubs.append((qnn.circuit, list(qnn.observables), [bound[p] for p in qnn.circuit.parameters]))
    return np.array([r.data.evs for r in StatevectorEstimator().run(pubs).result()])


@pytest.mark.parametrize("name", list(LIBRARY))
def test_library_circuit_in_the_model_matches_qiskit_reference_estimator(name) -> None:
    cfg = config(**LIBRARY[name])
    middle = build_model(cfg, 1, seed=0, backend=STATEVECTOR).gate.middle
    angles = torch.tensor(np.random.default_rng(1).uniform(-np.pi, np.pi, (4, cfg.inputs)), dtype=torch.float32)
    ours = middle(angles).detach().double().numpy()
    qnn = build_ansatz(cfg.ansatz)
    assert ours.shape == (4, cfg.readouts) == (4, len(qnn.observables))
    want = reference(qnn, angles.double().numpy(), middle.qnn.weight.detach().double().numpy())
    assert np.allclose(ours, want, atol=1e-6)
    assert not np.allclose(want, want[0], atol=1e-3), "the readouts depend on the inputs"


@pytest.mark.parametrize("name", list(LIBRARY))
def test_classical_twin_has_exactly_the_circuits_weights_inputs_and_readouts(name) -> None:
    cfg = config(**LIBRARY[name])
    quantum = build_model(cfg, 1, seed=0, backend=STATEVECTOR).gate.middle
    twin = build_model(config("classical", **LIBRARY[name]), 1, seed=0).gate.middle
    weights = len(build_ansatz(cfg.ansatz).weight_params)
    assert count_parameters(quantum) == count_parameters(twin) == weights == cfg.circuit_weights
    assert twin(torch.zeros(5, cfg.inputs)).shape == (5, cfg.readouts)


@pytest.mark.parametrize("weights, n", [(1, 3), (5, 3), (6, 3), (22, 4)])
def test_matched_middle_counts_any_number_of_weights(weights, n) -> None:
    from qgen.models.middles import MatchedMiddle

    twin = MatchedMiddle(n, 7, weights, explicit_observables=True)
    assert count_parameters(twin) == weights
    out = twin(torch.randn(2, n))
    out.sum().backward()
    assert out.shape == (2, 7) and twin.weights.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["n_local rx,ry+crz", "real_amplitudes reupload, Pauli sums"])
def test_gradients_through_a_library_circuit_match_finite_differences(name) -> None:
    gate = build_model(config(**LIBRARY[name], bottleneck="film"), 1, seed=0, backend=STATEVECTOR).gate.double()
    h = torch.randn(2, 8, 7, 7, dtype=torch.float64)
    target = torch.randn(2, 8, 7, 7, dtype=torch.float64)
    weight = gate.middle.qnn.weight

    def loss():
        return (gate(h) - target).pow(2).mean()

    loss().backward()
    analytic = weight.grad.clone()
    step = 1e-3
    for j in (0, len(analytic) // 2, len(analytic) - 1):
        with torch.no_grad():
            weight[j] += step
            up = loss().item()
            weight[j] -= 2 * step
            down = loss().item()
            weight[j] += step
        assert analytic[j].item() == pytest.approx((up - down) / (2 * step), rel=2e-2, abs=1e-5)
    assert gate.squeeze.weight.grad.abs().sum() > 0, "input gradients reach the encoder before the circuit"


def test_the_original_circuit_is_rebuilt_exactly_and_its_twin_keeps_its_parameter_names() -> None:
    old = ModelConfig(qubits=3, layers=2, entanglement="ring")  # a config.toml from before the new keys
    assert old.ansatz.is_original
    x, w = ParameterVector("x", 3), ParameterVector("w", 12)
    expected = QuantumCircuit(3)
    for q in range(3):
        expected.ry(x[q], q)
    k = 0
    for _ in range(2):
        for gate in ("rz", "ry"):
            for q in range(3):
                getattr(expected, gate)(w[k], q)
                k += 1
        for c, t in ((0, 1), (1, 2), (2, 0)):
            expected.cx(c, t)
    built = build_ansatz(old.ansatz)
    # gate by gate, with parameter names (new Parameter objects never compare equal to other ones)
    assert circuit_structure_key(built.circuit) == circuit_structure_key(expected)
    assert built.name == "qnn_ring_q3_l2" and [p.name for p in built.weight_params] == [p.name for p in w]
    assert circuit_structure_key(build_ansatz(AnsatzSpec(3, 2, "ring")).circuit) == circuit_structure_key(expected)
    twin = build_model(ModelConfig(kind="classical", widths=(8, 8, 8), qubits=3, layers=2), 1, seed=0).gate.middle
    assert set(twin.state_dict()) == {"scale", "shift", "mixers"}


def test_exact_backend_transpiles_gates_it_cannot_simulate_and_says_so_once(caplog) -> None:
    x, w = ParameterVector("x", 3), ParameterVector("w", 4)
    qc = QuantumCircuit(3, name="xx_yy")
    for q in range(3):
        qc.ry(x[q], q)
    qc.rxx(w[0], 0, 1)
    qc.ryy(w[1], 1, 2)
    qc.rx(w[2], 0)
    qc.rzx(w[3], 2, 0)
    cfg = ModelConfig(widths=(8, 8, 8), layers=1, **_custom(qc, "x", ["ZZI", "IXX", "YIY"]))
    backend = load_backend("statevector")
    with caplog.at_level("WARNING", logger="qgen"):
        middle = build_model(cfg, 1, seed=0, backend=backend).gate.middle
        build_model(cfg, 1, seed=1, backend=backend)
    notes = [r.getMessage() for r in caplog.records if "transpiled" in r.getMessage()]
    assert len(notes) == 1 and "rxx, ryy, rzx" in notes[0]
    angles = torch.tensor(np.random.default_rng(2).uniform(-3, 3, (3, 3)), dtype=torch.float32)
    want = reference(build_ansatz(cfg.ansatz), angles.double().numpy(), middle.qnn.weight.detach().double().numpy())
    assert np.allclose(middle(angles).detach().double().numpy(), want, atol=1e-6)
    ops = backend.prepare(build_ansatz(cfg.ansatz)).executable.count_ops()
    assert not {"rxx", "ryy", "rzx"} & set(ops), "the executable circuit is in the simulator's gate set"
    # and the exact gradients of the transpiled circuit are those of the user's circuit
    weight = middle.qnn.weight
    middle(angles).pow(2).sum().backward()
    analytic = weight.grad.clone()
    step = 1e-4
    for j in range(4):
        shifted = []
        for sign in (1, -1):
            w_j = weight.detach().double().numpy().copy()
            w_j[j] += sign * step
            shifted.append((reference(build_ansatz(cfg.ansatz), angles.double().numpy(), w_j) ** 2).sum())
        assert analytic[j].item() == pytest.approx((shifted[0] - shifted[1]) / (2 * step), rel=1e-4, abs=1e-6)


def _custom(qc, inputs, observables=None) -> dict:
    from qgen.circuits.custom import custom_fields

    return custom_fields(qc, inputs, observables)


def test_custom_circuit_round_trips_through_qpy_and_trains_on_aer() -> None:
    from qgen.circuits.custom_circuit import decode_qpy

    a, b = ParameterVector("a", 2), ParameterVector("theta", 5)
    qc = QuantumCircuit(3, name="user circuit")
    qc.h(range(3))
    qc.rz(a[0], 0)
    qc.rz(a[1] * 2, 2)
    qc.ryy(b[0], 0, 1)
    qc.crx(b[1], 1, 2)
    qc.u(b[2], b[3], b[4], 0)
    fields = _custom(qc, "a", ["ZIZ", "0.5*XXI + 0.5*IYY"])
    assert decode_qpy(fields["circuit_qpy"]) == qc
    cfg = ModelConfig(widths=(8, 8, 8), layers=1, **fields)
    assert (cfg.inputs, cfg.readouts, cfg.circuit_weights) == (2, 2, 5)
    aer = build_model(cfg, 1, seed=0, backend=load_backend("aer_simulator")).gate.middle
    exact = build_model(cfg, 1, seed=0, backend=STATEVECTOR).gate.middle
    angles = torch.tensor([[0.3, -1.2], [2.0, 0.5]])
    want = reference(build_ansatz(cfg.ansatz), angles.double().numpy(), aer.qnn.weight.detach().double().numpy())
    assert np.allclose(aer(angles).detach().double().numpy(), want, atol=1e-6)
    assert np.allclose(exact(angles).detach().double().numpy(), want, atol=1e-6)
    out = aer(angles.requires_grad_())
    out.sum().backward()
    assert aer.qnn.weight.grad.abs().sum() > 0 and angles.grad.abs().sum() > 0
    twin = build_model(ModelConfig(kind="classical", widths=(8, 8, 8), layers=1, **fields), 1, seed=0).gate.middle
    assert count_parameters(twin) == 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(ansatz_family="n_local"), "needs its rotation blocks"),
    (dict(ansatz_family="qgen", entanglement="circular"), "unknown entanglement 'circular' for ansatz qgen"),
    (dict(ansatz_family="bogus"), "unknown ansatz 'bogus'"),
    (dict(feature_map="iqp"), "unknown feature map 'iqp'"),
    (dict(observables=("ZZ",)), "Pauli label of 3 letters"),
    (dict(observables=("2j*ZZI",)), "not a real coefficient"),
    (dict(rotation_blocks=("rx",)), "--ansatz n_local only"),
    (dict(ansatz_family="pauli_two_design", feature_map="reupload"), "not reupload"),
])
def test_circuit_choices_that_cannot_be_built_are_one_clear_error(kwargs, message) -> None:
    with pytest.raises(QgenError, match=message):
        config(**kwargs)


def test_user_circuits_that_do_not_fit_the_bottleneck_are_one_clear_error() -> None:
    x = ParameterVector("x", 2)
    only_inputs = QuantumCircuit(2)
    only_inputs.ry(x[0], 0)
    only_inputs.ry(x[1], 1)
    with pytest.raises(QgenError, match="at least one trainable weight"):
        _custom(only_inputs, "x")
    with pytest.raises(QgenError, match="'y' is not a parameter of the circuit"):
        _custom(only_inputs, ["y"])
    with pytest.raises(QgenError, match="acts on 3 qubits; the circuit has 2"):
        _custom(only_inputs, "x", ["ZZZ"])
    measured = only_inputs.copy()
    measured.rx(ParameterVector("w", 1)[0], 0)
    measured.measure_all()
    with pytest.raises(QgenError, match="measures or has classical bits"):
        _custom(measured, "x")


def test_what_the_library_refuses_is_one_clear_error_and_no_entanglement_means_no_pairs() -> None:
    with pytest.raises(QgenError, match="cannot build ansatz n_local .* Unsupported gate: foo"):
        build_ansatz(config(ansatz_family="n_local", rotation_blocks=("foo",)).ansatz)
    separable = build_ansatz(config(ansatz_family="real_amplitudes", feature_map="zz_feature_map",
                                    entanglement="none").ansatz)
    assert not {"cx", "cz"} & set(separable.circuit.count_ops())
    assert {"h", "p", "ry"} <= set(separable.circuit.count_ops())


def test_run_config_takes_a_quantum_circuit_pauli_ops_and_reps() -> None:
    import qgen
    from qiskit.quantum_info import SparsePauliOp

    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    qc = QuantumCircuit(2)
    qc.ry(x[0], 0)
    qc.ry(x[1], 1)
    qc.ryy(w[0], 0, 1)
    qc.rx(w[1], 0)
    qc.rz(w[2], 1)
    cfg = qgen.run_config(circuit=qc, input_params=[x[0], x[1]], widths=(8, 8, 8),
                          observables=["ZZ", SparsePauliOp.from_list([("XI", 0.5), ("IY", -0.5)])])
    assert cfg.model.observables == ("ZZ", "0.5*XI + -0.5*IY") and cfg.model.qubits == 2
    assert (cfg.model.inputs, cfg.model.readouts, cfg.model.circuit_weights) == (2, 2, 3)
    library = qgen.run_config(ansatz="efficient_su2", reps=2, qubits=3, observables="zz")
    assert library.model.layers == 2 and library.model.observables == ("IZZ", "ZZI")
    with pytest.raises(QgenError, match="reps and layers are one setting"):
        qgen.run_config(ansatz="efficient_su2", reps=2, layers=4)
    with pytest.raises(QgenError, match="input parameters name the inputs of a circuit of your own"):
        qgen.run_config(input_params="x")
