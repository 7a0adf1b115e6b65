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
