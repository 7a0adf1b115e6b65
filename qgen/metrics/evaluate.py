"""One call that computes every qgen metric for a batch of generated samples.

Distribution metrics (Frechet distance, KID, precision/recall) compare the samples with the
*held-out* real images, the distribution the model should generalise to; comparing with the
10-100 training images would reward copying. Copying itself is measured by the memorization
block, which needs both sets. Every number travels with the sample sizes it was computed from,
because with tens of images those sizes change the values more than most model changes do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from qgen.errors import QgenError
from qgen.metrics._validation import check_images, check_labels
from qgen.metrics.classifier_scores import conditional_scores, predicted_class_counts
from qgen.metrics.feature_net import FeatureNet, extract_features, predict_probabilities
from qgen.metrics.frechet import frechet_distance
from qgen.metrics.inception_fid import inception_fid
from qgen.metrics.kid import kernel_distance
from qgen.metrics.memorization import DEFAULT_COPY_THRESHOLD_RATIO, memorization_scores
from qgen.metrics.precision_recall import precision_recall

METRICS_SCHEMA = "qgen.metrics/1"


def _intended_labels(
    n_samples: int, n_classes: int, sample_labels: torch.Tensor | None, intended_class: int | None
) -> np.ndarray | None:
    if sample_labels is not None and intended_class is not None:
        raise QgenError("give either sample_labels (one per sample) or intended_class (one for all), not both")
    if intended_class is not None:
        if not 0 <= intended_class < n_classes:
            raise QgenError(f"intended_class must be in [0, {n_classes - 1}], got {intended_class}")
        return np.full(n_samples, intended_class, dtype=np.int64)
    if sample_labels is not None:
        return check_labels(sample_labels, what="sample_labels", n=n_samples, n_classes=n_classes).numpy()
    return None


def _unavailable(reason: str, **sizes: int) -> dict[str, Any]:
    return {"value": None, "reason": reason, **sizes}


def evaluate_samples(
    samples: torch.Tensor,
    train_images: torch.Tensor,
    heldout_images: torch.Tensor,
    *,
    feature_net: FeatureNet,
    sample_labels: torch.Tensor | None = None,
    intended_class: int | None = None,
    kid_subset_size: int = 100,
    kid_n_subsets: int = 100,
    precision_recall_k: int = 3,
    copy_threshold_ratio: float = DEFAULT_COPY_THRESHOLD_RATIO,
    include_inception_fid: bool = True,
    inception_weights_path: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """All metrics for ``samples`` as a JSON-serialisable dict.

    Images: float (N, C, 28, 28) in [-1, 1]. ``train_images`` are the images the generator was
    trained on; ``heldout_images`` are real images it never saw (ideally >= len(train_images)).
    ``sample_labels`` (N,) or ``intended_class`` give the class each sample was conditioned on.
    """
    channels = feature_net.channels
    samples = check_images(samples, what="samples", channels=channels)
    train_images = check_images(train_images, what="train_images", channels=channels)
    heldout_images = check_images(heldout_images, what="heldout_images", channels=channels)
    intended = _intended_labels(len(samples), feature_net.n_classes, sample_labels, intended_class)

    sample_features = extract_features(feature_net, samples)
    train_features = extract_features(feature_net, train_images)
    heldout_features = extract_features(feature_net, heldout_images)
    n_samples, n_heldout = len(samples), len(heldout_images)
    sizes = {"n_samples": n_samples, "n_reference": n_heldout}
    feature_tag = {"features": feature_net.arch, "reference": "heldout"}

    metrics: dict[str, Any] = {
        "schema": METRICS_SCHEMA,
        "feature_net": {
            "arch": feature_net.arch,
            "feature_dim": feature_net.feature_dim,
            "n_classes": feature_net.n_classes,
            "cache_key": feature_net.cache_key,
        },
        "sizes": {"n_samples": n_samples, "n_train": len(train_images), "n_heldout": n_heldout},
    }

    frechet_key = feature_net.frechet_metric_name
    if min(n_samples, n_heldout) >= 2:
        metrics[frechet_key] = {"value": frechet_distance(sample_features, heldout_features), **sizes, **feature_tag}
        kid = kernel_distance(
            sample_features, heldout_features, subset_size=kid_subset_size, n_subsets=kid_n_subsets, seed=seed
        )
        metrics["kid"] = {
            "mean": kid.mean, "std": kid.std, "subset_size": kid.subset_size, "n_subsets": kid.n_subsets,
            **sizes, **feature_tag,
        }
    else:
        metrics[frechet_key] = _unavailable("needs at least 2 samples and 2 held-out images", **sizes)
        metrics["kid"] = _unavailable("needs at least 2 samples and 2 held-out images", **sizes)

    if min(n_samples, n_heldout) > precision_recall_k:
        pr = precision_recall(heldout_features, sample_features, k=precision_recall_k)
        metrics["precision_recall"] = {
            "precision": pr.precision, "recall": pr.recall, "k": pr.k, **sizes, **feature_tag,
        }
    else:
        metrics["precision_recall"] = _unavailable(
            f"needs more than k={precision_recall_k} samples and held-out images", **sizes
        )

    probabilities = predict_probabilities(feature_net, samples)
    metrics["predicted_class_counts"] = {**predicted_class_counts(probabilities), "n_samples": n_samples}
    if intended is None:
        metrics["classifier"] = _unavailable("no sample_labels or intended_class given", n_samples=n_samples)
    else:
        metrics["classifier"] = conditional_scores(probabilities, intended)

    memorization_args = {"threshold_ratio": copy_threshold_ratio, "seed": seed}
    metrics["memorization"] = {
        "pixels": memorization_scores(
            samples.flatten(1).double().numpy(),
            train_images.flatten(1).double().numpy(),
            heldout_images.flatten(1).double().numpy(),
            **memorization_args,
        ),
        "features": {
            **memorization_scores(sample_features, train_features, heldout_features, **memorization_args),
            "features": feature_net.arch,
        },
    }

    if include_inception_fid:
        metrics["inception_fid"] = inception_fid(samples, heldout_images, weights_path=inception_weights_path)
    else:
        metrics["inception_fid"] = _unavailable("not requested", **sizes)
    return metrics
