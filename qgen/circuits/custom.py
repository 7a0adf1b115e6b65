"""A user's own bottleneck circuit: any parametrized ``QuantumCircuit``, which of its parameters are
inputs, and the observables read out (the ``EstimatorQNN`` contract), checked and turned into the
``ModelConfig`` fields that carry it (``custom_fields``).

How those fields become a circuit again (QPY in the config, inputs by name, observables as Pauli
sums) is ``qgen.circuits.custom_circuit``.
"""

from __future__ import annotations

from collections.abc import Sequence

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp

from qgen.circuits.custom_circuit import build_custom, encode_qpy
from qgen.circuits.readouts import format_observable, parse_observable, z_observables
from qgen.circuits.spec import AnsatzSpec
from qgen.errors import QgenError


def custom_fields(circuit: QuantumCircuit, inputs: Sequence[Parameter | str] | str,
                  observables: Sequence[SparsePauliOp | str] | None = None) -> dict:
    """The ``ModelConfig`` fields for a user circuit, checked: ``inputs`` are
    parameters (or their names, or the name of a ParameterVector) of ``circuit``; ``observables``
    default to Z on every qubit."""
    names = input_names(circuit, inputs)
    observables = _observables(circuit, observables)
    fields = dict(ansatz_family="custom", qubits=circuit.num_qubits, circuit_qpy=encode_qpy(circuit),
                  circuit_inputs=names, observables=tuple(format_observable(o) for o in observables))
    build_custom(_spec(fields))  # every check a rebuild makes, now, with the user's names
    return fields


def _spec(fields: dict) -> AnsatzSpec:
    return AnsatzSpec(n_qubits=fields["qubits"], family="custom", qpy=fields["circuit_qpy"],
                      inputs=fields["circuit_inputs"], observables=fields["observables"])


def input_names(circuit: QuantumCircuit, inputs) -> tuple[str, ...]:
    by_name = {p.name: p for p in circuit.parameters}
    if isinstance(inputs, str):  # a ParameterVector's name ("x") or comma-separated parameter names
        vector = [p.name for p in circuit.parameters if getattr(getattr(p, "vector", None), "name", None) == inputs]
        names = vector or [v.strip() for v in inputs.split(",") if v.strip()]
    else:
        names = [p if isinstance(p, str) else p.name for p in inputs]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        shown = ", ".join(sorted(by_name)[:8]) + (" …" if len(by_name) > 8 else "")
        raise QgenError(f"input parameter {unknown[0]!r} is not a parameter of the circuit (it has: {shown or 'none'})")
    if len(set(names)) != len(names):
        raise QgenError(f"input parameters are named twice: {', '.join(names)}")
    return tuple(names)


def _observables(circuit: QuantumCircuit, observables) -> list[SparsePauliOp]:
    if not observables:
        return list(z_observables(circuit.num_qubits))
    out = []
    for obs in observables:
        op = parse_observable(obs) if isinstance(obs, str) else SparsePauliOp(obs)
        if op.num_qubits != circuit.num_qubits:
            raise QgenError(f"observable {obs} acts on {op.num_qubits} qubits; the circuit has {circuit.num_qubits}")
        out.append(op)
    return out
