"""``qgen sample``: a ``SampleCommand``'s images, drawn from a run or from a model folder, and written.

A run's samples go into its run directory (its quantum noise pool and hardware journal record
what they spent); a model folder's (``qgen export``) into a folder of the caller's choice, drawn
by ``PretrainedModel.draw`` -- what ``PretrainedModel.sample`` returns. Both draw through
``qgen.draw.draw_samples``, so the same weights, sampler and seed give bit-identical images either
way. ``plan_sampling`` is ``--dry-run``: what drawing from a run would cost, nothing submitted.

The model runs on the requested device (any device: checkpoints are read onto the CPU and copied
there, so a GPU-trained run samples on a CPU); noise is drawn on the host, so a seed gives the same
x_T and per-step noise everywhere. The images come back to the host to be checked and written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import torch

from qgen.backends.devices import check_not_retired
from qgen.backends.registry import load_backend
from qgen.commands import SampleCommand
from qgen.data import to_uint8_pixels
from qgen.diffusion.objectives import EpsModel
from qgen.diffusion.pipeline import batch_sizes
from qgen.diffusion.samplers import SCHEDULERS
from qgen.draw import ETA_SAMPLER, SampleRequest, check_finite, draw_samples
from qgen.errors import QgenError
from qgen.memory import check_sampling_memory
from qgen.models.unet import image_shape
from qgen.noise.factory import complete_reservation, make_noise_source
from qgen.planner import sampling_plan
from qgen.plots import save_image_grid
from qgen.pretrained import PretrainedModel, from_pretrained
from qgen.rundir import ModelFolder, RunDir, default_runs_root, write_samples
from qgen.tomlconfig import to_dict
from qgen.torch_device import describe_device, resolve_device
from qgen.trained_model import load_trained_model, weights_to_load


def sample(command: SampleCommand) -> dict:
    """Draw and write ``command``'s samples: {"images", "npz", "png", "metadata"}."""
    if command.model is not None:
        return _sample_model(command)
    resolved = resolve_device(command.device)  # before the lock: a missing GPU is one line and touches nothing
    run = find_run(command)
    with run.writing():  # one writer at a time (never while the run trains); writable, manifest readable
        return _sample_locked(run, command, device=resolved)


def find_run(command: SampleCommand) -> RunDir:
    """The run ``command`` names (a path, or a name under its runs folder)."""
    return RunDir.resolve(command.run, command.runs_dir or default_runs_root())


# -- a model folder --------------------------------------------------------------------------------
def _sample_model(command: SampleCommand) -> dict:
    resolved = resolve_device(command.device)
    pretrained = from_pretrained(command.model, backend=command.request.backend, backends_file=command.backends_file,
                                 local=command.local, device=resolved)
    try:  # whatever the backend holds open is released on every way out
        return _sample_model_with(pretrained, command, resolved)
    finally:
        pretrained.backend.close()


def _sample_model_with(pretrained: PretrainedModel, command: SampleCommand, resolved: torch.device) -> dict:
    req = command.request
    drawn = pretrained.draw(req, show_progress=command.progress)
    out_dir = command.out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QgenError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None
    backend = pretrained.backend
    files = ModelFolder.new_samples_file(out_dir, f"{req.sampler}{drawn.scheduler.model_calls()}", backend.spec.name)
    meta = {
        "request": asdict(req),
        "model": str(pretrained.path),
        "backend": to_dict(backend.spec) | {"local": command.local},
        "checkpoint_step": pretrained.step,
        "weights": pretrained.weights,
        "noise": drawn.noise.provenance(),
        "noise_draws": drawn.scheduler.noise_draws(),
        "scheduler": drawn.scheduler.describe(),
        "device": describe_device(command.device, resolved),
    }
    images = drawn.images
    write_samples(files, images=to_uint8_pixels(images).numpy(), samples=images.numpy(),
                  metadata=json.dumps(meta, default=str))
    save_image_grid(images, files.png)
    return {"npz": files.npz, "png": files.png, "images": images, "metadata": meta}


# -- a run -----------------------------------------------------------------------------------------
def _sample_locked(run: RunDir, command: SampleCommand, *, device: torch.device) -> dict:
    req = command.request
    cfg, backend, model, ckpt = load_trained_model(run, req.backend, req.weights, command.backends_file,
                                                   command.local, device)
    backend.on_journal_mismatch = command.journaled_jobs
    try:  # a Session/Batch the backend opened is closed on every way out
        return _sample_with(run, cfg, backend, model, ckpt, command, device=device)
    finally:
        backend.close()


def _sample_with(run: RunDir, cfg, backend, model, ckpt, command: SampleCommand, *, device: torch.device) -> dict:
    req = command.request
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
    images = draw_samples(eps_model, scheduler, model.image_shape, noise, req, command.progress, device)
    check_finite(images, ckpt, run.path)
    files = run.new_samples_file(f"{req.sampler}{scheduler.model_calls()}", backend.spec.name)
    meta = {
        "request": asdict(req),
        "backend": to_dict(backend.spec) | {"local": command.local},
        "checkpoint_step": ckpt["step"],
        "weights": ckpt["weights"],  # what was loaded (ema falls back to last when its file is missing)
        "noise": noise.provenance(),
        "noise_draws": scheduler.noise_draws(),
        "scheduler": scheduler.describe(),
        "device": describe_device(command.device, device),
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

    def check(self) -> None:
        """Raise what the real run would be refused with (after the plan is shown)."""
        if self.refusals:
            raise QgenError(f"the real run would be refused: {'; '.join(self.refusals)}")


def plan_sampling(command: SampleCommand) -> SamplingPlan:
    """What ``sample(command)`` would do, without spending shots. On IBM hardware (with credentials) the
    QPU time is the service's own estimate, from one free ``dry_run`` job per batch size."""
    if command.model is not None:
        raise QgenError("--dry-run plans a run's sampling; give --run")
    refusals: list[str] = []
    req = command.request
    run_dir = find_run(command)
    cfg = run_dir.config()
    backend = load_backend(req.backend or cfg.backend, command.backends_file, local=command.local)
    try:  # nothing is opened for a plan, and whatever the backend holds is released on every way out
        return _plan_with(run_dir, cfg, backend, req, command.local, refusals)
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
    shape = "x".join(str(side) for side in image_shape(channels))
    lines = [f"sampling: {req.n} samples x {shape}, {req.sampler} with {steps} model calls per batch, "
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
    schedule = cfg.diffusion.make_schedule()
    parts = []
    for name in SCHEDULERS:
        other = replace(req, sampler=name, eta=req.eta if name == ETA_SAMPLER else 0.0)  # eta is DDIM's alone
        calls = other.make_scheduler(schedule).model_calls()
        parts.append(f"{name} {calls * chunks}")
    what = "estimator jobs" if cfg.model.kind == "quantum" else "model calls"
    return f"{what} per sampler at --steps {req.steps}: {', '.join(parts)} (chosen: {req.sampler})"
