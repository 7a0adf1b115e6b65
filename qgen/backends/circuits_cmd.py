"""``qgen circuits``: transpile for a backend and write the inspection files, without training."""

from __future__ import annotations

from pathlib import Path

from qgen.backends.artifacts import circuit_stats, default_circuits_root, write_circuit_artifacts
from qgen.backends.qnn import QuantumBackend, write_prepared_artifacts
from qgen.backends.spec import get_backend
from qgen.circuits import AnsatzSpec, build_ansatz


def write_backend_circuits(backend_name: str, backends_file: Path | None, *, qubits: int, layers: int,
                           entanglement: str, noise_circuit: bool, local: bool = False) -> list[Path]:
    backend = QuantumBackend(get_backend(backend_name, backends_file), local=local)
    root = default_circuits_root()
    circuit = build_ansatz(AnsatzSpec(qubits, layers, entanglement))
    paths = [write_prepared_artifacts(backend, backend.prepare(circuit), root)]
    if noise_circuit:
        paths.extend(write_noise_circuits(backend, root))
    return paths


def write_noise_circuits(backend: QuantumBackend, root: Path) -> list[Path]:
    """The circuit(s) the noise bit source sends to its sampler."""
    from qgen.noise.factory import bit_source_for

    source, _ = bit_source_for(backend)
    spec = backend.spec
    # the ibm source runs a device-wide ISA circuit; fake/aer sources run small local circuits
    target = backend.target if spec.kind == "ibm" else None
    paths = []
    for pub in source.pubs:
        circuit = pub if not isinstance(pub, tuple) else pub[0]
        stats = circuit_stats(circuit, backend_name=spec.device or spec.name,
                              backend_version=getattr(backend.device, "backend_version", None),
                              optimization_level=spec.optimization_level, seed_transpiler=spec.seed_transpiler,
                              target=target, extra={"purpose": "quantum noise bits", "source": source.backend_name})
        paths.append(write_circuit_artifacts(root, spec.name, circuit, stats))
    return paths
