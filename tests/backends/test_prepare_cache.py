"""``QuantumBackend.prepare`` caches by what defines the prepared circuit, never by its name: a second
model on the same backend object builds and is right, and other observables under the same name get
their own prepared circuit (several models with different circuits share one backend object)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp

from qgen.backends.registry import REPO_BACKENDS, load_backend
from qgen.circuits import AnsatzSpec, QNNCircuit, build_ansatz

RNG = np.random.default_rng(11)


def exact_values(qc: QNNCircuit, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(rows, readouts) from qiskit's StatevectorEstimator on the logical circuit."""
    order = {p: i for i, p in enumerate([*qc.input_params, *qc.weight_params])}
    rows = np.concatenate([x, np.broadcast_to(w, (len(x), len(w)))], axis=1)
    values = rows[:, [order[p] for p in qc.circuit.parameters]]
    result = StatevectorEstimator().run([(qc.circuit, obs, values) for obs in qc.observables]).result()
    return np.stack([r.data.evs for r in result], axis=1)


def forward(backend, qc: QNNCircuit) -> tuple[np.ndarray, np.ndarray]:
    qnn = backend.make_qnn(qc)
    x, w = RNG.uniform(-1, 1, (3, qnn.num_inputs)), RNG.uniform(-1, 1, qnn.num_weights)
    return qnn.forward(x, w), exact_values(qc, x, w)


# statevector computes with complex64 amplitudes (~1e-7 here): a wrong cached circuit is off by O(0.1)
@pytest.mark.parametrize("name, atol", [("statevector_double", 1e-10), ("statevector", 1e-6), ("aer_simulator", 1e-10)])
def test_a_second_model_on_the_same_backend_object_builds_and_is_exact(name: str, atol: float) -> None:
    backend = load_backend(name, REPO_BACKENDS)
    spec = AnsatzSpec(3, 1, "linear")
    first, second = build_ansatz(spec), build_ansatz(spec)  # same name, new Parameter objects
    assert first.name == second.name
    for qc in (first, second):
        got, want = forward(backend, qc)
        np.testing.assert_allclose(got, want, atol=atol)
    assert backend.prepare(first) is not backend.prepare(second)
    assert backend.prepare(first) is backend.prepare(first)  # still cached: transpiled once


def test_same_name_with_other_observables_gets_its_own_prepared_circuit() -> None:
    backend = load_backend("aer_simulator", REPO_BACKENDS)
    qc = build_ansatz(AnsatzSpec(3, 1, "linear"))
    xx = tuple(SparsePauliOp.from_sparse_list([("XX", [q, q + 1], 1.0)], num_qubits=3) for q in range(2))
    other = QNNCircuit(qc.circuit, qc.input_params, qc.weight_params, xx, qc.name)
    first, second = backend.prepare(qc), backend.prepare(other)
    assert second is not first and len(second.observables) == 2
    got, want = forward(backend, other)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_same_name_and_parameters_with_other_gates_gets_its_own_prepared_circuit() -> None:
    """A 'separable' variant (no entangling gates) of a circuit under the same name and parameters."""
    backend = load_backend("statevector_double", REPO_BACKENDS)
    x, w = ParameterVector("x", 2), ParameterVector("w", 2)

    def circuit(entangled: bool) -> QNNCircuit:
        qc = QuantumCircuit(2)
        qc.ry(x[0], 0)
        qc.ry(x[1], 1)
        if entangled:
            qc.cx(0, 1)
        qc.ry(w[0], 0)
        qc.ry(w[1], 1)
        z = tuple(SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], num_qubits=2) for q in range(2))
        return QNNCircuit(qc, tuple(x), tuple(w), z, "same")

    for entangled in (True, False):
        got, want = forward(backend, circuit(entangled))
        np.testing.assert_allclose(got, want, atol=1e-10)


def test_the_journal_digest_of_a_freed_circuit_is_never_given_to_a_new_one() -> None:
    """id() of a freed circuit can be reused: the digest cache must not hand its digest on."""
    from qgen.backends.journaled import JournaledEstimator
    from qgen.backends.spec import BackendSpec

    journaled = JournaledEstimator(None, BackendSpec(name="hw", kind="ibm", device="ibm_fez", shots=16))
    digests = {}
    for gates in range(1, 7):
        qc = QuantumCircuit(1)
        for _ in range(gates):
            qc.x(0)
        digests[gates] = journaled._digest(qc)
        del qc
        gc.collect()
    assert len(set(digests.values())) == len(digests)
