"""qgen's Python API: what the ``qgen`` commands do, as functions for scripts and notebooks.

The CLI is a thin layer over these (it parses options, calls one function, prints the result)::

    import qgen

    cfg = qgen.run_config(classes=(3,), n_train=64, steps=1500)    # the recipe, every knob a keyword
    run = qgen.train(cfg)                                          # -> the run directory
    out = qgen.sample(run, n=128, sampler="dpm", steps=10)         # -> Samples(images, npz, png, ...)
    ev = qgen.evaluate(run)                                        # -> Evaluation(metrics, path)
    folder = qgen.export(run, "my-model")                          # -> a model folder (safetensors)
    model = qgen.from_pretrained("my-model")                       # -> PretrainedModel; model.sample(16)
    backend = qgen.load_backend("aer_simulator")                   # a named backend of backends.toml
    plan = qgen.plan_sample(run, n=128, backend="ibm_fez")         # qgen sample --dry-run: jobs, shots, budget
    paths = qgen.write_circuits("fake_fez", qubits=8)              # qgen circuits: the transpiled circuits
    report = qgen.noise_report("aer_simulator")                    # qgen noise-report: .lines, .passed

Each function builds its command's request (``qgen.commands``), which checks it once, and runs
the command; the CLI does the same through these functions, so both accept and refuse the same
requests. Errors are ``qgen.errors.QgenError`` with a one-line message (the CLI prints it as
``qgen: error:``). Each function imports what its command needs when it is called (deferred): those
modules import torch (1.3-2 s of import here, measured) and most also Qiskit (~0.3 s more), the
backends registry numpy (~0.1 s), and ``import qgen.api`` must not (tests/test_ecosystem.py holds it
to that), so that ``import qgen``, ``qgen --version`` and ``qgen --help`` stay fast. What is imported
at the top is light (no torch, no numpy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qgen.errors import QgenError
from qgen.rundir.layout import check_run_name
from qgen.tomlconfig import from_dict

if TYPE_CHECKING:
    import torch

    from qgen.backends.base import QuantumBackend
    from qgen.commands import SampleCommand
    from qgen.config import RunConfig
    from qgen.noise_check import NoiseReport
    from qgen.pretrained import PretrainedModel
    from qgen.sampling import SamplingPlan

__all__ = ["Evaluation", "Samples", "evaluate", "export", "from_pretrained", "load_backend", "noise_report",
           "plan_sample", "resume", "run_config", "sample", "train", "write_circuits"]


def run_config(*, name: str = "", backend: str = "statevector", dataset: str = "mnist", data_root: str | None = None,
               classes: tuple[int, ...] | None = None, n_train: int | None = None, download: bool = True,
               seed: int = 0, model: str = "quantum", qubits: int = 8, layers: int = 3, entanglement: str = "linear",
               bottleneck: str | None = None, readout: str | None = None, skips: tuple[int, ...] | None = None,
               skip_channels: int | None = None, skip_drop: float | None = None, widths: tuple[int, ...] = (32, 64, 64), schedule: str | None = None, timesteps: int | None = None,
               prediction: str | None = None, loss_weighting: str | None = None,
               min_snr_gamma: float | None = None, mix: tuple[float, float, float] = (0.0, 1.0, 1.0),
               steps: int | None = None, batch_size: int | None = None, lr: float | None = None,
               lr_warmup: int | None = None, lr_schedule: str | None = None, ema_decay: float | None = None,
               ema_power: float | None = None, augment_shift: int | None = None, eval_every: int | None = None,
               eval_samples: int | None = None, noise: str = "classical", checkpoint_every: int = 50,
               tensorboard: bool = True, device: str = "auto", ansatz: str = "qgen", reps: int | None = None,
               feature_map: str = "angle", feature_reps: int = 1, rotation_blocks=None, entanglement_blocks=None,
               observables=None, circuit=None, input_params=None) -> RunConfig:
    """A training run's configuration: the measured recipe (``qgen.training.recipe``) where a value
    is None, the given value otherwise. Same names and meaning as ``qgen train``'s options
    (``device``: auto, cpu, cuda[:N] or mps, resolved when training starts; ``bottleneck``, ``readout``,
    ``skips``, ``skip_channels``, ``skip_drop``: None gives the measured default design,
    ``qgen.models.config.NEW_RUN_MODEL``).

    The circuit (``qgen.circuits.choice.circuit_fields``): ``ansatz`` "qgen" (the original RZ·RY
    layers) or a circuit-library ansatz (real_amplitudes, efficient_su2, n_local with
    ``rotation_blocks`` / ``entanglement_blocks``, pauli_two_design) with ``reps`` (= ``layers``)
    and ``entanglement``; ``feature_map`` angle, z_feature_map, zz_feature_map or reupload;
    ``observables`` "z", "zz", "z+zz" or Pauli labels / SparsePauliOps. Or a circuit of your own:
    ``circuit`` (a parametrized QuantumCircuit or a QPY path) with ``input_params`` (its input
    parameters, their names, or a ParameterVector's name; default "x") and ``observables``
    (default Z on every qubit): the EstimatorQNN contract."""
    from qgen.commands import model_circuit
    from qgen.config import RunConfig
    from qgen.data import DataConfig
    from qgen.models.config import NEW_RUN_MODEL, ModelConfig
    from qgen.training.recipe import recipe_diffusion_config, recipe_train_config

    if len(mix) != 3:
        raise QgenError(f"mix must be (lam_min, lam_max, power), got {mix!r}")
    check_run_name(name)
    data = DataConfig(dataset=dataset, root=data_root, classes=tuple(classes) if classes is not None else None,
                      n_train=n_train, seed=seed, download=download)
    asked = dict(bottleneck=bottleneck, readout=readout, skips=skips, skip_channels=skip_channels, skip_drop=skip_drop)
    dataclass_defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name in asked}
    design = {**dataclass_defaults, **NEW_RUN_MODEL, **{k: v for k, v in asked.items() if v is not None}}
    circuit_cfg = model_circuit(
        qubits=qubits, layers=layers, entanglement=entanglement, reps=reps, ansatz=ansatz, feature_map=feature_map,
        feature_reps=feature_reps, rotation_blocks=rotation_blocks, entanglement_blocks=entanglement_blocks,
        observables=observables, circuit=circuit, input_params=input_params)
    model_cfg = ModelConfig(kind=model, widths=tuple(widths), bottleneck=design["bottleneck"],
                            readout=design["readout"], skips=tuple(design["skips"]),
                            skip_channels=int(design["skip_channels"]), skip_drop=float(design["skip_drop"]), **circuit_cfg)
    train_cfg = recipe_train_config(steps=steps, batch_size=batch_size, lr=lr, lr_warmup=lr_warmup,
                                    lr_schedule=lr_schedule, ema_decay=ema_decay, ema_power=ema_power,
                                    augment_shift=augment_shift, eval_every=eval_every, eval_samples=eval_samples,
                                    seed=seed, noise=noise, checkpoint_every=checkpoint_every, tensorboard=tensorboard)
    diffusion = recipe_diffusion_config(schedule=schedule, T=timesteps, prediction=prediction,
                                        loss_weighting=loss_weighting, min_snr_gamma=min_snr_gamma,
                                        mix_lam_min=float(mix[0]), mix_lam_max=float(mix[1]), mix_power=float(mix[2]))
    return RunConfig(name=name, backend=backend, data=data, model=model_cfg, diffusion=diffusion, train=train_cfg,
                     device=device)


def train(config: RunConfig | dict | str | Path, *, runs_dir: str | Path | None = None, epochs: int | None = None,
          backends_file: str | Path | None = None, progress: bool = False, local: bool = False,
          report: Callable[[str], None] | None = None) -> Path:
    """Train a new run; returns its directory (``runs_dir``/<timestamp>-<name>).

    ``config``: a RunConfig (see ``run_config``), the dict of a config.toml, or the path of one.
    ``epochs``: the run's length in passes over the training set, instead of the config's steps.
    ``report`` receives the progress lines the CLI prints (default: none).
    """
    from qgen.commands import TrainCommand, quiet
    from qgen.training.run import start_training

    command = TrainCommand(_as_run_config(config), epochs=epochs, runs_dir=_path(runs_dir),
                           backends_file=_path(backends_file), progress=progress, local=local, report=report or quiet)
    return start_training(command).path


def resume(run: str | Path, *, steps: int | None = None, runs_dir: str | Path | None = None,
           backends_file: str | Path | None = None, progress: bool = False, local: bool = False,
           report: Callable[[str], None] | None = None, device: str | None = None,
           journaled_jobs: str | None = None) -> Path:
    """Continue an interrupted run (or train a finished one further to ``steps``); ``device``
    None: the device the run recorded. ``journaled_jobs``: see ``sample``."""
    from qgen.commands import ResumeCommand, quiet
    from qgen.training.run import resume_training

    command = ResumeCommand(run, steps=steps, runs_dir=_path(runs_dir), backends_file=_path(backends_file),
                            progress=progress, local=local, report=report or quiet, device=device,
                            journaled_jobs=journaled_jobs)
    return resume_training(command).path


@dataclass(frozen=True)
class Samples:
    """A sample set: ``images`` (n, C, H, W) floats in [-1, 1], and the files it was written to."""

    images: torch.Tensor
    npz: Path
    png: Path
    metadata: dict


def sample(run: str | Path | None = None, *, model: str | Path | None = None, n: int = 64, sampler: str = "ddim",
           steps: int = 50, eta: float = 0.0, seed: int = 0, noise: str = "classical", weights: str = "ema",
           batch_size: int = 64, backend: str | None = None, shot_budget: int | None = None,
           reuse_noise: bool = False, out: str | Path | None = None, runs_dir: str | Path | None = None,
           backends_file: str | Path | None = None, progress: bool = False, local: bool = False,
           device: str | None = None, journaled_jobs: str | None = None) -> Samples:
    """Samples of a ``run`` (written into the run directory) or of a ``model`` folder (written into
    ``out``, default ./samples); exactly one of the two. A model folder holds the weights it was
    exported with and no run directory: ``weights``, ``noise`` other than classical and
    ``reuse_noise`` are for runs. ``device``: where the U-Net runs (auto, cpu, cuda[:N], mps; None:
    auto); the draws are the same. ``journaled_jobs``: "reuse" or "resubmit" a hardware job the run's
    journal holds for the same request under other backend settings; None refuses, naming the
    settings that changed."""
    from qgen.sampling import sample as draw_and_write

    result = draw_and_write(_sample_command(
        run=run, model=model, n=n, sampler=sampler, steps=steps, eta=eta, seed=seed, noise=noise, weights=weights,
        batch_size=batch_size, backend=backend, shot_budget=shot_budget, reuse_noise=reuse_noise, out=out,
        runs_dir=runs_dir, backends_file=backends_file, progress=progress, local=local, device=device,
        journaled_jobs=journaled_jobs))
    return Samples(result["images"], result["npz"], result["png"], result["metadata"])


def plan_sample(run: str | Path | None = None, *, model: str | Path | None = None, n: int = 64,
                sampler: str = "ddim", steps: int = 50, eta: float = 0.0, seed: int = 0, noise: str = "classical",
                weights: str = "ema", batch_size: int = 64, backend: str | None = None,
                shot_budget: int | None = None, reuse_noise: bool = False, out: str | Path | None = None,
                runs_dir: str | Path | None = None, backends_file: str | Path | None = None,
                progress: bool = False, local: bool = False, device: str | None = None,
                journaled_jobs: str | None = None) -> SamplingPlan:
    """``qgen sample --dry-run``: what ``sample`` with the same arguments would do to a run (model
    calls, estimator and sampler jobs, shots against the budget), submitting nothing. The plan's
    ``lines`` say it; ``refusals`` (and ``check()``) why the real command would be refused."""
    from qgen.sampling import plan_sampling

    return plan_sampling(_sample_command(
        run=run, model=model, n=n, sampler=sampler, steps=steps, eta=eta, seed=seed, noise=noise, weights=weights,
        batch_size=batch_size, backend=backend, shot_budget=shot_budget, reuse_noise=reuse_noise, out=out,
        runs_dir=runs_dir, backends_file=backends_file, progress=progress, local=local, device=device,
        journaled_jobs=journaled_jobs))


def _sample_command(*, run, model, n, sampler, steps, eta, seed, noise, weights, batch_size, backend, shot_budget,
                    reuse_noise, out, runs_dir, backends_file, progress, local, device,
                    journaled_jobs) -> SampleCommand:
    """The one request ``sample`` and ``plan_sample`` make of their (identical) arguments."""
    from qgen.commands import SampleCommand
    from qgen.draw import SampleRequest

    request = SampleRequest(n=n, sampler=sampler, steps=steps, eta=eta, seed=seed, noise=noise, weights=weights,
                            batch_size=batch_size, backend=backend, shot_budget=shot_budget, reuse_noise=reuse_noise)
    return SampleCommand(request, run=run, model=_path(model), out=_path(out), runs_dir=_path(runs_dir),
                         backends_file=_path(backends_file), progress=progress, local=local, device=device or "auto",
                         journaled_jobs=journaled_jobs)


@dataclass(frozen=True)
class Evaluation:
    """``qgen evaluate``'s result: every metric (as written to ``path``, the run's metrics.json)."""

    metrics: dict
    path: Path

    @property
    def fld(self) -> float | None:
        key = next((k for k in ("fld", "fd_small_cnn") if k in self.metrics), None)
        return self.metrics[key]["value"] if key else None

    @property
    def dependence(self) -> dict | None:
        """FLD ratios ablated / as trained (removal_*, content_*), when evaluated with ``ablate``."""
        return self.metrics.get("dependence")

    @property
    def reading(self) -> str | None:
        """copying, under-trained, generalizing or near-real (FLD read against floor and memorizer)."""
        return self.metrics.get("baselines", {}).get("reading")


def evaluate(run: str | Path, *, samples: str | Path | None = None, heldout: int = 1000, seed: int = 0,
             runs_dir: str | Path | None = None, device: str | None = None, ablate: bool = False,
             backends_file: str | Path | None = None) -> Evaluation:
    """Score a run's samples (default: its newest sample set) against at most ``heldout`` held-out test
    images; ``ablate``: also how much they depend on the bottleneck (``.dependence``; ``qgen.dependence``)."""
    from qgen.commands import EvaluateCommand
    from qgen.evaluation import evaluate_run

    command = EvaluateCommand(run, samples=_path(samples), heldout=heldout, seed=seed, runs_dir=_path(runs_dir),
                              device=device or "auto", ablate=ablate, backends_file=_path(backends_file))
    return Evaluation(*evaluate_run(command))


def export(run: str | Path, out: str | Path, *, weights: str = "ema", runs_dir: str | Path | None = None,
           backends_file: str | Path | None = None, local: bool = False) -> Path:
    """Write ``run`` as a model folder at ``out`` (model.safetensors, config.json, circuit, README.md)
    with its EMA weights (``weights="best"``: those of its best validation FLD)."""
    from qgen.commands import ExportCommand
    from qgen.pretrained import export_run

    return export_run(ExportCommand(run, _path(out), weights=weights, runs_dir=_path(runs_dir),
                                    backends_file=_path(backends_file), local=local))


def from_pretrained(path: str | Path, *, backend: str | None = None, backends_file: str | Path | None = None,
                    local: bool = False, device: str = "cpu") -> PretrainedModel:
    """Load a model folder (JSON + safetensors, never a pickle); ``.sample(n, ...)`` draws images."""
    from qgen.pretrained import from_pretrained as load

    return load(path, backend=backend, backends_file=_path(backends_file), local=local, device=device)


def load_backend(name: str, backends_file: str | Path | None = None, *, local: bool = False) -> QuantumBackend:
    """The backend ``name`` of backends.toml (``qgen backends`` lists them)."""
    from qgen.backends.registry import load_backend as load

    return load(name, _path(backends_file), local=local)


def write_circuits(backend: str = "statevector", *, backends_file: str | Path | None = None, qubits: int = 8,
                   layers: int = 3, entanglement: str = "linear", noise_circuit: bool = True, local: bool = False,
                   reps: int | None = None, **circuit_choice) -> list[Path]:
    """``qgen circuits``: transpile the circuit ``run_config`` would build from the same circuit
    options (``circuit_choice``: ansatz, feature_map, observables, circuit, ...) for ``backend`` and
    write it for inspection (QPY, OpenQASM 3, stats) under the circuits folder ($QGEN_CIRCUITS or
    ./circuits), with the circuits of its quantum-noise bits (``noise_circuit``); their folders."""
    from qgen.circuit_files import write_circuits as write
    from qgen.commands import CircuitsCommand

    return write(CircuitsCommand(backend, backends_file=_path(backends_file), qubits=qubits, layers=layers,
                                 entanglement=entanglement, noise_circuit=noise_circuit, local=local, reps=reps,
                                 circuit_choice=circuit_choice))


def noise_report(backend: str = "aer_simulator", *, backends_file: str | Path | None = None, gaussians: int = 20000,
                 seed: int = 0, local: bool = False, json_out: str | Path | None = None) -> NoiseReport:
    """``qgen noise-report``: statistical checks of ``backend``'s quantum bits, raw and after extraction,
    for ``gaussians`` N(0, 1) values (``.lines``: the report; ``.passed``: whether the bits qgen uses
    pass); ``json_out``: also write it there as JSON."""
    from qgen.commands import NoiseReportCommand
    from qgen.noise_check import check_noise

    return check_noise(NoiseReportCommand(backend, backends_file=_path(backends_file), gaussians=gaussians,
                                          seed=seed, local=local, json_out=_path(json_out)))


def _as_run_config(config) -> RunConfig:
    from qgen.config import RunConfig, load_run_config

    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return from_dict(RunConfig, config)
    if isinstance(config, str | Path):
        return load_run_config(Path(config))
    raise QgenError(f"config must be a RunConfig, a dict or the path of a run config (TOML), got {type(config).__name__}")


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)
