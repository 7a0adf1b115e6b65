"""qgen's own variational layers: RZ on every qubit, RY on every qubit, then an entangler of CNOTs.

Why RZ *before* RY: a Z readout commutes with RZ, and CNOTs map Z-strings to Z-strings, so an RZ
that is followed only by CNOTs before measurement has exactly zero gradient (the trap of
"RY-encoding + RZ + CNOT" ansätze, which the tests build on purpose). With RZ·RY every weight moves
the measured distribution.

``entanglement = "none"`` drops the entangler: the *separable* control (a product state, so each
readout depends on its own qubit's input only -- the standard "no entanglement" control of Bowles,
Ahmed & Schuld 2024).

No qiskit import: the layers are appended to a circuit the caller made, and ``ENTANGLERS`` is read
by ``qgen.circuits.spec``, which configs import without qiskit.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

from qgen.errors import QgenError

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit

ENTANGLERS = ("linear", "ring", "full", "none")


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
