"""Exponential moving average of model weights, kept as tensors (not a module copy).

A shadow state dict avoids deep-copying the model, whose quantum layer holds primitives and
backend handles that should not be duplicated.

Why not diffusers' ``EMAModel`` (0.42), which has the same power warm-up (``use_ema_warmup``,
``inv_gamma=1``: its ``get_decay(n + 1)`` is this class's decay after n updates; the tests compare
them): it would change what runs write and reproduce.

* It averages ``model.parameters()`` as a positional list. qgen's EMA weights are the model's
  name-keyed state dict, floating buffers included (the classical middle's ``mixers``):
  ``checkpoint-ema.pt`` / ``checkpoint-best.pt`` are loaded by name into a model, with a one-line
  error naming the mismatching keys (``load_model_state``: ``qgen sample``, ``qgen export``), and
  every existing ``checkpoint-last.pt`` holds ``{"shadow": {name: tensor}, "num_updates": n}``.
* Its update ``s -= (1 - d) * (s - p)`` rounds differently from ``d * s + (1 - d) * p``: the first
  update (d = 0) would not copy the weights exactly, and a resumed run would not continue its EMA
  bit for bit.
* Without ``power`` (``--ema-power 0``, and runs from before the power warm-up) its decay of the
  first update is 0 where timm's warm-up, kept here, gives 0.1.
* Its ``load_state_dict`` keeps the tensors where the checkpoint put them; a run here resumes on
  another device (the shadow moves to the model's).

An adapter covering these would be longer than this class.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    """``decay`` caps the averaging; ``power`` (if set) is the warm-up 1 - (1 + n)^-power of
    lucidrains' ema-pytorch, whose window grows with the run (~n^power steps), so a short run is
    not averaged over a window longer than itself; without it, the TF/timm warm-up (1+n)/(10+n)."""

    def __init__(self, model: nn.Module, decay: float, power: float | None = None):
        self.decay = decay
        self.power = power
        self.num_updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
        # frozen parameters (train.freeze) keep their exact values: d*x + (1-d)*x rounds, and their
        # average would drift from the initial weights by a few ulps a step
        self.fixed = {k for k, p in model.named_parameters() if not p.requires_grad}

    def effective_decay(self) -> float:
        # warm-up: early averages would otherwise be dominated by the random init
        n = self.num_updates
        warm = 1 - (1 + n) ** -self.power if self.power else (1 + n) / (10 + n)
        return min(self.decay, warm)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.effective_decay()
        for k, v in model.state_dict().items():
            if k in self.shadow and k not in self.fixed:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
        self.num_updates += 1

    @contextmanager
    def applied_to(self, model: nn.Module):
        """Temporarily load the averaged weights into ``model``."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict({**backup, **self.shadow})
        try:
            yield model
        finally:
            model.load_state_dict(backup)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "power": self.power, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.power = state.get("power")  # checkpoints before the power warm-up used the timm one
        self.num_updates = state["num_updates"]
        # onto the model's devices (the shadow was made from the model): a checkpoint from a GPU
        # run resumes on a CPU and vice versa
        here = {k: v.device for k, v in self.shadow.items()}
        self.shadow = {k: v.to(here.get(k, v.device), copy=True) for k, v in state["shadow"].items()}
