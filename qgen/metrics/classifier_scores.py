"""How recognisable class-conditional samples are to the real-data classifier."""

from __future__ import annotations

import numpy as np

from qgen.errors import QgenError


def conditional_scores(probabilities: np.ndarray, intended_labels: np.ndarray) -> dict[str, float | int]:
    """Accuracy and mean confidence of the classifier in each sample's *intended* class.

    ``probabilities``: (N, n_classes + 1) softmax outputs, last column the noise class (a sample
    classified as noise counts as wrong); ``intended_labels``: (N,) class indices.
    Mean confidence in the intended class (not in the argmax class) rewards samples that look
    like the class they were asked to be, and is smoother than accuracy for small N.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    intended_labels = np.asarray(intended_labels, dtype=np.int64)
    if intended_labels.shape != (len(probabilities),):
        raise QgenError(
            f"need one intended class per sample: {len(probabilities)} samples, labels of shape {intended_labels.shape}"
        )
    rows = np.arange(len(probabilities))
    return {
        "accuracy": float((probabilities.argmax(axis=1) == intended_labels).mean()),
        "mean_intended_class_confidence": float(probabilities[rows, intended_labels].mean()),
        "n_samples": len(probabilities),
    }


def predicted_class_counts(probabilities: np.ndarray) -> dict[str, list[int] | int]:
    """How many samples the classifier assigns to each class (a quick mode-collapse check)
    and to the trailing noise class (samples that do not look like any real image)."""
    probabilities = np.asarray(probabilities)
    counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1]).tolist()
    return {"classes": counts[:-1], "noise": counts[-1]}
