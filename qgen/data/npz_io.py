"""Reading image arrays out of .npz files, with errors that name the file and what is wrong."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from qgen.errors import QgenError, first_line

IMAGE_SIDE = 28


def read_npz_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Load only ``keys`` (large MedMNIST files hold all splits; we want one)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise QgenError(f"{path} lacks array(s) {', '.join(missing)} "
                                f"(it has: {', '.join(sorted(archive.files)) or 'nothing'})")
            return {key: archive[key] for key in keys}
    except ValueError as exc:
        # np.load's own words for a file that is not a zip ("pickled (object) data") mislead: say what it is
        raise QgenError(f"{path} is damaged or not an .npz in the MedMNIST layout "
                        f"(numpy: {first_line(exc)}); replace or delete it") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise QgenError(f"cannot read {path} as an .npz file ({exc}); replace or delete it") from exc


def check_images(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    """Accept uint8 (N, 28, 28), (N, 28, 28, 1) or (N, 28, 28, 3) images with N matching labels."""
    shape_ok = (images.ndim == 3 and images.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE)) or (
        images.ndim == 4 and images.shape[1:3] == (IMAGE_SIDE, IMAGE_SIDE) and images.shape[3] in (1, 3))
    if not shape_ok:
        raise QgenError(f"{where}: expected images of shape (N, 28, 28) or (N, 28, 28, 3), "
                        f"got {tuple(images.shape)} (only 28x28 images are supported)")
    if images.dtype != np.uint8:
        raise QgenError(f"{where}: expected uint8 pixels 0..255, got dtype {images.dtype}")
    if labels.shape[0] != images.shape[0]:
        raise QgenError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels")
    if images.shape[0] == 0:
        raise QgenError(f"{where}: the file holds no images")
    check_integer_labels(labels, where)


def check_integer_labels(labels: np.ndarray, where: str) -> None:
    """Class labels are integers: strings are refused, and so are floats such as 0.7 (which a cast
    would silently turn into class 0); floats that are whole numbers (1.0) are accepted."""
    if labels.dtype.kind in "iub":
        return
    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        return
    example = labels.reshape(-1)[:1].tolist()
    raise QgenError(f"{where}: labels must be integer class numbers, got dtype {labels.dtype} "
                    f"(e.g. {example[0]!r})" if example else f"{where}: labels must be integers")
