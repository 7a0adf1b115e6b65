"""A lightweight U-Net for 28x28 images (levels 28 -> 14 -> 7) with a bottleneck block at 7 px.

``cfg.skips`` says which skip connections the decoder gets: both (the original), the 28-px one
only, or none. Every skip is a path from the input to the output that bypasses the bottleneck, so
dropping them is how a design makes more of each image pass through its middle map. Weaker than
dropping: ``cfg.skip_channels`` narrows each kept skip (a 1x1 conv), ``cfg.skip_drop`` zeroes it for
a random part of the training images.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qgen.models.config import ModelConfig

#: The side of the images the U-Net takes and makes: pooled twice, to its 7-px bottleneck.
IMAGE_SIDE = 28


def image_shape(channels: int) -> tuple[int, int, int]:
    """(C, H, W) of one image of a model with ``channels`` channels (before the model is built)."""
    return (channels, IMAGE_SIDE, IMAGE_SIDE)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return nn.functional.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + self.skip(x)


class SkipDrop(nn.Module):
    """Zero a whole skip tensor per image with probability ``p`` in training, scaled by 1/(1-p) so its
    expected value is what sampling sees; identity in eval mode. torchvision.ops.StochasticDepth
    (mode "row") does the same, but importing torchvision costs ~3 s of start-up (measured), here
    on every model build."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * keep.bernoulli_(1.0 - self.p) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class UNet(nn.Module):
    """ε-prediction network. ``gate`` (a bottleneck block, or None) acts on the 7x7 features."""

    def __init__(self, cfg: ModelConfig, channels: int, gate: nn.Module | None = None):
        super().__init__()
        c1, c2, c3 = cfg.widths
        td, g = cfg.time_dim, cfg.groups
        self.channels = channels
        self.time_dim = td
        self.time_mlp = nn.Sequential(nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td))
        self.inp = nn.Conv2d(channels, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, td, g)                       # 28
        self.pool1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)     # 28 -> 14
        self.down2 = ResBlock(c2, c2, td, g)                       # 14
        self.pool2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)     # 14 -> 7
        self.mid1 = ResBlock(c3, c3, td, g)                        # 7
        self.gate = gate if gate is not None else nn.Identity()
        self.mid2 = ResBlock(c3, c3, td, g)
        self.skips = tuple(cfg.skips)
        # narrow skips: a 1x1 conv per kept level (absent at full width, so older runs load unchanged)
        k = cfg.skip_channels
        self.skip_proj = nn.ModuleDict({str(level): nn.Conv2d(c, k, 1) for level, c in ((14, c2), (28, c1))
                                        if k and level in self.skips})
        # dropped skips: stochastic depth per image ("row"), rescaled by 1/(1-p) in training, identity
        # when sampling, so the decoder learns to draw from the middle alone part of the time
        self.skip_drop = SkipDrop(cfg.skip_drop)
        self.up2 = nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1)   # 7 -> 14
        self.dec2 = ResBlock(c2 + self._skip_width(14, c2, k), c2, td, g)
        self.up1 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)   # 14 -> 28
        self.dec1 = ResBlock(c1 + self._skip_width(28, c1, k), c1, td, g)
        self.out_norm = nn.GroupNorm(g, c1)
        self.out = nn.Conv2d(c1, channels, 3, padding=1)
        # zero-init the output so the untrained model predicts ε = 0 (a stable start)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images this model denoises: what samplers draw x_T in."""
        return image_shape(self.channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.time_dim))
        h1 = self.down1(self.inp(x), temb)
        h2 = self.down2(self.pool1(h1), temb)
        h = self.mid1(self.pool2(h2), temb)
        h = self.gate(h)
        h = self.mid2(h, temb)
        h = self.dec2(self._join(self.up2(h), h2, 14), temb)
        h = self.dec1(self._join(self.up1(h), h1, 28), temb)
        return self.out(nn.functional.silu(self.out_norm(h)))

    def _skip_width(self, level: int, width: int, channels: int) -> int:
        if level not in self.skips:
            return 0
        return channels or width

    def _join(self, up: torch.Tensor, skip: torch.Tensor, level: int) -> torch.Tensor:
        if level not in self.skips:
            return up
        proj = self.skip_proj[str(level)] if str(level) in self.skip_proj else None
        skip = self.skip_drop(proj(skip) if proj is not None else skip)
        return torch.cat([up, skip], dim=1)
