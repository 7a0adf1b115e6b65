"""Evaluation metrics for small-data image generation, in features of a qgen-trained classifier.

Public entry points: ``get_feature_net`` (train or load the cached feature net) and
``evaluate_samples`` (every metric, with sample sizes) plus ``write_metrics_json``.
"""

from qgen.metrics.classifier_scores import conditional_scores, predicted_class_counts
from qgen.metrics.evaluate import METRICS_SCHEMA, evaluate_samples
from qgen.metrics.feature_net import FeatureNet, extract_features, predict_probabilities
from qgen.metrics.feature_net_cache import FEATURE_NET_CODE_VERSION, feature_net_cache_key, get_feature_net
from qgen.metrics.feature_net_training import FeatureNetTrainingConfig, train_feature_net
from qgen.metrics.frechet import frechet_distance
from qgen.metrics.inception_fid import default_inception_weights_path, inception_fid
from qgen.metrics.kid import KernelDistance, kernel_distance
from qgen.metrics.memorization import memorization_scores
from qgen.metrics.metrics_json import write_metrics_json
from qgen.metrics.precision_recall import PrecisionRecall, precision_recall

__all__ = [
    "FEATURE_NET_CODE_VERSION",
    "METRICS_SCHEMA",
    "FeatureNet",
    "FeatureNetTrainingConfig",
    "KernelDistance",
    "PrecisionRecall",
    "conditional_scores",
    "default_inception_weights_path",
    "evaluate_samples",
    "extract_features",
    "feature_net_cache_key",
    "frechet_distance",
    "get_feature_net",
    "inception_fid",
    "kernel_distance",
    "memorization_scores",
    "precision_recall",
    "predict_probabilities",
    "predicted_class_counts",
    "train_feature_net",
    "write_metrics_json",
]
