"""Ablations of the bottleneck's hand-off: how much do the images need what the middle map says?

Each ablation replaces the middle's readouts ``r`` (B images x S sites x k) at every model call:

* ``removal_mean``    -- r by its mean over all B*S rows of the call: the middle as a constant.
* ``removal_shuffle`` -- r by a copy shuffled over all B*S rows: right statistics, wrong place.
* ``content_mean``    -- at each site, r by its mean over the B images: layout kept, what makes
                         each image itself removed.
* ``content_shuffle`` -- the images' maps permuted across the batch (one permutation for all
                         sites): each image gets another image's whole, intact map.

For a global design (S = 1) removal and content coincide. A model that ignores its middle gives
FLD ratios (ablated / as trained) of 1; one whose images pass through it, ratios well above 1.
The shuffles draw from their own seeded generator: an ablated sample is reproducible and leaves
every other random stream (x_T, the sampler's noise) as it was.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from qgen.errors import QgenError
from qgen.models.bottlenecks import Bottleneck

REMOVAL = ("removal_mean", "removal_shuffle")
CONTENT = ("content_mean", "content_shuffle")
ABLATIONS = REMOVAL + CONTENT


@dataclass
class Ablate:
    """The readout replacement of one ablation mode (a callable ``(B, S, k) -> (B, S, k)``)."""

    mode: str
    generator: torch.Generator

    def __post_init__(self) -> None:
        if self.mode not in ABLATIONS:
            raise QgenError(f"unknown ablation {self.mode!r}; choose one of {', '.join(ABLATIONS)}")

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        b, s, k = r.shape
        if self.mode == "removal_mean":
            return r.mean(dim=(0, 1), keepdim=True).expand_as(r)
        if self.mode == "removal_shuffle":
            order = torch.randperm(b * s, generator=self.generator).to(r.device)
            return r.reshape(b * s, k)[order].reshape(b, s, k)
        if self.mode == "content_mean":
            return r.mean(dim=0, keepdim=True).expand_as(r)
        return r[torch.randperm(b, generator=self.generator).to(r.device)]


def bottlenecks(model: nn.Module) -> list[Bottleneck]:
    return [m for m in model.modules() if isinstance(m, Bottleneck)]


@contextmanager
def ablated(model: nn.Module, mode: str, seed: int = 0):
    """Within the block, every bottleneck of ``model`` hands on ablated readouts."""
    found = bottlenecks(model)
    if not found:
        raise QgenError("this model has no bottleneck block to ablate (a plain U-Net)")
    ablate = Ablate(mode, torch.Generator().manual_seed(seed))
    for block in found:
        block.ablation = ablate
    try:
        yield
    finally:
        for block in found:
            block.ablation = None
