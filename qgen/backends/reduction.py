"""Simulate only the qubits a transpiled circuit uses.

A fake device's full noise model (127 or 156 qubits) makes every Aer call pay for the whole
device even when the bottleneck touches 8 qubits. After transpiling to the device ISA we keep the
active physical qubits, renumber them 0..k-1, and restrict the noise model and the observables to
them. The physics is unchanged: idle qubits carry no gates and no observable weight.

Another device reduction exists on purpose, with other semantics:
``qgen.backends.reduced_device.reduce_device`` builds a small calibrated model (readout asymmetry,
depolarizing + relaxation on single-qubit gates) for entropy circuits that have no two-qubit gates.
This module restricts the device's own NoiseModel exactly, for the QNN's estimator, and
(``reduced_backend``) the device's target, for the ``--local`` executor primitives, which measure
every qubit they see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit, QuantumRegister
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.providers import BackendV2, Options, QubitProperties
from qiskit.quantum_info import PauliList, SparsePauliOp
from qiskit.transpiler import Target
from qiskit_aer.noise import NoiseModel

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
    # the classical registers stay as they are: a sampler's result is keyed by their names ("meas")
    reduced = QuantumCircuit(QuantumRegister(len(keep), "q"), *circuit.cregs, global_phase=circuit.global_phase,
                             name=circuit.name, metadata=dict(circuit.metadata or {}))
    loose = [c for c in circuit.clbits if not circuit.find_bit(c).registers]
    if loose:
        reduced.add_bits(loose)
    for inst in circuit.data:
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if inst.operation.name in IGNORED:
            qubits = [q for q in qubits if q in index]
            if not qubits or inst.operation.name == "delay":
                continue
            reduced.barrier([index[q] for q in qubits])
            continue
        clbits = [reduced.clbits[circuit.find_bit(c).index] for c in inst.clbits]
        reduced.append(inst.operation, [reduced.qubits[index[q]] for q in qubits], clbits)
    return ReducedCircuit(reduced, keep)


def reduced_noise_model(full, keep: tuple[int, ...]):
    """Copy the local gate and readout errors of the kept qubits into a k-qubit NoiseModel."""
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


def reduce_pauli_label(label: str, keep: tuple[int, ...]) -> str:
    """A device-wide Pauli label (qubit 0 rightmost) restricted to ``keep``; refuses weight outside it."""
    width = len(label)
    kept = set(keep)
    if any(ch != "I" for q, ch in enumerate(reversed(label)) if q not in kept):
        raise ValueError("observable acts on qubits the circuit never touches")
    return "".join(label[width - 1 - q] for q in reversed(keep))


def reduce_observables_array(observables, keep: tuple[int, ...]):
    """An EstimatorPub's ObservablesArray (device-wide) restricted to the active qubits ``keep``."""
    flat = [{reduce_pauli_label(label, keep): coeff for label, coeff in obs.items()}
            for obs in observables.ravel().tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return ObservablesArray(out.reshape(observables.shape))


def readout_confusion(model, num_qubits: int):
    """Per qubit of a (reduced) NoiseModel: its 2x2 readout matrix P(read j | prepared i), shape (n, 2, 2).

    The estimator's exact probabilities never pass a measurement, so the shot-noise estimator applies
    the model's own readout errors to them (the identity where the model has none).
    """
    confusion = np.tile(np.eye(2), (num_qubits, 1, 1))
    default = model._default_readout_error  # no public accessor; see reduced_noise_model
    for q in range(num_qubits):
        error = model._local_readout_errors.get((q,), default)
        if error is not None:
            confusion[q] = np.asarray(error.probabilities, dtype=float)
    return confusion


def reduced_backend(device, keep: tuple[int, ...]):
    """A ``len(keep)``-qubit BackendV2 of ``device``: its target's instructions, qubit properties and
    calibrated errors on the kept qubits, renumbered 0..k-1 (what Aer builds a noise model from).

    The local executor primitives run the reduced circuit on this (``AerSimulator.from_backend``):
    the executor measures every qubit of its circuit, so the reduction must happen before it sees one.
    """
    full = device.target
    index = {q: i for i, q in enumerate(keep)}
    props = full.qubit_properties or [QubitProperties()] * full.num_qubits
    target = Target(num_qubits=len(keep), dt=full.dt, qubit_properties=[props[q] for q in keep],
                    granularity=full.granularity, min_length=full.min_length,
                    pulse_alignment=full.pulse_alignment, acquire_alignment=full.acquire_alignment)
    for name in full.operation_names:
        properties = full[name]
        operation = full.operation_from_name(name)
        if isinstance(operation, type) or properties is None or None in properties:
            target.add_instruction(operation, name=name)  # control flow or a global instruction
            continue
        kept = {tuple(index[q] for q in qargs): p for qargs, p in properties.items() if set(qargs) <= index.keys()}
        target.add_instruction(operation, kept, name=name)

    return _ReducedDevice(target, name=f"{device.name}[{len(keep)} active qubits]",
                          backend_version=device.backend_version)


class _ReducedDevice(BackendV2):
    """A device's target restricted to some qubits; read for its ISA and noise, never run."""

    def __init__(self, target, **kwargs) -> None:
        super().__init__(**kwargs)
        self._target = target

    @property
    def target(self):
        return self._target

    @property
    def max_circuits(self):
        return None

    @classmethod
    def _default_options(cls):
        return Options()

    def run(self, run_input, **options):
        raise NotImplementedError("a reduced device only describes the device")
