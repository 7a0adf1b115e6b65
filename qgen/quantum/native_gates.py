"""Bring a circuit into the gate set qgen's exact simulators apply, transpiling only when needed.

The exact backend runs the logical circuit as it is; a circuit with a gate it has no kernel for
(``rxx``, ``ryy``, ``ecr``, a user's own ``Gate``, a library block) is translated by Qiskit's
transpiler into that gate set -- basis translation only (optimization level 0, no coupling map),
so qubits, parameters and observables keep their meaning -- and the user is told once per circuit.
"""

from __future__ import annotations

import logging

from qiskit import QuantumCircuit, transpile

from qgen.quantum.gate_ir import IGNORED, SUPPORTED

logger = logging.getLogger(__name__)

#: What the vectorized statevector simulates natively (the MPS method handles a subset of it).
NATIVE_GATES = tuple(sorted(SUPPORTED - IGNORED))


def foreign_gates(circuit: QuantumCircuit) -> list[str]:
    """Names of the operations in ``circuit`` that the exact simulators cannot apply as they are."""
    names = {inst.operation.name for inst in circuit.data}
    return sorted(names - SUPPORTED - {"measure"})


def to_native(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` itself when every gate is native, else its translation into ``NATIVE_GATES``."""
    foreign = foreign_gates(circuit)
    if not foreign:
        return circuit
    native = transpile(circuit, basis_gates=list(NATIVE_GATES), optimization_level=0)
    native.name = circuit.name
    logger.warning("qgen: the exact backend has no kernel for %s in circuit %s: transpiled it into the gates it "
                   "simulates (%d gates instead of %d)", ", ".join(foreign), circuit.name, native.size(), circuit.size())
    return native


#: Controlled rotations and phases that Aer's primitives (qiskit-aer 0.17-0.18) bind wrongly when the
#: angle is a parameter given at run time (Qiskit/qiskit-aer#2323, #2391, #2403; a bound circuit is
#: right): 0.76 instead of 0.69 for <XXI> after a parametrized crx, measured here.
AER_MISBOUND_GATES = frozenset({"crx", "cry", "crz", "cp", "cu1", "cu3", "cu", "mcp", "mcphase"})


def without_misbound_controls(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` with every *parametrized* gate of ``AER_MISBOUND_GATES`` replaced by its
    definition (single-qubit rotations and CNOTs, same parameters); ``circuit`` itself if it has none."""
    names = sorted({inst.operation.name for inst in circuit.data
                    if inst.operation.name in AER_MISBOUND_GATES and _has_parameters(inst.operation)})
    if not names:
        return circuit
    out = circuit.decompose(gates_to_decompose=names)
    out.name = circuit.name
    return out


def _has_parameters(op) -> bool:
    return any(getattr(p, "parameters", None) for p in op.params)
