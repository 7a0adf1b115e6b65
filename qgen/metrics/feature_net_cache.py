"""On-disk cache of trained feature nets, keyed by what determines their weights.

The key hashes the exact training arrays (sha256 of the float32 images and int64 labels), the
architecture, the training hyperparameters, the seed and FEATURE_NET_CODE_VERSION. Two reports
that name the same key were measured with the same net and are therefore comparable.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from qgen.errors import QgenError
from qgen.fileio import atomic_write
from qgen.metrics._validation import check_images, check_labels
from qgen.metrics.feature_net import FeatureNet, arch_for_channels
from qgen.metrics.feature_net_training import FeatureNetTrainingConfig, train_feature_net

# Bump whenever the architecture or training procedure changes, so stale nets are not reused.
FEATURE_NET_CODE_VERSION = "1"


def feature_net_cache_key(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    channels: int,
    n_classes: int,
    seed: int,
    config: FeatureNetTrainingConfig,
) -> str:
    """sha256 hex digest over the training data, code version and hyperparameters."""
    digest = hashlib.sha256()
    settings = {
        "code_version": FEATURE_NET_CODE_VERSION,
        "arch": arch_for_channels(channels),
        "channels": channels,
        "n_classes": n_classes,
        "seed": seed,
        "training": asdict(config),
        "images_shape": list(images.shape),
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(images.numpy(), dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(labels.numpy(), dtype=np.int64).tobytes())
    return digest.hexdigest()


def _cache_path(cache_dir: Path, arch: str, key: str) -> Path:
    return cache_dir / f"feature_net_{arch}_{key[:20]}.pt"


def _load_cached(path: Path, key: str, channels: int, n_classes: int) -> FeatureNet | None:
    """The cached net, or None when the file is missing, unreadable or belongs to another key."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("cache_key") != key:  # guards against a (theoretical) prefix collision
            return None
        net = FeatureNet(channels, n_classes)
        net.load_state_dict(payload["state_dict"])
    except Exception:  # a truncated or foreign file is just a cache miss; we retrain and overwrite
        return None
    return net


def _save_atomically(path: Path, payload: dict) -> None:
    # Write-then-rename so a concurrent reader never sees a half-written file.
    atomic_write(path, lambda fh: torch.save(payload, fh))


def get_feature_net(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    cache_dir: str | os.PathLike,
    *,
    channels: int,
    n_classes: int,
    seed: int = 0,
    config: FeatureNetTrainingConfig = FeatureNetTrainingConfig(),
) -> FeatureNet:
    """Load the feature net for this training data from ``cache_dir``, training it on a miss.

    ``train_images``: float (N, C, 28, 28) in [-1, 1], the real training split (not the 10-100
    images the diffusion model sees, but the full labelled split, so the features are good).
    ``train_labels``: integer (N,) class indices in [0, n_classes).
    The returned net is in eval mode and carries its ``cache_key``.
    """
    if channels not in (1, 3):
        raise QgenError(f"feature nets exist for 1 or 3 channels, got channels={channels}")
    if n_classes < 2:
        raise QgenError(f"the feature net is a classifier and needs n_classes >= 2, got {n_classes}")
    images = check_images(train_images, what="train_images", channels=channels)
    labels = check_labels(train_labels, what="train_labels", n=len(images), n_classes=n_classes)
    if len(images) < n_classes:
        raise QgenError(f"need at least one training image per class ({n_classes}), got {len(images)}")

    key = feature_net_cache_key(images, labels, channels=channels, n_classes=n_classes, seed=seed, config=config)
    path = _cache_path(Path(cache_dir), arch_for_channels(channels), key)
    net = _load_cached(path, key, channels, n_classes)
    if net is None:
        net = train_feature_net(images, labels, channels=channels, n_classes=n_classes, seed=seed, config=config)
        payload = {
            "cache_key": key,
            "code_version": FEATURE_NET_CODE_VERSION,
            "arch": net.arch,
            "channels": channels,
            "n_classes": n_classes,
            "seed": seed,
            "training": asdict(config),
            "state_dict": net.state_dict(),
        }
        try:
            _save_atomically(path, payload)
        except OSError as exc:
            raise QgenError(f"cannot write feature-net cache {path}: {exc}; pass a writable cache_dir") from exc
    net.eval()
    net.cache_key = key
    return net
