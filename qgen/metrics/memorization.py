"""Does the generator copy its training images? (nearest-neighbour test, after Yoon et al. 2023)

With 10-100 training images, low FLD/KID is easy to get by reproducing the training set, so every
evaluation must also ask how close each sample is to its nearest training image compared with
its nearest *held-out* real image. A sample whose nearest training image is much closer
(d_train < threshold_ratio * d_heldout, threshold 1/3 by default) is flagged as a likely copy.
"""

from __future__ import annotations

import numpy as np

from qgen.errors import QgenError
from qgen.metrics._distances import nearest_neighbour_distances
from qgen.metrics._validation import check_features

DEFAULT_COPY_THRESHOLD_RATIO = 1.0 / 3.0


def memorization_scores(
    sample_vectors: np.ndarray,
    train_vectors: np.ndarray,
    heldout_vectors: np.ndarray,
    *,
    threshold_ratio: float = DEFAULT_COPY_THRESHOLD_RATIO,
    seed: int = 0,
) -> dict[str, float | int | str | None]:
    """Nearest-neighbour copy statistics for (N, D) vectors (flattened pixels or features).

    Nearest-neighbour distances shrink as the reference set grows, so comparing 50 training
    images with 1000 held-out images would make every sample look "closer to held-out". We
    therefore subsample the held-out set (seeded) to the size of the training set. All training
    images are kept: a copy of any of them must be found.
    """
    samples = check_features(sample_vectors, what="sample vectors")
    train = check_features(train_vectors, what="train vectors")
    heldout = check_features(heldout_vectors, what="held-out vectors")
    if not 0.0 < threshold_ratio <= 1.0:
        raise QgenError(f"memorization threshold_ratio must be in (0, 1], got {threshold_ratio}")

    warning = None
    if len(heldout) > len(train):
        keep = np.random.default_rng(seed).choice(len(heldout), len(train), replace=False)
        heldout = heldout[keep]
    elif len(heldout) < len(train):
        warning = (
            f"only {len(heldout)} held-out vs {len(train)} training images: samples look closer to the "
            "training set by chance, so the copy fraction is overestimated"
        )

    to_train = nearest_neighbour_distances(samples, train)
    to_heldout = nearest_neighbour_distances(samples, heldout)
    median_train, median_heldout = float(np.median(to_train)), float(np.median(to_heldout))
    return {
        "median_nn_distance_train": median_train,
        "median_nn_distance_heldout": median_heldout,
        # < 1 means samples sit closer to the training images than fresh real data would.
        "ratio_of_medians": median_train / median_heldout if median_heldout > 0 else None,
        "fraction_flagged_as_copies": float((to_train < threshold_ratio * to_heldout).mean()),
        "fraction_closer_to_train": float((to_train < to_heldout).mean()),
        "threshold_ratio": threshold_ratio,
        "n_samples": len(samples),
        "n_train_reference": len(train),
        "n_heldout_reference": len(heldout),
        "warning": warning,
    }
