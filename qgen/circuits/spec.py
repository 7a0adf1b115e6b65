"""What defines the bottleneck circuit, without building it (no qiskit import: configs read this)."""

from __future__ import annotations

from dataclasses import dataclass

from qgen.errors import QgenError

ENTANGLERS = ("linear", "ring", "full", "none")
READOUTS = ("z", "zz")


@dataclass(frozen=True)
class AnsatzSpec:
    n_qubits: int = 8
    layers: int = 3
    entanglement: str = "linear"
    readout: str = "z"

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise QgenError(f"unknown readout {self.readout!r}; choose one of {', '.join(READOUTS)}")
        if self.n_qubits < 1:
            raise QgenError(f"n_qubits must be >= 1, got {self.n_qubits}")
        if self.layers < 1:
            raise QgenError(f"layers must be >= 1, got {self.layers}")
        if self.entanglement not in ENTANGLERS:
            raise QgenError(
                f"unknown entanglement {self.entanglement!r}; choose one of {', '.join(ENTANGLERS)}"
            )

    @property
    def num_weights(self) -> int:
        return 2 * self.n_qubits * self.layers

    @property
    def num_readouts(self) -> int:
        return readout_count(self.n_qubits, self.readout)


def readout_count(n_qubits: int, readout: str) -> int:
    """How many numbers one circuit evaluation hands on: n <Z>, plus n - 1 neighbour <ZZ> for "zz"."""
    return n_qubits + (n_qubits - 1 if readout == "zz" else 0)
