"""Pauli sums as configs write them (``"ZZI"``, ``"0.5*XXI + -0.5*YYI"``), without qiskit.

The text form is what ``AnsatzSpec.observables`` holds; ``qgen.circuits.readouts`` turns it into
``SparsePauliOp`` objects.
"""

from __future__ import annotations

from qgen.errors import QgenError

PAULI_LETTERS = set("IXYZ")


def observable_terms(text: str) -> list[tuple[str, float]]:
    """``"ZZI"`` or ``"0.5*XXI + -0.5*YYI"`` -> [(label, coefficient), ...] (real coefficients:
    the readouts are expectation values of Hermitian observables)."""
    terms = []
    for part in text.replace(" ", "").split("+"):
        coeff, _, label = part.rpartition("*")
        try:
            value = float(coeff) if coeff else 1.0
        except ValueError:
            raise QgenError(f"observable {text!r}: {coeff!r} is not a real coefficient") from None
        terms.append((label, value))
    return terms


def check_observable(text: str, n_qubits: int) -> None:
    for label, _ in observable_terms(text):
        if not label or set(label) - PAULI_LETTERS or len(label) != n_qubits:
            raise QgenError(f"observable {text!r}: each term must be a Pauli label of {n_qubits} letters from "
                            f"I, X, Y, Z (qubit 0 rightmost), got {label!r}")
