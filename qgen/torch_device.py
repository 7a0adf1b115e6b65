"""Where the torch parts run: ``--device auto|cpu|cuda[:N]|mps`` resolved to one ``torch.device``.

Only the classical tensors move (U-Net, diffusion terms, EMA, optimizer state, feature net, batches).
Everything random is drawn on the host and then moved (``qgen.noise``, the trainer's generators),
so a seed gives the same noise, timesteps and batches on every device; only the arithmetic of the
kernels differs (float rounding). The quantum layer always runs on the host (``QuantumMiddle``).

(``qgen.backends.devices`` is about IBM Quantum device names; this module is about torch.)
"""

from __future__ import annotations

import re

import torch
from torch import nn

from qgen.errors import QgenError

DEVICE_HELP = "auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps"
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name: str) -> str:
    """``name`` if it is one of the accepted spellings; the error names them otherwise."""
    if not isinstance(name, str) or not _PATTERN.match(name):
        raise QgenError(f"unknown device {name!r}; choose {DEVICE_HELP}")
    return name


def resolve_device(name: str) -> torch.device:
    """The device ``name`` means on this machine; a requested device that is not there is an error."""
    name = check_device_name(name)
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise QgenError("--device mps: no Apple-silicon GPU (MPS) is available on this machine; use "
                            "--device cpu or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise QgenError(f"--device {name}: CUDA is not available ({why}; torch {torch.__version__}); use "
                        "--device cpu or auto")
    index = int(name.split(":")[1]) if ":" in name else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise QgenError(f"--device {name}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """The spelling written to config.toml: ``cpu``, ``cuda:0``, ``mps``."""
    return str(device)


def describe_device(requested: str, device: torch.device) -> dict:
    """What the manifest records: what was asked for, what it resolved to, and the hardware."""
    out = {"requested": requested, "device": device_name(device)}
    if device.type == "cuda":
        out["name"] = torch.cuda.get_device_name(device)
        out["cuda"] = torch.version.cuda
    return out


def module_device(module) -> torch.device:
    """The device of a module's first parameter or buffer (cpu for a module without tensors, or for a
    plain function standing in for a model)."""
    if not isinstance(module, nn.Module):
        return torch.device("cpu")
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (for honest timings); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
