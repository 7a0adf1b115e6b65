"""``qgen circuits``: transpile for a backend and write the inspection files, without training."""

from __future__ import annotations

from pathlib import Path

from qgen.backends.artifacts import (
    circuit_stats,
    default_circuits_root,
    write_circuit_artifacts,
    write_prepared_artifacts,
)
from qgen.backends.base import QuantumBackend
from qgen.backends.registry import load_backend
from qgen.circuits import build_ansatz


def write_backend_circuits(backend_name: str, backends_file: Path | None, *, qubits: int, layers: int,
                           entanglement: str, noise_circuit: bool, local: bool = False, reps: int | None = None,
                           **circuit_choice) -> list[Path]:
    """``circuit_choice``: the circuit options of ``qgen train`` (``qgen.cli.circuit_options``)."""
    from qgen.circuits.choice import circuit_fields
    from qgen.models.config import ModelConfig

    fields = {"qubits": qubits, **circuit_fields(qubits=qubits, **circuit_choice)}
    spec = ModelConfig(layers=reps or layers, entanglement=entanglement, **fields).ansatz
    backend = load_backend(backend_name, backends_file, local=local)
    try:  # transpiling opens no Session; whatever the backend holds is released on every way out
        root = default_circuits_root()
        circuit = build_ansatz(spec)
        paths = [write_prepared_artifacts(backend, backend.prepare(circuit), root)]
        if noise_circuit:
            paths.extend(write_noise_circuits(backend, root))
        return paths
    finally:
        backend.close()


def write_noise_circuits(backend: QuantumBackend, root: Path) -> list[Path]:
    """The circuit(s) the noise bit source sends to its sampler."""
    from qgen.noise.factory import bit_sampling_for

    sampling = bit_sampling_for(backend)
    spec = backend.spec
    paths = []
    for circuit in sampling.circuits:
        # sampling.target: the device's, for circuits transpiled to its ISA (hardware); None for the
        # small local circuits of simulators
        stats = circuit_stats(circuit, backend_name=spec.device or spec.name,
                              backend_version=getattr(backend.device, "backend_version", None),
                              optimization_level=spec.optimization_level, seed_transpiler=spec.seed_transpiler,
                              target=sampling.target, extra={"purpose": "quantum noise bits", "source": sampling.name})
        paths.append(write_circuit_artifacts(root, spec.name, circuit, stats))
    return paths
