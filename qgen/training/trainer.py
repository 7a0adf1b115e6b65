"""The training loop: the recipe's step (objective, lr schedule, augmentation, EMA), in-training
quality, atomic checkpoints, resumption, and a preview grid at the end.

Stopping is always clean: a signal is honoured between steps, a second one never saves a torn
step, an error (a diverged loss, a full disk) marks the manifest ``failed`` and leaves the last
checkpoint as it was.

Devices: the model, the diffusion terms, the EMA, the optimizer state and the training images live
on ``device`` (the images are moved once); batch order, timesteps, augmentation shifts and ε are
drawn on the host from CPU generators and moved, so a seed trains on the same batches, timesteps
and noise on every device. Checkpoints load on any device.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from tqdm import tqdm

from qgen.backends.base import QuantumBackend
from qgen.backends.registry import backend_for
from qgen.backends.spec import BackendSpec
from qgen.config import RunConfig
from qgen.data import LoadedData
from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.objectives import EpsModel
from qgen.diffusion.pipeline import sample
from qgen.diffusion.samplers import make_scheduler
from qgen.errors import QgenError
from qgen.models.build import build_model, load_model_state
from qgen.noise.sources import ClassicalNoise
from qgen.noise_protocol import NoiseSource
from qgen.plots import save_image_grid, save_loss_plot, save_quality_plot
from qgen.rundir import CheckpointWriteError, RunDir
from qgen.rundir.checkpoints import require_entries
from qgen.training.augment import random_translate
from qgen.training.ema import EMA
from qgen.training.freeze import freeze, trainable
from qgen.training.lr_schedule import lr_factor
from qgen.training.quality import QualityMonitor, QualityRow
from qgen.training.tensorboard import TrainingBoard, final_metrics, run_hparams


logger = logging.getLogger(__name__)

#: What a hardware run's previews are drawn with (the manifest's preview_note and one log line).
EXACT_PREVIEW_NOTE = "preview grid and in-training evaluations drawn with the exact backend (statevector)"


class BatchOrder:
    """Epoch-wise shuffled indices from a seeded generator; its state is part of the checkpoint."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n = n
        self.generator = generator
        self.perm = torch.randperm(n, generator=generator)
        self.pos = 0

    def next(self, batch_size: int) -> torch.Tensor:
        out = []
        while len(out) < batch_size:
            if self.pos == self.n:
                self.perm = torch.randperm(self.n, generator=self.generator)
                self.pos = 0
            take = min(batch_size - len(out), self.n - self.pos)
            out.extend(self.perm[self.pos:self.pos + take].tolist())
            self.pos += take
        return torch.tensor(out)

    def state_dict(self) -> dict:
        return {"perm": self.perm, "pos": self.pos, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.perm, self.pos = state["perm"], state["pos"]
        self.generator.set_state(state["generator"])


#: What a resume reads from checkpoint-last.pt beyond step/model/channels (checked before anything is restored).
RESUME_ENTRIES = {"optimizer": dict, "ema": dict, "order": dict}


class TrainingFailed(QgenError):
    """Training stopped on an error; the manifest says ``failed`` and the last checkpoint is intact."""


class _PreviewSkipped(Exception):
    """A stop request arrived while the end-of-run preview grid was drawn."""


def training_model(cfg: RunConfig, channels: int, backend: QuantumBackend, device: torch.device) -> torch.nn.Module:
    """The model a run trains: built (and seeded) on the CPU, then moved, so the initial weights are
    the same on every device; what ``train.freeze`` names is not a trainable parameter."""
    model = build_model(cfg.model, channels, cfg.train.seed, backend).to(device)
    freeze(model, cfg.train.freeze)  # before the optimizer: a frozen weight is not among its parameters
    return model


@dataclass
class Trainer:
    run: RunDir
    cfg: RunConfig
    data: LoadedData
    backend: QuantumBackend
    noise: NoiseSource  # the forward-process ε
    quality: QualityMonitor | None = None  # in-training validation FLD (train.eval_every > 0)
    board: TrainingBoard | None = None     # TensorBoard event files (train.tensorboard); a view of the CSVs
    device: torch.device = torch.device("cpu")
    # ``training_model``'s, when the caller built it first (a new run does, before its folder exists,
    # so that a model that cannot be built leaves no folder behind); None: built here
    model: torch.nn.Module | None = None

    def __post_init__(self) -> None:
        tc = self.cfg.train
        self.device = torch.device(self.device)
        if self.model is None:
            self.model = training_model(self.cfg, self.data.channels, self.backend, self.device)
        self.images = self.data.images.to(self.device)  # once, not per batch
        self.diffusion = GaussianDiffusion(self.cfg.diffusion.make_schedule()).to(self.device)
        self.objective = self.cfg.diffusion.objective()
        self.optimizer = torch.optim.AdamW(trainable(self.model), lr=tc.lr, weight_decay=tc.weight_decay)
        self.ema = EMA(self.model, tc.ema_decay, power=tc.ema_power or None)
        self.generator = torch.Generator().manual_seed(tc.seed)
        self.order = BatchOrder(len(self.data.images), torch.Generator().manual_seed(tc.seed + 1))
        self.step = 0
        self.saved_step = 0       # the step the checkpoints on disk hold
        self.best_fld = math.inf  # best validation FLD so far (checkpoint-best.pt holds its EMA weights)
        self.cpu_seconds = 0.0    # process CPU time spent in training steps, across resumes
        self._exact_twin: torch.nn.Module | None = None  # see sampling_model

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict(),
            "generator": self.generator.get_state(),
            "order": self.order.state_dict(),
            "noise": self.noise.state_dict(),
            "channels": self.data.channels,
            "best_fld": self.best_fld,
            "cpu_seconds": self.cpu_seconds,
        }

    def save(self) -> None:
        self.run.save_checkpoint("last", self.state_dict())
        self.run.save_checkpoint("ema", {"step": self.step, "model": self.ema.shadow, "channels": self.data.channels})
        self.saved_step = self.step
        self.run.update_manifest(steps_done=self.step)  # progress on record at every checkpoint

    def restore(self) -> None:
        state = self.run.load_checkpoint("last")
        require_entries(self.run.checkpoint_path("last"), state, RESUME_ENTRIES)
        load_model_state(self.model, state["model"], self.run.checkpoint_path("last"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"])
        self.generator.set_state(state["generator"])
        self.order.load_state_dict(state["order"])
        if state.get("noise") is not None:
            self.noise.load_state_dict(state["noise"])
        self.step = self.saved_step = state["step"]
        self.best_fld = state.get("best_fld", math.inf)
        self.cpu_seconds = state.get("cpu_seconds", 0.0)
        self.run.loss_log().truncate(self.step)
        self.run.quality_log().truncate(self.step)

    # -- loop ----------------------------------------------------------------------------------
    def train(self, show_progress: bool = True) -> None:
        tc = self.cfg.train
        loss_log = self.run.loss_log()
        self.run.update_manifest(status="running", steps_done=self.step, steps_planned=tc.steps)
        self.model.train()
        bar = tqdm(total=tc.steps, initial=self.step, desc="train", unit="step",
                   disable=not show_progress, dynamic_ncols=True)
        signals = _StopRequests()
        try:
            with signals.installed():
                with loss_log.appender() as log_row:
                    while self.step < tc.steps:
                        signals.in_step = True
                        t0, c0 = time.perf_counter(), time.process_time()
                        loss = self.train_step()
                        log_row(self.step + 1, loss, time.perf_counter() - t0)
                        self.cpu_seconds += time.process_time() - c0  # the step's cost, not the logging's
                        if self.board is not None:
                            self.board.step(self.step + 1, loss, self.optimizer.param_groups[0]["lr"])
                        self.step += 1  # after the row: a hard stop never leaves a step without its log line
                        signals.in_step = False
                        bar.update(1)
                        postfix = {"loss": f"{loss:.4f}"}
                        if self.quality is not None and tc.eval_every and self.step % tc.eval_every == 0:
                            postfix["fld"] = f"{self.evaluate_quality().fld:.1f}"
                        bar.set_postfix(postfix)
                        if self.step % tc.checkpoint_every == 0:
                            with signals.deferred():
                                self.save()
                        if signals.requested:
                            raise KeyboardInterrupt
                with signals.deferred():  # training is complete: from here on a signal only skips the preview
                    self.save()
                    self.finish(signals)
        except KeyboardInterrupt:
            # A second signal mid-step leaves a torn step (weights updated, counter not): never save
            # that; the last checkpoint stays the truth and the resume redoes the step.
            if not signals.in_step:
                with signals.deferred():
                    self.save()
            self.run.update_manifest(status="interrupted", steps_done=self.saved_step,
                                     noise_provenance=self.noise.provenance())
            raise
        except CheckpointWriteError as exc:  # its message already says the previous checkpoint is intact
            self.run.update_manifest(steps_done=self.saved_step, **exc.manifest_fields())
            raise
        except (QgenError, OSError) as exc:
            message = str(exc) if isinstance(exc, QgenError) else f"{exc.strerror or exc} ({exc.filename or 'run directory'})"
            self.run.update_manifest(status="failed", steps_done=self.saved_step, error=message,
                                     failed_at_step=self.step + 1)
            raise TrainingFailed(f"{message}; the run stopped at step {self.step + 1} and its "
                                 f"{self._last_checkpoint()}") from None
        except Exception as exc:  # anything else (a simulator out of memory, a bug): never left "running"
            self._mark_failed(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            bar.close()
            if self.board is not None:
                self.board.close()

    def _last_checkpoint(self) -> str:
        """What a failed run can be resumed from, truthfully: a run that never saved one has none."""
        if self.run.has_checkpoint("last"):
            return f"last checkpoint (step {self.saved_step}) is intact"
        return "no checkpoint had been saved yet (start it again rather than resume)"

    def _mark_failed(self, error: str) -> None:
        try:
            self.run.update_manifest(status="failed", steps_done=self.saved_step, error=" ".join(error.split()),
                                     failed_at_step=self.step + 1)
        except (QgenError, OSError):  # the manifest itself is what broke: the original error matters more
            pass

    def finish(self, signals: _StopRequests) -> None:
        """Plots, the preview grid and the manifest of a completed run; a stop request skips the grid."""
        save_loss_plot(self.run.loss_log().path, self.run.path_for("loss_png"))
        if self.quality is not None:
            save_quality_plot(self.run.quality_log().rows(), self.run.path_for("quality_png"))
        note = EXACT_PREVIEW_NOTE if self.backend.spends_shots else None
        try:
            grid = self.write_samples_grid(stop=lambda: bool(signals.requested))
            if self.board is not None:
                self.board.images("samples/preview", grid, self.step)
        except _PreviewSkipped:
            note = "preview grid skipped: interrupted after the last step"
        if self.board is not None:
            losses = [float(r["loss"]) for r in self.run.loss_log().rows()]
            self.board.hparams(run_hparams(self.cfg), final_metrics(losses, self.run.quality_log().rows()), self.step)
        self.run.update_manifest(status="finished", steps_done=self.step, preview_note=note,
                                 noise_provenance=self.noise.provenance())

    def train_step(self) -> float:
        tc = self.cfg.train
        for group in self.optimizer.param_groups:  # a pure function of the step: resumes bit-identically
            group["lr"] = tc.lr * lr_factor(self.step, tc.steps, warmup=tc.lr_warmup, schedule=tc.lr_schedule,
                                            final_fraction=tc.lr_final_fraction)
        idx = self.order.next(tc.batch_size)
        x0 = random_translate(self.images[idx.to(self.device)], tc.augment_shift, self.generator)
        loss = self.diffusion.training_loss(self.model, x0, self.noise, self.generator, self.objective)
        value = loss.item()
        if not math.isfinite(value):  # before the update: the weights and the EMA stay finite
            raise QgenError(f"the loss became {value} at step {self.step + 1} (learning rate "
                            f"{self.optimizer.param_groups[0]['lr']:g}); lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        return value

    def sample_ema(self, sampler: str, steps: int, n: int, seed: int, progress=None) -> torch.Tensor:
        """``n`` images (on the host) from the EMA weights, x_T from a classical generator seeded with ``seed``."""
        scheduler = make_scheduler(sampler, self.diffusion.schedule, steps=steps)
        self.model.eval()
        try:
            with self.ema.applied_to(self.model):
                model = self.sampling_model()
                eps_model = EpsModel(model, self.objective, self.diffusion.alphas_cumprod)
                return sample(eps_model, scheduler, (n, *model.image_shape), ClassicalNoise(seed),
                              progress=progress, device=self.device).cpu()
        finally:
            self.model.train()

    def sampling_model(self) -> torch.nn.Module:
        """The model with its current weights, as previews and in-training evaluations sample it.

        On a backend that spends shots (hardware) they would submit dozens of jobs outside the
        training budget, so they run the same weights on the exact backend instead (said once)."""
        if not self.backend.spends_shots:
            return self.model
        if self._exact_twin is None:
            # as the shipped statevector entry: complex64 amplitudes for a float32 model
            exact = backend_for(BackendSpec(name="statevector", kind="statevector", simulation_precision="single"))
            self._exact_twin = build_model(self.cfg.model, self.data.channels, self.cfg.train.seed,
                                           exact).to(self.device)
            logger.warning(f"qgen: {EXACT_PREVIEW_NOTE} (no {self.backend.spec.name} jobs outside the training budget)")
        self._exact_twin.load_state_dict(self.model.state_dict())
        self._exact_twin.eval()
        return self._exact_twin

    def evaluate_quality(self) -> QualityRow:
        """Validation FLD of the EMA weights now: logged, and kept as checkpoint-best.pt when best."""
        tc = self.cfg.train
        t0 = time.process_time()  # CPU seconds, like train_cpu_seconds: the cost comparison must be like for like
        # the same x_T at every evaluation: differences between rows are the model's
        images = self.sample_ema(tc.eval_sampler, tc.eval_steps, self.quality.n_samples, tc.seed + 3)
        row = replace(self.quality.score(images, self.step, time.process_time() - t0),
                      train_cpu_seconds=self.cpu_seconds)
        self.run.quality_log().append(row.as_row())
        if self.board is not None:
            self.board.quality(row, images)
        if row.fld < self.best_fld:
            self.best_fld = row.fld
            self.run.save_checkpoint("best", {"step": self.step, "model": self.ema.shadow,
                                              "channels": self.data.channels, "validation_fld": row.fld})
        return row

    def write_samples_grid(self, stop=lambda: False) -> torch.Tensor:
        tc = self.cfg.train

        def progress(_: int) -> None:
            if stop():
                raise _PreviewSkipped

        x = self.sample_ema("ddim", min(tc.sample_steps, self.diffusion.T), tc.sample_n, tc.seed + 2, progress)
        save_image_grid(x, self.run.path_for("samples_png"))
        return x


class _StopRequests:
    """Ctrl-C / SIGTERM as requests that the loop honours between steps.

    A first signal asks the loop to stop after the current step (which is then checkpointed). A
    second one stops at once -- unless a checkpoint is being written (``deferred``: the pair of
    checkpoint files must not end up from different steps); the loop then saves nothing from the
    torn step. Outside the main thread (no signal handlers there) requests never arrive.
    """

    def __init__(self) -> None:
        self.requested: list[int] = []
        self.in_step = False
        self._defer = 0

    def _handler(self, signum, frame) -> None:
        self.requested.append(signum)
        if len(self.requested) > 1 and not self._defer:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    @contextmanager
    def deferred(self):
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
