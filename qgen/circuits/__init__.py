"""Circuit library for the quantum bottleneck (the code; transpiled output goes to ./circuits/)."""

from qgen.circuits.ansatz import (
    ENTANGLERS,
    AnsatzSpec,
    QNNCircuit,
    build_ansatz,
    entangler_pairs,
    trap_ansatz,
    z_observables,
)

__all__ = [
    "ENTANGLERS",
    "AnsatzSpec",
    "QNNCircuit",
    "build_ansatz",
    "entangler_pairs",
    "trap_ansatz",
    "z_observables",
]
