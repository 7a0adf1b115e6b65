"""Circuits whose measured bits are the raw entropy: H on every qubit, then measure.

A product state has no entanglement, so any width simulates cheaply with Aer's matrix-product-state
method.
"""

from __future__ import annotations

from qiskit.circuit import QuantumCircuit

from qgen.errors import QgenError


def _check_width(n_qubits: int) -> None:
    if n_qubits < 1:
        raise QgenError(f"an entropy circuit needs at least 1 qubit, got {n_qubits}")


def hadamard_circuit(n_qubits: int) -> QuantumCircuit:
    """H on every qubit + measure_all: ideally each shot gives ``n_qubits`` fair, independent bits."""
    _check_width(n_qubits)
    qc = QuantumCircuit(n_qubits, name=f"hadamard_{n_qubits}")
    qc.h(range(n_qubits))
    qc.measure_all()
    return qc
