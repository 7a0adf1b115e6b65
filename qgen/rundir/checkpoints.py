"""Checkpoints written atomically, so a kill at any moment leaves the last one usable, and read
without unpickling anything but tensors, containers and numbers.

A run directory is shared like a model folder (experiments commit them, users mail them), so a
checkpoint is untrusted input: ``torch.load(weights_only=True)`` would run whatever a crafted
pickle's ``__reduce__`` names. Checkpoints are therefore read with ``weights_only=True``, which
refuses every global outside torch's tensor types and plain containers; the only other types
allowed are NumPy scalars and dtypes (numbers that earlier versions could have stored, e.g. a
validation FLD as ``numpy.float64``), which rebuild a number and call nothing else.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

from qgen.errors import QgenError, first_line
from qgen.fileio import atomic_write_bytes

#: What every checkpoint holds, with the type each entry must have (the rest is per kind).
REQUIRED_ENTRIES = {"step": int, "model": dict, "channels": int}


def save_checkpoint(path: Path, state: dict) -> None:
    # only the commands that touch checkpoints pay for importing torch (~3.5 s): qgen.rundir is on the
    # path of every command, qgen --version included
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path`` as a dict; anything else (damaged, foreign, or holding objects that
    would need unpickling) is one QgenError naming the file, and no code in it ever runs."""
    import torch  # as in save_checkpoint

    if not path.is_file():
        raise QgenError(f"no checkpoint at {path}: the run has not saved one yet")
    try:
        with torch.serialization.safe_globals(_numpy_number_types()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise QgenError(f"cannot read checkpoint {path}: it holds objects other than tensors and numbers "
                        f"({_refused_global(exc)}); qgen never unpickles those. Use a checkpoint from a "
                        "source you trust, or retrain") from None
    except Exception as exc:  # a truncated/foreign file: say which one
        raise QgenError(f"cannot read checkpoint {path}: {first_line(exc)} (corrupt file?)") from None
    check_checkpoint_shape(path, state)
    return state


def check_checkpoint_shape(path: Path, state: object) -> None:
    """A safely loaded file can still be the wrong thing (a list, a bare state dict): one line, not a
    KeyError later."""
    if not isinstance(state, dict):
        raise QgenError(f"checkpoint {path} is not a qgen checkpoint (it holds a {type(state).__name__}, "
                        "not a dict)")
    require_entries(path, state, REQUIRED_ENTRIES)


def require_entries(path: Path, state: dict, entries: dict[str, type]) -> None:
    """Each of ``entries`` (name -> type) is in ``state`` with that type, or one QgenError naming it."""
    for key, kind in entries.items():
        value = state.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise QgenError(f"checkpoint {path} is not a qgen checkpoint: entry {key!r} is missing or is not "
                            f"{kind.__name__}")


def _numpy_number_types() -> list:
    """NumPy scalars and their dtypes, under both module names NumPy 1 and 2 pickle them with."""
    import numpy as np  # loaded by torch by now; at the top it would cost qgen --version ~0.2 s

    scalar = np.core.multiarray.scalar if not hasattr(np, "_core") else np._core.multiarray.scalar
    dtypes = [type(np.dtype(code)) for code in ("float64", "float32", "int64", "int32", "bool")]
    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype,
            *dtypes]


def _refused_global(exc: Exception) -> str:
    """torch's refusal is a paragraph; the global it refused is what matters."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f"refused: {found.group(1)}" if found else first_line(exc)
