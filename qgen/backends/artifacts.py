"""Write what a run sends to a device into circuits/<backend>/<circuit-name>/ for inspection.

Files: circuit.qpy (with layout), circuit.qasm3, diagram.txt, diagram.png (idle wires hidden),
stats.json (depths, gate counts, layout, backend, transpiler settings, estimated success
probability from the target's gate and readout errors).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from qiskit import QuantumCircuit, qasm3, qpy

from qgen.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from qgen.backends.base import PreparedCircuit, QuantumBackend

# no gates, only bookkeeping: they neither fail nor take time on hardware
_NOT_GATES = ("barrier", "delay")


def default_circuits_root() -> Path:
    return Path(os.environ.get("QGEN_CIRCUITS", "circuits"))


def two_qubit_depth(circuit: QuantumCircuit) -> int:
    return circuit.depth(filter_function=lambda inst: inst.operation.num_qubits == 2)


def estimated_success_probability(circuit: QuantumCircuit, target, measured: set[int] | None = None) -> float | None:
    """Π(1 - gate error) × Π(1 - readout error): a quick fidelity proxy (errors assumed independent)."""
    if target is None:
        return None
    p = 1.0
    for inst in circuit.data:
        name = inst.operation.name
        if name in _NOT_GATES or name not in target.operation_names:
            continue
        qargs = tuple(circuit.find_bit(q).index for q in inst.qubits)
        props = target[name].get(qargs) if target[name] is not None else None
        if props is not None and props.error is not None:
            p *= 1.0 - props.error
    if measured is None:
        measured = {circuit.find_bit(q).index for inst in circuit.data if inst.operation.name == "measure"
                    for q in inst.qubits}
    if "measure" in target.operation_names:
        for q in measured:
            props = target["measure"].get((q,))
            if props is not None and props.error is not None:
                p *= 1.0 - props.error
    return p


def layout_record(circuit: QuantumCircuit) -> dict | None:
    layout = circuit.layout
    if layout is None:
        return None
    return {
        "initial_virtual_to_physical": layout.initial_index_layout(filter_ancillas=True),
        "final_virtual_to_physical": layout.final_index_layout(filter_ancillas=True),
    }


def circuit_stats(circuit: QuantumCircuit, *, backend_name: str, backend_version: str | None,
                  optimization_level: int | None, seed_transpiler: int | None, target=None,
                  measured: set[int] | None = None, extra: dict | None = None) -> dict:
    stats = {
        "name": circuit.name,
        "num_qubits": circuit.num_qubits,
        "active_qubits": len({circuit.find_bit(q).index for inst in circuit.data
                              if inst.operation.name not in _NOT_GATES for q in inst.qubits}),
        "num_parameters": circuit.num_parameters,
        "depth": circuit.depth(),
        "two_qubit_depth": two_qubit_depth(circuit),
        "count_ops": dict(circuit.count_ops()),
        "layout": layout_record(circuit),
        "backend": backend_name,
        "backend_version": backend_version,
        "optimization_level": optimization_level,
        "seed_transpiler": seed_transpiler,
        "estimated_success_probability": estimated_success_probability(circuit, target, measured),
    }
    stats.update(extra or {})
    return stats


def write_circuit_artifacts(root: Path, backend_name: str, circuit: QuantumCircuit, stats: dict) -> Path:
    out = Path(root) / backend_name / circuit.name
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    qpy.dump(circuit, buf)
    atomic_write_bytes(out / "circuit.qpy", buf.getvalue())
    atomic_write_bytes(out / "circuit.qasm3", qasm3.dumps(circuit).encode())
    text = str(circuit.draw("text", idle_wires=False, fold=160))
    atomic_write_bytes(out / "diagram.txt", (text + "\n").encode())
    atomic_write_bytes(out / "diagram.png", _diagram_png(circuit))
    atomic_write_bytes(out / "stats.json", (json.dumps(stats, indent=2, default=str) + "\n").encode())
    return out


def write_prepared_artifacts(backend: QuantumBackend, prepared: PreparedCircuit, root) -> Path:
    """circuits/<backend>/<name>/ for the circuit as the device (or simulator) receives it."""
    spec = backend.spec
    extra = {"backend_kind": spec.kind, "observables": [
        [(label, [int(i) for i in idx], float(coeff.real)) for label, idx, coeff in o.to_sparse_list()]
        for o in prepared.observables]}
    extra.update(backend.artifact_extras(prepared))
    measured = set(prepared.reduction.physical_qubits) if prepared.reduction is not None else None
    stats = circuit_stats(
        prepared.isa,
        backend_name=spec.device or spec.name,
        backend_version=getattr(backend.device, "backend_version", None),
        optimization_level=spec.optimization_level if backend.transpiles else None,
        seed_transpiler=spec.seed_transpiler if backend.transpiles else None,
        target=backend.target,
        measured=measured,
        extra=extra,
    )
    return write_circuit_artifacts(root, spec.name, prepared.isa, stats)


def _diagram_png(circuit: QuantumCircuit) -> bytes:
    # deferred: matplotlib is ~0.45 s of import (measured), and qgen export imports this module but draws
    # only when the run's circuits/ folder is gone
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = circuit.draw("mpl", idle_wires=False, fold=40)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
