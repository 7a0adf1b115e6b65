"""What a user asks for (``qgen train --ansatz ... --observables ...``, ``qgen.run_config(circuit=...)``)
-> the ``ModelConfig`` fields that describe the circuit, resolved so a config file is explicit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qgen.errors import QgenError

#: ``--observables`` keywords; anything else is a comma-separated list of Pauli sums
OBSERVABLE_SETS = ("z", "zz", "z+zz")


def observable_labels(which: str, n_qubits: int) -> tuple[str, ...]:
    """Pauli labels (qubit 0 rightmost) of a keyword: Z per qubit, neighbour ZZ, or both."""
    def label(qubits):
        return "".join("Z" if q in qubits else "I" for q in reversed(range(n_qubits)))

    z = tuple(label({q}) for q in range(n_qubits))
    zz = tuple(label({q, q + 1}) for q in range(n_qubits - 1))
    return {"z": z, "zz": zz, "z+zz": z + zz}[which]


def parse_observables(value, n_qubits: int) -> tuple[str, ...]:
    """``--observables``: a keyword of ``OBSERVABLE_SETS`` or ``"ZZI,0.5*XXI + 0.5*YYI"``; from Python
    also a sequence of labels or ``SparsePauliOp``."""
    if isinstance(value, str):
        if value.strip() in OBSERVABLE_SETS:
            labels = observable_labels(value.strip(), n_qubits)
            if not labels:
                raise QgenError(f"--observables {value}: {n_qubits} qubit(s) have no neighbour pairs")
            return labels
        items = [v.strip() for v in value.split(",") if v.strip()]
    else:
        # deferred: SparsePauliOps come from a caller that has qiskit loaded already; the keyword and
        # text forms above do not need it (qiskit is ~1 s of import that run_config otherwise avoids)
        from qgen.circuits.readouts import format_observable

        items = [v if isinstance(v, str) else format_observable(v) for v in value]
    if not items:
        raise QgenError(f"--observables needs {', '.join(OBSERVABLE_SETS)} or Pauli labels, got {value!r}")
    return tuple(items)


def _tuple(value) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(v.strip() for v in items if v.strip())


def circuit_fields(*, ansatz: str = "qgen", qubits: int = 8, feature_map: str = "angle", feature_reps: int = 1,
                   rotation_blocks: str | Sequence[str] | None = None,
                   entanglement_blocks: str | Sequence[str] | None = None, observables=None, circuit=None,
                   input_params=None) -> dict:
    """``ModelConfig`` fields for the circuit choice; ``circuit`` (a QuantumCircuit or a QPY path)
    with ``input_params`` (parameters, their names, or a ParameterVector's name; default ``"x"``)
    makes a custom circuit and fixes ``qubits`` to its width."""
    if circuit is not None:
        # deferred: only a circuit of the user's own needs qiskit here (~1 s of import; see above)
        from qgen.circuits.custom import custom_fields
        from qgen.circuits.custom_circuit import read_qpy_file

        if ansatz not in ("qgen", "custom") or feature_map != "angle" or rotation_blocks or entanglement_blocks:
            raise QgenError("a circuit of your own replaces --ansatz, --feature-map and the blocks: give either "
                            "the circuit or those options")
        if isinstance(circuit, (str, Path)):
            circuit = read_qpy_file(circuit)
        obs = parse_observables(observables, circuit.num_qubits) if observables is not None else None
        return custom_fields(circuit, input_params if input_params is not None else "x", obs)
    if input_params is not None:
        raise QgenError("input parameters name the inputs of a circuit of your own (--circuit FILE.qpy)")
    if ansatz == "custom":
        raise QgenError("ansatz 'custom' needs the circuit itself (--circuit FILE.qpy, or circuit= in Python)")
    return dict(ansatz_family=ansatz, feature_map=feature_map, feature_reps=feature_reps,
                rotation_blocks=_tuple(rotation_blocks), entanglement_blocks=_tuple(entanglement_blocks),
                observables=parse_observables(observables, qubits) if observables is not None else ())
