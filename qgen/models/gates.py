"""Bottleneck channel gates: quantum (EstimatorQNN via TorchConnector) and its honest controls.

Both gates share the same classical shell, so the only difference between the arms of an
experiment is the middle map from ``n`` angles to ``n`` readouts:

    h (B,C,7,7) -> global mean pool -> Linear(C->n) -> pi*tanh -> [middle] -> Linear(n->C)
      -> h * 2*sigmoid(.)       (2*sigmoid so that a zero gate signal leaves h unchanged)

* quantum middle: the variational circuit, <Z_q> readouts, 2*n*layers trainable angles.
* classical middle: ``layers`` blocks of (per-unit scale and shift -> tanh -> fixed orthogonal
  mixing), i.e. exactly 2*n*layers trainable parameters, mirroring the circuit's two rotation
  angles per qubit per layer and its fixed entangler.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class ChannelGate(nn.Module):
    """The shared shell around a middle map ``middle: (B, n) -> (B, n)``."""

    def __init__(self, channels: int, n: int, middle: nn.Module):
        super().__init__()
        self.squeeze = nn.Linear(channels, n)
        self.middle = middle
        self.excite = nn.Linear(n, channels)
        # start near the identity gate (2*sigmoid(0) = 1) but with small non-zero weights, so the
        # middle map receives gradient from the very first step
        nn.init.normal_(self.excite.weight, std=0.1)
        nn.init.zeros_(self.excite.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        angles = math.pi * torch.tanh(self.squeeze(h.mean(dim=(2, 3))))
        readout = self.middle(angles)
        gate = 2.0 * torch.sigmoid(self.excite(readout.to(h.dtype)))
        return h * gate[:, :, None, None]


class QuantumMiddle(nn.Module):
    """Wraps a ``TorchConnector(EstimatorQNN)``; runs it on the host in float64 as qiskit-ml expects.

    The connector stays on the CPU whatever device the rest of the model moves to (``_apply`` skips
    it): every call goes through numpy on the host anyway, MPS has no float64, and on a GPU the
    circuit weights would otherwise be copied device -> host and back at every call. The angles
    cross to the host here and the readouts cross back; autograd carries the gradients back to the
    device the angles came from.
    """

    def __init__(self, connector: nn.Module):
        super().__init__()
        self.qnn = connector

    def _apply(self, fn, recurse=True):
        # ``model.to(device)`` / ``.cuda()`` / ``.half()`` reach modules through _apply: leave the
        # connector (its weights and their gradients) on the host in float64
        qnn = self._modules.pop("qnn")
        try:
            return super()._apply(fn, recurse)
        finally:
            self._modules["qnn"] = qnn

    @property
    def num_weights(self) -> int:
        return self.qnn.weight.numel()

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        host = self.qnn.weight.device
        return self.qnn(angles.to(host, torch.float64)).to(angles.device, torch.float32)


class ClassicalMiddle(nn.Module):
    """Parameter-matched classical stand-in for the circuit: 2*n*layers trainable parameters."""

    def __init__(self, n: int, layers: int, seed: int = 0):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(layers, n))
        self.shift = nn.Parameter(torch.zeros(layers, n))
        rng = np.random.default_rng(seed)
        mixers = [np.linalg.qr(rng.normal(size=(n, n)))[0] for _ in range(layers)]
        # fixed, like the CNOT entangler: a buffer, not a parameter
        self.register_buffer("mixers", torch.tensor(np.stack(mixers), dtype=torch.float32))

    @property
    def num_weights(self) -> int:
        return self.scale.numel() + self.shift.numel()

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        x = angles
        for layer in range(self.scale.shape[0]):
            x = torch.tanh(self.scale[layer] * x + self.shift[layer]) @ self.mixers[layer].T
        return x
