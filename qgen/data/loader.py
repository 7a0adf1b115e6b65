"""load_dataset: resolve the dataset name, read one split, select classes and a seeded subset, scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qgen.data import medmnist_npz
from qgen.data.config import DATA_ROOT_ENV, DataConfig, LoadedData, RawSplit, default_data_root
from qgen.data.mnist import load_mnist_split
from qgen.data.scaling import to_unit_range
from qgen.data.subset import seeded_subset, select_classes
from qgen.errors import QgenError


def available_datasets() -> list[str]:
    """Dataset names ``--dataset`` accepts (besides a path to an .npz)."""
    return ["mnist", *medmnist_npz.image_flags()]


def load_dataset(cfg: DataConfig) -> LoadedData:
    """Images of ``cfg.split`` in [-1, 1], shape (N, C, 28, 28), with a JSON-serialisable provenance record."""
    root = default_data_root(cfg.root)
    if root.exists() and not root.is_dir():
        raise QgenError(f"the data root {root} is a file, not a folder (set by --data-root or ${DATA_ROOT_ENV})")
    raw, name = _read_split(cfg, root)
    what = f"split {cfg.split!r} of {name}"
    indices = select_classes(raw.labels, cfg.classes, raw.known_classes, what)
    n_available = len(indices)
    if cfg.n_train is not None:
        if cfg.classes is not None:
            what += f" for class {', '.join(map(str, cfg.classes))}"
        indices = seeded_subset(indices, cfg.n_train, cfg.seed, what)

    images = to_unit_range(raw.images[indices])
    labels = torch.from_numpy(raw.labels[indices].astype(np.int64))
    source = {
        "dataset": name,
        "note": None,  # a human-readable caveat (offline fallback, multi-label) the CLI should print
        **raw.source,
        "split": cfg.split,
        "classes": list(cfg.classes) if cfg.classes is not None else None,
        "n_in_split": int(len(raw.labels)),
        "n_available": int(n_available),
        "n_selected": int(len(indices)),
        "seed": int(cfg.seed),
        # The exact images of a limited-data run matter for reproducing it; record them when subsetting.
        "indices": [int(i) for i in indices] if cfg.n_train is not None else None,
    }
    return LoadedData(images=images, labels=labels, channels=int(images.shape[1]), source=source, name=name)


def _read_split(cfg: DataConfig, root: Path) -> tuple[RawSplit, str]:
    name = cfg.dataset.strip()
    if name.lower() == "mnist":
        return load_mnist_split(root, cfg.split, cfg.download), "mnist"
    flag, spelled_as_path = name.lower(), _looks_like_path(name)
    if not spelled_as_path and flag in medmnist_npz.medmnist_info():
        return medmnist_npz.load_medmnist_flag(flag, root, cfg.split, cfg.download), flag
    if spelled_as_path or Path(name).expanduser().is_file():
        path = Path(name).expanduser()
        return medmnist_npz.load_npz_path(path, cfg.split), path.stem
    raise QgenError(f"unknown dataset {name!r}: use one of {', '.join(available_datasets())}, "
                    f"or a path to an .npz in the MedMNIST layout")


def _looks_like_path(name: str) -> bool:
    """Spelled like a file; a bare name is a dataset name first, and a file in the working directory second."""
    return name.endswith(".npz") or "/" in name or "\\" in name
