"""A user's own bottleneck circuit: any parametrized ``QuantumCircuit``, which of its parameters are
inputs, and the observables read out (the ``EstimatorQNN`` contract).

The circuit travels inside the configuration as base64 QPY (``AnsatzSpec.qpy``), so config.toml,
config.json and the model folder rebuild it without the original file; the inputs travel by
parameter name, the observables as Pauli sums. Every weight is a parameter that is not an input, in
``circuit.parameters`` order (sorted by name: the same on every rebuild).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Sequence
from pathlib import Path

from qiskit import QuantumCircuit, qpy
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp

from qgen.circuits.spec import AnsatzSpec
from qgen.errors import QgenError


def encode_qpy(circuit: QuantumCircuit) -> str:
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_qpy(text: str) -> QuantumCircuit:
    try:
        circuits = qpy.load(io.BytesIO(base64.b64decode(text, validate=True)))
    except Exception as exc:  # QPY raises several types for damaged data; all mean the same to a user
        raise QgenError(f"the configuration's circuit is not valid QPY: {exc}") from None
    return _one_circuit(circuits, "the configuration's circuit")


def read_qpy_file(path: str | Path) -> QuantumCircuit:
    """The one circuit of a QPY file, or one error line naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            circuits = qpy.load(fh)
    except OSError as exc:
        raise QgenError(f"cannot read the circuit file {path}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise QgenError(f"{path} is not a QPY circuit file (write one with qiskit.qpy.dump): {exc}") from None
    return _one_circuit(circuits, str(path))


def _one_circuit(circuits, where: str) -> QuantumCircuit:
    if len(circuits) != 1 or not isinstance(circuits[0], QuantumCircuit):
        raise QgenError(f"{where} holds {len(circuits)} programs; the bottleneck takes exactly one circuit")
    return circuits[0]


def custom_fields(circuit: QuantumCircuit, inputs: Sequence[Parameter | str] | str,
                  observables: Sequence[SparsePauliOp | str] | None = None) -> dict:
    """The ``ModelConfig`` fields for a user circuit, checked: ``inputs`` are
    parameters (or their names, or the name of a ParameterVector) of ``circuit``; ``observables``
    default to Z on every qubit."""
    from qgen.circuits.library import format_observable

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
    from qgen.circuits.ansatz import z_observables
    from qgen.circuits.library import parse_observable

    if not observables:
        return list(z_observables(circuit.num_qubits))
    out = []
    for obs in observables:
        op = parse_observable(obs) if isinstance(obs, str) else SparsePauliOp(obs)
        if op.num_qubits != circuit.num_qubits:
            raise QgenError(f"observable {obs} acts on {op.num_qubits} qubits; the circuit has {circuit.num_qubits}")
        out.append(op)
    return out


def build_custom(spec: AnsatzSpec):
    """The ``QNNCircuit`` of a custom spec; a circuit that does not fit a bottleneck is one error."""
    from qgen.circuits.ansatz import QNNCircuit
    from qgen.circuits.library import parse_observable

    circuit = decode_qpy(spec.qpy)
    if circuit.num_qubits != spec.n_qubits:
        raise QgenError(f"the circuit has {circuit.num_qubits} qubits but the configuration says {spec.n_qubits}")
    if circuit.num_clbits or any(inst.operation.name == "measure" for inst in circuit.data):
        raise QgenError("the circuit measures or has classical bits: an estimator circuit ends before "
                        "measurement (remove them; the observables say what is read out)")
    by_name = {p.name: p for p in circuit.parameters}
    missing = [n for n in spec.inputs if n not in by_name]
    if missing:
        raise QgenError(f"input parameter {missing[0]!r} is not a parameter of the circuit")
    inputs = tuple(by_name[n] for n in spec.inputs)
    weights = tuple(p for p in circuit.parameters if p.name not in set(spec.inputs))
    if not weights:
        raise QgenError(f"the circuit has {len(inputs)} input parameters and no other parameter: the bottleneck "
                        "needs at least one trainable weight (a parameter that is not an input)")
    observables = tuple(parse_observable(o) for o in spec.observables) or None
    if observables is None:
        from qgen.circuits.ansatz import z_observables

        observables = z_observables(circuit.num_qubits)
    digest = hashlib.sha256("|".join((spec.qpy, *spec.inputs, "/", *spec.observables)).encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9]+", "_", circuit.name or "circuit").strip("_")[:32] or "circuit"
    name = f"custom_{stem}_{digest}"
    circuit = circuit.copy(name=name)
    return QNNCircuit(circuit, inputs, weights, observables, name)
