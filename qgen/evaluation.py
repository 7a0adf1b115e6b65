"""``qgen evaluate``: a run's samples scored against the held-out *test* images, read against baselines.

Every number comes with the two baselines that say what it means (qgen.metrics.baselines): the
real-data floor (fresh real images scored the same way) and the memorizer (the training images
replayed). The test images are the test part of the held-out split (qgen.data.heldout); training
only ever looks at the validation part, so a checkpoint chosen on validation FLD is scored here
on images it was not chosen on.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from qgen.backends.registry import get_backend
from qgen.commands import EvaluateCommand
from qgen.data import DataConfig, LoadedData, default_data_root, load_dataset
from qgen.data.heldout import HeldOut, check_enough, heldout_split, limit_images
from qgen.dependence import ABLATION_BACKEND, measure_run_dependence
from qgen.metrics import evaluate_samples, get_feature_net, write_metrics_json
from qgen.metrics.baselines import memorizer, read_against_baselines, real_floor
from qgen.metrics.feature_net import extract_features
from qgen.metrics.frechet import frechet_distance
from qgen.rundir import RunDir, default_runs_root
from qgen.rundir.samples_file import read_samples, read_samples_metadata
from qgen.torch_device import describe_device, resolve_device


def feature_net_for(data_cfg: DataConfig, seed: int = 0):
    """The feature net for a dataset: trained once on its full labelled train split, then cached."""
    reference = load_dataset(replace(data_cfg, classes=None, n_train=None, split="train"))
    return get_feature_net(reference.images, reference.labels, default_data_root(data_cfg.root) / "feature_nets",
                           channels=reference.channels, n_classes=int(reference.labels.max()) + 1, seed=seed)


def heldout_for(data_cfg: DataConfig, train: LoadedData) -> HeldOut:
    held = heldout_split(data_cfg, train.images)
    check_enough(held.validation, "validation", data_cfg.dataset)
    check_enough(held.test, "test", data_cfg.dataset)
    return held


def evaluate_run(command: EvaluateCommand) -> tuple[dict, Path]:
    """Score a run's samples: (metrics, the run's metrics.json they were written to). The feature net
    runs on ``command.device`` (it is trained and cached on the CPU, so every device measures with
    the same net); ``ablate`` also measures how much the images depend on the bottleneck's middle map
    (``qgen.dependence``), into ``metrics["dependence"]``."""
    resolved = resolve_device(command.device)
    run = RunDir.resolve(command.run, command.runs_dir or default_runs_root())
    with run.writing(reads_manifest=False):  # metrics.json goes into the run: not while it trains or samples
        return _evaluate_locked(run, command, resolved)


def _evaluate_locked(run: RunDir, command: EvaluateCommand, device: torch.device) -> tuple[dict, Path]:
    seed = command.seed
    cfg = run.config()
    samples_path = Path(command.samples) if command.samples else run.latest_samples()
    generated = torch.from_numpy(read_samples(samples_path))  # checked before any data or model is loaded
    metadata = read_samples_metadata(samples_path)
    train = load_dataset(cfg.data)
    held = heldout_for(cfg.data, train)
    test = limit_images(held.test, command.heldout, seed)
    net = feature_net_for(cfg.data, seed).to(device)
    classes = cfg.data.classes
    metrics = evaluate_samples(generated, train.images, test, feature_net=net,
                               intended_class=classes[0] if classes and len(classes) == 1 else None, seed=seed)
    metrics["baselines"] = baselines_block(metrics, net, train.images, held.validation, test, len(generated), seed)
    metrics["run"] = str(run.path)
    metrics["samples_file"] = samples_path.name
    metrics["heldout_source"] = f"test part of the held-out images ({held.origin})"
    metrics["heldout_sizes"] = held.sizes()
    metrics["device"] = describe_device(command.device, device)
    if command.ablate:
        metrics["dependence"] = dependence_block(run, metadata, net, test, command.backends_file, generated)
    out = run.metrics_path
    write_metrics_json(out, metrics)
    return metrics, out


def dependence_block(run: RunDir, metadata: str | None, net, reference: torch.Tensor,
                     backends_file: Path | None, samples: torch.Tensor) -> dict:
    """``qgen.dependence`` for the request that drew ``samples``, scored by FLD against ``reference``."""
    try:
        meta = json.loads(metadata) if metadata else {}
        request, backend_kind = meta.get("request"), (meta.get("backend") or {}).get("kind")
        step = meta.get("checkpoint_step")
    except (ValueError, TypeError, AttributeError):
        request, backend_kind, step = None, None, None
    if not isinstance(request, dict):
        return {"reason": "the samples file does not say how it was drawn (no request in its metadata)"}
    if request.get("n", 0) < 2:
        return {"reason": "no FLD to compare (needs at least 2 samples)"}
    ref = extract_features(net, reference)
    # samples drawn exactly (the exact backend, classical noise) are what the ablations redraw as trained
    exact = backend_kind == get_backend(ABLATION_BACKEND, backends_file).kind and request.get("noise") == "classical"
    block = measure_run_dependence(run, request, lambda images: frechet_distance(
        extract_features(net, images.to(torch.float32)), ref), backends_file, (samples, step) if exact else None)
    return block if block is not None else {"reason": "the model has no bottleneck block (plain U-Net)"}


def baselines_block(metrics: dict, net, train: torch.Tensor, pool: torch.Tensor, reference: torch.Tensor,
                    n_samples: int, seed: int) -> dict:
    """FLD and copy fraction next to the floor (real ``pool`` images, disjoint from ``reference``) and
    the memorizer (``train`` replayed), all at the samples' size against the same reference."""
    key = net.frechet_metric_name
    if metrics[key].get("value") is None or n_samples < 2:
        return {"metric": key, "reason": "no FLD to read against baselines (needs at least 2 samples)"}
    ref = extract_features(net, reference)
    floor = real_floor(extract_features(net, pool), ref, n_samples, seed=seed)
    memorized = memorizer(extract_features(net, train), ref, n_samples, seed=seed)
    copy = metrics["memorization"]["features"]["fraction_flagged_as_copies"]
    return {"metric": key, **read_against_baselines(metrics[key]["value"], copy, floor, memorized)}
