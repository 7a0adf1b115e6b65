"""The variational circuit of the quantum bottleneck.

Angle encoding (one RY per qubit, product state) followed by ``layers`` hardware-efficient layers:
RZ on every qubit, RY on every qubit, then an entangler of CNOTs.

``entanglement = "none"`` drops the entangler: the *separable* control (a product state, so each
readout depends on its own qubit's input only -- the standard "no entanglement" control of Bowles,
Ahmed & Schuld 2024). ``readout = "zz"`` adds the neighbour correlators <Z_q Z_q+1> to the n <Z_q>
readouts, so n qubits hand on 2n - 1 numbers (on a product state these are just products).

Why RZ *before* RY: a Z readout commutes with RZ, and CNOTs map Z-strings to Z-strings, so an RZ
that is followed only by CNOTs before measurement has exactly zero gradient (the trap of
"RY-encoding + RZ + CNOT" ansätze). With RZ·RY every weight moves the measured distribution.
``trap_ansatz`` builds that broken circuit on purpose so tests can show the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from qiskit.circuit import ParameterVector, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qgen.circuits.spec import ENTANGLERS, READOUTS, AnsatzSpec, readout_count  # noqa: F401 (re-exported)
from qgen.errors import QgenError


@dataclass(frozen=True)
class QNNCircuit:
    """A parametrized circuit with its input/weight parameters and readout observables."""

    circuit: QuantumCircuit
    input_params: tuple
    weight_params: tuple
    observables: tuple[SparsePauliOp, ...]
    name: str


def entangler_pairs(n_qubits: int, entanglement: str) -> list[tuple[int, int]]:
    """CNOT (control, target) pairs of one entangling layer, in application order."""
    if n_qubits < 2:
        return []
    if entanglement == "linear":
        return [(q, q + 1) for q in range(n_qubits - 1)]
    if entanglement == "ring":
        pairs = [(q, q + 1) for q in range(n_qubits - 1)]
        return pairs + [(n_qubits - 1, 0)] if n_qubits > 2 else pairs
    if entanglement == "full":
        return list(combinations(range(n_qubits), 2))
    if entanglement == "none":
        return []
    raise QgenError(f"unknown entanglement {entanglement!r}; choose one of {', '.join(ENTANGLERS)}")


def z_observables(n_qubits: int) -> tuple[SparsePauliOp, ...]:
    """Single-qubit Z readouts, one per qubit (qubit 0 is the rightmost Pauli label)."""
    return tuple(
        SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], num_qubits=n_qubits)
        for q in range(n_qubits)
    )


def zz_observables(n_qubits: int) -> tuple[SparsePauliOp, ...]:
    """Neighbour correlators Z_q Z_q+1 along the chain (the couplings a linear entangler creates)."""
    return tuple(
        SparsePauliOp.from_sparse_list([("ZZ", [q, q + 1], 1.0)], num_qubits=n_qubits)
        for q in range(n_qubits - 1)
    )


def readout_observables(n_qubits: int, readout: str) -> tuple[SparsePauliOp, ...]:
    return z_observables(n_qubits) + (zz_observables(n_qubits) if readout == "zz" else ())


def build_ansatz(spec: AnsatzSpec) -> QNNCircuit:
    """The bottleneck circuit ``spec`` describes: the original one below, a circuit-library one
    (``qgen.circuits.library``) or a user's QPY circuit (``qgen.circuits.custom``)."""
    if spec.family == "custom":
        from qgen.circuits.custom import build_custom

        return build_custom(spec)
    if not spec.is_original:
        from qgen.circuits.library import build_library

        return build_library(spec)
    n = spec.n_qubits
    x = ParameterVector("x", n)
    w = ParameterVector("w", spec.num_weights)
    # the name says everything that shapes the circuit and its readouts (it names circuits/ folders)
    suffix = "" if spec.readout == "z" else f"_{spec.readout}"
    qc = QuantumCircuit(n, name=f"qnn_{spec.entanglement}_q{n}_l{spec.layers}{suffix}")
    for q in range(n):
        qc.ry(x[q], q)
    append_qgen_layers(qc, w, spec.layers, spec.entanglement)
    return QNNCircuit(qc, tuple(x), tuple(w), readout_observables(n, spec.readout), qc.name)


def append_qgen_layers(qc: QuantumCircuit, w, layers: int, entanglement: str) -> None:
    """``layers`` x (RZ on every qubit, RY on every qubit, the entangler), weights ``w`` in that order."""
    n = qc.num_qubits
    pairs = entangler_pairs(n, entanglement)
    k = 0
    for _ in range(layers):
        for q in range(n):
            qc.rz(w[k], q)
            k += 1
        for q in range(n):
            qc.ry(w[k], q)
            k += 1
        for c, t in pairs:
            qc.cx(c, t)


def trap_ansatz(spec: AnsatzSpec) -> QNNCircuit:
    """RY encoding + (RZ + CNOT) layers: every weight has zero gradient for Z readouts.

    Kept only to demonstrate (in tests) that the gradient check can fail.
    """
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
