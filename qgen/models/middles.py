"""The middle map of a bottleneck: the circuit, or its parameter-matched classical stand-in.

A middle maps ``(rows, n)`` angles to ``(rows, k)`` readouts; the bottleneck designs
(``bottlenecks.py``) decide what a row is (one image, one site of the 7x7 map, one patch).

* quantum middle: the variational circuit (EstimatorQNN in a TorchConnector), 2*n*layers angles;
  k = n <Z> readouts, or 2n - 1 with the neighbour <ZZ> correlators (``readout = "zz"``).
* classical middle: ``layers`` blocks of (per-unit scale and shift -> tanh -> fixed orthogonal
  mixing), i.e. exactly 2*n*layers trainable parameters, mirroring the circuit's two rotation
  angles per qubit per layer and its fixed entangler; for ``zz`` the neighbour products
  x_q * x_q+1 are appended, parameter-free, as the circuit's ZZ observables are.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


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

    def __init__(self, n: int, layers: int, seed: int = 0, readout: str = "z"):
        super().__init__()
        self.readout = readout
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
        if self.readout == "zz":
            x = torch.cat([x, x[:, :-1] * x[:, 1:]], dim=1)
        return x


class MatchedMiddle(nn.Module):
    """The classical twin of any circuit: n inputs -> k readouts with exactly W trainable parameters.

    ``ClassicalMiddle`` generalised to a circuit whose weight count is not 2*n*layers (a library
    ansatz, a user circuit): the W weights fill per-unit (scale, shift) pairs of ceil(W / 2n)
    blocks of (scale and shift -> tanh -> fixed orthogonal mixing), in that order; entries past W
    stay fixed at scale 1, shift 0 (buffers). The readouts are the last block's n values as the
    circuit's Z readouts would be (``readout`` z, or zz with the neighbour products appended), or,
    where the circuit reads out k explicit observables, a fixed projection to k with unit rows --
    fixed like the observables, so it adds no parameter.
    """

    def __init__(self, n: int, k: int, weights: int, seed: int = 0, readout: str = "z",
                 explicit_observables: bool = False):
        super().__init__()
        if weights < 1:
            raise ValueError("a middle needs at least one weight")
        self.readout = None if explicit_observables else readout
        blocks = -(-weights // (2 * n))
        self.weights = nn.Parameter(torch.cat([torch.ones(n), torch.zeros(n)]).repeat(blocks)[:weights].clone())
        template = torch.cat([torch.ones(n), torch.zeros(n)]).repeat(blocks)
        self.register_buffer("fixed", template[weights:].clone())
        rng = np.random.default_rng(seed)
        mixers = [np.linalg.qr(rng.normal(size=(n, n)))[0] for _ in range(blocks)]
        self.register_buffer("mixers", torch.tensor(np.stack(mixers), dtype=torch.float32))
        projection = np.eye(n)
        if explicit_observables:
            projection = rng.normal(size=(k, n))
            projection /= np.linalg.norm(projection, axis=1, keepdims=True)
        self.register_buffer("projection", torch.tensor(projection, dtype=torch.float32))

    @property
    def num_weights(self) -> int:
        return self.weights.numel()

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        n = angles.shape[1]
        pairs = torch.cat([self.weights, self.fixed]).reshape(-1, 2, n)   # (blocks, scale|shift, n)
        x = angles
        for (scale, shift), mixer in zip(pairs, self.mixers):
            x = torch.tanh(scale * x + shift) @ mixer.T
        x = x @ self.projection.T
        if self.readout == "zz":
            x = torch.cat([x, x[:, :-1] * x[:, 1:]], dim=1)
        return x
