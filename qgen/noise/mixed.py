"""Quantum/classical noise blended per timestep by a ``NoiseMixing`` weight lam(t)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from qgen.diffusion.schedules import NoiseMixing
from qgen.errors import QgenError
from qgen.noise_protocol import NoiseSource, NoiseSourceBase


class MixedNoise(NoiseSourceBase):
    """eps = sqrt(lam(t)) eps_quantum + sqrt(1 - lam(t)) eps_classical.

    Needs the timestep: call ``randn(shape, t=...)`` or ``at(t).randn(shape)`` (the latter satisfies
    the plain ``NoiseSource`` protocol). Where lam is 0 (or 1) everywhere, the unused source is not
    drawn from at all, so no quantum bits are spent on steps that would weight them by zero.
    """

    name = "mixed"

    def __init__(self, quantum: NoiseSource, classical: NoiseSource, mixing: NoiseMixing) -> None:
        self.quantum = quantum
        self.classical = classical
        self.mixing = mixing

    def randn(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu", t: torch.Tensor | int | None = None) -> torch.Tensor:
        if t is None:
            raise QgenError("MixedNoise needs the timestep: call randn(shape, t=...) or at(t).randn(shape)")
        lam = self.mixing.lam(t)
        if bool((lam == 0).all()):
            return self.classical.randn(shape, dtype=dtype, device=device)
        if bool((lam == 1).all()):
            return self.quantum.randn(shape, dtype=dtype, device=device)
        eps_q = self.quantum.randn(shape, dtype=dtype, device=device)
        eps_c = self.classical.randn(shape, dtype=dtype, device=device)
        return self.mixing.mix(eps_q, eps_c, t)

    def at(self, t: torch.Tensor | int) -> NoiseSource:
        return _MixedAt(self, t)

    def provenance(self) -> dict:
        return {"name": self.name, "mixing": self.mixing.describe(),
                "quantum": self.quantum.provenance(), "classical": self.classical.provenance()}


class _MixedAt(NoiseSourceBase):
    """A ``MixedNoise`` bound to one timestep (or one timestep per batch element)."""

    def __init__(self, mixed: MixedNoise, t: torch.Tensor | int) -> None:
        self.mixed = mixed
        self.t = t
        self.name = mixed.name

    def randn(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu") -> torch.Tensor:
        return self.mixed.randn(shape, dtype=dtype, device=device, t=self.t)

    def at(self, t: torch.Tensor | int) -> NoiseSource:
        return self.mixed.at(t)

    def provenance(self) -> dict:
        return self.mixed.provenance()
