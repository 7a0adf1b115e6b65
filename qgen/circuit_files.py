"""``qgen circuits``: transpile a model's circuit for a backend and write the inspection files, without training."""

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
from qgen.commands import CircuitsCommand
from qgen.noise.factory import bit_sampling_for


def write_circuits(command: CircuitsCommand) -> list[Path]:
    """The transpiled circuit (and, with ``noise_circuit``, those of the noise bits), each a folder
    under the circuits root; their paths."""
    backend = load_backend(command.backend, command.backends_file, local=command.local)
    try:  # transpiling opens no Session; whatever the backend holds is released on every way out
        root = default_circuits_root()
        circuit = build_ansatz(command.ansatz())
        paths = [write_prepared_artifacts(backend, backend.prepare(circuit), root)]
        if command.noise_circuit:
            paths.extend(write_noise_circuits(backend, root))
        return paths
    finally:
        backend.close()


def write_noise_circuits(backend: QuantumBackend, root: Path) -> list[Path]:
    """The circuit(s) the noise bit source sends to its sampler."""
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
