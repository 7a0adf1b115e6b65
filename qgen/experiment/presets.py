"""Named experiment presets: ``smoke`` (CI, minutes) and ``full`` (the real experiment, hours).

Both use the same code path and write every output file; they differ only in size.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qgen.data import default_data_root
from qgen.errors import QgenError
from qgen.experiment.config import (
    EXPERIMENT_SAMPLING,
    SHARED_DATA_DIR,
    DatasetSpec,
    ExperimentConfig,
    base_run,
)

PNEUMONIA_SUBSET = SHARED_DATA_DIR / "pneumoniamnist_subset.npz"


def medmnist_datasets() -> tuple[DatasetSpec, ...]:
    """PneumoniaMNIST (the offline subset when present, else the official flag) and PathMNIST when on disk."""
    pneumonia = str(PNEUMONIA_SUBSET) if PNEUMONIA_SUBSET.is_file() else "pneumoniamnist"
    out = [DatasetSpec("pneumonia", pneumonia)]
    pathmnist = pathmnist_file()
    if pathmnist is not None:
        out.append(DatasetSpec("pathmnist", str(pathmnist)))
    return tuple(out)


def pathmnist_file() -> Path | None:
    for candidate in (default_data_root() / "pathmnist.npz", SHARED_DATA_DIR / "pathmnist.npz"):
        if candidate.is_file():
            return candidate
    return None


def smoke_preset() -> ExperimentConfig:
    """A few minutes on a 2-core CPU: tiny everything, but every arm and every output file."""
    return ExperimentConfig(
        name="smoke",
        arms=("plain", "classical", "quantum", "quantum_noise"),
        sizes=(10,),
        seeds=(0, 1),
        datasets=(DatasetSpec("mnist-c3", "mnist", classes=(3,)),),
        run=base_run({
            "model": {"widths": (8, 8, 8), "qubits": 4, "layers": 1},
            "diffusion": {"T": 50},
            # ema_decay 0.9: with 30 steps a slow EMA would still be the random initialisation
            "train": {"steps": 30, "batch_size": 8, "lr": 2e-3, "ema_decay": 0.9, "checkpoint_every": 10},
        }),
        sampling=replace(EXPERIMENT_SAMPLING, n=16, steps=10, batch_size=16),
        heldout_limit=200,
    )


def full_preset() -> ExperimentConfig:
    """The honest experiment, sized for a 2-core CPU (see ``qgen experiment --preset full --dry-run``)."""
    return ExperimentConfig(
        name="full",
        arms=("plain", "classical", "quantum", "quantum_noise"),
        sizes=(10, 25, 50, 100),
        seeds=(0, 1, 2),
        datasets=(
            DatasetSpec("mnist-c3", "mnist", classes=(3,)),
            DatasetSpec("mnist-all", "mnist"),
            *medmnist_datasets(),
        ),
        # the experiment's base run and sampling, trained a little longer
        run=base_run({"train": {"steps": 1200}}),
        sampling=EXPERIMENT_SAMPLING,
        heldout_limit=1000,
    )


PRESETS = {"smoke": smoke_preset, "full": full_preset}


def preset(name: str) -> ExperimentConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise QgenError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
