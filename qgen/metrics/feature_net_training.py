"""Seeded, deterministic training of a FeatureNet on the real training split.

Training is deliberately tiny (a couple of epochs over at most ~10k images on CPU) so that the
evaluation net costs seconds, not minutes, on a laptop with two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from qgen.metrics._validation import check_images, check_labels
from qgen.metrics.feature_net import FeatureNet


@dataclass(frozen=True)
class FeatureNetTrainingConfig:
    """Hyperparameters of the feature-net training; all of them enter the cache key."""

    epochs: int = 2
    # Small batches give enough steps in 2 epochs: 0.95-0.96 held-out accuracy on 3k MNIST digits.
    batch_size: int = 16
    learning_rate: float = 2e-3
    max_train_images: int = 10_000
    # Noise-class images added to each batch, as a fraction of the real images in it.
    noise_fraction: float = 0.25


@contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """Seed torch, force deterministic kernels and one thread; restore the caller's settings after.

    ``fork_rng`` keeps our seeding from leaking into the caller's random stream. The other two
    settings are process-wide, so we put back whatever was there. One thread makes the float
    reduction order independent of the machine's core count, and is also faster: these tiny
    convolutions lose more to thread contention on a busy 2-core box than they gain.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous_threads)
            torch.use_deterministic_algorithms(previous, warn_only=previous_warn_only)


def synthetic_noise_images(real_batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noise-class images shaped like ``real_batch``: half pure noise, half heavily noised reals.

    Pure noise has a random brightness offset and contrast so the class is not one point; the
    heavily noised reals (signal weight sqrt(a), a < 0.2) mimic what a diffusion model emits
    when it has not learned to denoise.
    """
    n, channels = real_batch.shape[:2]
    scale = 0.1 + 0.9 * torch.rand(n, 1, 1, 1, generator=generator)
    offset = -1.0 + 1.5 * torch.rand(n, channels, 1, 1, generator=generator)
    pure = offset + scale * torch.randn(real_batch.shape, generator=generator)
    signal = 0.2 * torch.rand(n, 1, 1, 1, generator=generator)
    noised = signal.sqrt() * real_batch + (1.0 - signal).sqrt() * torch.randn(real_batch.shape, generator=generator)
    use_pure = torch.rand(n, 1, 1, 1, generator=generator) < 0.5
    return torch.where(use_pure, pure, noised).clamp(-1.0, 1.0)


def train_feature_net(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    channels: int,
    n_classes: int,
    seed: int = 0,
    config: FeatureNetTrainingConfig = FeatureNetTrainingConfig(),
) -> FeatureNet:
    """Train a FeatureNet classifier (plus its noise class); same inputs and seed give identical weights.

    ``images``: float (N, C, 28, 28) in [-1, 1]; ``labels``: integer (N,) in [0, n_classes).
    Always trains on CPU: the net is tiny and CPU kernels are reproducible.
    """
    images = check_images(images, what="train_images", channels=channels)
    labels = check_labels(labels, what="train_labels", n=len(images), n_classes=n_classes)
    generator = torch.Generator().manual_seed(seed)
    if len(images) > config.max_train_images:
        # A seeded subset keeps training time bounded for large splits without biasing classes.
        keep = torch.randperm(len(images), generator=generator)[: config.max_train_images]
        images, labels = images[keep], labels[keep]

    with deterministic_torch(seed):
        net = FeatureNet(channels, n_classes)
        optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
        loss_fn = nn.CrossEntropyLoss()
        net.train()
        for _ in range(config.epochs):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images), config.batch_size):
                batch = order[start : start + config.batch_size]
                batch_images, batch_labels = images[batch], labels[batch]
                n_noise = max(1, round(config.noise_fraction * len(batch))) if config.noise_fraction > 0 else 0
                noise = synthetic_noise_images(batch_images[:n_noise], generator)
                batch_images = torch.cat([batch_images, noise])
                batch_labels = torch.cat([batch_labels, torch.full((n_noise,), net.noise_class)])
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(net(batch_images), batch_labels)
                loss.backward()
                optimizer.step()
    net.eval()
    return net
