"""Vector-Jacobian products of the exact gradient and the VJP TorchConnector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qgen.backends.spec import BackendSpec
from qgen.circuits import AnsatzSpec, build_ansatz
from qgen.models.build import build_model
from qgen.models.config import ModelConfig
from qgen.quantum import (
    BatchedParamShiftEstimatorGradient,
    ExactEstimatorGradient,
    VectorizedStatevectorEstimator,
)
from qgen.quantum import connector as connector_module
from qgen.quantum.connector import JACOBIAN, VJP, VJPTorchConnector


def _exact(method: str) -> ExactEstimatorGradient:
    return ExactEstimatorGradient(VectorizedStatevectorEstimator(method=method, max_bond=1024))


def _jacobian_vjp(gradient, circuit, observables, values, cotangents) -> np.ndarray:
    """The Jacobian path (``run``), contracted with the cotangents afterwards."""
    rows, k_obs = cotangents.shape
    circuits = [circuit] * (rows * k_obs)
    obs = [o for o in observables for _ in range(rows)]
    jac = np.asarray(gradient.run(circuits, obs, np.tile(values, (k_obs, 1))).result().gradients)
    return np.einsum("kr,krp->rp", cotangents.T, jac.reshape(k_obs, rows, -1))


def _case(n, entanglement, rows=4, seed=0):
    rng = np.random.default_rng(seed)
    qnn = build_ansatz(AnsatzSpec(n, 2, entanglement))
    values = rng.uniform(-np.pi, np.pi, (rows, qnn.circuit.num_parameters))
    cotangents = rng.normal(size=(rows, len(qnn.observables)))
    return qnn, values, cotangents


WIDTHS = [(1, "linear"), (3, "linear"), (5, "linear"), (3, "ring"), (5, "ring"), (7, "ring"),
          (4, "full"), (6, "full")]


@pytest.mark.parametrize(("n", "entanglement", "method"),
                         [(n, e, "statevector") for n, e in WIDTHS]
                         # a forced MPS of a 6-qubit all-to-all circuit needs bond 2^18
                         + [(n, e, "mps") for n, e in WIDTHS if (n, e) != (6, "full")])
def test_vjp_equals_contracted_jacobian(n, entanglement, method):
    qnn, values, cotangents = _case(n, entanglement, seed=n)
    gradient = _exact(method)

    vjp = gradient.vjp(qnn.circuit, qnn.observables, values, cotangents)

    expected = _jacobian_vjp(gradient, qnn.circuit, qnn.observables, values, cotangents)
    assert vjp.shape == (len(values), qnn.circuit.num_parameters)
    np.testing.assert_allclose(vjp, expected, atol=1e-10)
    assert np.abs(vjp).max() > 1e-2


@pytest.mark.parametrize(("n", "entanglement"), [(3, "linear"), (4, "ring"), (4, "full")])
def test_vjp_matches_statevector_estimator_param_shift(n, entanglement):
    qnn, values, cotangents = _case(n, entanglement, rows=3, seed=10 + n)
    stock = ParamShiftEstimatorGradient(StatevectorEstimator())

    expected = _jacobian_vjp(stock, qnn.circuit, qnn.observables, values, cotangents)

    for method in ("statevector", "mps"):
        np.testing.assert_allclose(
            _exact(method).vjp(qnn.circuit, qnn.observables, values, cotangents), expected,
            atol=1e-10)


def _expression_circuit() -> QuantumCircuit:
    """Non-linear parameter expressions, X/Y readouts, diagonal two-qubit gates."""
    a, b, c = Parameter("a"), Parameter("b"), Parameter("c")
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.ry(a * b, 1)
    qc.cx(0, 1)
    qc.rzz(2 * c, 1, 2)
    qc.rx(a, 2)
    qc.rz(b + np.pi / 2, 0)
    qc.cx(1, 2)
    qc.ry(c * c, 0)
    return qc


@pytest.mark.parametrize("method", ["statevector", "mps"])
def test_vjp_matches_central_finite_differences(method):
    rng = np.random.default_rng(11)
    qc = _expression_circuit()
    observables = [SparsePauliOp(["ZZI", "XIY"], [0.7, 0.4]), SparsePauliOp("IIZ"),
                   SparsePauliOp(["XXI", "IZY"], [0.3, -0.5])]
    values = rng.uniform(-2, 2, (3, qc.num_parameters))
    cotangents = rng.normal(size=(3, len(observables)))

    vjp = _exact(method).vjp(qc, observables, values, cotangents)

    estimator = StatevectorEstimator()

    def weighted(rows):
        evs = np.array([[estimator.run([(qc, o, r)]).result()[0].data.evs for o in observables]
                        for r in rows])
        return np.sum(evs * cotangents, axis=1)

    eps = 1e-5
    for p in range(qc.num_parameters):
        shift = np.zeros(qc.num_parameters)
        shift[p] = eps
        np.testing.assert_allclose(vjp[:, p], (weighted(values + shift) - weighted(values - shift))
                                   / (2 * eps), atol=1e-7)
    np.testing.assert_allclose(
        vjp, _jacobian_vjp(_exact(method), qc, observables, values, cotangents), atol=1e-10)


# ---------------------------------------------------------------------------------------------
# The connector
# ---------------------------------------------------------------------------------------------


def _qnn(spec: AnsatzSpec, gradient, input_gradients: bool = True) -> EstimatorQNN:
    circuit = build_ansatz(spec)
    return EstimatorQNN(circuit=circuit.circuit, estimator=gradient._estimator,
                        observables=list(circuit.observables),
                        input_params=list(circuit.input_params),
                        weight_params=list(circuit.weight_params), gradient=gradient,
                        input_gradients=input_gradients, default_precision=0.0)


def _forward_backward(connector_type, qnn, x, weights, counter):
    model = connector_type(qnn, initial_weights=torch.tensor(weights))
    inputs = torch.tensor(x, requires_grad=True)
    out = model(inputs)
    upstream = torch.arange(1, out.shape[-1] + 1, dtype=out.dtype)
    (out * upstream).sum().backward()
    grad = None if inputs.grad is None else inputs.grad.numpy()
    return model, (out.detach().numpy(), grad, model.weight.grad.numpy()), counter["backward"]


def _counting(qnn) -> dict:
    """Counts calls of the QNN's Jacobian backward (what stock TorchConnector uses)."""
    counter = {"backward": 0}
    original = qnn.backward

    def backward(*args, **kwargs):
        counter["backward"] += 1
        return original(*args, **kwargs)

    qnn.backward = backward
    return counter


@pytest.mark.parametrize("method", ["statevector", "mps"])
@pytest.mark.parametrize("entanglement", ["linear", "ring", "full"])
def test_connector_uses_the_vjp_for_the_exact_gradient(entanglement, method):
    rng = np.random.default_rng(3)
    spec = AnsatzSpec(4, 2, entanglement)
    x = rng.uniform(-1, 1, (5, 4))
    weights = rng.uniform(-1, 1, spec.num_weights)
    qnn = _qnn(spec, _exact(method))
    counter = _counting(qnn)

    stock_model, expected, jacobian_calls = _forward_backward(TorchConnector, qnn, x, weights,
                                                              counter)
    model, actual, calls = _forward_backward(VJPTorchConnector, qnn, x, weights, counter)

    assert jacobian_calls == 1 and calls == 1, "the VJP path must not ask for the Jacobian"
    assert model.backward_path == VJP
    for a, e in zip(actual, expected):  # both return float32 gradients, as stock does
        np.testing.assert_allclose(a, e, atol=1e-5)
    assert np.abs(actual[1]).max() > 1e-2 and np.abs(actual[2]).max() > 1e-2


def test_connector_falls_back_to_the_jacobian_for_other_gradients():
    rng = np.random.default_rng(4)
    spec = AnsatzSpec(3, 2, "ring")
    x = rng.uniform(-1, 1, (3, 3))
    weights = rng.uniform(-1, 1, spec.num_weights)
    estimator = VectorizedStatevectorEstimator()
    qnn = _qnn(spec, BatchedParamShiftEstimatorGradient(estimator))
    counter = _counting(qnn)

    model, actual, calls = _forward_backward(VJPTorchConnector, qnn, x, weights, counter)

    assert model.backward_path == JACOBIAN and calls == 1
    reference = _qnn(spec, ExactEstimatorGradient(estimator))
    _, expected, _ = _forward_backward(TorchConnector, reference, x, weights, _counting(reference))
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=1e-5)


def test_connector_follows_stock_shapes_and_flags():
    rng = np.random.default_rng(5)
    spec = AnsatzSpec(3, 1, "linear")
    weights = rng.uniform(-1, 1, spec.num_weights)
    for input_gradients in (True, False):
        # (stock TorchConnector's backward fails on inputs of more than 2 dimensions)
        for x in (rng.uniform(-1, 1, 3), rng.uniform(-1, 1, (2, 3))):
            results = []
            for connector in (TorchConnector, VJPTorchConnector):
                qnn = _qnn(spec, _exact("statevector"), input_gradients)
                results.append(_forward_backward(connector, qnn, x, weights, _counting(qnn))[1])
            (out_s, in_s, w_s), (out_v, in_v, w_v) = results
            assert out_v.shape == out_s.shape
            np.testing.assert_allclose(out_v, out_s, atol=1e-6)
            assert (in_v is None) == (in_s is None)
            if in_s is not None:
                assert in_v.shape == in_s.shape
                np.testing.assert_allclose(in_v, in_s, atol=1e-5)
            np.testing.assert_allclose(w_v, w_s, atol=1e-5)


SMALL = dict(widths=(16, 16, 16), time_dim=32, qubits=4, layers=2)
STATEVECTOR = BackendSpec(name="statevector", kind="statevector")


def test_model_checkpoints_keep_the_stock_connector_keys(monkeypatch):
    cfg = ModelConfig(kind="quantum", **SMALL)
    model = build_model(cfg, 1, seed=0, backend=STATEVECTOR)
    assert isinstance(model.gate.middle.qnn, VJPTorchConnector)
    assert model.gate.middle.qnn.backward_path == VJP
    # quantum_connector imports the class when called: patch it back to stock TorchConnector
    monkeypatch.setattr(connector_module, "VJPTorchConnector", TorchConnector)
    old = build_model(cfg, 1, seed=1, backend=STATEVECTOR)  # what runs before this change built
    assert type(old.gate.middle.qnn) is TorchConnector

    assert list(model.state_dict()) == list(old.state_dict())
    assert "gate.middle.qnn.weight" in model.state_dict()
    model.load_state_dict(old.state_dict())  # strict: an old checkpoint loads as is
    assert torch.equal(model.gate.middle.qnn.weight, old.gate.middle.qnn.weight)
    old.load_state_dict(build_model(cfg, 1, seed=2, backend=STATEVECTOR).state_dict())


def _shared_weight_circuit(n: int) -> QuantumCircuit:
    """Inputs per row, weights shared by the batch; rx/ry/u layers, rz/rzz diagonals (rzz across
    the halves of the qubits, which the split phase patterns keep dense), CNOT permutations."""
    inputs = [Parameter(f"x{q}") for q in range(n)]
    weights = [Parameter(f"w{k}") for k in range(3 * n)]
    qc = QuantumCircuit(n)
    for q in range(n):
        qc.ry(inputs[q], q)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    for q in range(n):
        qc.rz(weights[q], q)
    qc.rzz(weights[n], 0, n - 1)
    for q in range(n):
        qc.rx(weights[n + 1 + q], q) if q % 2 else qc.u(weights[q], weights[n + q], 0.3, q)
    qc.cx(n - 1, 0)
    for q in range(n):
        qc.ry(weights[2 * n + q] * 2, q)
    qc.cx(0, 1)
    return qc


@pytest.mark.parametrize("chunk", [None, 3])
def test_statevector_vjp_fast_paths_equal_the_jacobian(chunk):
    from qgen.quantum.adjoint import adjoint_vjp
    n, rows = 9, 7
    rng = np.random.default_rng(5)
    qc = _shared_weight_circuit(n)
    # inputs differ per row, weights are shared by every row (prepared once per call)
    values = np.stack([rng.uniform(-np.pi, np.pi, rows) if p.name.startswith("x")
                       else np.full(rows, rng.uniform(-np.pi, np.pi)) for p in qc.parameters], 1)
    gradient = _exact("statevector")
    for observables in ([SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], n) for q in range(n)]
                        + [SparsePauliOp.from_sparse_list([("ZZ", [0, n - 1], 0.5)], n)],
                        [SparsePauliOp.from_sparse_list([("X", [2], 1.0), ("ZY", [0, 4], 0.3)],
                                                        n)]):
        cotangents = rng.normal(size=(rows, len(observables)))
        expected = _jacobian_vjp(gradient, qc, observables, values, cotangents)
        if chunk is None:
            vjp = gradient.vjp(qc, observables, values, cotangents)
        else:  # several cache chunks, per-chunk preparation of the row-dependent ops
            estimator = gradient._estimator
            compiled = estimator.compiled_circuit(qc)
            dense = [estimator.compiled_observable(o).dense() for o in observables]
            angle_grads = adjoint_vjp(compiled, compiled.angles.values(values), dense, cotangents,
                                      rows_per_chunk=chunk)
            vjp = angle_grads @ compiled.angles.jacobian(values).T
        np.testing.assert_allclose(vjp, expected, atol=1e-10)
        assert np.abs(vjp).max() > 1e-2


@pytest.mark.parametrize("n", [1, 2, 5])
def test_chain_vjp_of_mixed_single_site_readouts_equals_the_jacobian(n):
    """X, Y, Z and identity terms on single sites take the chain's local readout path (reduced
    density matrices and one bond-2 sweep per side); the Jacobian path keeps the per-term
    sweeps. With one site, identity terms were once counted from both sides."""
    rng = np.random.default_rng(10 + n)
    qnn = build_ansatz(AnsatzSpec(n, 2, "linear"))
    labels = [*dict.fromkeys(["I" * n, "Z" + "I" * (n - 1), "I" * (n - 1) + "X", "Y" + "I" * (n - 1)])]
    observables = [SparsePauliOp(labels[:2], [0.7, -0.4]), *(SparsePauliOp(lab) for lab in labels)]
    values = rng.uniform(-np.pi, np.pi, (3, qnn.circuit.num_parameters))
    cotangents = rng.normal(size=(3, len(observables)))
    gradient = _exact("mps")

    vjp = gradient.vjp(qnn.circuit, observables, values, cotangents)

    expected = _jacobian_vjp(gradient, qnn.circuit, observables, values, cotangents)
    np.testing.assert_allclose(vjp, expected, atol=1e-10)
    assert np.abs(vjp).max() > 1e-2
    reference = StatevectorEstimator().run([(qnn.circuit, observables, values[i])
                                            for i in range(3)]).result()
    forward = VectorizedStatevectorEstimator(method="mps").run(
        [(qnn.circuit, [[o] for o in observables], values)]).result()[0].data.evs  # (O, R)
    np.testing.assert_allclose(forward.T, [r.data.evs for r in reference], atol=1e-12)


def test_connector_backward_reuses_the_forward_simulation(monkeypatch):
    """The VJP right after a forward at the same rows reuses that simulation (one simulation per
    training step, not two), and gives exactly what simulating again gives."""
    from qgen.quantum import chain_simulate

    runs = {"count": 0}
    original = chain_simulate.run_chain

    def counting(*args, **kwargs):
        runs["count"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(chain_simulate, "run_chain", counting)
    rng = np.random.default_rng(5)
    spec = AnsatzSpec(10, 3, "linear")
    x = rng.uniform(-1, 1, (6, 10))
    weights = rng.uniform(-1, 1, spec.num_weights)
    qnn = _qnn(spec, _exact("mps"))

    _, reused, _ = _forward_backward(VJPTorchConnector, qnn, x, weights, _counting(qnn))
    assert runs["count"] == 1

    qnn.gradient._estimator.recent_chain_runs = chain_simulate.RecentRuns(size=0)  # keeps nothing
    _, fresh, _ = _forward_backward(VJPTorchConnector, qnn, x, weights, _counting(qnn))
    assert runs["count"] == 3
    for a, b in zip(reused, fresh):
        np.testing.assert_array_equal(a, b)
