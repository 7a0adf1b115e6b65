"""``QNNCircuit``: what every circuit builder returns and every backend takes (the ``EstimatorQNN`` contract)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp


@dataclass(frozen=True)
class QNNCircuit:
    """A parametrized circuit with its input/weight parameters and readout observables."""

    circuit: QuantumCircuit
    input_params: tuple
    weight_params: tuple
    observables: tuple[SparsePauliOp, ...]
    name: str
