"""Assemble a denoiser from a ModelConfig and (for the quantum arm) a backend."""

from __future__ import annotations

import torch
from torch import nn

from qgen.models.config import ModelConfig
from qgen.models.gates import ChannelGate, ClassicalMiddle, QuantumMiddle
from qgen.models.unet import UNet


def build_model(cfg: ModelConfig, channels: int, seed: int, backend=None) -> UNet:
    """``backend`` (a QuantumBackend or a BackendSpec) is needed for ``kind == "quantum"`` only.

    Initialisation is seeded locally (fork_rng) so building a model leaves global RNG state alone.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gate: nn.Module | None = None
        c = cfg.widths[2]
        if cfg.kind == "quantum":
            gate = ChannelGate(c, cfg.qubits, QuantumMiddle(quantum_connector(cfg, backend, seed)))
        elif cfg.kind == "classical":
            gate = ChannelGate(c, cfg.qubits, ClassicalMiddle(cfg.qubits, cfg.layers, seed))
        return UNet(cfg, channels, gate)


def quantum_connector(cfg: ModelConfig, backend, seed: int) -> nn.Module:
    from qgen.backends.base import QuantumBackend, initial_weights
    from qgen.backends.registry import backend_for
    from qgen.circuits import build_ansatz
    from qgen.quantum.connector import VJPTorchConnector

    if backend is None:
        raise ValueError("a quantum model needs a backend")
    if not isinstance(backend, QuantumBackend):
        backend = backend_for(backend)
    circuit = build_ansatz(cfg.ansatz)
    qnn = backend.make_qnn(circuit)
    return VJPTorchConnector(qnn, initial_weights=initial_weights(qnn.num_weights, seed))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
