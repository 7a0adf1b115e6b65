"""Pixel conversions between stored uint8 images and the [-1, 1] tensors diffusion models train on."""

from __future__ import annotations

import numpy as np
import torch


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(-1)
    x = x.permute(0, 3, 1, 2).to(torch.float32)
    return (x / 127.5 - 1.0).contiguous()


def to_uint8_pixels(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats (any shape) -> uint8 pixels of the same shape; values outside [-1, 1] are clipped."""
    return ((torch.as_tensor(x).detach().to("cpu", torch.float32).clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(
        torch.uint8)


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """Inverse of ``to_unit_range`` for (N, C, H, W) or (C, H, W) tensors.

    Returns uint8 (N, H, W) for one channel and (N, H, W, 3) for three: the MedMNIST npz layout, which
    PIL's ``Image.fromarray`` also takes per image. Values outside [-1, 1] (model samples) are clipped.
    """
    pixels = to_uint8_pixels(x)
    if pixels.ndim == 3:
        pixels = pixels.unsqueeze(0)
    pixels = pixels.permute(0, 2, 3, 1)
    if pixels.shape[3] == 1:
        pixels = pixels[..., 0]
    return pixels.numpy()
