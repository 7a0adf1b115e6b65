"""``qgen sample``: load a trained run and generate images with DDPM or DDIM.

The model runs on ``SampleRequest.device`` (any device: checkpoints are read onto the CPU and copied
there, so a GPU-trained run samples on a CPU); noise is drawn on the host, so a seed gives the same
x_T and per-step noise everywhere. The images come back to the host to be checked and written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from qgen.backends.registry import load_backend
from qgen.data import to_uint8_pixels
from qgen.diffusion.objectives import EpsModel
from qgen.diffusion.pipeline import batch_sizes, sample
from qgen.diffusion.samplers import make_scheduler, scheduler_class
from qgen.diffusion.schedulers import Scheduler
from qgen.errors import QgenError
from qgen.models.build import build_model, load_model_state
from qgen.noise.factory import make_noise_source
from qgen.plots import save_image_grid
from qgen.rundir import RunDir, default_runs_root
from qgen.tomlconfig import to_dict
from qgen.torch_device import describe_device, resolve_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleRequest:
    n: int = 64
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    seed: int = 0
    noise: str = "classical"
    weights: str = "ema"
    batch_size: int = 64
    backend: str | None = None
    shot_budget: int | None = None
    reuse_noise: bool = False

    def validate(self, T: int) -> None:
        if self.n < 1:
            raise QgenError(f"--n must be >= 1, got {self.n}")
        if self.batch_size < 1:
            raise QgenError(f"--batch-size must be >= 1, got {self.batch_size}")
        scheduler_class(self.sampler).check_options(T, self.steps, eta=self.eta)

    def make_scheduler(self, schedule) -> Scheduler:
        """The request's sampler over ``schedule``, timesteps set (DDPM ignores steps and eta)."""
        return make_scheduler(self.sampler, schedule, steps=self.steps, eta=self.eta)


def load_trained_model(run_dir: Path, backend_name: str | None, weights: str, backends_file: Path | None,
                       local: bool = False, device: torch.device | str = "cpu"):
    """(config, backend, model on ``device``, checkpoint); ``checkpoint["weights"]`` says which weights
    were loaded."""
    run = RunDir(run_dir)
    cfg = run.config()
    backend = load_backend(backend_name or cfg.backend, backends_file, local=local)
    weights = weights_to_load(run, weights)
    ckpt = run.load_checkpoint(weights)  # "ema" or "last"; read onto the CPU whatever device wrote it
    model = build_model(cfg.model, ckpt["channels"], cfg.train.seed, backend).to(device)
    load_model_state(model, ckpt["model"], run.checkpoint_path(weights))
    model.eval()
    return cfg, backend, model, ckpt | {"weights": weights}


def weights_to_load(run: RunDir, weights: str) -> str:
    """``weights``, except that missing EMA weights (a kill while writing them) fall back to ``last``,
    said on stderr."""
    if weights == "ema" and not run.has_checkpoint("ema") and run.has_checkpoint("last"):
        logger.warning(f"qgen: {run.checkpoint_path('ema')} is missing; sampling with the last training "
                       f"weights ({run.checkpoint_path('last').name}) instead")
        return "last"
    return weights


def check_finite(images: torch.Tensor, ckpt: dict, run: RunDir) -> None:
    """Refuse to write samples that are not all finite numbers (a diverged model)."""
    bad = int((~torch.isfinite(images)).sum())
    if bad:
        raise QgenError(f"sampling produced {bad:,} non-finite pixel values (NaN/inf) with the "
                        f"{ckpt.get('weights', 'ema')} weights of {run.path} at step {ckpt.get('step')}: the model "
                        "has diverged; nothing was written. Resume training from an earlier state or retrain")


def sample_run(run: str, req: SampleRequest, *, runs_dir: Path | None, backends_file: Path | None,
               show_progress: bool = True, local: bool = False, device: str = "cpu") -> dict:
    """Sample ``req`` from a run with the model on ``device`` (``auto``, ``cpu``, ``cuda[:N]``, ``mps``)."""
    resolved = resolve_device(device)  # before the lock: a missing GPU is one line and touches nothing
    found = RunDir.resolve(run, runs_dir or default_runs_root())
    with found.lock():  # one writer at a time: never while the run trains
        return _sample_locked(found, req, backends_file=backends_file, show_progress=show_progress, local=local,
                              device=(device, resolved))


def _sample_locked(run: RunDir, req: SampleRequest, *, backends_file: Path | None, show_progress: bool,
                   local: bool, device: tuple[str, torch.device]) -> dict:
    run_dir = run.path
    requested_device, device = device
    cfg, backend, model, ckpt = load_trained_model(run_dir, req.backend, req.weights, backends_file, local, device)
    req.validate(cfg.diffusion.T)
    backend.attach_run_dir(run_dir, req.shot_budget)
    scheduler = req.make_scheduler(cfg.diffusion.make_schedule())
    if backend.spends_shots and cfg.model.kind == "quantum":
        _check_budget_before_sampling(run, cfg, backend, req, scheduler)
    noise = make_noise_source(req.noise, req.seed, run_dir, backend, mixing=cfg.diffusion.mixing(),
                              reuse=req.reuse_noise, shot_budget=req.shot_budget)
    channels = ckpt["channels"]
    chunks = batch_sizes(req.n, req.batch_size)
    bar = tqdm(total=scheduler.model_calls() * len(chunks), desc=f"{req.sampler}", unit="step",
               disable=not show_progress)
    eps_model = EpsModel(model, cfg.diffusion.objective(), scheduler.diffusion.alphas_cumprod)
    out = [sample(eps_model, scheduler, (size, channels, 28, 28), noise, progress=bar.update, device=device).cpu()
           for size in chunks]
    bar.close()
    images = torch.cat(out)
    check_finite(images, ckpt, run)
    files = run.new_samples_file(f"{req.sampler}{scheduler.model_calls()}", backend.spec.name)
    meta = {
        "request": asdict(req),
        "backend": to_dict(backend.spec) | {"local": local},
        "checkpoint_step": ckpt["step"],
        "weights": ckpt["weights"],  # what was loaded (ema falls back to last when its file is missing)
        "noise": noise.provenance(),
        "noise_draws": scheduler.noise_draws(),
        "scheduler": scheduler.describe(),
        "device": describe_device(requested_device, device),
    }
    u8 = to_uint8_pixels(images).numpy()
    run.save_samples(files, images=u8, samples=images.numpy(), metadata=json.dumps(meta, default=str))
    npz, png = files.npz, files.png
    save_image_grid(images, png)
    # the run's manifest lists every sample set with its backend and noise provenance (bits, job IDs)
    run.append_to_manifest("samples", {"file": npz.name, "backend": backend.spec.name, "noise": meta["noise"],
                                       "checkpoint_step": ckpt["step"], "weights": ckpt["weights"]})
    return {"npz": npz, "png": png, "images": images, "metadata": meta}


def _estimator_plan(cfg, spec, req: SampleRequest, scheduler: Scheduler):
    """Every estimator job the quantum layer will send: each model call is its own job (the next
    call's inputs depend on its result) holding one PUB per observable."""
    from qgen.backends.budget import JobPlan, plan_for_spec

    steps = scheduler.model_calls()
    chunks = batch_sizes(req.n, req.batch_size)
    shots = spec.shots_per_binding
    per_call = [plan_for_spec([(size, shots)] * cfg.model.qubits, spec) for size in chunks]
    return JobPlan(jobs=tuple(job for p in per_call for job in p.jobs) * steps,
                   estimated_seconds=steps * sum(p.estimated_seconds for p in per_call))


def _check_budget_before_sampling(run: RunDir, cfg, backend, req: SampleRequest, scheduler: Scheduler) -> None:
    from qgen.backends.budget import ShotBudget

    limit = req.shot_budget if req.shot_budget is not None else backend.spec.shot_budget
    ShotBudget.load(run.budget_path, backend.spec.name, limit).check(_estimator_plan(cfg, backend.spec, req, scheduler))


@dataclass(frozen=True)
class SamplingPlan:
    """What ``qgen sample --dry-run`` prints, and why the real run would be refused (if it would)."""

    lines: list[str]
    refusals: list[str]

    def __iter__(self):
        return iter(self.lines)


def plan_sampling(run: str, req: SampleRequest, *, runs_dir: Path | None, backends_file: Path | None,
                  local: bool = False) -> SamplingPlan:
    """What ``qgen sample`` would do, without building primitives or spending shots."""
    from qgen.noise import plan_bits

    refusals: list[str] = []
    run_dir = RunDir.resolve(run, runs_dir or default_runs_root())
    cfg = run_dir.config()
    backend = load_backend(req.backend or cfg.backend, backends_file, local=local)
    spec = backend.spec
    req.validate(cfg.diffusion.T)
    channels = run_dir.load_checkpoint(weights_to_load(run_dir, req.weights))["channels"]
    scheduler = req.make_scheduler(cfg.diffusion.make_schedule())
    steps = scheduler.model_calls()  # per batch; the scheduler's count, never recomputed here
    chunks = len(batch_sizes(req.n, req.batch_size))
    lines = [f"sampling: {req.n} samples x {channels}x28x28, {req.sampler} with {steps} model calls per batch, "
             f"{chunks} batch(es) of <= {req.batch_size}; backend {spec.name} ({spec.kind})"]
    if cfg.model.kind == "quantum":
        calls = steps * chunks
        pubs = calls * cfg.model.qubits       # EstimatorQNN forward: one PUB per observable
        bindings = steps * req.n * cfg.model.qubits
        line = f"quantum layer: {calls} model calls, {pubs} PUBs, {bindings} bindings"
        if backend.spends_shots:
            from qgen.backends.budget import ShotBudget

            job_plan = _estimator_plan(cfg, spec, req, scheduler)
            limit = req.shot_budget if req.shot_budget is not None else spec.shot_budget
            budget = ShotBudget.load(run_dir.budget_path, spec.name, limit)
            line += f"; {job_plan.summary()}; shot budget left: {budget.remaining if budget.remaining is not None else 'unlimited'}"
            refusals += _refusal(lambda: budget.check(job_plan))
        lines.append(line)
    lines.append(sampler_comparison(cfg, req, chunks))
    if backend.spends_shots and spec.device:
        from qgen.backends.devices import check_not_retired

        retired = _refusal(lambda: check_not_retired(spec.device, allow_local=local))
        lines += retired
        refusals += retired
    if req.noise in ("quantum", "mixed"):
        from qgen.noise.factory import source_shape

        width, extraction_yield = source_shape(backend)
        budget = plan_bits(req.n, channels, scheduler, qubits_per_shot=width, extraction_yield=extraction_yield)
        lines.append(f"quantum noise{' (upper bound: mixed draws quantum bits only where λ(t) > 0)' if req.noise == 'mixed' else ''}: {budget.summary()}")
    else:
        lines.append("noise: classical (torch.Generator), no quantum bits needed")
    lines.append("dry run: nothing was submitted")
    return SamplingPlan(lines, refusals)


def _refusal(check) -> list[str]:
    """[the message] if ``check()`` refuses (raises QgenError), else []."""
    try:
        check()
    except QgenError as exc:
        return [str(exc)]
    return []


def sampler_comparison(cfg, req: SampleRequest, chunks: int) -> str:
    """Model calls of every sampler at this request's steps: on hardware each call is one estimator
    job per batch, so this is what choosing the sampler costs (DDPM ignores --steps)."""
    from qgen.diffusion.samplers import SCHEDULERS

    schedule = cfg.diffusion.make_schedule()
    parts = []
    for name in SCHEDULERS:
        calls = replace(req, sampler=name).make_scheduler(schedule).model_calls()
        parts.append(f"{name} {calls * chunks}")
    what = "estimator jobs" if cfg.model.kind == "quantum" else "model calls"
    return f"{what} per sampler at --steps {req.steps}: {', '.join(parts)} (chosen: {req.sampler})"
