"""Input checks shared by the metric modules, so every metric fails with the same clear line."""

from __future__ import annotations

import numpy as np
import torch

from qgen.errors import QgenError

IMAGE_SIDE = 28


def check_images(images: torch.Tensor, *, what: str, channels: int | None = None) -> torch.Tensor:
    """Return ``images`` as a contiguous float32 (N, C, 28, 28) tensor, or raise QgenError.

    Images are expected in the diffusion model's range [-1, 1]; a 0..255 array is the most common
    mistake, so we catch it here rather than letting it silently distort every metric.
    """
    if not isinstance(images, torch.Tensor):
        raise QgenError(f"{what} must be a torch.Tensor of shape (N, C, 28, 28), got {type(images).__name__}")
    if images.ndim != 4 or tuple(images.shape[2:]) != (IMAGE_SIDE, IMAGE_SIDE):
        raise QgenError(f"{what} must have shape (N, C, 28, 28), got {tuple(images.shape)}")
    if channels is not None and images.shape[1] != channels:
        raise QgenError(f"{what} must have {channels} channel(s), got {images.shape[1]}")
    if images.shape[0] == 0:
        raise QgenError(f"{what} is empty; metrics need at least one image")
    images = images.detach().to("cpu", torch.float32).contiguous()
    if not torch.isfinite(images).all():
        raise QgenError(f"{what} contains NaN or inf values")
    # A small tolerance: generated samples may overshoot [-1, 1] slightly before clipping.
    low, high = float(images.min()), float(images.max())
    if low < -1.5 or high > 1.5:
        raise QgenError(f"{what} must be scaled to [-1, 1], got values in [{low:.3g}, {high:.3g}]")
    return images


def check_labels(labels: torch.Tensor, *, what: str, n: int, n_classes: int) -> torch.Tensor:
    """Return ``labels`` as an int64 (N,) tensor of valid class indices, or raise QgenError."""
    labels = torch.as_tensor(labels).detach().to("cpu")
    if labels.ndim != 1 or labels.shape[0] != n:
        raise QgenError(f"{what} must have shape ({n},), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise QgenError(f"{what} must hold integer class indices, got dtype {labels.dtype}")
    labels = labels.to(torch.int64)
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise QgenError(f"{what} must lie in [0, {n_classes - 1}], got [{int(labels.min())}, {int(labels.max())}]")
    return labels


def check_features(features: np.ndarray | torch.Tensor, *, what: str, min_rows: int = 1) -> np.ndarray:
    """Return ``features`` as a float64 (N, D) array with at least ``min_rows`` rows."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise QgenError(f"{what} must be a 2-D (N, D) feature array, got shape {features.shape}")
    if features.shape[0] < min_rows:
        raise QgenError(f"{what} needs at least {min_rows} rows, got {features.shape[0]}")
    if not np.isfinite(features).all():
        raise QgenError(f"{what} contains NaN or inf values")
    return features
