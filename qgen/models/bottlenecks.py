"""Bottleneck designs: where the middle map (circuit or classical twin) sits in the 7x7 features.

Every design compresses features to ``n`` angles per *row*, runs the middle map on all rows at once,
and expands the ``k`` readouts back. They differ in what a row is and in whether the features can
pass around the middle:

* ``channel_gate`` -- the seed paper's placement, kept to reproduce it: global mean pool -> n
  angles -> middle -> k readouts -> per-channel gate ``h * 2 sigmoid(.)``. One row per image, and
  ``h`` itself passes on (only re-weighted), so the U-Net can route everything around the circuit:
  replacing the readouts by their batch mean leaves the images as they were (docs/results/bottleneck/).
* ``site`` -- a per-site map over the 7x7 grid ("quanvolution" at the bottleneck, as in De Falco et
  al.'s QHDM): GroupNorm -> 1x1 conv to n angles at each of the 49 sites -> middle -> 1x1 conv back.
  It *replaces* the features: nothing at 7 px reaches the decoder except through the middle.
* ``patch`` -- the same over 2x2 patches (the 7x7 map zero-padded to 8x8: 16 rows per image, each
  seeing 4 sites), a quarter of the circuit evaluations of ``site``.
* ``film`` -- a global code that modulates: pool -> n angles -> middle -> per-channel scale and
  shift of the normalised features, ``norm(h) * gamma + beta``, with no un-modulated path (the
  normalisation has no affine part of its own).

The middle's readouts pass through ``Bottleneck.handoff``, the one place where an ablation
(``qgen.models.ablation``) can replace them: the same mechanism for quantum and classical middles.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


Ablation = Callable[[torch.Tensor], torch.Tensor]


class Bottleneck(nn.Module):
    """Base: owns the middle map and the hand-off of its readouts (rows laid out per image and site)."""

    design: str = ""

    def __init__(self, middle: nn.Module):
        super().__init__()
        self.middle = middle
        # set only by qgen.models.ablation.ablated(); a plain attribute, so never in a state dict
        self.ablation: Ablation | None = None

    @classmethod
    def sites(cls, height: int = 7, width: int = 7) -> int:
        """Rows (circuit evaluations) per image and call."""
        raise NotImplementedError

    def handoff(self, angles: torch.Tensor) -> torch.Tensor:
        """(B, S, n) angles -> (B, S, k) readouts of the middle, ablated if an ablation is set."""
        b, s, n = angles.shape
        readout = self.middle(angles.reshape(b * s, n)).reshape(b, s, -1)
        return readout if self.ablation is None else self.ablation(readout)


def _angles(x: torch.Tensor) -> torch.Tensor:
    # into (-pi, pi): the rotation angles of the encoding (and the classical twin's input range)
    return math.pi * torch.tanh(x)


class ChannelGate(Bottleneck):
    """h (B,C,7,7) -> mean pool -> Linear(C->n) -> pi tanh -> middle -> Linear(k->C) -> h * 2 sigmoid(.)

    2*sigmoid so that a zero gate signal leaves h unchanged. Parameter names are the original
    gate's (squeeze, middle, excite): runs trained before the other designs existed still load.
    """

    design = "channel_gate"

    def __init__(self, channels: int, n: int, middle: nn.Module, k: int | None = None):
        super().__init__(middle)
        self.squeeze = nn.Linear(channels, n)
        self.excite = nn.Linear(k or n, channels)
        # start near the identity gate (2*sigmoid(0) = 1) but with small non-zero weights, so the
        # middle map receives gradient from the very first step
        nn.init.normal_(self.excite.weight, std=0.1)
        nn.init.zeros_(self.excite.bias)

    @classmethod
    def sites(cls, height: int = 7, width: int = 7) -> int:
        return 1

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        angles = _angles(self.squeeze(h.mean(dim=(2, 3))))
        readout = self.handoff(angles[:, None])[:, 0]
        gate = 2.0 * torch.sigmoid(self.excite(readout.to(h.dtype)))
        return h * gate[:, :, None, None]


class SiteMap(Bottleneck):
    """Per-site map over the 7x7 grid; replaces the features (no path around the middle)."""

    design = "site"

    def __init__(self, channels: int, n: int, middle: nn.Module, k: int, groups: int):
        super().__init__(middle)
        self.norm = nn.GroupNorm(groups, channels)
        self.encode = nn.Conv2d(channels, n, 1)
        self.decode = nn.Conv2d(k, channels, 1)

    @classmethod
    def sites(cls, height: int = 7, width: int = 7) -> int:
        return height * width

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, _, height, width = h.shape
        angles = _angles(self.encode(self.norm(h)))                      # (B, n, H, W)
        rows = angles.flatten(2).transpose(1, 2)                         # (B, H*W, n)
        readout = self.handoff(rows).to(h.dtype)                         # (B, H*W, k)
        return self.decode(readout.transpose(1, 2).reshape(b, -1, height, width))


class PatchMap(Bottleneck):
    """Per-patch map: the 7x7 map zero-padded to 8x8, one row per 2x2 patch; replaces the features."""

    design = "patch"
    patch = 2

    def __init__(self, channels: int, n: int, middle: nn.Module, k: int, groups: int):
        super().__init__(middle)
        p = self.patch
        self.norm = nn.GroupNorm(groups, channels)
        self.encode = nn.Linear(channels * p * p, n)
        self.decode = nn.Linear(k, channels * p * p)

    @classmethod
    def sites(cls, height: int = 7, width: int = 7) -> int:
        return math.ceil(height / cls.patch) * math.ceil(width / cls.patch)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c, height, width = h.shape
        p = self.patch
        ph, pw = -height % p, -width % p
        x = nn.functional.pad(self.norm(h), (0, pw, 0, ph))              # (B, C, 8, 8)
        patches = nn.functional.unfold(x, p, stride=p).transpose(1, 2)   # (B, 16, C*p*p)
        readout = self.handoff(_angles(self.encode(patches))).to(h.dtype)
        out = self.decode(readout).transpose(1, 2)                       # (B, C*p*p, 16)
        out = nn.functional.fold(out, (height + ph, width + pw), p, stride=p)
        return out[:, :, :height, :width]


class FiLM(Bottleneck):
    """Global code that modulates: ``norm(h) * gamma + beta``, gamma and beta from the readouts only."""

    design = "film"

    def __init__(self, channels: int, n: int, middle: nn.Module, k: int, groups: int):
        super().__init__(middle)
        self.norm = nn.GroupNorm(groups, channels, affine=False)
        self.squeeze = nn.Linear(channels, n)
        self.modulate = nn.Linear(k, 2 * channels)
        # start at gamma = 1, beta = 0 (a plain GroupNorm) with small weights, so the readouts get
        # gradient from the first step and the start is stable
        nn.init.normal_(self.modulate.weight, std=0.1)
        with torch.no_grad():
            self.modulate.bias.copy_(torch.cat([torch.ones(channels), torch.zeros(channels)]))

    @classmethod
    def sites(cls, height: int = 7, width: int = 7) -> int:
        return 1

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        angles = _angles(self.squeeze(h.mean(dim=(2, 3))))
        readout = self.handoff(angles[:, None])[:, 0].to(h.dtype)
        gamma, beta = self.modulate(readout).chunk(2, dim=1)
        return self.norm(h) * gamma[:, :, None, None] + beta[:, :, None, None]


DESIGNS: dict[str, type[Bottleneck]] = {"channel_gate": ChannelGate, "site": SiteMap, "patch": PatchMap,
                                        "film": FiLM}


def make_bottleneck(design: str, channels: int, n: int, k: int, middle: nn.Module, groups: int) -> Bottleneck:
    if design == "channel_gate":
        return ChannelGate(channels, n, middle, k)
    return DESIGNS[design](channels, n, middle, k, groups)
