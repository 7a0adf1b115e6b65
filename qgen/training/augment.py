"""Augmentation that is safe for tiny datasets: small random translations, nothing else.

With 10-100 images a diffusion model memorizes fast; shifting each image by a pixel or two makes
new, equally valid training images without changing what they show (flips or rotations would turn
a 2 into something else, and MedMNIST orientation carries meaning). The shift fills with the
image's own border colour (replicate padding), so a dark MNIST background stays dark.
"""

from __future__ import annotations

import torch


def random_translate(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of (B, C, H, W) by up to ``max_shift`` pixels in x and y (seeded)."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=generator)
    padded = torch.nn.functional.pad(x, (max_shift,) * 4, mode="replicate")
    out = torch.empty_like(x)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        top, left = max_shift - dy, max_shift - dx
        out[i] = padded[i, :, top:top + h, left:left + w]
    return out
