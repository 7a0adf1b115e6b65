"""Sample bits on a few qubits of a (fake) IBM device with their own noise, instead of all 127.

``AerSimulator.from_backend(FakeBrisbane())`` builds and carries noise for every qubit and coupler.
The entropy circuit has no two-qubit gates, so the qubits it uses are independent: we transpile on the
real device (real layout and native gates), keep only the active physical qubits, renumber them
0..n-1, and attach just their readout errors (asymmetric P(1|0) != P(0|1) — the main source of bias)
plus depolarizing + thermal-relaxation errors on their single-qubit gates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qiskit import QuantumCircuit, transpile
from qiskit.providers import BackendV2
from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error, thermal_relaxation_error

from qgen.backends.bit_sampling import BitSampling, EntropyCircuit, SamplerFactory, aer_sampler_factory
from qgen.errors import QgenError

_SKIPPED = {"barrier", "delay"}
_NOISY_GATES = ("sx", "x")
#: Measured: 10k shots take 0.03 s at 4 qubits, 0.4 s at 10, 3.7 s at 12 (MPS: 1.5 s at 24).
DENSITY_MATRIX_MAX_QUBITS = 10


def readout_flip_probabilities(backend: BackendV2, qubit: int) -> tuple[float, float]:
    """(P(read 1 | prepared 0), P(read 0 | prepared 1)) from calibration; symmetric fallback."""
    props = backend.properties() if hasattr(backend, "properties") else None
    if props is not None:
        q = props.qubit_property(qubit)
        if "prob_meas1_prep0" in q and "prob_meas0_prep1" in q:
            return float(q["prob_meas1_prep0"][0]), float(q["prob_meas0_prep1"][0])
    error = backend.target["measure"][(qubit,)].error or 0.0
    return float(error), float(error)


def with_calibrated_readout(model: NoiseModel, device: BackendV2, qubits: tuple[int, ...] | None = None) -> NoiseModel:
    """``model`` with each qubit's readout error from the device's calibration, asymmetric as measured:
    [[1 - a, a], [b, 1 - b]], a = P(1|0), b = P(0|1). Aer's ``from_backend`` takes the target's one
    measure error for both (symmetric: a readout that shrinks <Z> by 1 - a - b but never shifts it);
    on fake_fez b - a reaches 0.08. ``qubits``: the device qubit of each model qubit (default: the same)."""
    for index, qubit in enumerate(range(device.num_qubits) if qubits is None else qubits):
        a, b = readout_flip_probabilities(device, qubit)
        model.add_readout_error(ReadoutError([[1 - a, a], [b, 1 - b]]), [index], warnings=False)
    return model


@dataclass(frozen=True)
class ReducedDevice:
    backend_name: str
    physical_qubits: tuple[int, ...]
    circuit: QuantumCircuit          # on local qubits 0..n-1, native gates, ready for Aer
    noise_model: NoiseModel
    readout: tuple[tuple[float, float], ...]  # per local qubit: (P(1|0), P(0|1))

    def sampler_factory(self) -> SamplerFactory:
        # Density matrix is exact and samples all shots at once, but costs 4**n: best for a handful
        # of qubits. Beyond that, MPS keeps memory linear (the statevector of 127 qubits cannot
        # exist) at the price of one noisy trajectory per shot.
        method = "density_matrix" if len(self.physical_qubits) <= DENSITY_MATRIX_MAX_QUBITS \
            else "matrix_product_state"
        return aer_sampler_factory(method=method, noise_model=self.noise_model)

    def bit_sampling(self) -> BitSampling:
        """The reduced circuit and its sampler; device noise biases the bits, so they need extraction."""
        return BitSampling(self.sampler_factory(), (self.circuit,),
                           name=f"aer:{self.backend_name}[{','.join(map(str, self.physical_qubits))}]",
                           needs_extraction=True)


def reduce_device(backend: BackendV2, qubits: Sequence[int], build_circuit: EntropyCircuit,
                  thermal: bool = True) -> ReducedDevice:
    """Noise model + circuit for ``build_circuit(len(qubits))`` placed on ``qubits`` of ``backend``.

    ``build_circuit`` must make a circuit without multi-qubit gates (the reduction relies on it).
    """
    qubits = [int(q) for q in qubits]
    if len(set(qubits)) != len(qubits) or not all(0 <= q < backend.num_qubits for q in qubits):
        raise QgenError(f"qubits {qubits} must be distinct and within 0..{backend.num_qubits - 1}")
    logical = build_circuit(len(qubits))
    if any(inst.operation.num_qubits > 1 for inst in logical.data if inst.operation.name not in _SKIPPED):
        raise QgenError("device reduction needs a circuit without multi-qubit gates")
    placed = transpile(logical, backend, initial_layout=qubits, optimization_level=1, seed_transpiler=0)
    local_of = {p: i for i, p in enumerate(qubits)}
    local = QuantumCircuit(len(qubits), name=f"{logical.name}@{backend.name}")
    for creg in placed.cregs:
        local.add_register(creg)
    for inst in placed.data:
        if inst.operation.name in _SKIPPED:
            continue
        phys = [placed.find_bit(q).index for q in inst.qubits]
        if any(p not in local_of for p in phys):
            raise QgenError(f"transpiling moved {inst.operation.name} onto unused qubits {phys}")
        local.append(inst.operation, [local.qubits[local_of[p]] for p in phys],
                     [local.clbits[placed.find_bit(c).index] for c in inst.clbits])

    noise = NoiseModel(basis_gates=["rz", "sx", "x", "measure"])
    readout = []
    for i, p in enumerate(qubits):
        p10, p01 = readout_flip_probabilities(backend, p)
        readout.append((p10, p01))
        noise.add_readout_error(ReadoutError([[1 - p10, p10], [p01, 1 - p01]]), [i])
        props = backend.qubit_properties(p)
        for gate in _NOISY_GATES:
            inst_props = backend.target[gate][(p,)]
            error = depolarizing_error(min(inst_props.error or 0.0, 0.75), 1)
            if thermal and props is not None and props.t1 and props.t2 and inst_props.duration:
                t2 = min(props.t2, 2 * props.t1)  # physical bound; calibration data can violate it
                error = error.compose(thermal_relaxation_error(props.t1, t2, inst_props.duration))
            noise.add_quantum_error(error, gate, [i])
    return ReducedDevice(backend_name=backend.name, physical_qubits=tuple(qubits), circuit=local,
                         noise_model=noise, readout=tuple(readout))
