"""The observables a bottleneck circuit reads out, as ``SparsePauliOp``.

``readout = "zz"`` adds the neighbour correlators <Z_q Z_q+1> to the n <Z_q> readouts, so n qubits
hand on 2n - 1 numbers (on a product state these are just products). Explicit observables are
Pauli sums in the text form of ``qgen.circuits.pauli_sum``.
"""

from __future__ import annotations

from qiskit.quantum_info import SparsePauliOp

from qgen.circuits.pauli_sum import observable_terms
from qgen.errors import QgenError


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


def parse_observable(text: str) -> SparsePauliOp:
    """A Pauli sum written as in config files (``qgen.circuits.pauli_sum.observable_terms``)."""
    return SparsePauliOp.from_list(observable_terms(text))


def format_observable(op: SparsePauliOp) -> str:
    """The inverse of ``parse_observable`` (a single unit-weight Pauli is just its label)."""
    op = op.simplify(atol=0)
    if abs(op.coeffs.imag).max(initial=0) > 1e-12:
        raise QgenError(f"observable {op} has complex coefficients: a readout must be Hermitian")
    terms = list(zip(op.paulis.to_labels(), op.coeffs.real))
    if len(terms) == 1 and terms[0][1] == 1.0:
        return terms[0][0]
    return " + ".join(f"{float(coeff)!r}*{label}" for label, coeff in terms)
