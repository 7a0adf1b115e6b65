"""The grid of cells and the run configuration of each.

A cell is one (dataset, arm, N, seed). Its id reads like ``mnist-c3_quantum_n25_s1`` and names
its folder ``<out>/cells/<id>/``. The seed fixes the data subset *and* the initialisation, so the
cells of different arms with the same (dataset, N, seed) train on the same images: they are pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from qgen.config import RunConfig
from qgen.data import DataConfig, load_dataset
from qgen.evaluation import heldout_for
from qgen.experiment.arms import ARMS, Arm
from qgen.experiment.config import DatasetSpec, ExperimentConfig
from qgen.rundir import RunDir
from qgen.draw import SampleRequest

# a cell's folder: its run(s) under run/, and metrics.json, written last, which marks it done
CELL_METRICS = "metrics.json"
RUNS_SUBDIR = "run"


@dataclass(frozen=True)
class Cell:
    dataset: DatasetSpec
    arm: Arm
    n: int
    seed: int

    @property
    def id(self) -> str:
        return f"{self.dataset.label}_{self.arm.name}_n{self.n}_s{self.seed}"

    def directory(self, out: Path) -> Path:
        return Path(out) / "cells" / self.id


def cell_is_done(out: Path, cell: Cell) -> bool:
    return (cell.directory(out) / CELL_METRICS).is_file()


def find_run_dir(cell_dir: Path) -> Path | None:
    """The cell's run folder (the newest if an earlier crash left several); hidden staging folders ignored."""
    runs = [p for p in (cell_dir / RUNS_SUBDIR).glob("*")
            if p.is_dir() and not p.name.startswith(".") and RunDir.is_run(p)]
    return max(runs, key=lambda p: p.name) if runs else None


def checkpoint_step(run_dir: Path) -> int | None:
    run = RunDir(run_dir)
    if not run.has_checkpoint("last"):
        return None
    try:
        return int(run.load_checkpoint("last")["step"])
    except Exception:  # a torn checkpoint is as good as none: restart the cell
        return None


def expand_cells(cfg: ExperimentConfig) -> list[Cell]:
    """All cells in run order: by seed first, so a partial experiment already has complete pairs
    for every arm and size, rather than every seed of the first arm and nothing of the others."""
    return [
        Cell(dataset, ARMS[arm], n, seed)
        for seed in cfg.seeds
        for dataset in cfg.datasets
        for n in cfg.sizes
        for arm in cfg.arms
        if cfg.runs_on(arm, dataset.label)
    ]


def run_config(cfg: ExperimentConfig, cell: Cell) -> RunConfig:
    """The experiment's base run with what the cell decides: data, seed, and the arm's settings
    (middle, backend, noise, entanglement, frozen circuit: ``Arm.apply``)."""
    base = cell.arm.apply(cfg.run)
    return replace(
        base,
        name=cell.id,
        data=DataConfig(dataset=cell.dataset.dataset, root=cell.dataset.root, classes=cell.dataset.classes,
                        n_train=cell.n, seed=cell.seed, download=cell.dataset.download),
        # the end-of-training grid is only a glance; the evaluated samples come later
        train=replace(base.train, seed=cell.seed, sample_steps=min(cfg.sampling.steps, base.diffusion.T)),
    )


def sample_request(cfg: ExperimentConfig, cell: Cell, reference: int | None = None) -> SampleRequest:
    """The cell's sampling: the experiment's request, its own seed and noise, and at most as many
    samples as there are ``reference`` (test) images to score them against -- a Fréchet distance
    between sets of different sizes mixes two biases, and the floor and memorizer are drawn at the
    samples' size from sets no larger than the reference."""
    # offset the sampling seed from the training seed so sampling noise is not the training noise
    n = cfg.sampling.n if reference is None else max(4, min(cfg.sampling.n, reference))
    return replace(cfg.sampling, seed=1000 + cell.seed, noise=cell.arm.noise, n=n)


def reference_size(cfg: ExperimentConfig, run: RunConfig) -> int:
    """How many test images the cell's metrics compare with (the test part, capped by heldout_limit)."""
    held = heldout_for(run.data, load_dataset(run.data))
    return min(len(held.test), cfg.heldout_limit)


def check_data_for_cells(cfg: ExperimentConfig, cells: list[Cell]) -> None:
    """Load each dataset once at its largest size before the first cell trains: a size larger than
    the images a dataset's classes have fails now, not hours in, after the smaller cells ran."""
    largest: dict[str, Cell] = {}
    for cell in cells:
        if cell.dataset.label not in largest or cell.n > largest[cell.dataset.label].n:
            largest[cell.dataset.label] = cell
    for cell in largest.values():
        load_dataset(run_config(cfg, cell).data)  # raises the one-line error of a too-small dataset
