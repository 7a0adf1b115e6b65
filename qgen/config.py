"""The run configuration: everything needed to reproduce a run, stored as the run's config.toml."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from qgen.data import DataConfig
from qgen.diffusion.objectives import Objective
from qgen.diffusion.samplers import scheduler_class
from qgen.diffusion.schedules import NoiseMixing, make_schedule, schedule_params
from qgen.errors import QgenError
from qgen.memory import check_fits, schedule_bytes
from qgen.models.config import ModelConfig
from qgen.seed import check_seed
from qgen.tomlconfig import from_dict, read_toml, to_dict, write_toml
from qgen.torch_device import check_device_name
from qgen.training.freeze import check_freeze
from qgen.training.lr_schedule import LR_SCHEDULES

NOISE_KINDS = ("classical", "quantum", "mixed")


@dataclass(frozen=True)
class DiffusionConfig:
    schedule: str = "linear"
    T: int = 1000
    # the schedule's own parameters ([diffusion.schedule_params] shift = -1.65); after construction it
    # holds every parameter, defaults filled in, so config.toml reproduces the schedule exactly
    schedule_params: dict = field(default_factory=dict)
    # λ(t), the weight of quantum noise when noise = "mixed": lam_min + (lam_max - lam_min) * (1 - ᾱ_t)^power
    mix_lam_min: float = 0.0
    mix_lam_max: float = 1.0
    mix_power: float = 1.0
    # what the network predicts and how the loss weighs timesteps (qgen.diffusion.objectives); the
    # defaults are the original ε-MSE, so a config.toml written before these keys means what it meant
    prediction: str = "eps"
    loss_weighting: str = "uniform"
    min_snr_gamma: float = 5.0

    def __post_init__(self) -> None:
        self.objective()  # validates prediction and weighting
        if isinstance(self.T, int) and not isinstance(self.T, bool):  # its type is the schedule's check
            check_fits(schedule_bytes(self.T), f"diffusion T = {self.T:,}", "use fewer timesteps (the recipe's "
                       "T is 1000)")

        # validates schedule name, T and parameters early, with one clear error
        resolved = schedule_params(make_schedule(self.schedule, self.T, **self.schedule_params))
        object.__setattr__(self, "schedule_params", resolved)
        self.mixing()  # validates the mixing weights

    def make_schedule(self):
        return make_schedule(self.schedule, self.T, **self.schedule_params)

    def objective(self):
        return Objective(self.prediction, self.loss_weighting, self.min_snr_gamma)

    def mixing(self):
        return NoiseMixing(T=self.T, lam_min=self.mix_lam_min, lam_max=self.mix_lam_max, power=self.mix_power,
                           schedule=self.make_schedule())


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 50
    noise: str = "classical"          # forward-process ε: pseudo-random, quantum-generated, or mixed by λ(t)
    sample_n: int = 16                # size of the samples.png grid written at the end
    sample_steps: int = 50            # DDIM steps for that grid
    # The recipe knobs. Defaults reproduce the original loop (constant lr, timm EMA warm-up, no
    # augmentation, no evaluation) so that old config.toml files resume unchanged; new runs get the
    # measured recipe from qgen.training.recipe, written out in full.
    lr_warmup: int = 0                # linear warm-up steps
    lr_schedule: str = "constant"     # or "cosine" decay to lr * lr_final_fraction at the last step
    lr_final_fraction: float = 0.0
    ema_power: float = 0.0            # > 0: EMA warm-up 1 - (1 + n)^-power (ema-pytorch); 0: timm's (1+n)/(10+n)
    augment_shift: int = 0            # random translations of up to this many pixels
    eval_every: int = 0               # in-training validation FLD every K steps (0: never)
    eval_samples: int = 128
    eval_sampler: str = "dpm"
    eval_steps: int = 10
    # TensorBoard event files in the run's tensorboard/ folder (loss, lr, quality, sample grids,
    # hyper-parameters); logging only, so runs made before this key get them too when resumed
    tensorboard: bool = True
    # parameters kept at their initial values (qgen.training.freeze): ("circuit",) is the frozen-circuit
    # control of qgen experiment; empty (every parameter trains) for every run made before the key
    freeze: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_seed(self.seed, "train.seed")
        object.__setattr__(self, "freeze", tuple(self.freeze))
        check_freeze(self.freeze)

        for key in ("steps", "batch_size", "checkpoint_every", "sample_n", "sample_steps", "eval_samples",
                    "eval_steps"):
            if getattr(self, key) < 1:
                raise QgenError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("lr_warmup", "augment_shift", "eval_every"):
            if getattr(self, key) < 0:
                raise QgenError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        for key in ("lr", "weight_decay", "grad_clip", "ema_decay", "lr_final_fraction", "ema_power"):
            if not math.isfinite(getattr(self, key)):
                raise QgenError(f"train.{key} must be a finite number, got {getattr(self, key)}")
        if self.lr <= 0:
            raise QgenError(f"train.lr must be > 0, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise QgenError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.ema_power < 0 or not 0 <= self.lr_final_fraction <= 1:
            raise QgenError("train.ema_power must be >= 0 and train.lr_final_fraction in [0, 1]")
        if self.lr_schedule not in LR_SCHEDULES:
            raise QgenError(f"unknown train.lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        scheduler_class(self.eval_sampler)  # an unknown sampler name fails here, not at the first evaluation
        if self.augment_shift > 7:
            raise QgenError(f"train.augment_shift must be <= 7 pixels (a quarter of the image), got {self.augment_shift}")
        if self.noise not in NOISE_KINDS:
            raise QgenError(f"unknown noise {self.noise!r}; choose one of {', '.join(NOISE_KINDS)}")


@dataclass(frozen=True)
class RunConfig:
    name: str
    backend: str = "statevector"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # where the torch parts train (qgen.torch_device): "auto" until start_training resolves it, then
    # the device used ("cpu", "cuda:0", "mps"). Runs from before the option trained on the CPU.
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_device_name(self.device)

    def with_steps(self, steps: int) -> RunConfig:
        return replace(self, train=replace(self.train, steps=steps))


def save_run_config(cfg: RunConfig, path: Path) -> None:
    write_toml(path, to_dict(cfg))


def load_run_config(path: Path) -> RunConfig:
    """A run's config.toml; a wrong type or value names the file (a hand-edited config.toml)."""
    data = read_toml(path)
    try:
        return from_dict(RunConfig, data)
    except QgenError as exc:
        if str(path) in str(exc):
            raise
        raise QgenError(f"{path}: {exc}") from None
