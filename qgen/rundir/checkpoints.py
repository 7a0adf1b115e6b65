"""Checkpoints written atomically, so a kill at any moment leaves the last one usable."""

from __future__ import annotations

import io
from pathlib import Path

from qgen.errors import QgenError
from qgen.fileio import atomic_write_bytes


def save_checkpoint(path: Path, state: dict) -> None:
    import torch  # only the commands that touch checkpoints pay for importing torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    import torch

    if not path.is_file():
        raise QgenError(f"no checkpoint at {path}: the run has not saved one yet")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated/foreign file: say which one
        raise QgenError(f"cannot read checkpoint {path}: {exc}") from None
