"""Reading image arrays out of .npz files, with errors that name the file and what is wrong."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from qgen.errors import QgenError

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
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
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
