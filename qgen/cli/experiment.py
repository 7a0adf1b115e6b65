"""``qgen experiment``: the command. qgen.cli loads it lazily (``_LazyGroup.lazy``)."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import click

from qgen.cli.options import device_option
from qgen.errors import QgenError
from qgen.experiment.cells import check_data_for_cells, expand_cells
from qgen.experiment.config import (
    ExperimentConfig,
    load_experiment_config,
    save_experiment_config,
    to_dict_deep,
)
from qgen.experiment.presets import PRESETS, preset
from qgen.experiment.runner import EXECUTORS
from qgen.experiment.state import ExperimentState
from qgen.rundir import timestamp
from qgen.rundir.layout import LOCK
from qgen.threads import set_torch_threads

CONFIG_FILE = "experiment.toml"
LOCK_FILE = LOCK  # the same lock file name as a run's: one writer at a time


def resolve_config(out: Path | None, config_file: Path | None, preset_name: str | None) -> ExperimentConfig:
    """The experiment to run: the one stored in ``out`` (resume) or the one requested (new)."""
    if config_file is not None and preset_name is not None:
        raise QgenError("give either --config or --preset, not both")
    requested = (load_experiment_config(config_file) if config_file is not None
                 else preset(preset_name) if preset_name is not None else None)
    stored_path = out / CONFIG_FILE if out is not None else None
    if stored_path is not None and stored_path.is_file():
        stored = load_experiment_config(stored_path)
        if requested is not None and to_dict_deep(requested) != to_dict_deep(stored):
            # resuming with other settings would mix two experiments in one table
            raise QgenError(f"{out} holds a different experiment ({CONFIG_FILE}); use a new --out, or omit "
                            "--config/--preset to continue the stored one")
        return stored
    if requested is None:
        raise QgenError("give --preset smoke|full or --config FILE (or the --out of an existing experiment to "
                        "resume it)")
    return requested


def check_out_folder(out: Path | None) -> None:
    """An existing --out must be an experiment (its experiment.toml) or empty: the outputs replace
    report.md, summary.csv and tables.md, which in any other folder are the user's own files."""
    if out is None or not out.exists():
        return
    if not out.is_dir():
        raise QgenError(f"--out {out} is a file; give a folder for the experiment")
    if (out / CONFIG_FILE).is_file():
        return
    if any(entry.name != LOCK_FILE for entry in out.iterdir()):  # the lock alone: a start killed at once
        raise QgenError(f"--out {out} exists and is not an experiment folder (no {CONFIG_FILE}); its files "
                        "(report.md, summary.csv, ...) would be overwritten. Choose a new or empty folder")


@contextmanager
def experiment_lock(out: Path):
    """One writer of an experiment folder at a time (its state.json, its outputs), as runs are locked."""
    from qgen.rundir.lock import hold_lock

    with hold_lock(out / LOCK_FILE, out, what="experiment"):
        yield


@contextmanager
def sigterm_as_interrupt():
    """A kill (SIGTERM) saves checkpoints and state exactly like Ctrl-C does."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_executor_options(executor: str, workers: int | None, address: str | None, device: str,
                            nothing_runs: bool) -> None:
    """Refuse what would be ignored, and a missing Ray or GPU, before the output folder is touched."""
    from qgen.torch_device import check_device_name, resolve_device

    check_device_name(device)
    if executor == "local":
        given = [name for name, value in (("--workers", workers), ("--address", address)) if value is not None]
        if given:
            raise QgenError(f"{' and '.join(given)} only apply to --executor ray")
    if nothing_runs:
        return
    if executor == "ray":
        from qgen.experiment.ray_executor import check_address, import_ray

        import_ray()
        if address is not None:
            check_address(address)
    if address is None:  # this machine runs the cells (a cluster's GPUs are checked once it is joined)
        resolve_device(device)


@click.command("experiment")
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default=None,
              help="smoke: minutes, for CI; full: the protocol of docs/results/experiment/PROTOCOL.md (days of "
                   "CPU; see --dry-run)")
@click.option("--smoke", "smoke", is_flag=True, help="shorthand for --preset smoke")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="experiment TOML (arms, sizes, seeds, [[datasets]], [model], [train], [sampling])")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="output folder (default: experiments/<timestamp>-<preset>); an existing one is resumed")
@click.option("--dry-run", is_flag=True, help="list the cells, their status and the estimated time; run nothing")
@click.option("--max-cells", type=int, default=None, help="stop after working on this many cells (resume later)")
@click.option("--report-only", is_flag=True, help="rebuild summary, tables, plots and report from finished cells")
@click.option("--hardware", "hardware", is_flag=True,
              help="the hardware question only: sample the finished quantum cells at the largest N on fake_fez "
                   "with shot noise (1,024 shots) and write <out>/hardware/ (no training)")
@click.option("--backends", "backends_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="backends.toml to read (default: $QGEN_BACKENDS, ./backends.toml, the one shipped with qgen)")
@click.option("--progress", is_flag=True, help="show training and sampling progress bars")
@device_option()
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="local: one cell after another in this process; ray: each cell a Ray task (the 'ray' extra)")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="ray: most cells at once (default: the Ray cluster's CPUs / $QGEN_THREADS)")
@click.option("--address", default=None,
              help="ray: join this cluster (auto, host:6379, ray://host:10001) instead of starting a local Ray")
def experiment_command(preset_name: str | None, smoke: bool, config_file: Path | None, out: Path | None,
                       dry_run: bool, max_cells: int | None, report_only: bool, hardware: bool,
                       backends_file: Path | None,
                       progress: bool, device: str, executor: str, workers: int | None, address: str | None) -> None:
    """Quantum vs parameter-matched classical bottleneck: train, sample and evaluate every cell, then report.

    Resumable: run the same command (or just --out DIR) again after an interrupt; finished cells are skipped
    and interrupted trainings continue from their last checkpoint. The executor and device do not change the
    experiment: a resumed one may use others.
    """
    from qgen.experiment.plan import plan_cells, plan_lines

    if smoke:
        if preset_name not in (None, "smoke"):
            raise QgenError(f"--smoke contradicts --preset {preset_name}")
        preset_name = "smoke"
    if max_cells is not None and max_cells < 1:
        raise QgenError(f"--max-cells must be >= 1, got {max_cells}")
    if dry_run and report_only:
        raise QgenError("give either --dry-run (plan the cells) or --report-only (rebuild the outputs), not both")
    _check_executor_options(executor, workers, address, device, dry_run or report_only)
    check_out_folder(out)
    cfg = resolve_config(out, config_file, preset_name)
    out = out or Path("experiments") / f"{timestamp()}-{preset_name or cfg.name}"
    cells = expand_cells(cfg)
    if dry_run:
        state = ExperimentState.open(out)
        parallel = (workers or 1) if executor == "ray" else 1
        for line in plan_lines(cfg, plan_cells(cfg, cells, out, state.data["cells"]), max_cells, parallel):
            click.echo(line)
        click.echo(f"dry run: nothing was trained; output folder would be {out}")
        return
    set_torch_threads()  # as qgen.cli.main does, for when this command is invoked on its own
    if hardware:
        if report_only or not (out / CONFIG_FILE).is_file():
            raise QgenError("--hardware samples the cells of an existing experiment: give its --out (and not "
                            "--report-only)")
        from qgen.experiment.hardware import HardwareOptions, run_hardware
        from qgen.experiment.cell_run import pinned_threads
        from qgen.threads import configured_threads

        with pinned_threads(configured_threads()):
            rows = run_hardware(cfg, HardwareOptions(out=out, log=lambda line: click.echo(line, err=True)))
        click.echo(f"hardware: {len(rows)} cell(s) sampled on the device; wrote {out / 'hardware'}")
        return
    if not report_only:
        check_data_for_cells(cfg, cells)  # before the folder is made: every size fits its data
    out.mkdir(parents=True, exist_ok=True)
    with experiment_lock(out):
        # again under the lock: an experiment that another command started meanwhile must be the same one
        cfg = resolve_config(out, config_file, preset_name)
        _run_locked(cfg, expand_cells(cfg), out, preset_name=preset_name, report_only=report_only, max_cells=max_cells,
                    options=dict(backends_file=backends_file, show_progress=progress, max_cells=max_cells,
                                 device=device, executor=executor, workers=workers, address=address))


def _run_locked(cfg: ExperimentConfig, cells: list, out: Path, *, preset_name: str | None, report_only: bool,
                max_cells: int | None, options: dict) -> None:
    """Train, sample and evaluate what is left, then write the outputs; the caller holds the lock."""
    from qgen.experiment.outputs import write_outputs
    from qgen.experiment.cell_run import RunnerOptions
    from qgen.experiment.runner import run_experiment

    state = ExperimentState.open(out)  # read under the lock: another writer may have just saved it
    if not (out / CONFIG_FILE).is_file():
        save_experiment_config(cfg, out / CONFIG_FILE)
        state.data["preset"] = preset_name
        state.save()
    label = state.data.get("preset")
    failed: list[str] = []
    if not report_only:
        click.echo(f"qgen experiment: {len(cells)} cells in {out}", err=True)
        try:
            with sigterm_as_interrupt():
                result = run_experiment(cfg, cells, RunnerOptions(out=out, **options))
        except KeyboardInterrupt:
            click.echo(f"qgen experiment: interrupted; finished cells and checkpoints are kept. Resume with: "
                       f"qgen experiment --out {out}", err=True)
            raise
        failed = sorted(result.failed)
        click.echo(f"qgen experiment: {len(result.done)} cells finished now, {len(result.skipped)} were already "
                   f"done" + (f", {len(failed)} failed" if failed else "")
                   + (f"; stopped after --max-cells {max_cells}" if result.stopped_early else ""), err=True)
    files = write_outputs(cfg, cells, out, failed=failed, preset=label)
    click.echo(f"verdict: {files.verdict.outcome} ({files.verdict.reason})")
    click.echo(f"wrote {files.report}, {files.summary}, {files.tables}, {len(files.plots)} plot(s), "
               f"{len(files.grids)} grid(s)")
    if failed:
        raise QgenError(f"{len(failed)} cell(s) failed ({', '.join(failed)}); see {out / 'state.json'}. "
                        f"Run the same command again to retry them")
