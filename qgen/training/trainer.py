"""DDPM training loop with atomic checkpoints, EMA, resumption and a samples grid at the end."""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from qgen.backends.base import QuantumBackend
from qgen.config import RunConfig
from qgen.data import LoadedData
from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.pipeline import sample
from qgen.diffusion.schedulers import DDIMScheduler
from qgen.models.build import build_model
from qgen.noise_protocol import NoiseSource
from qgen.plots import save_image_grid, save_loss_plot
from qgen.rundir import RunDir
from qgen.training.ema import EMA


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


@dataclass
class Trainer:
    run_dir: Path
    cfg: RunConfig
    data: LoadedData
    backend: QuantumBackend
    noise: NoiseSource | None  # the forward-process ε (start_training sets it once the run dir exists)

    def __post_init__(self) -> None:
        tc = self.cfg.train
        self.model = build_model(self.cfg.model, self.data.channels, tc.seed, self.backend)
        self.diffusion = GaussianDiffusion(self.cfg.diffusion.make_schedule())
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.ema = EMA(self.model, tc.ema_decay)
        self.generator = torch.Generator().manual_seed(tc.seed)
        self.order = BatchOrder(len(self.data.images), torch.Generator().manual_seed(tc.seed + 1))
        self.step = 0

    @property
    def run(self) -> RunDir:
        return RunDir(self.run_dir)

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
        }

    def save(self) -> None:
        self.run.save_checkpoint("last", self.state_dict())
        self.run.save_checkpoint("ema", {"step": self.step, "model": self.ema.shadow, "channels": self.data.channels})

    def restore(self) -> None:
        state = self.run.load_checkpoint("last")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"])
        self.generator.set_state(state["generator"])
        self.order.load_state_dict(state["order"])
        if state.get("noise") is not None:
            self.noise.load_state_dict(state["noise"])
        self.step = state["step"]
        self.run.loss_log().truncate(self.step)

    # -- loop ----------------------------------------------------------------------------------
    def train(self, show_progress: bool = True) -> None:
        tc = self.cfg.train
        loss_log = self.run.loss_log()
        self.run.update_manifest(status="running", steps_done=self.step, steps_planned=tc.steps)
        self.model.train()
        bar = tqdm(total=tc.steps, initial=self.step, desc="train", unit="step",
                   disable=not show_progress, dynamic_ncols=True)
        try:
            with loss_log.appender() as log_row, _stop_between_steps() as stop_requested:
                while self.step < tc.steps:
                    t0 = time.perf_counter()
                    loss = self.train_step()
                    log_row(self.step + 1, loss, time.perf_counter() - t0)
                    self.step += 1  # after the row: a hard stop never leaves a step without its log line
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                    if self.step % tc.checkpoint_every == 0:
                        self.save()
                    if stop_requested():
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            self.save()
            self.run.update_manifest(status="interrupted", steps_done=self.step,
                                     noise_provenance=self.noise.provenance())
            raise
        finally:
            bar.close()
        self.save()
        save_loss_plot(loss_log.path, self.run.path_for("loss_png"))
        self.write_samples_grid()
        self.run.update_manifest(status="finished", steps_done=self.step,
                                 noise_provenance=self.noise.provenance())

    def train_step(self) -> float:
        idx = self.order.next(self.cfg.train.batch_size)
        x0 = self.data.images[idx]
        loss = self.diffusion.training_loss(self.model, x0, self.noise, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {self.step + 1}")
        return value

    def write_samples_grid(self) -> None:
        from qgen.noise import ClassicalNoise

        tc = self.cfg.train
        shape = (tc.sample_n, self.data.channels, 28, 28)
        scheduler = DDIMScheduler(self.diffusion.schedule)
        scheduler.set_timesteps(min(tc.sample_steps, self.diffusion.T))
        self.model.eval()
        with self.ema.applied_to(self.model):
            x = sample(self.model, scheduler, shape, ClassicalNoise(tc.seed + 2))
        self.model.train()
        save_image_grid(x, self.run.path_for("samples_png"))


@contextmanager
def _stop_between_steps():
    """Turn Ctrl-C / SIGTERM into a request honoured after the current step is logged.

    A signal arriving mid-step would otherwise leave the step counter, the loss log and the
    checkpoint disagreeing. A second signal stops at once (the last periodic checkpoint stays valid).
    """
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(requested)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

