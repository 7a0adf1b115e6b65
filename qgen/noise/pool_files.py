"""Reading an entropy pool's two files back, checked: a pool lives in a run directory, which is
shared and can be damaged, so a truncated .npz, bad JSON, a negative offset or a missing ``bits``
array is one line naming the file -- never a traceback, never bits handed out twice."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from qgen.errors import QgenError

#: meta entries that are counts (whole numbers >= 0) and lists; ``offset`` may not pass ``bits_total``
COUNTS = ("bits_total", "offset", "shots_total")
LISTS = ("extractors", "sources", "jobs", "sessions")


def read_pool_files(bits_path: Path, meta_path: Path, expected_format: str) -> tuple[np.ndarray, dict]:
    """(packed bits, metadata) of a pool on disk, or QgenError saying which file is damaged and how."""
    meta = _read_meta(meta_path, expected_format)
    if not bits_path.exists() and meta["bits_total"] == 0:
        # the .json is written when the pool is opened, the .npz only with the first job's bits: a
        # kill during the first refill leaves no .npz, which is an empty pool, not a damaged one
        return np.zeros(0, dtype=np.uint8), meta
    packed, stored = _read_bits(bits_path)
    if stored < meta["bits_total"]:
        raise QgenError(f"{bits_path} holds {stored} bits but {meta_path} records {meta['bits_total']}; "
                        f"the pool is damaged{_HINT}")
    if packed.size * 8 < meta["bits_total"]:
        raise QgenError(f"{bits_path} is shorter than the {meta['bits_total']} bits it records; the pool is "
                        f"damaged{_HINT}")
    # More bits than recorded = a crash after writing the .npz: drop the uncommitted tail.
    return packed[: math.ceil(meta["bits_total"] / 8)], meta


_HINT = " (move the pool folder away to start a new one; its bits are then never reused)"


def _read_meta(path: Path, expected_format: str) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QgenError(f"cannot read noise pool {path}: {exc}{_HINT}") from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise QgenError(f"{path} is not a qgen noise pool ({found!r})")
    for key in COUNTS:
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise QgenError(f"noise pool {path} is damaged: {key} must be a whole number >= 0, got {value!r}{_HINT}")
    if meta["offset"] > meta["bits_total"]:
        raise QgenError(f"noise pool {path} is damaged: offset {meta['offset']} is past the {meta['bits_total']} "
                        f"bits it holds{_HINT}")
    for key in LISTS:
        if not isinstance(meta.get(key), list):
            raise QgenError(f"noise pool {path} is damaged: {key} must be a list{_HINT}")
    return meta


def _read_bits(path: Path) -> tuple[np.ndarray, int]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("bits", "n_bits") if key not in data.files]
            if missing:
                raise QgenError(f"noise pool {path} is damaged: no {' or '.join(missing)} array{_HINT}")
            packed, stored = data["bits"], data["n_bits"]
    except QgenError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise QgenError(f"cannot read noise pool {path}: {exc}{_HINT}") from None
    if packed.dtype != np.uint8 or packed.ndim != 1 or stored.shape != () or stored.dtype.kind not in "iu":
        raise QgenError(f"noise pool {path} is damaged: bits must be packed uint8 and n_bits one whole number{_HINT}")
    return packed, int(stored)
