"""Turning Sampler results into flat bit streams without a Python loop per shot."""

from __future__ import annotations

import numpy as np
from qiskit.primitives import BitArray

from qgen.errors import QgenError


def bitarray_to_bits(bit_array: BitArray) -> np.ndarray:
    """All bits of a (1-D, shots) ``BitArray`` as a flat uint8 0/1 array in **qubit-major** order.

    Qubit-major (all shots of clbit 0, then all shots of clbit 1, ...) matters: each qubit has its own
    bias on real hardware, and von Neumann debiasing is only unbiased when both bits of a pair come
    from the same biased coin. Adjacent bits in this order come from the same qubit.
    """
    if bit_array.ndim != 0:
        raise QgenError(
            f"expected one parameter set per circuit, got a BitArray of shape {bit_array.shape}; "
            "pass a single parameter binding per pub"
        )
    packed = bit_array.array  # (shots, ceil(num_bits/8)), big-endian: clbit 0 is the last bit
    unpacked = np.unpackbits(packed, axis=-1)[:, packed.shape[-1] * 8 - bit_array.num_bits:]
    # Reverse columns so column j is clbit j (Qiskit prints clbit 0 rightmost).
    return np.ascontiguousarray(unpacked[:, ::-1].T).reshape(-1)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """0/1 array -> packed uint8 (8x smaller on disk)."""
    return np.packbits(np.asarray(bits, dtype=np.uint8))


def unpack_bits(packed: np.ndarray, n_bits: int) -> np.ndarray:
    return np.unpackbits(packed, count=n_bits)
