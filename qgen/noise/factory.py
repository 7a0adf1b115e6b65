"""Build the run's quantum bit source and entropy pool from what the backend offers.

The backend (``qgen.backends``) says how it measures qgen's entropy circuit: its sampler, the
circuits ready for it, and whether the raw bits need extraction (``QuantumBackend.bit_sampling``;
the table per kind is in ``qgen.backends.bit_sampling``). This module turns that into a
``QuantumBitSource``, the extractors and the pool.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from qgen.backends.bit_sampling import BitSampling
from qgen.backends.job_files import job_files
from qgen.errors import QgenError
from qgen.noise.bit_source import DEFAULT_MAX_SHOTS_PER_JOB, QuantumBitSource
from qgen.noise.circuits import hadamard_circuit
from qgen.noise.extract import default_extractors, nominal_yield
from qgen.noise.mixed import MixedNoise
from qgen.noise.pool import DEFAULT_REFILL_SHOTS, EntropyPool, largest_output_block
from qgen.noise.refill import RefillShape
from qgen.noise.sources import ClassicalNoise, QuantumNoise

if TYPE_CHECKING:
    from qgen.rundir import RunDir


def bit_sampling_for(backend) -> BitSampling:
    """How ``backend`` (a ``qgen.backends.base.QuantumBackend``) measures the entropy circuit:
    H on every qubit."""
    return backend.bit_sampling(hadamard_circuit)


def bit_source_for(backend) -> tuple[QuantumBitSource, bool]:
    """(source, needs_extraction) for a ``qgen.backends.base.QuantumBackend``."""
    sampling = bit_sampling_for(backend)
    return QuantumBitSource.from_bit_sampling(sampling), sampling.needs_extraction


def open_pool(directory: Path, backend, seed: int, *, reuse: bool = False,
              shot_budget: int | None = None, resume_key: str | None = None, label: str | None = None) -> EntropyPool:
    source, needs_extraction = bit_source_for(backend)
    extractors = default_extractors(seed=seed) if needs_extraction else []
    budget = shot_budget if shot_budget is not None else backend.spec.shot_budget
    return EntropyPool.open(directory, source=source, extractors=extractors, shot_budget=budget,
                            reuse=reuse, seed=seed, resume_key=resume_key, label=label)


def quantum_noise_for_run(run: RunDir, backend, seed: int, *, reuse: bool = False,
                          shot_budget: int | None = None, resume_key: str | None = None) -> QuantumNoise:
    """Quantum N(0, 1) for a run: bits come from (and are recorded in) ``run``'s pool.
    ``resume_key``: the command's request, so an interrupted one resumes at the bits it had reserved."""
    if run is None:
        raise QgenError("quantum noise needs a run directory for its entropy pool")
    directory = pool_dir(run, backend)
    # provenance (sample metadata, the manifest) names the pool relative to the run directory
    label = Path(os.path.relpath(directory, run.path)).as_posix()
    return QuantumNoise(open_pool(directory, backend, seed, reuse=reuse, shot_budget=shot_budget,
                                  resume_key=resume_key, label=label))


def pool_dir(run: RunDir, backend) -> Path:
    """One pool per run and backend: bits of different devices (and extractors) never share a stream;
    ``--local`` bits are simulated and never mix with a device's (qgen.backends.job_files)."""
    local = getattr(backend, "local", False) and backend.spends_shots
    return job_files(run, local).noise_root / backend.spec.name


def refill_shape_for(backend, observed_yield: float | None = None) -> RefillShape:
    """How the backend's pool sizes refill jobs (refill.py), for plans: without building a sampler."""
    width, nominal = source_shape(backend)
    extractors = default_extractors(seed=0) if backend.bit_sampling_shape().needs_extraction else []
    return RefillShape(width, observed_yield or nominal, largest_output_block(extractors), DEFAULT_REFILL_SHOTS,
                       DEFAULT_MAX_SHOTS_PER_JOB)


def source_shape(backend) -> tuple[int, float]:
    """(qubits measured per shot, nominal extraction yield) of the backend's bit source, for planning."""
    shape = backend.bit_sampling_shape()
    if not shape.needs_extraction:
        return shape.qubits_per_shot, 1.0
    return shape.qubits_per_shot, nominal_yield(default_extractors(seed=0))


def make_noise_source(kind: str, seed: int, run: RunDir | None, backend, *, mixing=None,
                      reuse: bool = False, shot_budget: int | None = None, resume_key: str | None = None):
    """The ε source for training or sampling: "classical", "quantum" or "mixed" (needs ``mixing``).
    ``resume_key`` reserves the pool's bits for one request (see ``EntropyPool.open``)."""
    if kind == "classical":
        return ClassicalNoise(seed)
    quantum = quantum_noise_for_run(run, backend, seed, reuse=reuse, shot_budget=shot_budget,
                                    resume_key=resume_key)
    if kind == "quantum":
        return quantum
    if kind == "mixed":
        if mixing is None:
            raise QgenError("mixed noise needs a NoiseMixing (the run's diffusion.mix_* settings)")
        return MixedNoise(quantum, ClassicalNoise(seed), mixing)
    raise QgenError(f"unknown noise {kind!r}; choose classical, quantum or mixed")


def complete_reservation(noise) -> None:
    """The command that reserved pool bits finished (its samples are written): the bits are spent.
    A no-op for classical noise."""
    quantum = getattr(noise, "quantum", noise)  # MixedNoise holds its QuantumNoise
    pool = getattr(quantum, "pool", None)
    if pool is not None:
        pool.complete()
