"""Held-out real images, split once into a validation part and a test part that never overlap.

The validation part is what training looks at (in-training FLD, best-checkpoint selection); the
test part is what ``qgen evaluate`` and the experiment report. Selecting a checkpoint on the test
reference would make its FLD optimistic, so the two are disjoint by construction:

  * official validation and test splits (MedMNIST, MedMNIST-layout npz files): used as they are;
  * a test split only (MNIST): its images are divided by a hash of their pixels;
  * no test split (the offline MNIST digits): the training split minus the training images,
    divided the same way.

Assignment by pixel hash (not by position or by a seeded shuffle) makes the split a property of
the image: it does not move when the training subset, its size or its seed changes, and a training
image is never held out (images equal to one are removed from both parts).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import torch

from qgen.data.config import DataConfig
from qgen.data.loader import load_dataset
from qgen.data.scaling import to_uint8_pixels
from qgen.errors import QgenError


@dataclass(frozen=True)
class HeldOut:
    validation: torch.Tensor
    test: torch.Tensor
    origin: str                # where the images come from, for the manifest and metrics.json

    def sizes(self) -> dict:
        return {"validation": len(self.validation), "test": len(self.test)}


def image_keys(images: torch.Tensor) -> list[bytes]:
    """One digest per image of its uint8 pixels: equal images, equal keys."""
    u8 = to_uint8_pixels(images).numpy()
    return [hashlib.sha1(img.tobytes()).digest() for img in u8]


def is_validation(key: bytes) -> bool:
    """The hash rule: half of all images (by their first digest bit) are validation images."""
    return bool(key[0] & 1)


def heldout_split(data_cfg: DataConfig, train: torch.Tensor) -> HeldOut:
    """The validation and test images for a run trained on ``train`` (images of ``data_cfg``)."""
    seen = set(image_keys(train))
    validation = _try_split(data_cfg, "val")
    test = _try_split(data_cfg, "test")
    if validation is not None and test is not None:
        return HeldOut(_unseen(validation, seen), _unseen(test, seen), "official validation and test splits")
    if test is not None:
        return HeldOut(*_unseen_halves(test, seen), "test split, halved by image hash")
    pool = load_dataset(replace(data_cfg, n_train=None)).images
    return HeldOut(*_unseen_halves(pool, seen), "train split minus the training images, halved by image hash")


def limit_images(images: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    """At most ``limit`` of ``images``, a seeded subset in their original order."""
    if len(images) <= limit:
        return images
    keep = np.sort(np.random.default_rng(seed).choice(len(images), size=limit, replace=False))
    return images[torch.from_numpy(keep)]


def check_enough(images: torch.Tensor, what: str, dataset: str) -> torch.Tensor:
    if len(images) < 2:
        raise QgenError(f"no {what} images left for {dataset} ({len(images)} after removing the training images)")
    return images


def _try_split(data_cfg: DataConfig, split: str) -> torch.Tensor | None:
    try:
        return load_dataset(replace(data_cfg, split=split, n_train=None)).images
    except QgenError:
        return None


def _unseen(images: torch.Tensor, seen: set[bytes]) -> torch.Tensor:
    keep = [i for i, k in enumerate(image_keys(images)) if k not in seen]
    return images[keep]


def _unseen_halves(images: torch.Tensor, seen: set[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation, test) halves of the ``images`` not in ``seen``, by the hash rule (keys computed once)."""
    keys = image_keys(images)
    val = [i for i, k in enumerate(keys) if k not in seen and is_validation(k)]
    test = [i for i, k in enumerate(keys) if k not in seen and not is_validation(k)]
    return images[val], images[test]
