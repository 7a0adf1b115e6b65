"""Simulate only the qubits a transpiled circuit uses.

A fake device's full noise model (127 or 156 qubits) makes every Aer call pay for the whole
device even when the bottleneck touches 8 qubits. After transpiling to the device ISA we keep the
active physical qubits, renumber them 0..k-1, and restrict the noise model and the observables to
them. The physics is unchanged: idle qubits carry no gates and no observable weight.

Two other device reductions exist on purpose, with other semantics:
``qgen.backends.reduced_device.reduce_device`` builds a small calibrated model (readout asymmetry,
depolarizing + relaxation on single-qubit gates) for entropy circuits that have no two-qubit gates,
and ``qgen.backends.devices.device_simulator`` keeps the full device width (the executor primitives
measure every qubit) and drops noise, including delay relaxation, only on idle qubits. This module
restricts the device's own NoiseModel exactly, for the QNN's estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList, SparsePauliOp

IGNORED = ("barrier", "delay")


@dataclass(frozen=True)
class ReducedCircuit:
    circuit: QuantumCircuit          # the ISA circuit on k qubits
    physical_qubits: tuple[int, ...]  # reduced index -> physical qubit on the device

    def reduce_observable(self, device_observable: SparsePauliOp) -> SparsePauliOp:
        """Restrict a device-wide (layout-mapped) observable to the active qubits."""
        paulis = device_observable.paulis
        idx = list(self.physical_qubits)
        outside = paulis.z.copy()
        outside[:, idx] = False
        outside_x = paulis.x.copy()
        outside_x[:, idx] = False
        if outside.any() or outside_x.any():
            raise ValueError("observable acts on qubits the circuit never touches")
        reduced = PauliList.from_symplectic(paulis.z[:, idx], paulis.x[:, idx], paulis.phase)
        return SparsePauliOp(reduced, device_observable.coeffs)


def active_qubits(circuit: QuantumCircuit, extra: set[int] = frozenset()) -> tuple[int, ...]:
    used = set(extra)
    for inst in circuit.data:
        if inst.operation.name in IGNORED:
            continue
        used.update(circuit.find_bit(q).index for q in inst.qubits)
    return tuple(sorted(used))


def observable_support(observables) -> set[int]:
    support: set[int] = set()
    for obs in observables:
        mask = (obs.paulis.z | obs.paulis.x).any(axis=0)
        support.update(int(i) for i in mask.nonzero()[0])
    return support


def reduce_circuit(circuit: QuantumCircuit, keep: tuple[int, ...]) -> ReducedCircuit:
    index = {q: i for i, q in enumerate(keep)}
    reduced = QuantumCircuit(len(keep), circuit.num_clbits, global_phase=circuit.global_phase,
                             name=circuit.name, metadata=dict(circuit.metadata or {}))
    for inst in circuit.data:
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if inst.operation.name in IGNORED:
            qubits = [q for q in qubits if q in index]
            if not qubits or inst.operation.name == "delay":
                continue
            reduced.barrier([index[q] for q in qubits])
            continue
        clbits = [circuit.find_bit(c).index for c in inst.clbits]
        reduced.append(inst.operation, [index[q] for q in qubits], clbits)
    return ReducedCircuit(reduced, keep)


def reduced_noise_model(full, keep: tuple[int, ...]):
    """Copy the local gate and readout errors of the kept qubits into a k-qubit NoiseModel."""
    from qiskit_aer.noise import NoiseModel

    index = {q: i for i, q in enumerate(keep)}
    model = NoiseModel(basis_gates=sorted(full.basis_gates))
    # NoiseModel has no public iterator over its local errors; these dicts are its storage
    for gate, per_qubits in full._local_quantum_errors.items():
        for qubits, error in per_qubits.items():
            if all(q in index for q in qubits):
                model.add_quantum_error(error, gate, [index[q] for q in qubits], warnings=False)
    for gate, error in full._default_quantum_errors.items():
        model.add_all_qubit_quantum_error(error, gate, warnings=False)
    for qubits, error in full._local_readout_errors.items():
        if all(q in index for q in qubits):
            model.add_readout_error(error, [index[q] for q in qubits], warnings=False)
    if full._default_readout_error is not None:
        model.add_all_qubit_readout_error(full._default_readout_error, warnings=False)
    return model
