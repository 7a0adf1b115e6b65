"""The variational circuit of the quantum bottleneck: ``build_ansatz(spec)``.

The original circuit is angle encoding (one RY per qubit, product state) followed by ``layers`` of
qgen's layers (``qgen.circuits.layers``: RZ·RY on every qubit, then a CNOT entangler) with the
readouts of ``qgen.circuits.readouts``. Other specs are built by ``qgen.circuits.library`` (a
circuit-library ansatz or a non-default feature map) or ``qgen.circuits.custom_circuit`` (a
user's QPY circuit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qiskit.circuit import ParameterVector, QuantumCircuit

from qgen.circuits.custom_circuit import build_custom
from qgen.circuits.layers import append_qgen_layers
from qgen.circuits.library import build_library
from qgen.circuits.qnn_circuit import QNNCircuit
from qgen.circuits.readouts import readout_observables

if TYPE_CHECKING:  # at run time the spec imports this module (AnsatzSpec.num_weights), not the reverse
    from qgen.circuits.spec import AnsatzSpec


def build_ansatz(spec: AnsatzSpec) -> QNNCircuit:
    """The bottleneck circuit ``spec`` describes: the original one below, a circuit-library one
    (``qgen.circuits.library``) or a user's QPY circuit (``qgen.circuits.custom_circuit``)."""
    if spec.family == "custom":
        return build_custom(spec)
    if not spec.is_original:
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
