"""Image quality during training: FLD and copy fraction of the EMA model on the validation images.

The loss says little about images (it keeps falling long after samples stop improving, and it
cannot see copying), so every ``eval_every`` steps the trainer asks this monitor for a small,
cheap evaluation: ``n_samples`` images from the EMA weights with a few-step solver, scored in
qgen's feature space against the *validation* part of the held-out images (never the test part,
which only ``qgen evaluate`` sees), next to the floor and memorizer baselines computed once.

The monitor is deliberately cheap: the same x_T every time (so differences between evaluations
are the model's, not the noise's), a 10-step solver, 96 samples, about 5 evaluations a run (~8% of
the training CPU time). Its numbers are for *selecting and watching*; the reported quality of a run
is the test-set evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from qgen.metrics.baselines import Baseline, memorizer, reading, real_floor
from qgen.metrics.feature_net import FeatureNet, extract_features
from qgen.metrics.frechet import frechet_distance
from qgen.metrics.memorization import memorization_scores


@dataclass(frozen=True)
class QualityRow:
    step: int
    fld: float
    copy_fraction: float
    floor: float
    memorizer: float
    reading: str
    seconds: float
    train_cpu_seconds: float = 0.0

    def as_row(self) -> list:
        return [self.step, f"{self.fld:.4f}", f"{self.copy_fraction:.4f}", f"{self.floor:.4f}",
                f"{self.memorizer:.4f}", self.reading, f"{self.seconds:.3f}", f"{self.train_cpu_seconds:.2f}"]


class QualityMonitor:
    """Holds the validation features and baselines; ``score(images, step)`` gives one QualityRow."""

    def __init__(self, feature_net: FeatureNet, train_images: torch.Tensor, validation_images: torch.Tensor,
                 *, n_samples: int = 128, seed: int = 0) -> None:
        self.net = feature_net
        self.seed = seed
        self.train_features = extract_features(feature_net, train_images)
        # the floor needs real images disjoint from the reference: half the validation images serve
        # as the reference, the other half as the pool the floor draws from
        half = len(validation_images) // 2
        self.reference = extract_features(feature_net, validation_images[:half])
        pool = extract_features(feature_net, validation_images[half:])
        # the floor draws without replacement, so fewer samples where the validation set is small
        self.n_samples = max(2, min(n_samples, len(pool)))
        self.floor: Baseline = real_floor(pool, self.reference, self.n_samples, seed=seed)
        self.memorizer: Baseline = memorizer(self.train_features, self.reference, self.n_samples, seed=seed)

    def score(self, images: torch.Tensor, step: int, seconds: float = 0.0) -> QualityRow:
        """FLD and copy fraction of ``images`` (``n_samples`` of them) against the validation reference."""
        features = extract_features(self.net, images)
        if not np.isfinite(features).all():
            return QualityRow(step, float("inf"), 0.0, self.floor.mean, self.memorizer.mean, "diverged", seconds)
        fld = frechet_distance(features, self.reference)
        copy = float(memorization_scores(features, self.train_features, self.reference,
                                         seed=self.seed)["fraction_flagged_as_copies"])
        return QualityRow(step, fld, copy, self.floor.mean, self.memorizer.mean,
                          reading(fld, copy, self.floor.mean, self.memorizer.mean), seconds)


def default_eval_every(steps: int) -> int | None:
    """A sensible interval: about 5 evaluations a run (~8% of its CPU time at 96 samples and 10
    solver steps, measured in docs/results/recipe/), none for runs of a few hundred steps."""
    if steps < 400:
        return None
    return max(100, int(round(steps / 5, -1)))
