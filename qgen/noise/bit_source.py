"""A source of raw quantum bits: an injected ``BaseSamplerV2`` plus already-transpiled circuits.

Nothing here knows about Aer: the same class drives an ideal Aer sampler, Aer with a device noise
model, or IBM hardware through ``qiskit_ibm_runtime`` — only the sampler factory differs, and the
backend supplies it (``QuantumBackend.bit_sampling``, see ``qgen.backends.bit_sampling``).
Simulators get a fresh seed per job (see ``seeds.py``); hardware ignores it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import qasm3
from qiskit.circuit import QuantumCircuit
from qiskit.primitives import BitArray

from qgen.backends.bit_sampling import BitSampling, SamplerFactory
from qgen.errors import QgenError
from qgen.noise.seeds import SeedChain

#: A circuit, or (circuit, parameter values) as a Sampler V2 pub accepts it.
PubLike = QuantumCircuit | tuple[QuantumCircuit, Sequence[float]]

#: IBM backends' usual per-job shot limit; also keeps one simulated job's memory bounded.
DEFAULT_MAX_SHOTS_PER_JOB = 100_000


def bitarray_to_bits(bit_array: BitArray) -> np.ndarray:
    """All bits of a (1-D, shots) ``BitArray`` as a flat uint8 0/1 array in **qubit-major** order.

    Qubit-major (all shots of clbit 0, then all shots of clbit 1, ...) matters: each qubit has its own
    bias on real hardware, and von Neumann debiasing is only unbiased when both bits of a pair come
    from the same biased coin. Adjacent bits in this order come from the same qubit.
    """
    if bit_array.ndim != 0:
        raise QgenError(
            f"expected one parameter set per circuit, got a BitArray of shape {bit_array.shape}; "
            "pass a single parameter binding per pub"
        )
    by_shot = bit_array.to_bool_array(order="little")  # (shots, clbits), column j is clbit j
    return np.ascontiguousarray(by_shot.T, dtype=np.uint8).reshape(-1)


@dataclass(frozen=True)
class BitBatch:
    """The bits of one job (qubit-major within each circuit, circuits concatenated) + provenance."""

    bits: np.ndarray
    job_id: str
    shots: int
    seed: int | None
    seconds: float

    def record(self) -> dict:
        return {"job_id": self.job_id, "shots": self.shots, "seed": self.seed,
                "raw_bits": int(self.bits.size), "seconds": round(self.seconds, 3)}


def _is_bound_pub(pubs: object) -> bool:
    """True for one ``(circuit, values)`` pub, False for a sequence of pubs."""
    return (isinstance(pubs, tuple) and len(pubs) == 2 and isinstance(pubs[0], QuantumCircuit)
            and not isinstance(pubs[1], (QuantumCircuit, tuple)))


def _circuit_of(pub: PubLike) -> QuantumCircuit:
    return pub[0] if isinstance(pub, tuple) else pub


@dataclass
class QuantumBitSource:
    """Runs the pubs (all in one job) and returns their measured bits.

    ``pubs`` must already be transpiled for the sampler's target; every circuit needs exactly one
    classical register (``measure_all`` gives ``meas``).
    """

    sampler_factory: SamplerFactory
    pubs: Sequence[PubLike]
    backend_name: str
    seeds: SeedChain = field(default_factory=SeedChain)
    max_shots_per_job: int = DEFAULT_MAX_SHOTS_PER_JOB
    seeded: bool = True  # False for hardware: no seed is drawn or recorded

    def __post_init__(self) -> None:
        if isinstance(self.pubs, QuantumCircuit) or _is_bound_pub(self.pubs):
            self.pubs = [self.pubs]
        self.pubs = list(self.pubs)
        if not self.pubs:
            raise QgenError("a quantum bit source needs at least one circuit")
        for pub in self.pubs:
            qc = _circuit_of(pub)
            if len(qc.cregs) != 1:
                raise QgenError(f"circuit {qc.name!r} must have exactly one classical register, "
                                f"has {len(qc.cregs)}; use measure_all()")

    @classmethod
    def from_bit_sampling(cls, sampling: BitSampling, **kwargs: Any) -> QuantumBitSource:
        """The source for what a backend offers (its sampler and entropy circuits)."""
        return cls(sampling.sampler_factory, list(sampling.circuits), backend_name=sampling.name,
                   seeded=sampling.seeded, **kwargs)

    @property
    def bits_per_shot(self) -> int:
        return sum(_circuit_of(p).num_clbits for p in self.pubs)

    @property
    def circuit_name(self) -> str:
        return "+".join(_circuit_of(p).name for p in self.pubs)

    def shots_for_bits(self, n_bits: int) -> int:
        return math.ceil(n_bits / self.bits_per_shot)

    def fetch(self, shots: int, seed: int | None = None, request: str | None = None) -> BitBatch:
        """One job of ``shots`` shots. Without ``seed`` the next one of ``self.seeds`` is used.

        ``request``: what the job is for (the pool's identity and job number), passed to a journaled
        sampler: after a kill the same request gets the journaled job's bits instead of a new job. The
        batch's shots are then the job's own, which may differ from ``shots``."""
        if shots < 1:
            raise QgenError(f"shots must be >= 1, got {shots}")
        if shots > self.max_shots_per_job:
            raise QgenError(f"{shots} shots exceed the {self.max_shots_per_job} allowed per job; "
                            "split the request (EntropyPool does this for you)")
        if self.seeded and seed is None:
            seed = self.seeds.next()
        if not self.seeded:
            seed = None
        start = time.perf_counter()
        sampler = self.sampler_factory(seed)
        keyed = {"request": request} if request is not None and getattr(sampler, "journals_requests", False) else {}
        job = sampler.run(list(self.pubs), shots=shots, **keyed)
        result = job.result()
        arrays = [getattr(pub_result.data, _circuit_of(pub).cregs[0].name)
                  for pub, pub_result in zip(self.pubs, result)]
        bits = np.concatenate([bitarray_to_bits(array) for array in arrays])
        return BitBatch(bits=bits, job_id=str(job.job_id()), shots=int(arrays[0].num_shots), seed=seed,
                        seconds=time.perf_counter() - start)

    def describe(self) -> dict:
        circuits = []
        for pub in self.pubs:
            qc = _circuit_of(pub)
            entry = {"name": qc.name, "num_qubits": qc.num_qubits, "qasm3": qasm3.dumps(qc)}
            if isinstance(pub, tuple):
                entry["parameter_values"] = [float(v) for v in pub[1]]
            circuits.append(entry)
        return {"backend": self.backend_name, "bits_per_shot": self.bits_per_shot,
                "max_shots_per_job": self.max_shots_per_job, "circuits": circuits}
