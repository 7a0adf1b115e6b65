"""What qgen relies on in qiskit-machine-learning's private API (``qgen/quantum/qiskit_ml_private.py``).

qiskit-machine-learning 0.9.1 is pinned. Each test here fails, saying which use broke, when a new
version changes one of them; the fix then belongs in that one module.
"""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.circuit import Parameter, ParameterVector, QuantumCircuit
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.gradients import BaseEstimatorGradient, EstimatorGradientResult
from qiskit_machine_learning.gradients.utils import GradientCircuit
from qiskit_machine_learning.neural_networks import EstimatorQNN
from qiskit_machine_learning.utils import circuit_cache_key

from qgen.quantum.gradients import BatchedParamShiftEstimatorGradient, bound_gradient_values
from qgen.quantum.qiskit_ml_private import PerCircuitValidation, forward_circuit

PRIVATE_MODULE = "qgen/quantum/qiskit_ml_private.py"


def _circuit(n_inputs: int = 2, n_weights: int = 3) -> QuantumCircuit:
    x, w = ParameterVector("x", n_inputs), ParameterVector("w", n_weights)
    qc = QuantumCircuit(2)
    qc.ry(x[0], 0)
    qc.ry(x[1], 1)
    qc.rz(w[0], 0)
    qc.cx(0, 1)
    qc.ry(w[1], 1)
    qc.rx(w[2] * x[0], 0)  # an expression: the gradient circuit gets parameters of its own
    return qc


def test_base_run_validates_its_arguments_through_the_hook_qgen_replaces():
    calls = []

    class Probe(BaseEstimatorGradient):
        @staticmethod
        def _validate_arguments(*args):
            calls.append(args)

        def _run(self, circuits, observables, parameter_values, parameters, **options):
            return EstimatorGradientResult(gradients=[np.zeros(len(p)) for p in parameters], metadata=[],
                                           options=options)

    qc = _circuit()
    Probe(StatevectorEstimator()).run([qc], [SparsePauliOp("ZZ")], [np.zeros(qc.num_parameters)]).result()
    assert len(calls) == 1, (
        f"BaseEstimatorGradient.run no longer calls _validate_arguments: {PRIVATE_MODULE}'s "
        "PerCircuitValidation replaces a hook that is not used any more (see its docstring)")
    circuits, observables, values, parameters = calls[0]
    assert list(circuits) == [qc] and len(observables) == len(values) == len(parameters) == 1


def _bad_calls():
    """(circuits, observables, values, parameters) that the base class refuses, one case each."""
    qc, other = _circuit(), _circuit()
    plain = QuantumCircuit(2)
    zz, z3 = SparsePauliOp("ZZ"), SparsePauliOp("ZZZ")
    v = np.zeros(qc.num_parameters)
    stranger = [Parameter("stranger")]
    return {
        "fewer value sets": ([qc, qc], [zz, zz], [v], [qc.parameters] * 2),
        "not parameterised": ([qc, plain], [zz, zz], [v, []], [qc.parameters, plain.parameters]),
        "wrong number of values": ([qc, qc], [zz, zz], [v, v[:-1]], [qc.parameters] * 2),
        "fewer observables": ([qc, qc], [zz], [v, v], [qc.parameters] * 2),
        "observable width": ([qc, qc], [zz, z3], [v, v], [qc.parameters] * 2),
        "fewer parameter lists": ([qc, qc], [zz, zz], [v, v], [qc.parameters]),
        "parameter not in the circuit, second triple": ([qc, qc], [zz, zz], [v, v], [qc.parameters, stranger]),
        "repeated pair, another circuit fails": ([qc, qc, other], [zz] * 3, [v] * 3,
                                                 [qc.parameters, qc.parameters, qc.parameters]),
    }


@pytest.mark.parametrize("case", list(_bad_calls()))
def test_per_circuit_validation_raises_exactly_the_base_class_errors(case):
    args = _bad_calls()[case]
    with pytest.raises(ValueError) as base:
        BaseEstimatorGradient._validate_arguments(*args)
    with pytest.raises(ValueError) as ours:
        PerCircuitValidation._validate_arguments(*args)
    assert str(ours.value) == str(base.value), f"{PRIVATE_MODULE}: PerCircuitValidation differs from the base class"


def test_per_circuit_validation_accepts_what_the_base_class_accepts():
    qc = _circuit()
    zs = [SparsePauliOp("IZ"), SparsePauliOp("ZI")]
    args = ([qc] * 6, zs * 3, [np.zeros(qc.num_parameters)] * 6, [qc.parameters] * 5 + [qc.parameters[:2]])
    BaseEstimatorGradient._validate_arguments(*args)
    PerCircuitValidation._validate_arguments(*args)


def test_the_qnn_forward_sends_its_private_circuit_with_inputs_then_weights():
    qc = _circuit()
    inputs, weights = list(qc.parameters)[3:], list(qc.parameters)[:3]  # sorted by name: w before x
    sent = []

    class Spy(StatevectorEstimator):
        def run(self, pubs, precision=None):
            sent.extend(pub[0] for pub in pubs)
            return super().run(pubs, precision=precision)

    qnn = EstimatorQNN(circuit=qc, estimator=Spy(), observables=[SparsePauliOp("ZZ")], input_params=inputs,
                       weight_params=weights, default_precision=0.0)  # exact: no sampled noise
    circuit = forward_circuit(qnn)
    assert circuit is not None, f"EstimatorQNN has no _circuit any more: see {PRIVATE_MODULE}"
    x, w = np.array([[0.3, -0.7]]), np.array([0.2, 0.5, -1.1])
    forward = qnn.forward(x, w)
    assert sent and all(c is circuit for c in sent), f"EstimatorQNN's forward sends another circuit: {PRIVATE_MODULE}"
    # its parameters, in their own order, take (inputs, weights): what VJPTorchConnector assumes
    assert circuit.num_parameters == qnn.num_inputs + qnn.num_weights
    direct = StatevectorEstimator().run([(circuit, SparsePauliOp("ZZ"), np.concatenate([x[0], w]))]).result()
    np.testing.assert_allclose(forward[0], direct[0].data.evs, atol=1e-12)


def test_the_protected_subclass_interface_the_gradients_use():
    estimator = StatevectorEstimator()
    gradient = BatchedParamShiftEstimatorGradient(estimator)
    assert gradient._estimator is estimator and gradient._pass_manager is None
    qc = _circuit()
    rows = np.random.default_rng(0).uniform(-1, 1, (3, qc.num_parameters))
    g_circuits, g_values, g_params = gradient._preprocess([qc] * 3, list(rows), [qc.parameters] * 3,
                                                          gradient.SUPPORTED_GATES)
    cached = gradient._gradient_circuit_cache[circuit_cache_key(qc)]
    assert isinstance(cached, GradientCircuit) and cached.gradient_circuit is g_circuits[0]
    assert set(qc.parameters) <= set(cached.parameter_map) and len(g_params) == 3
    # bound_gradient_values is the module-private helper _preprocess uses, from public fields
    np.testing.assert_allclose(bound_gradient_values(qc, cached, rows), np.stack(g_values), atol=1e-12)
