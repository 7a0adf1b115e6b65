"""What makes two QNN circuits the same prepared (transpiled) circuit, for ``QuantumBackend.prepare``'s cache.

A circuit's name is not enough: two models built from one ansatz get new ``Parameter`` objects
(EstimatorQNN then finds its inputs missing from a circuit prepared for the other model), and a
circuit with other observables or gates may carry the same name. The key holds everything the
prepared circuit depends on: every instruction (gate, parameters, qubits; the definition of
non-standard gates), each parameter's identity (name and UUID), the readout observables and the
order of input and weight parameters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

    from qgen.circuits import QNNCircuit


def prepared_key(qnn_circuit: QNNCircuit) -> tuple:
    """A hashable key equal for two QNN circuits exactly when they prepare to the same circuit."""
    circuit = qnn_circuit.circuit
    return (
        circuit_structure(circuit),
        tuple(_parameter_identity(p) for p in circuit.parameters),
        tuple(_parameter_identity(p) for p in qnn_circuit.input_params),
        tuple(_parameter_identity(p) for p in qnn_circuit.weight_params),
        tuple(_observable_key(obs) for obs in qnn_circuit.observables),
    )


def circuit_structure(circuit: QuantumCircuit) -> tuple:
    """Every instruction of ``circuit`` (name, parameters as text, qubit and clbit indices), recursing into
    gates qiskit does not define itself, plus the registers' sizes and the global phase."""
    qubit_index = {bit: i for i, bit in enumerate(circuit.qubits)}
    clbit_index = {bit: i for i, bit in enumerate(circuit.clbits)}
    instructions = []
    for instruction in circuit.data:
        operation = instruction.operation
        definition = None
        if operation.name not in _standard_names() and getattr(operation, "definition", None) is not None:
            definition = circuit_structure(operation.definition)
        instructions.append((
            operation.name,
            tuple(_param_text(p) for p in getattr(operation, "params", ())),
            tuple(qubit_index[q] for q in instruction.qubits),
            tuple(clbit_index[c] for c in instruction.clbits),
            definition,
        ))
    return (circuit.num_qubits, circuit.num_clbits, str(circuit.global_phase), tuple(instructions))


def _param_text(value: Any) -> str:
    # a ParameterExpression prints with its parameters' names; their UUIDs are in the key separately
    return str(value) if not hasattr(value, "shape") else repr(value.tolist())


def _parameter_identity(parameter: Any) -> tuple[str, str]:
    return parameter.name, str(parameter.uuid)


def _observable_key(observable: Any) -> tuple:
    return (observable.num_qubits, tuple(observable.paulis.to_labels()),
            tuple(complex(c) for c in observable.coeffs))


@lru_cache(maxsize=1)
def _standard_names() -> frozenset[str]:
    # deferred: base.py imports this module, and the registry base.py, for every command (Qiskit ~0.3 s)
    from qiskit.circuit.library import get_standard_gate_name_mapping

    return frozenset(get_standard_gate_name_mapping()) | {"barrier", "measure", "reset", "delay"}
