"""Bits -> uniforms -> standard normal samples.

Each uniform takes 24 bits: u = (k + 1/2) / 2**24 for the 24-bit integer k, the midpoint of its
cell, so u is never 0 or 1 and the inverse CDF never returns +-inf (|z| <= 5.4). The uniforms are
float64 because float32 cannot hold those midpoints near 1 (it would round 1 - 2**-25 up to 1.0);
the Gaussians come out float32.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from qgen.errors import QgenError

BITS_PER_UNIFORM = 24
#: Both methods spend one uniform per Gaussian (Box-Muller: two uniforms -> two Gaussians).
BITS_PER_GAUSSIAN = BITS_PER_UNIFORM
GAUSSIAN_METHODS = ("inverse_cdf", "box_muller")


def bits_to_uniforms(bits: np.ndarray) -> np.ndarray:
    """Every 24 bits (MSB first) -> one float64 uniform in (0, 1). Leftover bits are an error."""
    if bits.size % BITS_PER_UNIFORM:
        raise QgenError(f"{bits.size} bits is not a multiple of {BITS_PER_UNIFORM} bits per uniform")
    packed = np.packbits(np.asarray(bits, dtype=np.uint8).reshape(-1, BITS_PER_UNIFORM), axis=1)
    k = (packed[:, 0].astype(np.int64) << 16) | (packed[:, 1].astype(np.int64) << 8) | packed[:, 2]
    return (k + 0.5) / float(1 << BITS_PER_UNIFORM)


def uniforms_to_gaussians(u: np.ndarray, method: str = "inverse_cdf") -> np.ndarray:
    """Standard normal float32 samples, one per uniform."""
    if method == "inverse_cdf":
        return ndtri(u).astype(np.float32)
    if method == "box_muller":
        if u.size % 2:
            raise QgenError("Box-Muller needs an even number of uniforms")
        u1, u2 = u[0::2], u[1::2]
        radius = np.sqrt(-2.0 * np.log(u1))
        out = np.empty(u.size, dtype=np.float32)
        out[0::2] = radius * np.cos(2 * np.pi * u2)
        out[1::2] = radius * np.sin(2 * np.pi * u2)
        return out
    raise QgenError(f"unknown Gaussian method {method!r}; choose one of {', '.join(GAUSSIAN_METHODS)}")


def bits_to_gaussians(bits: np.ndarray, method: str = "inverse_cdf") -> np.ndarray:
    return uniforms_to_gaussians(bits_to_uniforms(bits), method)
