"""Small labelled classifiers whose penultimate layer is the feature space for every metric.

Inception-v3 features are the usual choice for FID, but its weights cannot be fetched offline and
its ImageNet features say little about 28x28 digits or medical scans. Instead qgen trains a tiny
classifier on the real training split of each dataset family and measures distances in its
penultimate features. Numbers from these nets are comparable only between runs that used the same
net (same cache key), never with published Inception FIDs, hence the honest metric names:
"fld" (Frechet LeNet Distance) for grayscale and "fd_<arch>" otherwise.

The classifier has one extra output, the "noise" class, trained on synthetic noise images. A
purely class-supervised net maps out-of-distribution inputs (pure noise, half-denoised samples)
into a tight cluster that lands inside the real-feature manifold: measured on MNIST, Gaussian
noise then scored k-NN precision 0.8. With the noise class, such inputs get their own region of
feature space (precision 0.0), which is exactly the failure mode of an undertrained diffusion model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qgen.metrics._validation import check_images
from qgen.torch_device import module_device

GRAYSCALE_ARCH = "lenet"
RGB_ARCH = "small_cnn"


def _lenet_body(channels: int) -> tuple[nn.Sequential, int]:
    # Classic LeNet-5 layout (padding 2 so 28x28 behaves like the original 32x32 input).
    body = nn.Sequential(
        nn.Conv2d(channels, 6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
    )
    return body, 84


def _small_cnn_body(channels: int) -> tuple[nn.Sequential, int]:
    # Colour textures (MedMNIST RGB sets) need wider early layers than LeNet's 6 filters.
    body = nn.Sequential(
        nn.Conv2d(channels, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
    )
    return body, 128


def arch_for_channels(channels: int) -> str:
    """The architecture qgen uses for a dataset family with this many channels."""
    return GRAYSCALE_ARCH if channels == 1 else RGB_ARCH


class FeatureNet(nn.Module):
    """A classifier split into ``body`` (image -> features) and ``head`` (features -> logits).

    Logits have ``n_classes + 1`` columns: the dataset's classes, then ``noise_class``.
    """

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"FeatureNet supports 1 or 3 channels, got {channels}")
        if n_classes < 2:
            raise ValueError(f"FeatureNet needs at least 2 classes, got {n_classes}")
        self.channels = channels
        self.n_classes = n_classes
        self.arch = arch_for_channels(channels)
        build = _lenet_body if self.arch == GRAYSCALE_ARCH else _small_cnn_body
        self.body, self.feature_dim = build(channels)
        self.noise_class = n_classes
        self.head = nn.Linear(self.feature_dim, n_classes + 1)
        # Filled in by get_feature_net so that reports can say exactly which net produced them.
        self.cache_key: str | None = None

    @property
    def frechet_metric_name(self) -> str:
        """Metric key for the Frechet distance in this net's features ("fld" or "fd_<arch>")."""
        return "fld" if self.arch == GRAYSCALE_ARCH else f"fd_{self.arch}"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, shape (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (N, n_classes + 1); the last column is the noise class."""
        return self.head(self.body(x))


@torch.no_grad()
def extract_features(net: FeatureNet, images: torch.Tensor, *, batch_size: int = 1024) -> np.ndarray:
    """Penultimate features of ``images`` (N, C, 28, 28) in [-1, 1] as a float64 (N, D) array.

    Runs on the net's device (chunks of ``images`` are moved there); the features come back to the host.
    """
    images = check_images(images, what="images", channels=net.channels)
    device = module_device(net)
    was_training = net.training
    net.eval()
    try:
        chunks = [net.features(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    finally:
        net.train(was_training)
    return torch.cat(chunks).double().numpy()


@torch.no_grad()
def predict_probabilities(net: FeatureNet, images: torch.Tensor, *, batch_size: int = 1024) -> np.ndarray:
    """Softmax probabilities of ``images`` as a float64 (N, n_classes + 1) array (last: noise)."""
    images = check_images(images, what="images", channels=net.channels)
    was_training = net.training
    net.eval()
    try:
        device = module_device(net)
        chunks = [net(images[i : i + batch_size].to(device)).softmax(dim=1).cpu()
                  for i in range(0, len(images), batch_size)]
    finally:
        net.train(was_training)
    return torch.cat(chunks).double().numpy()
