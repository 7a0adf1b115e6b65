"""Reading a sample set (``samples-*.npz``, written by ``write_samples``) back for ``qgen evaluate``.

``evaluate --samples`` takes any file a user points at, so it is checked like input: a zip that
numpy can read without unpickling, a ``samples`` array of numbers shaped (N, C, 28, 28), every
value finite. Anything else is one line naming the file -- before any model or data is loaded.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from qgen.errors import QgenError, first_line

SAMPLES_KEY = "samples"
IMAGE_SIDE = 28


def read_samples(path: Path) -> np.ndarray:
    """The float32 ``samples`` array of ``path``, (N, C, 28, 28) with C 1 or 3."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if SAMPLES_KEY not in archive.files:
                raise QgenError(f"cannot read samples from {path}: it has no {SAMPLES_KEY!r} array (it has: "
                                f"{', '.join(sorted(archive.files)) or 'nothing'}); give a file qgen sample wrote")
            array = archive[SAMPLES_KEY]
    except QgenError:
        raise
    except ValueError as exc:  # an object array: loading it would unpickle, which is refused
        raise QgenError(f"cannot read samples from {path}: {first_line(exc)} (qgen never unpickles "
                        "sample files)") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise QgenError(f"cannot read samples from {path}: not a readable .npz ({exc})") from None
    return check_samples(array, path)


def read_samples_metadata(path: Path) -> str | None:
    """The JSON text ``qgen sample`` stores beside the images (how they were drawn), or None."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return str(archive["metadata"]) if "metadata" in archive.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError):
        return None


def check_samples(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype.kind not in "fiu":
        raise QgenError(f"cannot read samples from {path}: {SAMPLES_KEY!r} holds {array.dtype} values, not numbers")
    shape_ok = array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[2:] == (IMAGE_SIDE, IMAGE_SIDE)
    if not shape_ok:
        raise QgenError(f"cannot read samples from {path}: {SAMPLES_KEY!r} has shape {tuple(array.shape)}, "
                        f"not (N, 1 or 3, {IMAGE_SIDE}, {IMAGE_SIDE})")
    if array.shape[0] == 0:
        raise QgenError(f"cannot read samples from {path}: it holds no samples")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise QgenError(f"cannot read samples from {path}: it holds non-finite values (NaN/inf)")
    return array
