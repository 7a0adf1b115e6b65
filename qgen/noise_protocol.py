"""The one noise interface: what the diffusion code draws ε from, and what every noise source implements.

It lives in its own tiny module (torch only) so that ``qgen.diffusion`` can name it without importing
``qgen.noise`` and its quantum machinery, while ``qgen.noise``'s sources implement it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class NoiseSource(Protocol):
    """N(0, 1) tensors on demand, plus what a run records and resumes about them."""

    name: str

    def randn(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu") -> torch.Tensor: ...

    def at(self, t: torch.Tensor | int) -> NoiseSource:
        """This source for timestep(s) ``t``: timestep-aware sources (mixing by λ(t)) bind ``t``."""
        ...

    def provenance(self) -> dict: ...

    def state_dict(self) -> dict | None:
        """What a resumed run needs to continue the same stream; None when there is nothing to keep."""
        ...

    def load_state_dict(self, state: dict) -> None: ...


class NoiseSourceBase:
    """Defaults for the parts of ``NoiseSource`` most sources do not need: timestep-blind, stateless."""

    name = "noise"

    def randn(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu") -> torch.Tensor:
        raise NotImplementedError

    def at(self, t: torch.Tensor | int) -> NoiseSource:
        return self

    def provenance(self) -> dict:
        return {"name": self.name}

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict) -> None:
        pass
