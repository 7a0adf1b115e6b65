"""Assemble a denoiser from a ModelConfig and (for the quantum arm) a backend."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qgen.errors import QgenError, first_line
from qgen.models.config import ModelConfig
from qgen.models.bottlenecks import make_bottleneck
from qgen.models.middles import ClassicalMiddle, MatchedMiddle, QuantumMiddle
from qgen.models.unet import UNet
from qgen.rundir.layout import CONFIG


def build_model(cfg: ModelConfig, channels: int, seed: int, backend=None) -> UNet:
    """``backend`` (a QuantumBackend or a BackendSpec) is needed for ``kind == "quantum"`` only.

    Initialisation is seeded locally (fork_rng) so building a model leaves global RNG state alone.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gate: nn.Module | None = None
        if cfg.kind == "quantum":
            middle = QuantumMiddle(quantum_connector(cfg, backend, seed))
        elif cfg.kind == "classical":
            middle = classical_middle(cfg, seed)
        if cfg.kind != "plain":
            gate = make_bottleneck(cfg.bottleneck, cfg.widths[2], cfg.inputs, cfg.readouts, middle, cfg.groups)
        else:
            # no block, but the same random draws as one (then dropped): the shared layers below start
            # from the weights of a gated model of the same seed, so plain-vs-gated is a paired comparison
            make_bottleneck(cfg.bottleneck, cfg.widths[2], cfg.inputs, cfg.readouts, classical_middle(cfg, seed),
                            cfg.groups)
        return UNet(cfg, channels, gate)


def classical_middle(cfg: ModelConfig, seed: int) -> nn.Module:
    """The parameter-matched twin: the original one for the original circuit (old runs load), the
    generalised one (as many weights as the circuit, its n inputs and k readouts) for any other."""
    spec = cfg.ansatz
    if spec.is_original:
        return ClassicalMiddle(cfg.qubits, cfg.layers, seed, cfg.readout)
    return MatchedMiddle(spec.num_inputs, spec.num_readouts, spec.num_weights, seed, spec.readout,
                         explicit_observables=bool(spec.observables))


def quantum_connector(cfg: ModelConfig, backend, seed: int) -> nn.Module:
    # deferred: classical and plain models never need the quantum stack (qiskit-machine-learning and the
    # backends: ~1.2 s of import after torch, measured)
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


def load_model_state(model: nn.Module, state: dict, source: str | Path) -> None:
    """``model.load_state_dict(state)``, or one line saying that the run's config and the checkpoint
    ``source`` disagree, with the first mismatching keys and shapes (a hand-edited config, a
    checkpoint from another run)."""
    mismatch = state_mismatch_text(model.state_dict(), state)
    if mismatch:
        raise QgenError(_disagree(source, mismatch))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # anything the key/shape comparison did not foresee: still one line
        raise QgenError(_disagree(source, first_line(exc))) from None


def _disagree(source, detail: str) -> str:
    return (f"{source} does not fit the model that {CONFIG} describes ({CONFIG} and the checkpoint "
            f"disagree): {detail}. Restore the run's {CONFIG} or use its own checkpoint")


def state_mismatch_text(expected: dict, found: dict) -> str | None:
    """The first three of ``state_mismatches`` and how many more, for a one-line error; None when
    ``found`` loads where ``expected`` is wanted."""
    mismatches = state_mismatches(expected, found)
    if not mismatches:
        return None
    return "; ".join(mismatches[:3]) + (f"; and {len(mismatches) - 3} more" if len(mismatches) > 3 else "")


def state_mismatches(expected: dict, found: dict) -> list[str]:
    """What keeps ``found`` from loading where ``expected`` is wanted, one phrase per key."""
    if not isinstance(found, dict):
        return [f"a {type(found).__name__} where a state dict of tensors belongs"]
    out = []
    for key, want in expected.items():
        if key not in found:
            out.append(f"missing {key}")
        elif getattr(found[key], "shape", None) != want.shape:
            got = tuple(found[key].shape) if hasattr(found[key], "shape") else type(found[key]).__name__
            out.append(f"{key} is {got} in the checkpoint, {tuple(want.shape)} in the model")
    out += [f"unexpected {key}" for key in found if key not in expected]
    return out
