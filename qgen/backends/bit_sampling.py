"""What a backend offers the quantum-noise package: a sampler and the circuits whose bits are raw entropy.

``qgen.noise`` decides *what* to measure (its entropy circuit: H on every qubit) and what to do with
the bits (extraction, the entropy pool); the backend decides *how* to measure it: which sampler, how
many qubits, transpiled or reduced how, and whether its bits are biased enough to need extraction.

| backend kind        | bits from                                                          | extraction           |
|---------------------|--------------------------------------------------------------------|----------------------|
| statevector, aer    | Aer SamplerV2 (matrix-product state), 64 qubits, ideal             | none (fair bits)     |
| aer + noise model   | Aer SamplerV2 with the backend's noise model, 8 qubits             | von Neumann+Toeplitz |
| fake                | the device's first qubits, reduced noise model (reduced_device.py) | von Neumann+Toeplitz |
| ibm                 | the runtime Sampler, every qubit of the device (ISA)               | von Neumann+Toeplitz |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qgen.backends.aer_runs import thread_options

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit
    from qiskit.primitives import BaseSamplerV2
    from qiskit.transpiler import Target

#: Builds the sampler for one job from that job's seed (``None`` when no seed applies).
SamplerFactory = Callable[[int | None], "BaseSamplerV2"]
#: Builds the n-qubit entropy circuit (no multi-qubit gates, one classical register).
EntropyCircuit = Callable[[int], "QuantumCircuit"]

#: Width of the entropy circuit on ideal simulators: a product state, so MPS makes any width cheap.
IDEAL_WIDTH = 64


@dataclass(frozen=True)
class BitSampling:
    """How one backend measures the entropy circuit."""

    sampler_factory: SamplerFactory
    circuits: tuple[QuantumCircuit, ...]  # ready for the sampler (transpiled or reduced)
    name: str                              # where the bits come from, for provenance
    needs_extraction: bool                 # biased raw bits: von Neumann + Toeplitz before use
    seeded: bool = True                    # simulators get a fresh seed per job; hardware has none
    target: Target | None = None           # the device target the circuits are ISA for (hardware)


@dataclass(frozen=True)
class BitSamplingShape:
    """What planning needs to know without building a sampler (or contacting IBM)."""

    qubits_per_shot: int
    needs_extraction: bool


#: The ideal simulators' entropy circuit, for planning.
IDEAL_SHAPE = BitSamplingShape(IDEAL_WIDTH, needs_extraction=False)


def aer_sampler_factory(method: str = "matrix_product_state", noise_model: Any = None,
                        **backend_options: Any) -> SamplerFactory:
    """Aer ``SamplerV2`` per job with that job's seed. MPS keeps 127-qubit product states cheap."""
    # deferred: the backend kinds import this module, and the registry imports them for every command;
    # qgen info needs neither Aer nor Qiskit (~0.3 s of import, measured)
    from qiskit_aer.primitives import SamplerV2

    options = {"method": method, **thread_options(), **backend_options}
    if noise_model is not None:
        options["noise_model"] = noise_model

    def make(seed: int | None) -> BaseSamplerV2:
        return SamplerV2(seed=seed, options={"backend_options": dict(options)})

    return make


def fixed_sampler(sampler: BaseSamplerV2) -> SamplerFactory:
    """Wrap a ready sampler (e.g. the runtime's sampler on hardware), which has no seed to set."""
    return lambda seed: sampler


def ideal_bit_sampling(backend_name: str, entropy_circuit: EntropyCircuit) -> BitSampling:
    """Fair bits from an ideal Aer simulation, for backends without noise."""
    return BitSampling(aer_sampler_factory(method="matrix_product_state"), (entropy_circuit(IDEAL_WIDTH),),
                       name=f"{backend_name}:aer-ideal", needs_extraction=False)

