"""``qgen evaluate``: metrics of a run's samples against its training images and held-out images."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from qgen.data import DataConfig, default_data_root, load_dataset, to_uint8_pixels
from qgen.errors import QgenError
from qgen.rundir import RunDir, default_runs_root


def _image_keys(images: torch.Tensor) -> list[bytes]:
    u8 = to_uint8_pixels(images).numpy()
    return [hashlib.sha1(img.tobytes()).digest() for img in u8]


def heldout_images(data_cfg: DataConfig, train: torch.Tensor, limit: int, seed: int) -> tuple[torch.Tensor, str]:
    """Real images the model never saw: the test split when there is one, else the rest of the train split."""
    try:
        pool, origin = load_dataset(replace(data_cfg, split="test", n_train=None)).images, "test split"
    except QgenError:
        pool, origin = load_dataset(replace(data_cfg, n_train=None)).images, "train split minus training images"
    seen = set(_image_keys(train))
    keep = [i for i, k in enumerate(_image_keys(pool)) if k not in seen]
    if len(keep) < 2:
        raise QgenError(f"no held-out images left for {data_cfg.dataset} (all {len(pool)} were used for training)")
    rng = np.random.default_rng(seed)
    if len(keep) > limit:
        keep = sorted(rng.choice(keep, size=limit, replace=False).tolist())
    return pool[keep], origin


def evaluate_run(run: str, *, samples: Path | None = None, runs_dir: Path | None = None,
                 heldout_limit: int = 1000, seed: int = 0) -> tuple[dict, Path]:
    found = RunDir.resolve(run, runs_dir or default_runs_root())
    with found.lock():  # metrics.json is written into the run: not while it trains or samples
        return _evaluate_locked(found, samples=samples, heldout_limit=heldout_limit, seed=seed)


def _evaluate_locked(run: RunDir, *, samples: Path | None, heldout_limit: int, seed: int) -> tuple[dict, Path]:
    from qgen.metrics import evaluate_samples, get_feature_net, write_metrics_json

    cfg = run.config()
    samples_path = Path(samples) if samples else run.latest_samples()
    try:
        with np.load(samples_path) as npz:
            generated = torch.from_numpy(npz["samples"]).float()
    except (OSError, KeyError, ValueError) as exc:
        raise QgenError(f"cannot read samples from {samples_path}: {exc}") from None
    train = load_dataset(cfg.data)
    heldout, origin = heldout_images(cfg.data, train.images, heldout_limit, seed)
    reference = load_dataset(replace(cfg.data, classes=None, n_train=None, split="train"))
    net = get_feature_net(reference.images, reference.labels,
                          default_data_root(cfg.data.root) / "feature_nets",
                          channels=reference.channels, n_classes=int(reference.labels.max()) + 1, seed=seed)
    classes = cfg.data.classes
    metrics = evaluate_samples(generated, train.images, heldout, feature_net=net,
                               intended_class=classes[0] if classes and len(classes) == 1 else None, seed=seed)
    metrics["run"] = str(run.path)
    metrics["samples_file"] = samples_path.name
    metrics["heldout_source"] = origin
    out = run.metrics_path
    write_metrics_json(out, metrics)
    return metrics, out
