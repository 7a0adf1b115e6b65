"""Starting and resuming training runs: validate everything first, then create the run dir.

Both hold the run's lock while they write into it. What they have to say (the run directory,
progress at the end) goes to a ``report`` callback: the CLI prints it, other callers log or drop it.

The torch device is resolved before anything is created (a missing GPU is one error and no run
folder); config.toml keeps the device used, the manifest what was asked for and the hardware.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

from qgen.backends.artifacts import default_circuits_root, write_prepared_artifacts
from qgen.backends.base import QuantumBackend
from qgen.backends.registry import load_backend
from qgen.circuits import build_ansatz
from qgen.commands import Reporter, ResumeCommand, TrainCommand, quiet
from qgen.config import RunConfig
from qgen.data import load_dataset
from qgen.data.heldout import heldout_split
from qgen.errors import QgenError
from qgen.evaluation import feature_net_for
from qgen.memory import check_training_memory
from qgen.models.build import count_parameters
from qgen.noise.factory import make_noise_source
from qgen.noise.schedule_plot import plot_schedule
from qgen.planner import training_plan
from qgen.rundir import RunDir, base_manifest, default_runs_root, timestamp
from qgen.tomlconfig import to_dict
from qgen.torch_device import describe_device, device_name, resolve_device
from qgen.training.quality import QualityMonitor
from qgen.training.tensorboard import TrainingBoard, require_tensorboard
from qgen.training.trainer import Trainer, training_model

def make_noise(cfg: RunConfig, run: RunDir, backend: QuantumBackend):
    """The forward-process noise source for training (quantum bits are pooled and journaled in ``run``)."""
    return make_noise_source(cfg.train.noise, cfg.train.seed, run, backend, mixing=cfg.diffusion.mixing())


MIN_VALIDATION_IMAGES = 8


def make_quality_monitor(cfg: RunConfig, data, report: Reporter = quiet, device=None):
    """The in-training evaluator (validation images, feature net, baselines), or None when off.

    The feature net is trained (and cached) on the CPU whatever ``device`` is, so every run measures
    with the same net; it then runs on ``device``."""
    if not cfg.train.eval_every:
        return None
    held = heldout_split(cfg.data, data.images)
    if len(held.validation) < MIN_VALIDATION_IMAGES:
        # e.g. every image of a split without a test part is a training image: nothing to validate on
        report(f"qgen: no in-training evaluation: only {len(held.validation)} validation images are left "
               f"after the {len(data.images)} training images (need {MIN_VALIDATION_IMAGES}); use --n-train")
        return None
    net = feature_net_for(cfg.data)
    if device is not None:
        net = net.to(device)
    return QualityMonitor(net, data.images, held.validation, n_samples=cfg.train.eval_samples, seed=cfg.train.seed)


def _run_name(cfg: RunConfig) -> str:
    stem = cfg.name or f"{cfg.model.kind}-{Path(cfg.data.dataset).stem}-{cfg.backend}"
    return f"{timestamp()}-{stem}"


def start_training(command: TrainCommand) -> RunDir:
    """Train ``command.config`` in a new run folder; its ``device`` may be ``auto`` (resolved here)."""
    cfg = command.config
    check_training_memory(cfg.model, cfg.train.batch_size, cfg.diffusion.T)  # before the data loads
    requested = cfg.device
    device = resolve_device(requested)
    cfg = replace(cfg, device=device_name(device))
    backend = load_backend(cfg.backend, command.backends_file, local=command.local)
    try:  # the Session/Batch of a hardware run is closed on every way out
        return _start_with(cfg, backend, command, device=(requested, device))
    finally:
        backend.close()


def _start_with(cfg: RunConfig, backend: QuantumBackend, command: TrainCommand, *, device: tuple) -> RunDir:
    requested, device = device
    report = command.report
    if cfg.model.kind == "quantum":
        # the circuit and its fit on the device are checked before the data loads (seconds, and a
        # note on stderr). Not prepare(): its cache would keep this circuit's parameter objects,
        # which the model's QNN, built from another copy, would not bind
        backend.check_width(build_ansatz(cfg.model.ansatz))
    data = load_dataset(cfg.data)  # logs its own one-line note (e.g. the offline MNIST fallback)
    if command.epochs is not None:
        cfg = cfg.with_steps(command.epochs * math.ceil(len(data.images) / cfg.train.batch_size))
    training_plan(cfg, backend).check()
    name = _run_name(cfg)
    cfg = replace(cfg, name=name)
    # everything that can fail is built before the run dir exists: a bad backend or model never leaves a folder
    model = training_model(cfg, data.channels, backend, device)
    quality = make_quality_monitor(cfg, data, report, device)
    if cfg.train.tensorboard:
        require_tensorboard()  # a missing package is one line before any folder exists
    manifest = base_manifest() | {
        "run": name,
        "status": "created",
        "data_source": data.source,
        "n_train_images": len(data.images),
        "channels": data.channels,
        "backend": to_dict(backend.spec) | {"local": command.local} | _simulation_method(cfg, backend),
        "circuits": write_run_circuits(cfg, backend),
        "seeds": {"train": cfg.train.seed, "data_subset": cfg.data.seed},
        "noise": {"train": cfg.train.noise},
        "device": describe_device(requested, device),
        "schedule": cfg.diffusion.make_schedule().describe(),
        "parameters": _parameter_counts(model),
    }
    run = RunDir.create(command.runs_dir or default_runs_root(), name, config=cfg, manifest=manifest)
    with run.lock():
        try:  # the quantum noise pool needs the run dir; if opening it fails, leave no half-made run behind
            backend.attach_run_dir(run)
            noise = make_noise(cfg, run, backend)
            board = TrainingBoard(run.tensorboard_dir) if cfg.train.tensorboard else None
            plot_schedule(cfg.diffusion.make_schedule(),
                          cfg.diffusion.mixing() if cfg.train.noise == "mixed" else None, run.path_for("schedule_png"))
            trainer = Trainer(run, cfg, data, backend, noise, quality=quality, board=board, device=device, model=model)
        except BaseException:
            shutil.rmtree(run.path, ignore_errors=True)
            raise
        report(f"qgen: run directory {run.path}")
        _train(trainer, command.progress, report)
    return run


def resume_training(command: ResumeCommand) -> RunDir:
    """Continue a run; on ``command.device`` if given (``auto`` too), else on the device its config.toml names."""
    run = RunDir.resolve(command.run, command.runs_dir or default_runs_root())
    with run.writing():  # before anything is read: a second writer must not even truncate loss.csv
        return _resume_locked(run, command)


def _resume_locked(run: RunDir, command: ResumeCommand) -> RunDir:
    if not run.has_checkpoint("last"):
        raise run.never_checkpointed()
    cfg = run.config()
    check_training_memory(cfg.model, cfg.train.batch_size, cfg.diffusion.T)
    if cfg.train.tensorboard:
        require_tensorboard()  # before anything in the run is rewritten
    requested = command.device or cfg.device
    resolved = resolve_device(requested)
    moved = device_name(resolved) != cfg.device
    cfg = replace(cfg, device=device_name(resolved))
    backend = load_backend(cfg.backend, command.backends_file, local=command.local)
    backend.on_journal_mismatch = command.journaled_jobs  # resumed steps re-ask what the killed run asked
    try:  # the Session/Batch of a hardware run is closed on every way out
        return _resume_with(run, cfg, backend, command, device=(requested, resolved, moved))
    finally:
        backend.close()


def _resume_with(run: RunDir, cfg: RunConfig, backend: QuantumBackend, command: ResumeCommand, *,
                 device: tuple) -> RunDir:
    requested, resolved, moved = device
    steps, report = command.steps, command.report
    backend.attach_run_dir(run)
    if steps is not None:
        cfg = cfg.with_steps(steps)
    data = load_dataset(cfg.data)
    noise = make_noise(cfg, run, backend)
    trainer = Trainer(run, cfg, data, backend, noise, quality=make_quality_monitor(cfg, data, report, resolved),
                      device=resolved)
    trainer.restore()  # the checkpoint is read onto the CPU and copied onto the device
    training_plan(cfg, backend, run, steps_done=trainer.step).check()
    if trainer.step >= cfg.train.steps:
        raise QgenError(f"run {run.path} already finished {trainer.step} steps; pass --steps N (N > {trainer.step}) "
                        "to train further")
    if steps is not None or moved:
        run.save_config(cfg)
    if cfg.train.tensorboard:  # events past the checkpoint (a kill) are purged, like the CSV rows
        trainer.board = TrainingBoard(run.tensorboard_dir, purge_step=trainer.step + 1)
    run.update_manifest(device=describe_device(requested, resolved))
    report(f"qgen: resuming {run.path} at step {trainer.step}")
    _train(trainer, command.progress, report)
    return run


def write_run_circuits(cfg: RunConfig, backend: QuantumBackend) -> list[str]:
    """Write the bottleneck circuit as the backend receives it into circuits/; return the paths."""
    if cfg.model.kind != "quantum":
        return []
    circuit = build_ansatz(cfg.model.ansatz)
    out = write_prepared_artifacts(backend, backend.prepare(circuit), default_circuits_root())
    return [str(out.resolve())]


def _simulation_method(cfg: RunConfig, backend: QuantumBackend) -> dict:
    """How the backend simulates the bottleneck (exact statevector / mps, or Aer's method)."""
    if cfg.model.kind != "quantum" or not backend.has_simulation_method:
        return {}
    circuit = build_ansatz(cfg.model.ansatz)
    return {"simulation_method": backend.simulation_method(circuit)}


def _train(trainer: Trainer, show_progress: bool, report: Reporter) -> None:
    try:
        trainer.train(show_progress=show_progress)
    except KeyboardInterrupt:
        # saved_step, not step: a second signal mid-step leaves the checkpoint one step behind
        report(f"qgen: interrupted; the checkpoint holds step {trainer.saved_step}. Resume with: "
               f"qgen train --resume {trainer.run.path}")
        raise
    note = trainer.run.manifest().get("preview_note")
    report(f"qgen: finished {trainer.step} steps in {trainer.run.path}" + (f" ({note})" if note else ""))


def _parameter_counts(model) -> dict:
    gate = getattr(model, "gate", None)
    middle = getattr(gate, "middle", None)
    return {
        "total": count_parameters(model),
        "gate": count_parameters(gate) if gate is not None else 0,
        "gate_middle": count_parameters(middle) if middle is not None else 0,
        # kept at their initial values by train.freeze (counted in none of the trainable numbers above)
        "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad),
    }
