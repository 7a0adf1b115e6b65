"""Optional Inception-v3 FID, only when torch-fidelity and its weights are already on disk.

qgen never downloads anything. To enable this metric:
  1. pip install torch-fidelity   (torchmetrics' FID wraps the same extractor)
  2. put torch-fidelity's "weights-inception-2015-12-05-6726825d.pth" (the TF-ported FID
     Inception) at  $TORCH_HOME/hub/checkpoints/  (default ~/.cache/torch/hub/checkpoints/),
     or pass its path as ``weights_path``.
Caveat: 28x28 images are upsampled to 299x299 and Inception has 2048-d features, so with fewer
than ~2048 images the covariance is singular and the value is strongly biased; prefer FLD/KID.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch

from qgen.data.scaling import to_uint8_pixels
from qgen.metrics._validation import check_images
from qgen.metrics.frechet import frechet_distance

INCEPTION_WEIGHTS_FILENAME = "weights-inception-2015-12-05-6726825d.pth"


def default_inception_weights_path() -> Path:
    """Where torch-fidelity would cache the weights (respects $TORCH_HOME); we only look there."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILENAME


def _to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    # torch-fidelity expects uint8 (N, 3, H, W) and resizes to 299 itself, like the TF original.
    pixels = to_uint8_pixels(images)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


@torch.no_grad()
def _inception_features(extractor: torch.nn.Module, images: torch.Tensor, batch_size: int) -> np.ndarray:
    chunks = []
    for start in range(0, len(images), batch_size):
        (features,) = extractor(_to_uint8_rgb(images[start : start + batch_size]))
        chunks.append(features.double().cpu())
    return torch.cat(chunks).numpy()


def inception_fid(
    samples: torch.Tensor,
    reference: torch.Tensor,
    *,
    weights_path: str | Path | None = None,
    batch_size: int = 64,
) -> dict[str, float | int | str | None]:
    """{"value": FID or None, "reason": why None or None, "n_samples", "n_reference", "weights_path"}."""
    samples = check_images(samples, what="samples")
    reference = check_images(reference, what="reference images", channels=samples.shape[1])
    path = Path(weights_path) if weights_path is not None else default_inception_weights_path()
    result: dict[str, float | int | str | None] = {
        "value": None,
        "reason": None,
        "n_samples": len(samples),
        "n_reference": len(reference),
        "weights_path": str(path),
    }
    try:
        torch_fidelity = importlib.import_module("torch_fidelity")
    except ImportError:
        result["reason"] = "torch-fidelity is not installed (pip install torch-fidelity to enable Inception FID)"
        return result
    if not path.is_file():
        result["reason"] = (
            f"Inception weights not found at {path}; place {INCEPTION_WEIGHTS_FILENAME} there "
            "(qgen never downloads weights)"
        )
        return result
    if min(len(samples), len(reference)) < 2:
        result["reason"] = "Inception FID needs at least 2 samples and 2 reference images"
        return result

    # Passing the weights path makes torch-fidelity load the file instead of fetching a URL.
    extractor = torch_fidelity.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
    )
    extractor.eval()
    result["value"] = frechet_distance(
        _inception_features(extractor, samples, batch_size), _inception_features(extractor, reference, batch_size)
    )
    return result
