"""Circuits whose measured bits are the raw entropy: H (or a tunable RY) on every qubit, then measure.

A product state has no entanglement, so any width simulates cheaply with Aer's matrix-product-state
method; ``chunk_widths`` splits a wide register for simulators that store the full state vector.
"""

from __future__ import annotations

import math

from qiskit.circuit import Parameter, QuantumCircuit

from qgen.errors import QgenError

#: Widest register a state-vector simulator handles comfortably (2**24 amplitudes = 256 MiB).
MAX_STATEVECTOR_WIDTH = 24


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


def ry_circuit(n_qubits: int) -> QuantumCircuit:
    """RY(pi/2 + delta) on every qubit + measure_all, with ``delta`` a free parameter.

    P(1) = sin^2(pi/4 + delta/2) = (1 + sin(delta))/2, so delta=0 is a fair
    coin, delta != 0 a coin with a known bias (used to test the extractors on real circuits).
    """
    _check_width(n_qubits)
    delta = Parameter("delta")
    qc = QuantumCircuit(n_qubits, name=f"ry_{n_qubits}")
    qc.ry(math.pi / 2 + delta, range(n_qubits))
    qc.measure_all()
    return qc


def ry_one_probability(delta: float) -> float:
    """Ideal probability of measuring 1 after RY(pi/2 + delta) on |0>."""
    return math.sin((math.pi / 2 + delta) / 2) ** 2


def chunk_widths(n_qubits: int, max_width: int = MAX_STATEVECTOR_WIDTH) -> list[int]:
    """Split ``n_qubits`` into near-equal chunks of at most ``max_width`` (e.g. 127 -> 6 x ~21)."""
    _check_width(n_qubits)
    if max_width < 1:
        raise QgenError(f"max_width must be >= 1, got {max_width}")
    n_chunks = math.ceil(n_qubits / max_width)
    base, extra = divmod(n_qubits, n_chunks)
    return [base + 1 if i < extra else base for i in range(n_chunks)]


def chunked_hadamard_circuits(n_qubits: int,
                              max_width: int = MAX_STATEVECTOR_WIDTH) -> list[QuantumCircuit]:
    """The same bits as ``hadamard_circuit(n_qubits)`` but as several narrow circuits (one job)."""
    return [hadamard_circuit(w) for w in chunk_widths(n_qubits, max_width)]
