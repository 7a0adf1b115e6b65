"""Parameters that training leaves at their initial values (``train.freeze`` in config.toml).

``"circuit"`` freezes the bottleneck circuit's weights (the connector's ``weight``): the *quantum
frozen* control of ``qgen experiment``, where the circuit is a fixed random feature map and only the
classical layers around it learn. The weights stay in the state dict, so checkpoints, sampling and
export see the same model; because the key is in the run's config, a resumed run is frozen again
before its optimizer is rebuilt.
"""

from __future__ import annotations

from torch import nn

from qgen.errors import QgenError
from qgen.models.middles import QuantumMiddle

FREEZABLE = ("circuit",)


def circuit_weights(model: nn.Module) -> list[nn.Parameter]:
    """The circuit weights of every quantum middle in ``model`` (none for classical or plain models)."""
    return [m.qnn.weight for m in model.modules() if isinstance(m, QuantumMiddle)]


def check_freeze(parts: tuple[str, ...]) -> None:
    unknown = [p for p in parts if p not in FREEZABLE]
    if unknown:
        raise QgenError(f"unknown train.freeze entry {unknown[0]!r}; choose from {', '.join(FREEZABLE)}")


def freeze(model: nn.Module, parts: tuple[str, ...]) -> int:
    """``requires_grad = False`` on ``parts``; returns how many numbers were frozen. Freezing a
    circuit the model does not have is an error, not a silent no-op (a classical run asking for
    it is a mistake in its config)."""
    check_freeze(parts)
    frozen = 0
    for part in parts:
        weights = circuit_weights(model)
        if not weights:
            raise QgenError("train.freeze = ['circuit'] needs a model with a circuit (model.kind = 'quantum')")
        for weight in weights:
            weight.requires_grad_(False)
            frozen += weight.numel()
    return frozen


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """What the optimizer gets: a frozen parameter must not even be in it (AdamW's weight decay
    would otherwise still move it once it has a gradient from an earlier state)."""
    return [p for p in model.parameters() if p.requires_grad]
