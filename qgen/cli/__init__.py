"""The ``qgen`` command line: train, sample, and inspect.

Each command parses its options, calls one function of ``qgen.api`` (which checks the request and runs
it) and prints the result; what the options mean and which combinations are refused is decided
there, so the command line and Python agree. What stays here is parsing: the option types, the two
spellings of one setting (``--class``/``--classes``, ``--steps``/``--epochs``), the options
``--resume`` does not take, and turning errors into one ``qgen: error:`` line.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from qgen import __version__, api
from qgen.cli.circuit_options import circuit_options
from qgen.cli.internal_error import is_environment_error, report_internal_error
from qgen.cli.options import (
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    FiniteFloat,
    LazyChoice,
    device_option,
)
from qgen.cli.process_exit import run_and_exit
from qgen.errors import QgenError
from qgen.rundir import default_runs_root, package_versions
from qgen.rundir.layout import CONFIG, SAMPLES_GLOB
from qgen.threads import set_torch_threads

# Commands import what they need when they run (deferred: the backends registry is ~0.1 s of import,
# torch 1.3-2 s, Qiskit ~0.3 s more, measured): ``qgen --version`` and ``--help`` import neither torch nor
# Qiskit (tests/cli/test_cli.py holds them to that).


def _on_sigterm(signum, frame):  # a kill should save a checkpoint just like Ctrl-C does
    raise KeyboardInterrupt


def _to_stderr(line: str) -> None:
    """The reporter the CLI hands to library code: its progress lines go to stderr."""
    click.echo(line, err=True)


def _int_list(value: str | None, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise QgenError(f"{what} must be a comma-separated list of integers, got {value!r}") from None


def _mixing(value: str) -> tuple[float, float, float]:
    try:
        lam_min, lam_max, power = (float(v) for v in value.split(","))
    except ValueError:
        raise QgenError(f"--mix must be lam_min,lam_max,power (three numbers), got {value!r}") from None
    return lam_min, lam_max, power


journaled_jobs_option = click.option(
    "--journaled-jobs", type=click.Choice(["reuse", "resubmit"]), default=None,
    help="ibm backends: a journaled job asked the same under other backend settings (backends.toml edited "
         "since): reuse its result or pay for a new job [default: refuse and name the changed settings]")
backends_option = click.option(
    "--backends", "backends_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="backends.toml to read (default: $QGEN_BACKENDS, ./backends.toml, the one shipped with qgen)")
runs_option = click.option(
    "--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="where run directories live (default: $QGEN_RUNS or ./runs)")


def _experiment_command() -> click.Command:
    # deferred: --version loads no experiment code (tests/cli/test_cli.py); the module itself is light (~1 ms of
    # import, measured), and its command imports the experiment package when it runs
    from qgen.cli.experiment import experiment_command

    return experiment_command


class _LazyGroup(click.Group):
    """Commands that live in their own modules are imported only when asked for (by name, or by
    ``qgen --help`` for their one-line help)."""

    lazy = {"experiment": _experiment_command}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            return self.lazy[name]()
        return super().get_command(ctx, name)


def _sampler_names() -> tuple[str, ...]:
    # deferred: the registry of samplers imports the schedulers and torch (~1.3 s of import, measured); only
    # a sample command that checks --sampler, or lists the choices in its --help, needs it
    from qgen.diffusion.samplers import SCHEDULERS

    return tuple(SCHEDULERS)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qgen")
def cli() -> None:
    """Hybrid quantum-classical diffusion for small images, built on Qiskit."""


@cli.command()
@backends_option
def info(backends_file: Path | None) -> None:
    """Versions, datasets, backends and default locations."""
    from qgen.backends.registry import default_backends_file, load_backends  # deferred: see the top
    from qgen.data import available_datasets, default_data_root

    backends = load_backends(backends_file)  # before any line: a missing or bad file is one error line
    for pkg, ver in package_versions().items():
        click.echo(f"{pkg:<26}{ver}")
    click.echo(f"{'data root':<26}{default_data_root()}")
    click.echo(f"{'runs':<26}{default_runs_root()}")
    click.echo(f"{'backends file':<26}{backends_file or default_backends_file()}")
    click.echo(f"{'backends':<26}{', '.join(backends)}")
    click.echo(f"{'datasets':<26}{', '.join(available_datasets())} (or a path to a MedMNIST-layout .npz)")


@cli.command("backends")
@backends_option
def list_backends(backends_file: Path | None) -> None:
    """List the named backends of backends.toml: kind, device size, basis gates, shots, budget, credentials."""
    from qgen.backends.registry import backend_for, load_backends, unusable_reason  # deferred: see the top

    specs = load_backends(backends_file)  # before the header: a bad or empty file is one error line
    click.echo(f"{'name':<15} {'kind':<12} {'qubits':>6}  {'basis gates':<28} {'shots':>6} {'budget':>10}  credentials")
    for name, spec in specs.items():
        d = backend_for(spec).describe()
        problem = unusable_reason(spec)
        click.echo(f"{name:<15} {spec.kind:<12} {d['qubits']:>6}  {d['basis_gates']:<28} {d['shots']:>6} "
                   f"{d['budget']:>10}  {d['credentials']}" + (f"  UNUSABLE: {problem}" if problem else ""))


@cli.command()
@click.option("--backend", default="statevector", show_default=True, help="backend that evaluates the quantum layer")
@backends_option
@click.option("--dataset", default="mnist", show_default=True, help="mnist, a MedMNIST flag, or a .npz path")
@click.option("--data-root", default=None, help="dataset folder (default: $QGEN_DATA or ~/.cache/qgen)")
@click.option("--classes", default=None, help="comma-separated labels to keep, e.g. 3 or 0,1")
@click.option("--class", "single_class", type=int, default=None, help="a single label to keep")
@click.option("--n-train", type=POSITIVE_INT, default=None, help="seeded subset size (the limited-data regime)")
@click.option("--no-download", is_flag=True, help="never try to download datasets")
@click.option("--model", "model_kind", type=click.Choice(["quantum", "classical", "plain"]), default="quantum",
              show_default=True)
@click.option("--qubits", type=int, default=8, show_default=True)
@click.option("--layers", type=int, default=3, show_default=True)
@click.option("--entanglement", default="linear", show_default=True,
              help="linear, ring, full, or none (the separable control: no entangling gates); library "
                   "ansätze also take circular, reverse_linear, pairwise, sca")
@click.option("--bottleneck", type=click.Choice(["channel_gate", "site", "patch", "film"]), default=None,
              help="where the circuit sits at 7 px (default: the measured default, see README)")
@click.option("--readout", type=click.Choice(["z", "zz"]), default=None,
              help="circuit readouts: <Z> per qubit, or also neighbour <ZZ> (default: the measured default)")
@click.option("--skips", default=None, help="U-Net skip connections kept: 28,14 | 28 | 14 | none (default: the "
              "measured default)")
@click.option("--skip-channels", type=NON_NEGATIVE_INT, default=None,
              help="narrow each kept skip connection to this many channels by a 1x1 conv (default 0: full width)")
@click.option("--skip-drop", type=NON_NEGATIVE_FLOAT, default=None,
              help="zero the kept skip connections for this fraction of training images (default 0)")
@click.option("--widths", default="32,64,64", show_default=True, help="U-Net channels at 28,14,7 px")
@click.option("--schedule", default=None,
              help="beta schedule: linear, cosine, shifted_cosine, sigmoid, tailored (default: the recipe's)")
@click.option("--timesteps", "T", type=click.IntRange(min=2), default=None, help="diffusion steps T (default 1000)")
@click.option("--prediction", type=click.Choice(["eps", "v"]), default=None, help="what the network predicts")
@click.option("--loss-weighting", type=click.Choice(["uniform", "min_snr"]), default=None,
              help="per-timestep loss weights (min_snr: min-SNR-γ, Hang et al. 2023)")
@click.option("--min-snr-gamma", type=POSITIVE_FLOAT, default=None, help="γ of min_snr (default 5)")
@click.option("--mix", "mix", default="0,1,1", show_default=True,
              help="--noise mixed: λ(t) = lam_min + (lam_max - lam_min)(1 - ᾱ_t)^power, given as lam_min,lam_max,power")
@click.option("--steps", type=POSITIVE_INT, default=None, help="optimizer steps (default: the recipe's, 1500)")
@click.option("--epochs", type=POSITIVE_INT, default=None, help="alternative to --steps: passes over the training set")
@click.option("--batch-size", type=POSITIVE_INT, default=None, help="images per step (default 16)")
@click.option("--lr", type=POSITIVE_FLOAT, default=None, help="peak learning rate (default 2e-3)")
@click.option("--lr-warmup", type=NON_NEGATIVE_INT, default=None, help="linear warm-up steps (default 100)")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default=None,
              help="after the warm-up (default cosine decay to 0 at the last step)")
@click.option("--ema-decay", type=FiniteFloat(min=0.0), default=None, help="EMA decay cap (default 0.9999)")
@click.option("--ema-power", type=NON_NEGATIVE_FLOAT, default=None,
              help="EMA warm-up 1-(1+n)^-power (default 0.75; 0: the (1+n)/(10+n) warm-up)")
@click.option("--augment-shift", type=click.IntRange(0, 7), default=None,
              help="random translations of up to this many pixels (default 0)")
@click.option("--eval-every", type=NON_NEGATIVE_INT, default=None,
              help="validation FLD every K steps into metrics.csv (default: ~5 per run, none under 400 steps; 0: off)")
@click.option("--eval-samples", type=POSITIVE_INT, default=None, help="samples per evaluation (default 96)")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--noise", type=click.Choice(["classical", "quantum", "mixed"]), default="classical", show_default=True,
              help="forward-process ε: pseudo-random, quantum-generated, or mixed by the schedule's λ(t)")
@click.option("--checkpoint-every", type=POSITIVE_INT, default=50, show_default=True)
@click.option("--name", default=None, help="run directory name (default: <timestamp>-<model>-<dataset>)")
@runs_option
@click.option("--resume", "resume_run", default=None, help="continue an interrupted run (name or path)")
@click.option("--local", is_flag=True, help="ibm backends: run the runtime code path on the fake device")
@journaled_jobs_option
@device_option(default=None, help_extra=" [default: auto; on --resume the run's own device]")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--no-tensorboard", is_flag=True, help="no TensorBoard event files in the run's tensorboard/")
@circuit_options
def train(backend, backends_file, dataset, data_root, classes, single_class, n_train, no_download, model_kind,
          qubits, layers, entanglement, bottleneck, readout, skips, skip_channels, skip_drop, widths, schedule, T, prediction, loss_weighting, min_snr_gamma, mix, steps,
          epochs, batch_size, lr, lr_warmup, lr_schedule, ema_decay, ema_power, augment_shift, eval_every,
          eval_samples, seed, noise, checkpoint_every, name, runs_dir, resume_run, local, journaled_jobs, device,
          no_progress, no_tensorboard, **circuit_choice) -> None:
    """Train a denoiser; writes runs/<timestamp>-<name>/."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    if resume_run:
        _refuse_options_fixed_on_resume(click.get_current_context())
        api.resume(resume_run, runs_dir=runs_dir, steps=steps, backends_file=backends_file,
                   progress=not no_progress, local=local, report=_to_stderr, device=device,
                   journaled_jobs=journaled_jobs)
        return
    if classes is not None and single_class is not None:
        raise QgenError("give either --classes or --class, not both")
    if steps is not None and epochs is not None:
        raise QgenError("give either --steps or --epochs, not both")
    cls = (single_class,) if single_class is not None else _int_list(classes, "--classes")
    cfg = api.run_config(name=name or "", backend=backend, dataset=dataset, data_root=data_root, classes=cls,
                         n_train=n_train, download=not no_download, seed=seed, model=model_kind, qubits=qubits,
                         layers=layers, entanglement=entanglement, bottleneck=bottleneck, readout=readout,
                         skips=_skips(skips), skip_channels=skip_channels, skip_drop=skip_drop,
                         widths=_int_list(widths, "--widths"),
                         schedule=schedule, timesteps=T, prediction=prediction, loss_weighting=loss_weighting,
                         min_snr_gamma=min_snr_gamma, mix=_mixing(mix), steps=steps, batch_size=batch_size, lr=lr,
                         lr_warmup=lr_warmup, lr_schedule=lr_schedule, ema_decay=ema_decay, ema_power=ema_power,
                         augment_shift=augment_shift, eval_every=eval_every, eval_samples=eval_samples,
                         noise=noise, checkpoint_every=checkpoint_every, tensorboard=not no_tensorboard,
                         device=device or "auto", **circuit_choice)
    api.train(cfg, runs_dir=runs_dir, epochs=epochs, backends_file=backends_file, progress=not no_progress,
              local=local, report=_to_stderr)


def _skips(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    return () if text.strip() == "none" else _int_list(text, "--skips")


#: train options that --resume accepts: the rest are fixed by the run's config.toml.
RESUME_OPTIONS = {"resume_run", "steps", "no_progress", "runs_dir", "backends_file", "local", "device",
                  "journaled_jobs"}


def _refuse_options_fixed_on_resume(ctx: click.Context) -> None:
    """--resume continues the run as its config.toml says; an option given with it would be ignored."""
    given = [param for param in ctx.command.params
             if param.name not in RESUME_OPTIONS
             and ctx.get_parameter_source(param.name) not in (ParameterSource.DEFAULT, None)]
    if given:
        names = ", ".join(param.opts[0] for param in given)
        raise QgenError(f"{names} cannot change on --resume (the run's {CONFIG} fixes them); only --steps "
                        "may be given to train further. Start a new run to change them")


@cli.command()
@click.option("--run", "run", default=None, help="run name or path")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="a model folder (qgen export) instead of a run; samples go to --out")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="with --model: folder for the samples (default ./samples)")
@click.option("--backend", default=None, help="backend for the quantum layer (default: the run's)")
@backends_option
@click.option("--n", "n", type=POSITIVE_INT, default=64, show_default=True, help="number of samples")
@click.option("--sampler", type=LazyChoice(_sampler_names), default="ddim", show_default=True)
@click.option("--steps", type=POSITIVE_INT, default=50, show_default=True, help="DDIM steps")
@click.option("--eta", type=NON_NEGATIVE_FLOAT, default=0.0, show_default=True, help="DDIM eta (0 = deterministic)")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--noise", type=click.Choice(["classical", "quantum", "mixed"]), default="classical", show_default=True,
              help="source of x_T and per-step noise (mixed: λ(t) of the run's schedule)")
@click.option("--weights", type=click.Choice(["ema", "last", "best"]), default="ema", show_default=True,
              help="EMA weights at the end, the raw last weights, or the EMA weights with the best validation FLD")
@click.option("--batch-size", type=POSITIVE_INT, default=64, show_default=True, help="samples per model call")
@click.option("--shot-budget", type=NON_NEGATIVE_INT, default=None, help="most shots this command may spend (default: backends.toml)")
@click.option("--reuse-noise", is_flag=True, help="replay the run's quantum noise pool from its start")
@click.option("--dry-run", is_flag=True, help="print the plan (bits, shots, jobs, PUBs) and submit nothing")
@click.option("--local", is_flag=True, help="ibm backends: run the runtime code path on the fake device")
@journaled_jobs_option
@runs_option
@device_option()
@click.option("--no-progress", is_flag=True)
def sample(run, model_dir, out_dir, backend, backends_file, n, sampler, steps, eta, seed, noise, weights, batch_size,
           shot_budget, reuse_noise, dry_run, local, journaled_jobs, runs_dir, device, no_progress) -> None:
    """Generate samples from a trained run (into the run directory) or from a model folder (into --out)."""
    options = dict(run=run, model=model_dir, n=n, sampler=sampler, steps=steps, eta=eta, seed=seed, noise=noise,
                   weights=weights, batch_size=batch_size, backend=backend, shot_budget=shot_budget,
                   reuse_noise=reuse_noise, out=out_dir, runs_dir=runs_dir, backends_file=backends_file,
                   progress=not no_progress, local=local, device=device, journaled_jobs=journaled_jobs)
    if dry_run:
        plan = api.plan_sample(**options)
        for line in plan.lines:
            click.echo(line)
        plan.check()  # after the plan is shown: non-zero exit when the real run would be refused
        return
    out = api.sample(**options)
    click.echo(f"wrote {out.npz} and {out.png}")


@cli.command()
@click.option("--backend", default="statevector", show_default=True)
@backends_option
@click.option("--qubits", type=int, default=8, show_default=True)
@click.option("--layers", type=int, default=3, show_default=True)
@click.option("--entanglement", default="linear", show_default=True)
@click.option("--noise-circuit/--no-noise-circuit", default=True, show_default=True,
              help="also write the circuit that makes quantum noise bits")
@click.option("--local", is_flag=True, help="ibm backends: use the fake device instead of the service")
@circuit_options
def circuits(backend, backends_file, qubits, layers, entanglement, noise_circuit, local, **circuit_choice) -> None:
    """Transpile the circuits for a backend and write them to circuits/ (no training)."""
    for path in api.write_circuits(backend, backends_file=backends_file, qubits=qubits, layers=layers,
                                   entanglement=entanglement, noise_circuit=noise_circuit, local=local,
                                   **circuit_choice):
        click.echo(str(path))


@cli.command("noise-report")
@click.option("--backend", default="aer_simulator", show_default=True)
@backends_option
@click.option("--gaussians", type=POSITIVE_INT, default=20000, show_default=True, help="how many N(0,1) values to test")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--local", is_flag=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the report as JSON")
def noise_report_cmd(backend, backends_file, gaussians, seed, local, json_out) -> None:
    """Statistical checks of quantum noise bits, raw and after extraction."""
    report = api.noise_report(backend, backends_file=backends_file, gaussians=gaussians, seed=seed, local=local,
                              json_out=json_out)
    for line in report.lines:
        click.echo(line)
    if not report.passed:
        raise QgenError("the extracted quantum noise failed the statistical checks (see the report above)")


@cli.command()
@click.option("--run", "run", required=True, help="run name or path")
@click.option("--samples", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"samples .npz (default: the run's newest {SAMPLES_GLOB})")
@click.option("--heldout", type=click.IntRange(min=2), default=1000, show_default=True, help="most held-out real images to compare with")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--ablate/--no-ablate", default=True, show_default=True,
              help="also measure how much the images depend on the bottleneck (samples the run again with its "
                   "middle map's readouts replaced by their mean / a shuffle; exact backend)")
@backends_option
@runs_option
@device_option()
def evaluate(run, samples, heldout, seed, ablate, backends_file, runs_dir, device) -> None:
    """Offline metrics (FLD, KID, precision/recall, classifier, memorization) into the run's metrics.json."""
    result = api.evaluate(run, samples=samples, runs_dir=runs_dir, heldout=heldout, seed=seed, device=device,
                          ablate=ablate, backends_file=backends_file)
    metrics, out = result.metrics, result.path
    key = next(k for k in ("fld", "fd_small_cnn") if k in metrics)
    fd, kid, pr = metrics[key], metrics["kid"], metrics["precision_recall"]
    mem = metrics["memorization"]["pixels"]
    click.echo(f"{key.upper()} {_num(fd.get('value'), '.2f')}  KID {_num(kid.get('mean'), '.4g')} ± "
               f"{_num(kid.get('std'), '.2g')}  precision {_num(pr.get('precision'), '.2f')} recall "
               f"{_num(pr.get('recall'), '.2f')}  (n_samples={fd['n_samples']}, n_reference={fd['n_reference']})")
    click.echo(f"memorization (pixels): NN-distance ratio train/held-out {_num(mem.get('ratio_of_medians'), '.2f')}, "
               f"{_num(mem.get('fraction_flagged_as_copies'), '.0%')} flagged as copies, "
               f"{_num(mem.get('fraction_closer_to_train'), '.0%')} closer to train (n_samples={mem['n_samples']}, "
               f"{mem['n_train_reference']} train / {mem['n_heldout_reference']} held-out)")
    base = metrics.get("baselines", {})
    if "floor" in base:
        floor, mem = base["floor"], base["memorizer"]
        click.echo(f"read against baselines (same sizes): real-data floor {floor['mean']:.2f} ± {floor['sd']:.2f}, "
                   f"memorizer {mem['mean']:.2f} ± {mem['sd']:.2f}; {key.upper()}/floor {base['fld_over_floor']:.2f}, "
                   f"{key.upper()}/memorizer {base['fld_over_memorizer']:.2f}, copy fraction "
                   f"{base['copy_fraction']:.0%} (features) -> {base['reading']}")
    dependence = metrics.get("dependence")
    if dependence is not None:
        from qgen.dependence import summary  # deferred: see the top

        if "reason" in dependence:
            click.echo(f"dependence on the bottleneck: not measured ({dependence['reason']})")
        else:
            click.echo(f"dependence on the bottleneck ({dependence['design']}, {dependence['middle']} middle; "
                       f"{key.upper()} ablated / as trained, {dependence['n']} samples redrawn): {summary(dependence)}")
    click.echo(f"wrote {out}")


@cli.command()
@click.option("--run", "run", required=True, help="run name or path")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="the model folder to write")
@click.option("--weights", type=click.Choice(["ema", "best"]), default="ema", show_default=True,
              help="the EMA weights at the end, or those with the best validation FLD")
@backends_option
@click.option("--local", is_flag=True, help="ibm backends: transpile for the fake device if circuits/ is gone")
@runs_option
def export(run, out, weights, backends_file, local, runs_dir) -> None:
    """Write a run as a model folder: model.safetensors, config.json, circuit QPY/QASM 3, README.md card."""
    folder = api.export(run, out, weights=weights, runs_dir=runs_dir, backends_file=backends_file, local=local)
    click.echo(f"wrote {folder}")


def _num(value, spec: str) -> str:
    """A metric for the summary line; metrics that need more samples than were given are None."""
    return "n/a" if value is None else format(value, spec)


def _click_message(exc: click.ClickException) -> str:
    message = exc.format_message()
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        message += f" (see '{exc.ctx.command_path} --help')"
    return message


class _OncePerMessage(logging.Filter):
    """Notes such as the offline-MNIST fallback are logged by every load of a dataset (a run loads
    its training images, its held-out images and the feature net's data): say each one once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        first = message not in self.seen
        self.seen.add(message)
        return first


def _log_notes_to_stderr() -> None:
    log = logging.getLogger("qgen")
    if any(isinstance(f, _OncePerMessage) for h in log.handlers for f in h.filters):
        return  # main() called again in the same process (tests)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_OncePerMessage())
    log.addHandler(handler)
    log.propagate = False


def main(argv: list[str] | None = None) -> None:
    _log_notes_to_stderr()
    args = sys.argv[1:] if argv is None else argv
    try:
        if args and args[0] not in ("--version", "--help", "-h") and args[-1] not in ("--help", "-h"):
            set_torch_threads()  # qgen.threads; version and help need no torch (importing it takes ~1 s)
        cli.main(args=argv, prog_name="qgen", standalone_mode=False)
    except QgenError as exc:
        click.echo(f"qgen: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("qgen: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        # one line like every other qgen error, not click's usage block
        click.echo(f"qgen: error: {_click_message(exc)}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        if not is_environment_error(exc):
            sys.exit(report_internal_error(exc))
        # a full disk or a file the user may not write: theirs to fix, said in their terms
        click.echo(f"qgen: error: {exc.strerror}: {exc.filename}", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug, not bad input: one line naming the traceback's file, never a raw traceback
        sys.exit(report_internal_error(exc))


def run() -> None:
    """The process entry point (the ``qgen`` script, ``python -m qgen.cli``): ``main`` and a quick exit
    (qgen.cli.process_exit); tests and the Python API call ``main`` itself."""
    run_and_exit(main)


