"""Model configuration."""

from __future__ import annotations

from dataclasses import dataclass

from qgen.errors import QgenError

MODEL_KINDS = ("quantum", "classical", "plain")


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "quantum"             # quantum gate | parameter-matched classical gate | no gate
    widths: tuple[int, ...] = (32, 64, 64)   # channels at 28, 14 and 7 pixels
    time_dim: int = 128
    groups: int = 8                   # GroupNorm groups
    qubits: int = 8
    layers: int = 3
    entanglement: str = "linear"

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise QgenError(f"unknown model {self.kind!r}; choose one of {', '.join(MODEL_KINDS)}")
        if len(self.widths) != 3:
            raise QgenError(f"widths needs 3 entries (28, 14, 7 px levels), got {list(self.widths)}")
        for w in self.widths:
            if w < 1 or w % self.groups:
                raise QgenError(f"each width must be a positive multiple of groups={self.groups}, got {w}")

    @property
    def ansatz(self):
        """The bottleneck circuit's ``AnsatzSpec`` (qubits, layers, entanglement)."""
        from qgen.circuits import AnsatzSpec  # qiskit: only when a circuit is wanted

        return AnsatzSpec(self.qubits, self.layers, self.entanglement)
