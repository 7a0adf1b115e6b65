"""What to load (DataConfig), what comes back (LoadedData), and where datasets live on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from qgen.errors import QgenError
from qgen.seed import check_seed

SPLITS = ("train", "val", "test")
DATA_ROOT_ENV = "QGEN_DATA"
FALLBACK_DATA_ROOT = Path("~/.cache/qgen")


def default_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: explicit value (``--data-root``), then ``$QGEN_DATA``, then ``~/.cache/qgen``.

    Called without an argument it gives the root used when the user named none.
    """
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    from_env = os.environ.get(DATA_ROOT_ENV, "")
    if from_env:
        return Path(from_env).expanduser()
    return FALLBACK_DATA_ROOT.expanduser()


@dataclass(frozen=True)
class DataConfig:
    """Which images to load.

    dataset: "mnist", a MedMNIST flag (e.g. "pneumoniamnist"), or a path to an .npz.
    classes: keep only these labels (the paper trains one model per class).
    n_train: keep a seeded random subset of this many images of the selected split.
    split: "train", "val" or "test". MNIST has no official validation split, so "val" is an error there.
    download: fetch missing official files when the network allows.
    """

    dataset: str = "mnist"
    root: str | None = None
    classes: tuple[int, ...] | None = None
    n_train: int | None = None
    seed: int = 0
    split: str = "train"
    download: bool = True

    def __post_init__(self) -> None:
        check_seed(self.seed, "data.seed")
        if self.split not in SPLITS:
            raise QgenError(f"unknown split {self.split!r}: choose one of {', '.join(SPLITS)}")
        if self.n_train is not None and self.n_train < 1:
            raise QgenError(f"n_train must be a positive number of images, got {self.n_train}")
        if self.classes is not None:
            # The CLI may hand over a list; a tuple keeps the frozen config hashable.
            classes = tuple(int(c) for c in self.classes)
            if not classes:
                raise QgenError("classes is empty: give at least one class label, or none to keep all")
            object.__setattr__(self, "classes", classes)


@dataclass
class LoadedData:
    """Images ready for training, plus where they came from."""

    images: torch.Tensor  # (N, C, 28, 28) float32 in [-1, 1]
    labels: torch.Tensor  # (N,) int64
    channels: int
    source: dict  # provenance for the run manifest (JSON-serialisable)
    name: str  # e.g. "mnist", "pneumoniamnist", or the npz stem


@dataclass
class RawSplit:
    """One split as read from disk, before class selection and scaling (internal).

    images: uint8, (N, 28, 28) or (N, 28, 28, 3); labels: int64 (N,).
    known_classes: labels the dataset defines, or None when only the data itself can tell.
    """

    images: np.ndarray
    labels: np.ndarray
    known_classes: tuple[int, ...] | None
    source: dict
