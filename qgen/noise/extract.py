"""Randomness extractors: turn biased/imperfect raw bits into (close to) fair, independent bits.

* ``VonNeumannExtractor``: pairs 01 -> 0, 10 -> 1, 00/11 dropped. Exactly unbiased for independent bits
  from one coin of any bias, at a rate p(1-p) output bits per input bit (<= 1/4).
* ``ToeplitzExtractor``: a seeded random Toeplitz matrix over GF(2) (a 2-universal hash) maps each
  input block of n bits to m = ratio * n bits. By the leftover hash lemma the output is close to
  uniform when ratio is below the raw min-entropy per bit, so check ``noise_report``'s estimate.
Chaining both (``extract``) removes the per-qubit bias first and averages out what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.linalg import toeplitz

from qgen.errors import QgenError


class Extractor(Protocol):
    def __call__(self, bits: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict: ...


@dataclass(frozen=True)
class VonNeumannExtractor:
    def __call__(self, bits: np.ndarray) -> np.ndarray:
        pairs = np.asarray(bits, dtype=np.uint8)[: bits.size // 2 * 2].reshape(-1, 2)
        return pairs[pairs[:, 0] != pairs[:, 1], 0].copy()

    def describe(self) -> dict:
        return {"name": "von_neumann"}


@dataclass(frozen=True)
class ToeplitzExtractor:
    """Hash blocks of ``block_bits`` input bits to ``round(ratio * block_bits)`` output bits.

    An incomplete final block is dropped (hashing a short block would need a different matrix).
    """

    ratio: float = 0.5
    block_bits: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1:
            raise QgenError(f"Toeplitz output/input ratio must be in (0, 1], got {self.ratio}")
        if not 8 <= self.block_bits <= 1 << 20:
            raise QgenError(f"Toeplitz block_bits must be in [8, 2**20], got {self.block_bits}")

    @property
    def out_bits(self) -> int:
        return max(1, round(self.ratio * self.block_bits))

    def matrix(self) -> np.ndarray:
        """(block_bits, out_bits) 0/1 matrix, defined by block_bits + out_bits - 1 seeded bits."""
        rng = np.random.default_rng(self.seed)
        diag = rng.integers(0, 2, self.block_bits + self.out_bits - 1, dtype=np.uint8)
        return toeplitz(diag[: self.block_bits], diag[self.block_bits - 1:]).astype(np.float32)

    def __call__(self, bits: np.ndarray) -> np.ndarray:
        n_blocks = bits.size // self.block_bits
        blocks = np.asarray(bits[: n_blocks * self.block_bits]).reshape(n_blocks, self.block_bits)
        matrix = self.matrix()
        out = np.empty((n_blocks, self.out_bits), dtype=np.uint8)
        step = max(1, (1 << 24) // self.block_bits)  # ~64 MiB of float32 per chunk
        for start in range(0, n_blocks, step):
            # Counts of ones are at most block_bits <= 2**20 < 2**24, so float32 matmul is exact.
            counts = blocks[start:start + step].astype(np.float32) @ matrix
            out[start:start + step] = counts.astype(np.int64) & 1
        return out.reshape(-1)

    def describe(self) -> dict:
        return {"name": "toeplitz", "ratio": self.ratio, "block_bits": self.block_bits,
                "out_bits": self.out_bits, "seed": self.seed}


def extract(bits: np.ndarray, extractors: Sequence[Extractor]) -> np.ndarray:
    """Apply the extractors in order (empty = raw bits)."""
    out = np.asarray(bits, dtype=np.uint8)
    for extractor in extractors:
        out = extractor(out)
    return out


def describe_extractors(extractors: Sequence[Extractor]) -> list[dict]:
    return [e.describe() for e in extractors]


def nominal_yield(extractors: Sequence[Extractor]) -> float:
    """Extracted bits per raw bit for fair raw bits (von Neumann keeps 1/4, Toeplitz its ratio).

    Biased raw bits give less (von Neumann keeps p(1-p)); use it for planning, not as a promise.
    """
    ratio = 1.0
    for e in extractors:
        ratio *= 0.25 if isinstance(e, VonNeumannExtractor) else getattr(e, "ratio", 1.0)
    return ratio


def default_extractors(seed: int = 0) -> list[Extractor]:
    """Von Neumann then Toeplitz(0.5): safe for raw bits whose per-qubit bias is unknown."""
    return [VonNeumannExtractor(), ToeplitzExtractor(ratio=0.5, seed=seed)]
