"""Exact and batched parameter-shift gradients against Qiskit's stock gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit.circuit import Parameter, ParameterVector, QuantumCircuit
from qiskit.primitives import StatevectorEstimator
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qgen.circuits import AnsatzSpec, QNNCircuit, build_ansatz, entangler_pairs, z_observables
from qgen.quantum import (
    BatchedParamShiftEstimatorGradient,
    ExactEstimatorGradient,
    VectorizedStatevectorEstimator,
)

ATOL = 1e-6
METHODS = ["statevector", "mps"]


def _exact(method: str) -> ExactEstimatorGradient:
    # max_bond: forced MPS on small all-to-all circuits needs large (exact) bonds.
    return ExactEstimatorGradient(VectorizedStatevectorEstimator(method=method, max_bond=1024))


def _qnn_triples(qnn, values: np.ndarray):
    """The flat triples EstimatorQNN's backward sends: observable-major, then batch rows."""
    circuits = [qnn.circuit] * (len(qnn.observables) * len(values))
    observables = [o for o in qnn.observables for _ in range(len(values))]
    return circuits, observables, np.tile(values, (len(qnn.observables), 1))


def _gradients(gradient, circuits, observables, values, parameters=None) -> np.ndarray:
    job = gradient.run(circuits, observables, values, parameters=parameters)
    return np.asarray(job.result().gradients)


def _stock(circuits, observables, values, parameters=None) -> np.ndarray:
    stock = ParamShiftEstimatorGradient(StatevectorEstimator())
    return _gradients(stock, circuits, observables, values, parameters)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("n_qubits", "entanglement"), [(1, "linear"), (3, "ring"), (4, "full")])
def test_exact_gradient_matches_stock_param_shift(n_qubits, entanglement, method):
    rng = np.random.default_rng(n_qubits)
    qnn = build_ansatz(AnsatzSpec(n_qubits, 2, entanglement))
    triples = _qnn_triples(qnn, rng.uniform(-np.pi, np.pi, (3, qnn.circuit.num_parameters)))

    exact = _gradients(_exact(method), *triples)

    np.testing.assert_allclose(exact, _stock(*triples), atol=ATOL)
    assert np.abs(exact).max() > 1e-2  # not trivially zero


@pytest.mark.parametrize("method", METHODS)
def test_exact_gradient_parameter_subset_and_unpaired_triples(method):
    rng = np.random.default_rng(5)
    qnn = build_ansatz(AnsatzSpec(3, 2, "linear"))
    qc = qnn.circuit
    subset = list(qnn.weight_params[2:7])
    values = rng.uniform(-2, 2, (4, qc.num_parameters))
    # Distinct rows paired with distinct (incl. non-diagonal) observables: not a full product.
    observables = [qnn.observables[0], SparsePauliOp("XYZ"), qnn.observables[2],
                   SparsePauliOp(["XXI", "IZY"], [0.5, -1.0])]
    triples = ([qc] * 4, observables, values, [subset] * 4)

    exact = _gradients(_exact(method), *triples)

    assert exact.shape == (4, len(subset))
    np.testing.assert_allclose(exact, _stock(*triples), atol=ATOL)


def _expression_circuit() -> QuantumCircuit:
    a, b, c = Parameter("a"), Parameter("b"), Parameter("c")
    qc = QuantumCircuit(3, global_phase=a)
    qc.ry(a, 0)
    qc.h(1)
    qc.rx(2 * b + 0.1, 2)
    qc.cx(0, 1)
    qc.u(a - c, b, 0.3, 2)
    qc.rzz(c, 1, 2)
    qc.cp(a * b, 0, 2)  # nonlinear expression: bound row by row
    qc.sx(0)
    qc.ry(c, 1)
    qc.cz(0, 1)
    qc.rz(b + np.pi / 2, 0)
    qc.rx(a, 1)
    return qc


@pytest.mark.parametrize("method", METHODS)
def test_exact_gradient_matches_central_finite_differences(method):
    rng = np.random.default_rng(11)
    qc = _expression_circuit()
    observables = [SparsePauliOp(["ZZI", "XIY"], [0.7, 0.4]), SparsePauliOp("IIZ")]
    values = rng.uniform(-2, 2, (3, qc.num_parameters))
    circuits = [qc] * 6
    obs = [o for o in observables for _ in range(3)]
    rows = np.tile(values, (2, 1))

    exact = _gradients(_exact(method), circuits, obs, rows)

    estimator = VectorizedStatevectorEstimator(method="statevector")
    eps = 1e-5
    for p in range(qc.num_parameters):
        shift = np.zeros(qc.num_parameters)
        shift[p] = eps
        plus = [estimator.run([(qc, o, r + shift)]).result()[0].data.evs for o, r in zip(obs, rows)]
        minus = [estimator.run([(qc, o, r - shift)]).result()[0].data.evs
                 for o, r in zip(obs, rows)]
        np.testing.assert_allclose(exact[:, p], (np.array(plus) - np.array(minus)) / (2 * eps),
                                   atol=1e-6)


def test_batched_param_shift_matches_stock_in_one_job():
    rng = np.random.default_rng(2)
    qnn = build_ansatz(AnsatzSpec(3, 2, "ring"))
    triples = _qnn_triples(qnn, rng.uniform(-np.pi, np.pi, (5, qnn.circuit.num_parameters)))
    submitted = []
    batched = BatchedParamShiftEstimatorGradient(VectorizedStatevectorEstimator(),
                                                 on_job=submitted.append)

    grads = _gradients(batched, *triples)

    np.testing.assert_allclose(grads, _stock(*triples), atol=ATOL)
    assert batched.jobs_submitted == 1
    assert len(submitted) == 1
    (pub_result,) = submitted[0].result()  # one PUB: (obs, rows, shifts) broadcast
    assert pub_result.data.evs.shape == (3, 5, 2 * qnn.circuit.num_parameters)


def test_batched_param_shift_splits_at_the_binding_budget():
    rng = np.random.default_rng(3)
    qnn = build_ansatz(AnsatzSpec(2, 1))
    triples = _qnn_triples(qnn, rng.uniform(-np.pi, np.pi, (6, qnn.circuit.num_parameters)))
    total = 2 * 6 * 2 * qnn.circuit.num_parameters  # observables x rows x shifts
    budget = total // 3
    batched = BatchedParamShiftEstimatorGradient(VectorizedStatevectorEstimator(),
                                                 max_bindings_per_job=budget)

    grads = _gradients(batched, *triples)

    np.testing.assert_allclose(grads, _stock(*triples), atol=ATOL)
    assert batched.jobs_submitted == 3


def test_batched_param_shift_passes_precision_through():
    qnn = build_ansatz(AnsatzSpec(2, 1))
    triples = _qnn_triples(qnn, np.zeros((2, qnn.circuit.num_parameters)))
    seen = []

    class RecordingEstimator(VectorizedStatevectorEstimator):
        def run(self, pubs, *, precision=None):
            seen.append(precision)
            return super().run(pubs, precision=precision)

    _gradients(BatchedParamShiftEstimatorGradient(RecordingEstimator(), precision=0.0), *triples)
    _gradients(BatchedParamShiftEstimatorGradient(RecordingEstimator(), precision=0.25), *triples)
    assert seen == [0.0, 0.25]


def test_batched_param_shift_on_isa_circuit_with_aer():
    rng = np.random.default_rng(4)
    qnn = build_ansatz(AnsatzSpec(3, 2, "ring"))
    backend = GenericBackendV2(num_qubits=5, seed=7)
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(qnn.circuit)
    assert "rz" in isa.count_ops() and "ry" not in isa.count_ops()
    isa_obs = [o.apply_layout(isa.layout) for o in qnn.observables]
    values = rng.uniform(-np.pi, np.pi, (4, qnn.circuit.num_parameters))
    assert [p.name for p in isa.parameters] == [p.name for p in qnn.circuit.parameters]
    batched = BatchedParamShiftEstimatorGradient(AerEstimatorV2(), precision=0.0)

    isa_grads = _gradients(batched, [isa] * 12, [o for o in isa_obs for _ in range(4)],
                           np.tile(values, (3, 1)))

    ideal = _gradients(ExactEstimatorGradient(), *_qnn_triples(qnn, values))
    np.testing.assert_allclose(isa_grads, ideal, atol=ATOL)
    assert batched.jobs_submitted == 1


def _qnn(qnn_circuit, estimator, gradient) -> EstimatorQNN:
    return EstimatorQNN(
        circuit=qnn_circuit.circuit,
        estimator=estimator,
        observables=list(qnn_circuit.observables),
        input_params=list(qnn_circuit.input_params),
        weight_params=list(qnn_circuit.weight_params),
        gradient=gradient,
        input_gradients=True,
        default_precision=0.0,
    )


def _forward_backward(qnn: EstimatorQNN, x: np.ndarray, weights: np.ndarray):
    model = TorchConnector(qnn, initial_weights=torch.tensor(weights))
    inputs = torch.tensor(x, requires_grad=True)
    out = model(inputs)
    # A non-uniform upstream gradient so every Jacobian entry matters.
    (out * torch.arange(1, out.shape[1] + 1)).sum().backward()
    return out.detach().numpy(), inputs.grad.numpy(), model.weight.grad.numpy()


@pytest.mark.parametrize("path", ["exact", "exact-mps", "batched"])
def test_torch_connector_matches_stock_path(path):
    rng = np.random.default_rng(8)
    spec = build_ansatz(AnsatzSpec(3, 2, "linear"))
    x = rng.uniform(-1, 1, (4, 3))
    weights = rng.uniform(-1, 1, len(spec.weight_params))
    stock = _qnn(spec, StatevectorEstimator(), ParamShiftEstimatorGradient(StatevectorEstimator()))
    estimator = VectorizedStatevectorEstimator(method="mps" if path == "exact-mps" else
                                               "statevector")
    gradient = (ExactEstimatorGradient(estimator) if path.startswith("exact")
                else BatchedParamShiftEstimatorGradient(estimator))
    fast = _qnn(spec, estimator, gradient)

    expected = _forward_backward(stock, x, weights)
    actual = _forward_backward(fast, x, weights)

    # TorchConnector holds weights in float32, so outputs agree to float32 precision.
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=1e-5)
    assert np.abs(actual[1]).max() > 1e-2 and np.abs(actual[2]).max() > 1e-2


def trap_ansatz(spec: AnsatzSpec) -> QNNCircuit:
    """RY encoding + (RZ + CNOT) layers: every weight has zero gradient for Z readouts (the trap that
    qgen's RZ·RY layers avoid, ``qgen.circuits.layers``), to show that the gradient check can fail."""
    n = spec.n_qubits
    x = ParameterVector("x", n)
    w = ParameterVector("w", n * spec.layers)
    qc = QuantumCircuit(n, name=f"trap_q{n}_l{spec.layers}")
    for q in range(n):
        qc.ry(x[q], q)
    k = 0
    for _ in range(spec.layers):
        for q in range(n):
            qc.rz(w[k], q)
            k += 1
        for c, t in entangler_pairs(n, spec.entanglement):
            qc.cx(c, t)
    return QNNCircuit(qc, tuple(x), tuple(w), z_observables(n), qc.name)


@pytest.mark.parametrize("entanglement", ["linear", "ring", "full"])
def test_every_ansatz_weight_has_gradient_and_trap_weights_have_none(entanglement):
    rng = np.random.default_rng(9)
    spec = AnsatzSpec(4, 3, entanglement)
    for builder, expect_nonzero in ((build_ansatz, True), (trap_ansatz, False)):
        circuit = builder(spec)
        estimator = VectorizedStatevectorEstimator()
        qnn = _qnn(circuit, estimator, ExactEstimatorGradient(estimator))
        x = rng.uniform(-np.pi, np.pi, (8, 4))
        w = rng.uniform(-np.pi, np.pi, len(circuit.weight_params))
        _, weight_grads = qnn.backward(x, w)
        per_weight = np.abs(weight_grads).max(axis=(0, 1))
        if expect_nonzero:
            assert per_weight.min() > 1e-3, per_weight
        else:
            assert per_weight.max() < 1e-10, per_weight


def test_mps_jacobian_equals_adjoint_statevector_jacobian_at_twelve_qubits():
    rng = np.random.default_rng(12)
    qnn = build_ansatz(AnsatzSpec(12, 3, "linear"))
    triples = _qnn_triples(qnn, rng.uniform(-np.pi, np.pi, (6, qnn.circuit.num_parameters)))

    mps = _gradients(_exact("mps"), *triples)
    adjoint = _gradients(_exact("statevector"), *triples)

    assert mps.shape == (12 * 6, qnn.circuit.num_parameters)
    np.testing.assert_allclose(mps, adjoint, atol=1e-10)
    assert np.abs(mps).max() > 1e-2


def test_gradient_validation_errors_are_the_base_class_errors():
    qnn = build_ansatz(AnsatzSpec(2, 1))
    qc = qnn.circuit
    values = np.zeros((1, qc.num_parameters))
    gradient = _exact("statevector")
    with pytest.raises(ValueError, match="number of values"):
        gradient.run([qc], [qnn.observables[0]], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="number of qubits"):
        gradient.run([qc], [SparsePauliOp("ZZZ")], values)
    with pytest.raises(ValueError, match="not present"):
        gradient.run([qc], [qnn.observables[0]], values, parameters=[[Parameter("other")]])
    with pytest.raises(ValueError, match="not parameterised"):
        gradient.run([QuantumCircuit(2)], [qnn.observables[0]], [[]])
