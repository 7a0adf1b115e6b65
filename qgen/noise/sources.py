"""The noise sources the diffusion code draws ε from: seeded pseudo-random and quantum-generated.

Both implement ``qgen.noise_protocol.NoiseSource`` (re-exported here); the protocol itself lives
outside ``qgen.noise`` so that ``qgen.diffusion`` can name it without the quantum machinery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from qgen.noise.convert import BITS_PER_GAUSSIAN, bits_to_gaussians
from qgen.noise.pool import EntropyPool
from qgen.noise_protocol import NoiseSource, NoiseSourceBase

__all__ = ["ClassicalNoise", "NoiseSource", "NoiseSourceBase", "QuantumNoise"]


class ClassicalNoise(NoiseSourceBase):
    """Pseudo-random N(0, 1) from a seeded CPU ``torch.Generator``.

    Drawing on the CPU and then moving keeps a seed's numbers identical on every device.
    """

    name = "classical"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.drawn = 0

    def randn(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu") -> torch.Tensor:
        out = torch.randn(tuple(shape), generator=self.generator, dtype=torch.float32)
        self.drawn += out.numel()
        return out.to(dtype=dtype, device=device)

    def provenance(self) -> dict:
        return {"name": self.name, "generator": "torch.Generator(cpu)", "seed": self.seed,
                "gaussians_drawn": self.drawn}

    # a resumed training run must continue the same pseudo-random stream, not restart it
    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.drawn = state["drawn"]


class QuantumNoise(NoiseSourceBase):
    """N(0, 1) built from the entropy pool's quantum bits (24 bits each); never falls back to PRNG.

    Stateless for checkpoints: the pool keeps its own position on disk.
    """

    name = "quantum"

    def __init__(self, pool: EntropyPool, method: str = "inverse_cdf") -> None:
        self.pool = pool
        self.method = method
        self.drawn = 0

    def randn(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu") -> torch.Tensor:
        n = math.prod(shape)
        if self.method == "box_muller" and n % 2:
            # Box-Muller makes pairs; the odd one out is drawn and discarded, never faked.
            gaussians = bits_to_gaussians(self.pool.take((n + 1) * BITS_PER_GAUSSIAN), self.method)[:n]
        else:
            gaussians = bits_to_gaussians(self.pool.take(n * BITS_PER_GAUSSIAN), self.method)
        self.drawn += n
        return torch.from_numpy(gaussians).reshape(tuple(shape)).to(dtype=dtype, device=device)

    def provenance(self) -> dict:
        return {"name": self.name, "method": self.method, "bits_per_gaussian": BITS_PER_GAUSSIAN,
                "gaussians_drawn": self.drawn, **self.pool.provenance()}
