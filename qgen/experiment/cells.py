"""The grid of cells and the run configuration of each.

A cell is one (dataset, arm, N, seed). Its id reads like ``mnist-c3_quantum_n25_s1`` and names
its folder ``<out>/cells/<id>/``. The seed fixes the data subset *and* the initialisation, so the
cells of different arms with the same (dataset, N, seed) train on the same images: they are pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qgen.config import DiffusionConfig, RunConfig, TrainConfig
from qgen.data import DataConfig
from qgen.experiment.arms import ARMS, Arm
from qgen.experiment.config import DatasetSpec, ExperimentConfig
from qgen.models.config import ModelConfig
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
    m, t = cfg.model, cfg.train
    return RunConfig(
        name=cell.id,
        backend=cell.arm.backend or cfg.backend,
        data=DataConfig(dataset=cell.dataset.dataset, root=cell.dataset.root, classes=cell.dataset.classes,
                        n_train=cell.n, seed=cell.seed, download=cell.dataset.download),
        model=ModelConfig(kind=cell.arm.model_kind, widths=m.widths, time_dim=m.time_dim, groups=m.groups,
                          qubits=m.qubits, layers=m.layers, entanglement=m.entanglement),
        diffusion=DiffusionConfig(schedule=m.schedule, T=m.T),
        train=TrainConfig(steps=t.steps, batch_size=t.batch_size, lr=t.lr, ema_decay=t.ema_decay, seed=cell.seed,
                          checkpoint_every=t.checkpoint_every, noise=cell.arm.noise,
                          # the end-of-training grid is only a glance; the evaluated samples come later
                          sample_n=16, sample_steps=min(cfg.sampling.steps, m.T)),
    )


def sample_request(cfg: ExperimentConfig, cell: Cell) -> SampleRequest:
    s = cfg.sampling
    # offset the sampling seed from the training seed so sampling noise is not the training noise
    return SampleRequest(n=s.n, sampler="ddim", steps=s.steps, eta=0.0, seed=1000 + cell.seed,
                         noise=cell.arm.noise, weights="ema", batch_size=s.batch_size)
