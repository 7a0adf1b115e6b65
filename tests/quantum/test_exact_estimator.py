"""VectorizedStatevectorEstimator against Qiskit's reference StatevectorEstimator."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp

from qgen.circuits import AnsatzSpec, build_ansatz
from qgen.quantum import UnsupportedOperationError, VectorizedStatevectorEstimator
from qgen.quantum.chain import ChainCircuit
from qgen.quantum.exact_estimator import simulation_method

ATOL = 1e-6
METHODS = ["statevector", "mps"]


def _estimator(method: str, **kwargs) -> VectorizedStatevectorEstimator:
    # Forced MPS on small all-to-all circuits: uncompressed bonds get large (4^gates across a
    # cut) but stay exact; allow them so every test circuit runs on both methods.
    return VectorizedStatevectorEstimator(method=method, max_bond=1 << 10, **kwargs)


def _evs(estimator, pub) -> np.ndarray:
    return np.asarray(estimator.run([pub]).result()[0].data.evs)


def _random_pauli_sum(n: int, rng: np.random.Generator, terms: int = 3) -> SparsePauliOp:
    labels = ["".join(rng.choice(list("IXYZ"), size=n)) for _ in range(terms)]
    return SparsePauliOp(labels, rng.uniform(-1, 1, size=terms)).simplify()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_qubits", [1, 2, 4, 6])
@pytest.mark.parametrize("entanglement", ["linear", "ring", "full"])
def test_library_circuits_match_reference_with_broadcasting(n_qubits, entanglement, method):
    rng = np.random.default_rng(n_qubits * 7 + len(entanglement))
    qnn = build_ansatz(AnsatzSpec(n_qubits, 1 + n_qubits % 3, entanglement))
    values = rng.uniform(-np.pi, np.pi, size=(3, 2, qnn.circuit.num_parameters))
    observables = [qnn.observables[-1], _random_pauli_sum(n_qubits, rng)]  # shape (2,)
    pub = (qnn.circuit, observables, values)

    expected = _evs(StatevectorEstimator(), pub)
    actual = _evs(_estimator(method), pub)

    assert actual.shape == expected.shape == (3, 2)
    np.testing.assert_allclose(actual, expected, atol=ATOL)


def test_broadcast_shapes_and_result_fields():
    rng = np.random.default_rng(1)
    qnn = build_ansatz(AnsatzSpec(3, 2, "ring"))
    values = rng.uniform(-2, 2, size=(4, 1, qnn.circuit.num_parameters))
    observables = [list(qnn.observables)]  # shape (1, 3)
    pub = (qnn.circuit, observables, values)

    result = VectorizedStatevectorEstimator().run([pub, (qnn.circuit, qnn.observables[0],
                                                         values[0, 0])]).result()

    assert result[0].data.evs.shape == (4, 3)
    assert result[1].data.evs.shape == ()
    np.testing.assert_array_equal(result[0].data.stds, np.zeros((4, 3)))
    assert result[0].metadata["target_precision"] == 0.0
    np.testing.assert_allclose(result[0].data.evs, _evs(StatevectorEstimator(), pub), atol=ATOL)
    np.testing.assert_allclose(result[1].data.evs, result[0].data.evs[0, 0], atol=ATOL)


def _random_gate_circuit(n: int, depth: int, rng: np.random.Generator,
                         max_two_qubit: int | None = None) -> QuantumCircuit:
    """Every supported gate, bound-parameter expressions and a global phase.

    ``max_two_qubit`` bounds the two-qubit gates (each multiplies MPS bonds by its rank).
    """
    a, b, c = Parameter("a"), Parameter("b"), Parameter("c")
    angles = [a, b, c, 2 * a + 0.3, a - b, b * c, 0.7]
    one_fixed = ["h", "x", "y", "z", "s", "sdg", "sx", "sxdg", "t", "tdg"]
    one_param = ["rx", "ry", "rz", "p"]
    qc = QuantumCircuit(n, global_phase=a / 2)
    two_qubit = 0
    for _ in range(depth):
        kind = rng.integers(5 if n > 1 else 3)
        if kind >= 3:
            two_qubit += 1
            if max_two_qubit is not None and two_qubit > max_two_qubit:
                kind = 1
        q = [int(x) for x in rng.permutation(n)]
        angle = angles[rng.integers(len(angles))]
        if kind == 0:
            getattr(qc, one_fixed[rng.integers(len(one_fixed))])(q[0])
        elif kind == 1:
            getattr(qc, one_param[rng.integers(len(one_param))])(angle, q[0])
        elif kind == 2:
            qc.u(angle, angles[rng.integers(len(angles))], 0.4, q[0])
        elif kind == 3:
            name = ["cx", "cz", "swap"][rng.integers(3)]
            getattr(qc, name)(q[0], q[1])
        else:
            name = ["rzz", "cp", "crz"][rng.integers(3)]
            getattr(qc, name)(angle, q[0], q[1])
        if rng.random() < 0.1:
            qc.barrier()
    return qc


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(6))
def test_random_circuits_with_other_gates_match_reference(seed, method):
    rng = np.random.default_rng(100 + seed)
    n = 1 + seed % 4
    qc = _random_gate_circuit(n, 25, rng, max_two_qubit=5 if method == "mps" else None)
    values = rng.uniform(-np.pi, np.pi, size=(5, qc.num_parameters))
    observables = [[_random_pauli_sum(n, rng)], [_random_pauli_sum(n, rng, terms=1)]]
    pub = (qc, observables, values)  # (2, 1) x (5,) -> (2, 5)

    expected = _evs(StatevectorEstimator(), pub)
    np.testing.assert_allclose(_evs(_estimator(method), pub), expected, atol=ATOL)
    np.testing.assert_allclose(_evs(_estimator(method, dtype=np.complex64), pub), expected,
                               atol=2e-5)


def test_unbound_free_circuit_and_ccx():
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.h(1)
    qc.ccx(0, 1, 2)
    pub = (qc, [SparsePauliOp("ZII"), SparsePauliOp("XXI")])
    np.testing.assert_allclose(_evs(VectorizedStatevectorEstimator(), pub),
                               _evs(StatevectorEstimator(), pub), atol=ATOL)


@pytest.mark.parametrize("build", ["measure", "reset", "ecr"])
def test_unsupported_operation_raises_with_its_name(build):
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    if build == "measure":
        qc.measure(0, 0)
    elif build == "reset":
        qc.reset(1)
    else:
        qc.ecr(0, 1)
    with pytest.raises(UnsupportedOperationError, match=build):
        VectorizedStatevectorEstimator().run([(qc, SparsePauliOp("ZZ"))]).result()


def test_nonzero_precision_adds_seeded_noise():
    qnn = build_ansatz(AnsatzSpec(2, 1))
    values = np.zeros((50, qnn.circuit.num_parameters))
    pub = (qnn.circuit, qnn.observables[0], values)
    noisy = _evs(VectorizedStatevectorEstimator(default_precision=0.1, seed=3), pub)
    assert np.std(noisy) == pytest.approx(0.1, rel=0.35)
    np.testing.assert_allclose(noisy, _evs(VectorizedStatevectorEstimator(
        default_precision=0.1, seed=3), pub))


def _efficient_su2(n: int, reps: int, entanglement: str) -> QuantumCircuit:
    from qiskit import transpile
    from qiskit.circuit.library import efficient_su2

    return transpile(efficient_su2(n, reps=reps, entanglement=entanglement),
                     basis_gates=["ry", "rz", "cx", "sx", "x"], optimization_level=0)


@pytest.mark.parametrize(("n_qubits", "entanglement"),
                         [(5, "reverse_linear"), (6, "pairwise"), (5, "circular"), (12, "linear")])
def test_mps_method_matches_reference_on_library_circuits(n_qubits, entanglement):
    rng = np.random.default_rng(n_qubits)
    qc = _efficient_su2(n_qubits, 2, entanglement)
    values = rng.uniform(-np.pi, np.pi, size=(3, qc.num_parameters))
    observables = [_random_pauli_sum(n_qubits, rng, terms=4), SparsePauliOp(
        "X" + "I" * (n_qubits - 2) + "Y")]
    pub = (qc, observables, values[:, None, :])

    expected = _evs(StatevectorEstimator(), pub)
    actual = _evs(VectorizedStatevectorEstimator(method="mps"), pub)

    np.testing.assert_allclose(actual, expected, atol=ATOL)
    assert np.abs(expected).max() > 1e-3  # not trivially zero


def test_automatic_method_picks_mps_only_where_it_is_cheaper():
    def method(n, layers, entanglement):
        return simulation_method(build_ansatz(AnsatzSpec(n, layers, entanglement)).circuit)[0]

    assert method(16, 3, "linear") == "mps"  # bond 2^3 = 8 at any width
    assert method(20, 3, "ring") == "mps"  # the wrap-around CNOT crosses every cut: bond 64
    assert method(4, 3, "linear") == "statevector"  # 16 amplitudes: nothing to gain
    assert method(14, 2, "full") == "statevector"  # every pair entangled: bonds explode
    qc = QuantumCircuit(12)
    qc.h(range(12))
    qc.ccx(0, 1, 2)  # three-qubit gate: not a chain circuit
    assert simulation_method(qc)[0] == "statevector"
    with pytest.raises(UnsupportedOperationError, match="ccx"):
        simulation_method(qc, "mps")
    with pytest.raises(ValueError, match="method"):
        VectorizedStatevectorEstimator(method="tensor")
    deep = build_ansatz(AnsatzSpec(6, 8, "linear")).circuit  # bond 2^8 = 256
    with pytest.raises(UnsupportedOperationError, match="bond dimension 256"):
        simulation_method(deep, "mps", max_bond=128)


def test_mps_bond_dimensions_follow_the_entangler():
    linear = simulation_method(build_ansatz(AnsatzSpec(10, 3, "linear")).circuit, "mps")[1]
    ring = simulation_method(build_ansatz(AnsatzSpec(10, 2, "ring")).circuit, "mps")[1]
    assert isinstance(linear, ChainCircuit)
    assert linear.bonds == (8,) * 9  # one rank-2 CNOT per cut and layer
    assert ring.bonds == (16,) * 9  # plus the wrap-around CNOT carried through every cut


def test_mps_and_statevector_agree_at_sixteen_qubits():
    rng = np.random.default_rng(16)
    qnn = build_ansatz(AnsatzSpec(16, 3, "linear"))
    values = rng.uniform(-np.pi, np.pi, size=(4, qnn.circuit.num_parameters))
    observables = [list(qnn.observables) + [SparsePauliOp("XY" + "I" * 13 + "Z")]]
    pub = (qnn.circuit, observables, values[:, None, :])

    mps = _evs(VectorizedStatevectorEstimator(method="mps"), pub)
    statevector = _evs(VectorizedStatevectorEstimator(method="statevector"), pub)

    np.testing.assert_allclose(mps, statevector, atol=1e-10)
    assert mps.shape == (4, 17)
