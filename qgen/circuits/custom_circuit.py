"""A user's own bottleneck circuit, built from its spec: the QPY codec and ``build_custom``.

The circuit travels inside the configuration as base64 QPY (``AnsatzSpec.qpy``), so config.toml,
config.json and the model folder rebuild it without the original file; the inputs travel by
parameter name, the observables as Pauli sums. Every weight is a parameter that is not an input, in
``circuit.parameters`` order (sorted by name: the same on every rebuild). Turning a user's circuit
into those config fields is ``qgen.circuits.custom``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

from qiskit import QuantumCircuit, qpy

from qgen.circuits.qnn_circuit import QNNCircuit
from qgen.circuits.readouts import parse_observable, z_observables
from qgen.errors import QgenError

if TYPE_CHECKING:  # at run time the spec imports the builders (AnsatzSpec.num_weights), not the reverse
    from qgen.circuits.spec import AnsatzSpec


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


def build_custom(spec: AnsatzSpec) -> QNNCircuit:
    """The ``QNNCircuit`` of a custom spec; a circuit that does not fit a bottleneck is one error."""
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
    observables = tuple(parse_observable(o) for o in spec.observables) or z_observables(circuit.num_qubits)
    digest = hashlib.sha256("|".join((spec.qpy, *spec.inputs, "/", *spec.observables)).encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9]+", "_", circuit.name or "circuit").strip("_")[:32] or "circuit"
    name = f"custom_{stem}_{digest}"
    circuit = circuit.copy(name=name)
    return QNNCircuit(circuit, inputs, weights, observables, name)
