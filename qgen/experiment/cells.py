"""The grid of cells and the run configuration of each.

A cell is one (dataset, arm, N, seed). Its id reads like ``mnist-c3_quantum_n25_s1`` and names
its folder ``<out>/cells/<id>/``. The seed fixes the data subset *and* the initialisation, so the
cells of different arms with the same (dataset, N, seed) train on the same images: they are pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from qgen.config import RunConfig
from qgen.data import DataConfig
from qgen.experiment.arms import ARMS, Arm
from qgen.experiment.config import DatasetSpec, ExperimentConfig
from qgen.sampling import SampleRequest


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


def expand_cells(cfg: ExperimentConfig) -> list[Cell]:
    """All cells in run order: by seed first, so a partial experiment already has complete pairs
    for every arm and size, rather than every seed of the first arm and nothing of the others."""
    return [
        Cell(dataset, ARMS[arm], n, seed)
        for seed in cfg.seeds
        for dataset in cfg.datasets
        for n in cfg.sizes
        for arm in cfg.arms
    ]


def run_config(cfg: ExperimentConfig, cell: Cell) -> RunConfig:
    """The experiment's base run with what the cell decides: data, seed, and the arm's gate, backend, noise."""
    base = cfg.run
    return replace(
        base,
        name=cell.id,
        backend=cell.arm.backend or base.backend,
        data=DataConfig(dataset=cell.dataset.dataset, root=cell.dataset.root, classes=cell.dataset.classes,
                        n_train=cell.n, seed=cell.seed, download=cell.dataset.download),
        model=replace(base.model, kind=cell.arm.model_kind),
        # the end-of-training grid is only a glance; the evaluated samples come later
        train=replace(base.train, seed=cell.seed, noise=cell.arm.noise,
                      sample_steps=min(cfg.sampling.steps, base.diffusion.T)),
    )


def sample_request(cfg: ExperimentConfig, cell: Cell) -> SampleRequest:
    # offset the sampling seed from the training seed so sampling noise is not the training noise
    return replace(cfg.sampling, seed=1000 + cell.seed, noise=cell.arm.noise)


def check_data_for_cells(cfg: ExperimentConfig, cells: list[Cell]) -> None:
    """Load each dataset once at its largest size before the first cell trains: a size larger than
    the images a dataset's classes have fails now, not hours in, after the smaller cells ran."""
    from qgen.data import load_dataset

    largest: dict[str, Cell] = {}
    for cell in cells:
        if cell.dataset.label not in largest or cell.n > largest[cell.dataset.label].n:
            largest[cell.dataset.label] = cell
    for cell in largest.values():
        load_dataset(run_config(cfg, cell).data)  # raises the one-line error of a too-small dataset
