"""``qgen sample``: load a trained run (or an exported model folder) and generate images.

``sample_run`` writes into the run directory; ``sample_model`` reads a model folder (``qgen export``)
and writes into a folder of the caller's choice. Both draw through ``draw_samples``, so the same
weights, sampler and seed give bit-identical images either way.

The model runs on the requested device (any device: checkpoints are read onto the CPU and copied
there, so a GPU-trained run samples on a CPU); noise is drawn on the host, so a seed gives the same
x_T and per-step noise everywhere. The images come back to the host to be checked and written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from qgen.backends.registry import load_backend
from qgen.data import to_uint8_pixels
from qgen.diffusion.objectives import EpsModel
from qgen.diffusion.pipeline import batch_sizes, sample
from qgen.diffusion.samplers import make_scheduler, scheduler_class
from qgen.diffusion.schedulers import Scheduler
from qgen.errors import QgenError
from qgen.memory import check_sampling_memory
from qgen.models.build import build_model, load_model_state
from qgen.training.freeze import freeze
from qgen.noise.factory import complete_reservation, make_noise_source
from qgen.planner import sampling_plan
from qgen.plots import save_image_grid
from qgen.rundir import RunDir, default_runs_root
from qgen.tomlconfig import to_dict
from qgen.torch_device import describe_device, resolve_device

logger = logging.getLogger(__name__)


ETA_SAMPLER = "ddim"  # the one sampler with a noise scale eta


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
        if self.eta and self.sampler != ETA_SAMPLER:  # it would be silently ignored
            raise QgenError(f"--eta applies to --sampler {ETA_SAMPLER} only; --sampler {self.sampler} has no eta")
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
    freeze(model, cfg.train.freeze)  # the model as trained: what it froze is not a trainable parameter here either
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


def check_finite(images: torch.Tensor, ckpt: dict, source: Path) -> None:
    """Refuse to write samples that are not all finite numbers (a diverged model)."""
    bad = int((~torch.isfinite(images)).sum())
    if bad:
        raise QgenError(f"sampling produced {bad:,} non-finite pixel values (NaN/inf) with the "
                        f"{ckpt.get('weights', 'ema')} weights of {source} at step {ckpt.get('step')}: the model "
                        "has diverged; nothing was written. Resume training from an earlier state or retrain")


def draw_samples(eps_model: torch.nn.Module, scheduler: Scheduler, channels: int, noise, req: SampleRequest,
                 show_progress: bool = False, device: torch.device | None = None) -> torch.Tensor:
    """``req.n`` images in batches of ``req.batch_size``, one scheduler and noise source throughout;
    the model runs on ``device`` (default: the CPU), the images come back to the host."""
    chunks = batch_sizes(req.n, req.batch_size)
    bar = tqdm(total=scheduler.model_calls() * len(chunks), desc=f"{req.sampler}", unit="step",
               disable=not show_progress)
    try:
        out = [sample(eps_model, scheduler, (size, channels, 28, 28), noise, progress=bar.update,
                      device=device or torch.device("cpu")).cpu() for size in chunks]
    finally:
        bar.close()
    return torch.cat(out)


def sample_model(model_dir: Path, req: SampleRequest, *, out_dir: Path, backends_file: Path | None,
                 show_progress: bool = True, local: bool = False, device: str = "cpu") -> dict:
    """``qgen sample --model DIR``: samples of an exported model folder, written into ``out_dir``.

    Classical noise only, on backends that spend no shots: quantum bits and hardware jobs are
    journaled in a run directory, which a shared model folder does not have.
    """
    from qgen.pretrained import from_pretrained

    if req.noise != "classical":
        raise QgenError(f"--noise {req.noise} needs a run directory (its entropy pool records the bits); "
                        "sample a model folder with --noise classical, or sample the run with --run")
    if req.reuse_noise:
        raise QgenError("--reuse-noise replays a run's quantum noise pool; a model folder has none")
    resolved = resolve_device(device)
    pretrained = from_pretrained(model_dir, backend=req.backend, backends_file=backends_file, local=local,
                                 device=resolved)
    try:  # whatever the backend holds open is released on every way out
        return _sample_model_with(pretrained, req, out_dir=out_dir, show_progress=show_progress, local=local,
                                  device=(device, resolved))
    finally:
        pretrained.backend.close()


def _sample_model_with(pretrained, req: SampleRequest, *, out_dir: Path, show_progress: bool, local: bool,
                       device: tuple) -> dict:
    from qgen.noise import ClassicalNoise
    from qgen.rundir import ModelFolder, write_samples

    device, resolved = device
    backend, cfg = pretrained.backend, pretrained.config
    if backend.spends_shots and cfg.model.kind == "quantum":
        raise QgenError(f"backend {backend.spec.name} submits hardware jobs, which are journaled in a run "
                        "directory; sample the run with --run, or choose a simulator with --backend")
    req.validate(cfg.diffusion.T)
    check_sampling_memory(cfg.model, cfg.channels, req.n, req.batch_size, cfg.diffusion.T)
    scheduler = req.make_scheduler(cfg.diffusion.make_schedule())
    noise = ClassicalNoise(req.seed)
    images = draw_samples(pretrained.eps_model(scheduler), scheduler, cfg.channels, noise, req, show_progress,
                          resolved)
    weights = {"weights": cfg.weights.get("source", "ema"), "step": pretrained.step}
    check_finite(images, weights, pretrained.path)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QgenError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None
    files = ModelFolder.new_samples_file(out_dir, f"{req.sampler}{scheduler.model_calls()}", backend.spec.name)
    meta = {
        "request": asdict(req),
        "model": str(pretrained.path),
        "backend": to_dict(backend.spec) | {"local": local},
        "checkpoint_step": pretrained.step,
        "weights": weights["weights"],
        "noise": noise.provenance(),
        "noise_draws": scheduler.noise_draws(),
        "scheduler": scheduler.describe(),
        "device": describe_device(device, resolved),
    }
    write_samples(files, images=to_uint8_pixels(images).numpy(), samples=images.numpy(),
                  metadata=json.dumps(meta, default=str))
    save_image_grid(images, files.png)
    return {"npz": files.npz, "png": files.png, "images": images, "metadata": meta}


def sample_run(run: str, req: SampleRequest, *, runs_dir: Path | None, backends_file: Path | None,
               show_progress: bool = True, local: bool = False, device: str = "cpu",
               journaled_jobs: str | None = None) -> dict:
    """Sample ``req`` from a run with the model on ``device`` (``auto``, ``cpu``, ``cuda[:N]``, ``mps``).
    ``journaled_jobs``: "reuse" or "resubmit" a journaled job asked under other backend settings (None:
    refuse, saying which settings changed)."""
    resolved = resolve_device(device)  # before the lock: a missing GPU is one line and touches nothing
    found = RunDir.resolve(run, runs_dir or default_runs_root())
    with found.writing():  # one writer at a time (never while the run trains); writable, manifest readable
        return _sample_locked(found, req, backends_file=backends_file, show_progress=show_progress, local=local,
                              device=(device, resolved), journaled_jobs=journaled_jobs)


def _sample_locked(run: RunDir, req: SampleRequest, *, backends_file: Path | None, show_progress: bool,
                   local: bool, device: tuple[str, torch.device], journaled_jobs: str | None = None) -> dict:
    run_dir = run.path
    requested_device, device = device
    cfg, backend, model, ckpt = load_trained_model(run_dir, req.backend, req.weights, backends_file, local, device)
    backend.on_journal_mismatch = journaled_jobs
    try:  # a Session/Batch the backend opened is closed on every way out
        return _sample_with(run, cfg, backend, model, ckpt, req, show_progress=show_progress, local=local,
                            device=(requested_device, device))
    finally:
        backend.close()


def _sample_with(run: RunDir, cfg, backend, model, ckpt, req: SampleRequest, *, show_progress: bool,
                 local: bool, device: tuple[str, torch.device]) -> dict:
    requested_device, device = device
    req.validate(cfg.diffusion.T)
    check_sampling_memory(cfg.model, ckpt["channels"], req.n, req.batch_size, cfg.diffusion.T)
    backend.attach_run_dir(run, req.shot_budget)
    scheduler = req.make_scheduler(cfg.diffusion.make_schedule())
    plan = (sampling_plan(cfg, backend, run, req, scheduler, ckpt["channels"], _resume_key(req, ckpt))
            if backend.spends_shots else None)
    if plan is not None:
        plan.check()
    noise = make_noise_source(req.noise, req.seed, run, backend, mixing=cfg.diffusion.mixing(),
                              reuse=req.reuse_noise, shot_budget=req.shot_budget,
                              resume_key=_resume_key(req, ckpt))
    if plan is not None and plan.bits is not None:
        # every bit the request may draw, in the refill job(s) its plan counted, before the first draw
        prefetch_bits(noise, plan.bits.bits)
    eps_model = EpsModel(model, cfg.diffusion.objective(), scheduler.diffusion.alphas_cumprod)
    images = draw_samples(eps_model, scheduler, ckpt["channels"], noise, req, show_progress, device)
    check_finite(images, ckpt, run.path)
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
        # results of journaled jobs that ran under other backend settings (--journaled-jobs reuse)
        "reused_jobs_under_other_settings": backend.reused_under_other_settings(),
    }
    u8 = to_uint8_pixels(images).numpy()
    run.save_samples(files, images=u8, samples=images.numpy(), metadata=json.dumps(meta, default=str))
    npz, png = files.npz, files.png
    save_image_grid(images, png)
    # the run's manifest lists every sample set with its backend and noise provenance (bits, job IDs)
    run.append_to_manifest("samples", {"file": npz.name, "backend": backend.spec.name, "noise": meta["noise"],
                                       "checkpoint_step": ckpt["step"], "weights": ckpt["weights"]})
    complete_reservation(noise)  # only now: an interrupted command resumes at the bits it had reserved
    return {"npz": npz, "png": png, "images": images, "metadata": meta}


def _resume_key(req: SampleRequest, ckpt: dict) -> str:
    """What makes a repeated ``qgen sample`` the same request: everything that shapes the draws and the
    model's inputs (not the shot budget). Same key after an interruption -> same x_T, same jobs."""
    fields = {k: v for k, v in asdict(req).items() if k not in ("shot_budget", "reuse_noise")}
    return json.dumps({**fields, "checkpoint_step": ckpt["step"], "weights": ckpt["weights"]}, sort_keys=True)


def prefetch_bits(noise, n_bits: int) -> None:
    """Fill the pool of ``noise`` (quantum, or mixed's quantum part) to ``n_bits`` now."""
    pool = getattr(getattr(noise, "quantum", noise), "pool", None)
    if pool is not None:
        pool.ensure(n_bits)


@dataclass(frozen=True)
class SamplingPlan:
    """What ``qgen sample --dry-run`` prints, and why the real run would be refused (if it would)."""

    lines: list[str]
    refusals: list[str]

    def __iter__(self):
        return iter(self.lines)


def plan_sampling(run: str, req: SampleRequest, *, runs_dir: Path | None, backends_file: Path | None,
                  local: bool = False) -> SamplingPlan:
    """What ``qgen sample`` would do, without spending shots. On IBM hardware (with credentials) the
    QPU time is the service's own estimate, from one free ``dry_run`` job per batch size."""
    refusals: list[str] = []
    run_dir = RunDir.resolve(run, runs_dir or default_runs_root())
    cfg = run_dir.config()
    backend = load_backend(req.backend or cfg.backend, backends_file, local=local)
    try:  # nothing is opened for a plan, and whatever the backend holds is released on every way out
        return _plan_with(run_dir, cfg, backend, req, local, refusals)
    finally:
        backend.close()


def _plan_with(run_dir: RunDir, cfg, backend, req: SampleRequest, local: bool, refusals: list[str]) -> SamplingPlan:
    spec = backend.spec
    req.validate(cfg.diffusion.T)
    weights = weights_to_load(run_dir, req.weights)
    ckpt = run_dir.load_checkpoint(weights) | {"weights": weights}
    channels = ckpt["channels"]
    scheduler = req.make_scheduler(cfg.diffusion.make_schedule())
    steps = scheduler.model_calls()  # per batch; the scheduler's count, never recomputed here
    chunks = len(batch_sizes(req.n, req.batch_size))
    lines = [f"sampling: {req.n} samples x {channels}x28x28, {req.sampler} with {steps} model calls per batch, "
             f"{chunks} batch(es) of <= {req.batch_size}; backend {spec.name} ({spec.kind})"]
    plan = sampling_plan(cfg, backend, run_dir, req, scheduler, channels, _resume_key(req, ckpt),
                         service_estimate=True)
    if cfg.model.kind == "quantum":
        calls = steps * chunks
        # one PUB per call: every readout from the same shots; one binding per image and site
        bindings = steps * req.n * cfg.model.circuit_rows_per_image
        line = f"quantum layer: {calls} model calls, {calls} PUBs, {bindings} bindings"
        if plan.estimator is not None:
            line += f"; estimator: {plan.estimator.summary()}"
        lines.append(line)
    lines.append(sampler_comparison(cfg, req, chunks))
    if backend.spends_shots and spec.device:
        from qgen.backends.devices import check_not_retired

        retired = _refusal(lambda: check_not_retired(spec.device, allow_local=local))
        lines += retired
        refusals += retired
    if plan.bits is not None:
        bound = " (upper bound: mixed draws quantum bits only where λ(t) > 0)" if req.noise == "mixed" else ""
        line = f"quantum noise{bound}: {plan.bits.summary()}"
        if plan.noise is not None:
            line += f"; sampler: {plan.noise.summary()}"
        lines.append(line)
    else:
        lines.append("noise: classical (torch.Generator), no quantum bits needed")
    if plan.submits:
        lines.append(plan.budget_line())
        if not plan.fits:
            refusals.append(plan.refusal())
    estimates = plan.service_estimates
    lines.append("dry run: nothing was submitted" if not estimates else
                 f"dry run: no shots spent; the QPU time is from {estimates} free dry_run estimate job(s) "
                 "(no Session opened)")
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
