"""The requests of qgen's commands: one frozen dataclass per command, checked once, when it is made.

``qgen.api`` builds them from its keywords and hands them to the command's code; the ``qgen``
command line only parses its options into those keywords. So Python and the command line accept
and refuse the same requests, with the same one-line messages (they name the command-line options,
which are the API's keywords with dashes). A rule that needs the run or the model (a checkpoint
that may be missing, the schedule's T) is checked by the command as soon as it has read them,
before anything is written.

    TrainCommand        qgen train                  ResumeCommand       qgen train --resume
    SampleCommand       qgen sample [--dry-run]     EvaluateCommand     qgen evaluate
    ExportCommand       qgen export                 CircuitsCommand     qgen circuits
    NoiseReportCommand  qgen noise-report       (ExperimentCommand, qgen experiment: qgen.experiment.command)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qgen.circuits.choice import circuit_fields
from qgen.config import RunConfig
from qgen.draw import SampleRequest
from qgen.errors import QgenError
from qgen.models.config import ModelConfig
from qgen.rundir import ModelFolder
from qgen.seed import check_seed
from qgen.torch_device import check_device_name

Reporter = Callable[[str], None]

#: Fewest samples an in-training FLD may use: below this the "best" checkpoint is chosen by noise
#: (one sample has no covariance at all). New runs only; a config.toml from before still resumes.
MIN_EVAL_SAMPLES = 16
JOURNALED_JOBS = ("reuse", "resubmit")  # what to do with a journaled job asked under other backend settings
EXPORTABLE_WEIGHTS = ("ema", "best")    # both are EMA weights: the ones samples are drawn from


def quiet(line: str) -> None:
    """The default reporter: progress lines go nowhere (the CLI passes one that prints them)."""


class Command:
    """A command's request; subclasses say what is wrong with theirs in ``validate``, which runs as
    the dataclass is made (so an invalid request never exists)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class TrainCommand(Command):
    """Train a new run of ``config`` under ``runs_dir`` (default: $QGEN_RUNS or ./runs)."""

    config: RunConfig
    epochs: int | None = None  # instead of the config's steps: passes over the training set
    runs_dir: Path | None = None
    backends_file: Path | None = None
    progress: bool = False
    local: bool = False
    report: Reporter = quiet

    def validate(self) -> None:
        if not isinstance(self.config, RunConfig):
            raise QgenError(f"config must be a RunConfig, got {type(self.config).__name__}")
        if self.epochs is not None and self.epochs < 1:
            raise QgenError(f"--epochs must be >= 1, got {self.epochs}")
        train = self.config.train
        if train.eval_every and train.eval_samples < MIN_EVAL_SAMPLES:
            raise QgenError(f"--eval-samples {train.eval_samples} is too few for the validation FLD that picks the "
                            f"best checkpoint (it would pick by noise); use at least {MIN_EVAL_SAMPLES}, "
                            "or --eval-every 0")


@dataclass(frozen=True)
class ResumeCommand(Command):
    """Continue ``run`` (a path, or a name under ``runs_dir``), or train it further to ``steps``."""

    run: str | os.PathLike  # a RunDir too
    steps: int | None = None
    runs_dir: Path | None = None
    backends_file: Path | None = None
    progress: bool = False
    local: bool = False
    report: Reporter = quiet
    device: str | None = None          # None: the device the run recorded
    journaled_jobs: str | None = None  # see SampleCommand

    def validate(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise QgenError(f"--steps must be >= 1, got {self.steps}")
        if self.device is not None:
            check_device_name(self.device)
        _check_journaled_jobs(self.journaled_jobs)


@dataclass(frozen=True)
class SampleCommand(Command):
    """Draw ``request`` from a run (into its run directory) or from a model folder (into ``out``,
    default ./samples). ``qgen.sampling.plan_sampling`` says what drawing it from a run would cost.

    A model folder holds one set of weights, those it was exported with, and no run directory to
    journal quantum bits or hardware jobs in: it is sampled with the default weights and classical
    noise only.
    """

    request: SampleRequest
    run: str | os.PathLike | None = None  # a RunDir too
    model: Path | None = None
    out: Path | None = None
    runs_dir: Path | None = None
    backends_file: Path | None = None
    progress: bool = False
    local: bool = False
    device: str = "cpu"  # where the U-Net runs (qgen.api and the CLI default to "auto"); the draws are the same
    # a hardware job the run's journal holds for the same request under other backend settings:
    # "reuse" its result or "resubmit" it; None refuses, naming the settings that changed
    journaled_jobs: str | None = None

    def validate(self) -> None:
        if (self.run is None) == (self.model is None):
            raise QgenError("give either --run RUN or --model DIR")
        check_device_name(self.device)
        _check_journaled_jobs(self.journaled_jobs)
        if self.model is None:
            if ModelFolder.is_model_folder(self.run):  # what the folder is comes first: it says which option was meant
                raise QgenError(f"{self.run} is a model folder, not a run directory; sample it with --model {self.run}")
            if self.out is not None:
                raise QgenError("--out is for --model; a run's samples go into its run directory")
            return
        req = self.request
        if req.weights != "ema":
            raise QgenError("--weights chooses a run's checkpoint; a model folder holds the weights it was "
                            "exported with")
        if req.noise != "classical":
            raise QgenError(f"--noise {req.noise} needs a run directory (its entropy pool records the bits); "
                            "sample a model folder with --noise classical, or sample the run with --run")
        if req.reuse_noise:
            raise QgenError("--reuse-noise replays a run's quantum noise pool; a model folder has none")

    @property
    def out_dir(self) -> Path:
        """Where a model folder's samples go."""
        return self.out if self.out is not None else Path("samples")


@dataclass(frozen=True)
class EvaluateCommand(Command):
    """Score ``samples`` (default: the run's newest sample set) against at most ``heldout`` test images;
    ``ablate``: also how much they depend on the bottleneck (``qgen.dependence``)."""

    run: str | os.PathLike  # a RunDir too
    samples: Path | None = None
    heldout: int = 1000
    seed: int = 0
    runs_dir: Path | None = None
    device: str = "cpu"  # where the feature net runs (it is trained and cached on the CPU; qgen.api: "auto")
    ablate: bool = False
    backends_file: Path | None = None

    def validate(self) -> None:
        if self.heldout < 2:  # a Fréchet distance needs a covariance
            raise QgenError(f"--heldout must be >= 2, got {self.heldout}")
        check_seed(self.seed, "--seed")
        check_device_name(self.device)


@dataclass(frozen=True)
class ExportCommand(Command):
    """Write ``run`` as a model folder at ``out`` with its EMA weights, or those of its best validation FLD."""

    run: str | os.PathLike  # a RunDir too
    out: Path
    weights: str = "ema"
    runs_dir: Path | None = None
    backends_file: Path | None = None
    local: bool = False

    def validate(self) -> None:
        if self.weights not in EXPORTABLE_WEIGHTS:
            raise QgenError(f"export writes EMA weights: --weights must be {' or '.join(EXPORTABLE_WEIGHTS)}, "
                            f"got {self.weights!r}")


@dataclass(frozen=True)
class CircuitsCommand(Command):
    """Transpile a model's circuit (the same options as ``qgen train``'s) for ``backend`` and write it,
    with the circuits of its quantum-noise bits (``noise_circuit``), to the circuits folder."""

    backend: str = "statevector"
    backends_file: Path | None = None
    qubits: int = 8
    layers: int = 3
    entanglement: str = "linear"
    noise_circuit: bool = True
    local: bool = False
    reps: int | None = None  # = layers, by the circuit library's name
    circuit_choice: dict = field(default_factory=dict)  # the rest: qgen.circuits.choice.circuit_fields' options

    def validate(self) -> None:
        self.ansatz()  # every problem of the circuit, before the backend is loaded

    def ansatz(self):
        """The circuit's spec, as ``qgen train`` would build it from the same options."""
        return ModelConfig(**model_circuit(qubits=self.qubits, layers=self.layers, entanglement=self.entanglement,
                                           reps=self.reps, **self.circuit_choice)).ansatz


@dataclass(frozen=True)
class NoiseReportCommand(Command):
    """Fetch bits from ``backend`` for ``gaussians`` N(0, 1) values and test them, raw and extracted;
    ``json_out``: also write the report there."""

    backend: str = "aer_simulator"
    backends_file: Path | None = None
    gaussians: int = 20000
    seed: int = 0
    local: bool = False
    json_out: Path | None = None

    def validate(self) -> None:
        if self.gaussians < 1:
            raise QgenError(f"--gaussians must be >= 1, got {self.gaussians}")
        check_seed(self.seed, "--seed")


def model_circuit(*, qubits: int, layers: int, entanglement: str, reps: int | None = None, **choice) -> dict:
    """The circuit fields of a ``ModelConfig`` from ``qgen train``'s circuit options (``reps`` is
    ``layers`` by the library's name; ``choice``: ``qgen.circuits.choice.circuit_fields``)."""
    if reps is not None and layers not in (3, reps):  # 3: the default, i.e. only reps was given
        raise QgenError(f"reps and layers are one setting (the ansatz's repetitions); got {reps} and {layers}")
    return {"qubits": qubits, "layers": reps or layers, "entanglement": entanglement,
            **circuit_fields(qubits=qubits, **choice)}


def _check_journaled_jobs(value: str | None) -> None:
    if value is not None and value not in JOURNALED_JOBS:
        raise QgenError(f"--journaled-jobs must be {' or '.join(JOURNALED_JOBS)}, got {value!r}")
