"""Named experiment presets: ``smoke`` (CI, minutes) and ``full`` (the protocol, docs/results/experiment/).

Both use the same code path and write every output file; they differ only in size. Both start from
the *current* defaults of a new run, read when the preset is built: the measured recipe
(``qgen.training.recipe``) and the default bottleneck design (``qgen.models.config.NEW_RUN_MODEL``).
An experiment folder stores its whole configuration in experiment.toml when it starts, so a later
change of those defaults cannot alter an experiment under way (resuming refuses a different one).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qgen.api import run_config
from qgen.data import default_data_root
from qgen.errors import QgenError
from qgen.experiment.config import SHARED_DATA_DIR, ArmDatasets, DatasetSpec, ExperimentConfig, base_run
from qgen.draw import SampleRequest
from qgen.tomlconfig import to_dict

PNEUMONIA_SUBSET = SHARED_DATA_DIR / "pneumoniamnist_subset.npz"

# The protocol's grid (docs/results/experiment/PROTOCOL.md)
PROTOCOL_ARMS = ("plain", "classical", "quantum", "quantum_frozen", "separable", "quantum_noise")
PROTOCOL_SIZES = (10, 30, 100)
PROTOCOL_SEEDS = tuple(range(10))
# quantum-generated noise is asked on MNIST only (on a simulator its bits are a seeded PRNG anyway)
NOISE_ARM_DATASETS = ("mnist-c3",)
# Sampling: DPM-Solver++ with 10 steps (docs/results/recipe/samplers.md) from the best-validation
# weights, 256 samples per cell where the test part has that many (else as many as it has).
PROTOCOL_SAMPLING = SampleRequest(n=256, sampler="dpm", steps=10, weights="best", batch_size=64)


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


def recipe_tables() -> dict:
    """[model], [diffusion] and [train] of a new run today: the recipe and the default design.

    Taken from ``qgen.api.run_config`` (what ``qgen train`` gives a run without options), so the
    experiment trains exactly the model a user would; TensorBoard off (hundreds of cells: the CSV
    logs are enough)."""
    run = run_config(name="experiment", download=False, device="cpu", tensorboard=False)
    tables = to_dict(run)
    return {table: tables[table] for table in ("model", "diffusion", "train")}


def recipe_run(**overrides: dict):
    """``recipe_tables`` with per-table ``overrides`` (e.g. ``train={"steps": 30}``) as a base run."""
    tables = recipe_tables()
    for table, values in overrides.items():
        tables[table] = {**tables[table], **values}
    tables["model"].pop("kind", None)  # set per cell by the arm
    for key in ("seed", "noise", "sample_steps", "freeze"):
        tables["train"].pop(key, None)
    return base_run(tables)


def smoke_preset() -> ExperimentConfig:
    """A few minutes on a 2-core CPU: tiny everything, but every arm, the arm restriction, the
    best-validation checkpoint, the dependence ratios and every output file."""
    return ExperimentConfig(
        name="smoke",
        arms=PROTOCOL_ARMS,
        sizes=(10,),
        seeds=(0, 1),
        claim_max_n=100,
        datasets=(DatasetSpec("mnist-c3", "mnist", classes=(3,)),),
        arm_datasets=(ArmDatasets("quantum_noise", NOISE_ARM_DATASETS),),
        run=recipe_run(
            model={"widths": (8, 8, 8), "qubits": 4, "layers": 1},
            diffusion={"T": 50},
            # 30 steps with two validation evaluations (for a best checkpoint); warm-up shortened to fit
            train={"steps": 30, "batch_size": 8, "lr_warmup": 5, "checkpoint_every": 10, "eval_every": 15,
                   "eval_samples": 16, "eval_steps": 5, "sample_n": 8},
        ),
        sampling=replace(PROTOCOL_SAMPLING, n=16, steps=5, batch_size=16),
        heldout_limit=200,
    )


def full_preset() -> ExperimentConfig:
    """The protocol of docs/results/experiment/PROTOCOL.md (see ``qgen experiment --preset full --dry-run``)."""
    return ExperimentConfig(
        name="full",
        arms=PROTOCOL_ARMS,
        sizes=PROTOCOL_SIZES,
        seeds=PROTOCOL_SEEDS,
        # N = 100 is the boundary of the paper's "< 100 images"; it is in the primary analysis, and
        # the per-N tables let N <= 30 be read on its own
        claim_max_n=100,
        datasets=(DatasetSpec("mnist-c3", "mnist", classes=(3,)), *medmnist_datasets()),
        arm_datasets=(ArmDatasets("quantum_noise", NOISE_ARM_DATASETS),),
        run=recipe_run(),
        sampling=PROTOCOL_SAMPLING,
        heldout_limit=1000,
        dependence=True,
        equivalence_margin=0.10,
    )


PRESETS = {"smoke": smoke_preset, "full": full_preset}


def preset(name: str) -> ExperimentConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise QgenError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
