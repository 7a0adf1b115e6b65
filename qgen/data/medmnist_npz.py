"""MedMNIST: official files by flag (MD5-checked, downloaded when possible) and any npz in the official layout.

We read the npz ourselves instead of instantiating medmnist's dataset classes: those assert the official
split sizes, which rules out the small subsets this project exists for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qgen.data import download
from qgen.data.config import SPLITS, RawSplit
from qgen.data.npz_io import check_images, read_npz_arrays
from qgen.errors import QgenError


def medmnist_info() -> dict[str, dict]:
    """medmnist.INFO, imported on first use: importing medmnist costs seconds (2.6 s measured after torch)
    and MNIST runs never need it."""
    from medmnist.info import INFO

    return INFO


def is_volume_flag(flag: str) -> bool:
    """MedMNIST 3D flags hold 28x28x28 volumes, which qgen (2-D images) cannot use."""
    return medmnist_info()[flag]["python_class"].endswith("3D")


def image_flags() -> list[str]:
    """The MedMNIST flags with 2-D 28x28 images."""
    return [flag for flag in medmnist_info() if not is_volume_flag(flag)]


def load_medmnist_flag(flag: str, root: Path, split: str, allow_download: bool) -> RawSplit:
    """Split ``split`` of the official ``{root}/{flag}.npz`` (28x28), downloading it first if missing."""
    if is_volume_flag(flag):
        raise QgenError(f"{flag} holds 3-D volumes; qgen generates 2-D 28x28 images: use one of "
                        f"{', '.join(image_flags())}")
    info = medmnist_info()[flag]
    url, md5 = info["url"], info["MD5"]
    path = root / f"{flag}.npz"
    how_to_fix = f"fetch {url} and save it as {path}"

    if path.is_file():
        kind = "medmnist-npz"
        # The official file name claims the official content; a silently different file would make
        # results incomparable, so insist (custom subsets load fine by path).
        actual = download.file_digest(path, "md5")
        if actual != md5:
            raise QgenError(f"{path} has MD5 {actual} but the official {flag}.npz has {md5}: it is damaged "
                            f"or not the official file; delete it to download again, or load a custom "
                            f"file by its path (--dataset /path/to/file.npz)")
    elif allow_download:
        kind = "download"
        try:
            download.download_file(url, path, verify=lambda tmp: _verify_md5(tmp, md5, url))
        except OSError as exc:
            raise QgenError(f"{flag}: {path} is missing and the download failed ({exc}); {how_to_fix}") from exc
    else:
        raise QgenError(f"{flag}: {path} is missing and downloads are disabled; {how_to_fix}")

    known_classes = tuple(sorted(int(label) for label in info["label"]))
    raw = read_official_layout(path, split, known_classes)
    raw.source.update({"kind": kind, "url": url, "md5": md5, "official": True})
    return raw


def _verify_md5(path: Path, expected: str, url: str) -> None:
    actual = download.file_digest(path, "md5")
    if actual != expected:
        raise QgenError(f"the file downloaded from {url} has MD5 {actual}, expected {expected}; try again later")


def load_npz_path(path: Path, split: str) -> RawSplit:
    """An npz in the official MedMNIST layout at any path, whatever its split sizes."""
    if not path.is_file():
        raise QgenError(f"dataset file {path} does not exist")
    raw = read_official_layout(path, split, known_classes=_labels_in_all_splits(path))
    raw.source.update({"kind": "npz", "url": None, "md5": download.file_digest(path, "md5")})
    return raw


def read_official_layout(path: Path, split: str, known_classes: tuple[int, ...] | None) -> RawSplit:
    """``{split}_images`` (N, 28, 28[, 3]) uint8 and ``{split}_labels`` (N, 1) or (N, K) for multi-label."""
    image_key, label_key = f"{split}_images", f"{split}_labels"
    arrays = read_npz_arrays(path, (image_key, label_key))
    images, labels = arrays[image_key], arrays[label_key]
    check_images(images, labels, f"{path} [{image_key}]")
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    source: dict = {"path": str(path)}
    labels2d = labels.reshape(labels.shape[0], -1)
    if labels2d.shape[1] > 1:
        # Multi-label (e.g. chestmnist's 14 findings): one integer class per image is what selection and
        # conditioning use, so keep the first finding and say so rather than invent a class encoding.
        source["note"] = (f"{path.name} is multi-label ({labels2d.shape[1]} labels per image); "
                          f"qgen uses only label column 0 (0/1), so classes select on that column")
        known_classes = (0, 1)
    return RawSplit(images, labels2d[:, 0].astype(np.int64), known_classes, source)


def _labels_in_all_splits(path: Path) -> tuple[int, ...] | None:
    """Labels present in any split: a class missing from one split is not 'unknown' for this file."""
    seen: set[int] = set()
    for split in SPLITS:
        try:
            labels = read_npz_arrays(path, (f"{split}_labels",))[f"{split}_labels"]
        except QgenError:
            continue  # absent split; a real problem surfaces when the requested split is read
        if labels.dtype.kind not in "iubf" or labels.size == 0:
            continue  # unusable labels: read_official_layout names the problem for the split asked for
        column = labels.reshape(labels.shape[0], -1)[:, 0]
        seen.update(int(v) for v in np.unique(column[np.isfinite(column)]))
    return tuple(sorted(seen)) or None
