"""Pick the bit source for a backend and open the run's entropy pool.

| backend kind        | bits from                                                         | extraction        |
|---------------------|-------------------------------------------------------------------|-------------------|
| statevector, aer    | Aer SamplerV2 (matrix-product state), H on 64 qubits, ideal       | none (fair bits)  |
| aer + noise model   | Aer SamplerV2 with the backend's noise model, H on 8 qubits       | von Neumann+Toeplitz |
| fake                | the device's first qubits, reduced noise model (qgen.noise.fake_device) | von Neumann+Toeplitz |
| ibm                 | the runtime Sampler, H on every qubit of the device (ISA)         | von Neumann+Toeplitz |
"""

from __future__ import annotations

from pathlib import Path

from qgen.errors import QgenError
from qgen.noise.circuits import hadamard_circuit
from qgen.noise.extract import default_extractors
from qgen.noise.pool import EntropyPool
from qgen.noise.source import QuantumBitSource, aer_sampler_factory
from qgen.noise.sources import QuantumNoise

IDEAL_WIDTH = 64
NOISY_AER_WIDTH = 8
FAKE_DEVICE_WIDTH = 10   # density-matrix simulation of the reduced device stays exact up to here


def bit_source_for(backend) -> tuple[QuantumBitSource, bool]:
    """(source, needs_extraction) for a ``qgen.backends.qnn.QuantumBackend``."""
    spec = backend.spec
    if spec.kind == "statevector" or (spec.kind == "aer" and spec.noise == "ideal"):
        factory = aer_sampler_factory(method="matrix_product_state")
        return QuantumBitSource(factory, [hadamard_circuit(IDEAL_WIDTH)], backend_name=f"{spec.name}:aer-ideal"), False
    if spec.kind == "aer":
        factory = aer_sampler_factory(method="density_matrix", noise_model=backend.noise_model())
        return QuantumBitSource(factory, [hadamard_circuit(NOISY_AER_WIDTH)], backend_name=f"{spec.name}:aer-noisy"), True
    if spec.kind == "fake":
        from qgen.noise.fake_device import reduce_device

        device = backend.device
        return reduce_device(device, tuple(range(min(FAKE_DEVICE_WIDTH, device.num_qubits)))).source(), True
    if spec.kind == "ibm":
        circuit = hadamard_circuit(backend.device.num_qubits)
        isa = backend.pass_manager().run(circuit)
        source = QuantumBitSource.from_sampler(backend.sampler(), [isa], backend_name=spec.device)
        return source, True
    raise QgenError(f"no quantum bit source for backend kind {spec.kind!r}")


def open_pool(directory: Path, backend, seed: int, *, reuse: bool = False,
              shot_budget: int | None = None) -> EntropyPool:
    source, needs_extraction = bit_source_for(backend)
    extractors = default_extractors(seed=seed) if needs_extraction else []
    budget = shot_budget if shot_budget is not None else backend.spec.shot_budget
    return EntropyPool.open(directory, source=source, extractors=extractors, shot_budget=budget,
                            reuse=reuse, seed=seed)


def quantum_noise_for_run(run_dir: Path, backend, seed: int, *, reuse: bool = False,
                          shot_budget: int | None = None) -> QuantumNoise:
    """Quantum N(0, 1) for a run: bits come from (and are recorded in) ``run_dir``'s pool."""
    if run_dir is None:
        raise QgenError("quantum noise needs a run directory for its entropy pool")
    return QuantumNoise(open_pool(pool_dir(run_dir, backend), backend, seed, reuse=reuse, shot_budget=shot_budget))


def pool_dir(run_dir: Path, backend) -> Path:
    """One pool per run and backend: bits of different devices (and extractors) never share a stream."""
    from qgen.rundir import RunDir

    return RunDir(run_dir).noise_pool_dir(backend.spec.name)



def source_shape(backend) -> tuple[int, float]:
    """(qubits measured per shot, nominal extraction yield) of the backend's bit source, for planning."""
    spec = backend.spec
    if spec.kind == "statevector" or (spec.kind == "aer" and spec.noise == "ideal"):
        return IDEAL_WIDTH, 1.0
    from qgen.noise.extract import nominal_yield

    yield_ = nominal_yield(default_extractors(seed=0))
    if spec.kind == "aer":
        return NOISY_AER_WIDTH, yield_
    from qgen.backends.devices import fake_backend

    width = fake_backend(spec.device).num_qubits  # the fake twin knows the device's size offline
    return (min(FAKE_DEVICE_WIDTH, width) if spec.kind == "fake" else width), yield_


def make_noise_source(kind: str, seed: int, run_dir: Path | None, backend, *, mixing=None,
                      reuse: bool = False, shot_budget: int | None = None):
    """The ε source for training or sampling: "classical", "quantum" or "mixed" (needs ``mixing``)."""
    from qgen.noise.mixed import MixedNoise
    from qgen.noise.sources import ClassicalNoise

    if kind == "classical":
        return ClassicalNoise(seed)
    quantum = quantum_noise_for_run(run_dir, backend, seed, reuse=reuse, shot_budget=shot_budget)
    if kind == "quantum":
        return quantum
    if kind == "mixed":
        if mixing is None:
            raise QgenError("mixed noise needs a NoiseMixing (the run's diffusion.mix_* settings)")
        return MixedNoise(quantum, ClassicalNoise(seed), mixing)
    raise QgenError(f"unknown noise {kind!r}; choose classical, quantum or mixed")
