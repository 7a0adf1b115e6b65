"""``qgen experiment``: its request (``ExperimentCommand``) and what the command does with it.

One invocation plans (``dry_run``), samples the finished cells on a device (``hardware``), rebuilds
the outputs (``report_only``) or runs what is left of the grid and then writes the outputs. The
output folder is resolved, checked and locked here; the command line only parses its options and
prints what comes back (``ExperimentResult.lines``) and the progress lines (``log``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from qgen.commands import Command, Reporter, quiet
from qgen.errors import QgenError
from qgen.experiment.cell_run import RunnerOptions, pinned_threads
from qgen.experiment.cells import check_data_for_cells, expand_cells
from qgen.experiment.config import (
    ExperimentConfig,
    load_experiment_config,
    save_experiment_config,
    to_dict_deep,
)
from qgen.experiment.hardware import HardwareOptions, run_hardware
from qgen.experiment.outputs import write_outputs
from qgen.experiment.plan import plan_cells, plan_lines
from qgen.experiment.presets import PRESETS, preset
from qgen.experiment.ray_executor import check_address, import_ray
from qgen.experiment.runner import EXECUTORS, run_experiment
from qgen.experiment.state import ExperimentState
from qgen.rundir import timestamp
from qgen.rundir.layout import LOCK
from qgen.rundir.lock import hold_lock
from qgen.threads import configured_threads
from qgen.torch_device import check_device_name, resolve_device

CONFIG_FILE = "experiment.toml"
LOCK_FILE = LOCK  # the same lock file name as a run's: one writer at a time


@dataclass(frozen=True)
class ExperimentCommand(Command):
    """The experiment of ``preset`` or ``config_file`` (or the one stored in ``out``, to resume it)."""

    preset: str | None = None
    config_file: Path | None = None
    out: Path | None = None              # default: experiments/<timestamp>-<preset>
    dry_run: bool = False                # list the cells, their status and the estimated time
    max_cells: int | None = None         # stop after working on this many cells (resume later)
    report_only: bool = False            # rebuild summary, tables, plots and report from finished cells
    hardware: bool = False               # sample the finished quantum cells on a device (no training)
    backends_file: Path | None = None
    progress: bool = False
    device: str = "auto"
    executor: str = "local"
    workers: int | None = None           # ray: most cells at once
    address: str | None = None           # ray: join this cluster
    log: Reporter = field(default=quiet)  # progress lines (the CLI prints them on stderr)

    def validate(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise QgenError(f"unknown preset {self.preset!r}; choose one of {', '.join(sorted(PRESETS))}")
        if self.config_file is not None and self.preset is not None:
            raise QgenError("give either --config or --preset, not both")
        if self.max_cells is not None and self.max_cells < 1:
            raise QgenError(f"--max-cells must be >= 1, got {self.max_cells}")
        if self.dry_run and self.report_only:
            raise QgenError("give either --dry-run (plan the cells) or --report-only (rebuild the outputs), not both")
        if self.executor not in EXECUTORS:
            raise QgenError(f"unknown executor {self.executor!r}; choose one of {', '.join(EXECUTORS)}")
        check_device_name(self.device)
        if self.executor == "local":
            given = [name for name, value in (("--workers", self.workers), ("--address", self.address))
                     if value is not None]
            if given:
                raise QgenError(f"{' and '.join(given)} only apply to --executor ray")
        if self.workers is not None and self.workers < 1:
            raise QgenError(f"--workers must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class ExperimentResult:
    """What the command has to say (``lines``), and the cells that failed (``check`` raises for them)."""

    out: Path
    lines: list[str]
    failed: list[str] = field(default_factory=list)

    def check(self) -> None:
        if self.failed:
            raise QgenError(f"{len(self.failed)} cell(s) failed ({', '.join(self.failed)}); see "
                            f"{self.out / 'state.json'}. Run the same command again to retry them")


def run_experiment_command(command: ExperimentCommand) -> ExperimentResult:
    """Plan, sample on hardware, rebuild the outputs, or run the rest of the grid, as ``command`` says."""
    nothing_runs = command.dry_run or command.report_only
    if not nothing_runs:
        check_executor_environment(command)
    check_out_folder(command.out)
    cfg = resolve_config(command.out, command.config_file, command.preset)
    out = command.out or Path("experiments") / f"{timestamp()}-{command.preset or cfg.name}"
    cells = expand_cells(cfg)
    if command.dry_run:
        state = ExperimentState.open(out)
        parallel = (command.workers or 1) if command.executor == "ray" else 1
        lines = plan_lines(cfg, plan_cells(cfg, cells, out, state.data["cells"]), command.max_cells, parallel)
        return ExperimentResult(out, [*lines, f"dry run: nothing was trained; output folder would be {out}"])
    if command.hardware:
        if command.report_only or not (out / CONFIG_FILE).is_file():
            raise QgenError("--hardware samples the cells of an existing experiment: give its --out (and not "
                            "--report-only)")
        with pinned_threads(configured_threads()):
            rows = run_hardware(cfg, HardwareOptions(out=out, log=command.log))
        return ExperimentResult(out, [f"hardware: {len(rows)} cell(s) sampled on the device; wrote {out / 'hardware'}"])
    if not command.report_only:
        check_data_for_cells(cfg, cells)  # before the folder is made: every size fits its data
    out.mkdir(parents=True, exist_ok=True)
    with experiment_lock(out):
        # again under the lock: an experiment that another command started meanwhile must be the same one
        cfg = resolve_config(out, command.config_file, command.preset)
        return _run_locked(cfg, expand_cells(cfg), out, command)


def check_executor_environment(command: ExperimentCommand) -> None:
    """A missing Ray, a cluster address nothing answers on, or a missing GPU: refused before the output
    folder is touched."""
    if command.executor == "ray":
        import_ray()
        if command.address is not None:
            check_address(command.address)
    if command.address is None:  # this machine runs the cells (a cluster's GPUs are checked once it is joined)
        resolve_device(command.device)


def resolve_config(out: Path | None, config_file: Path | None, preset_name: str | None) -> ExperimentConfig:
    """The experiment to run: the one stored in ``out`` (resume) or the one requested (new)."""
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
    with hold_lock(out / LOCK_FILE, out, what="experiment"):
        yield


def _run_locked(cfg: ExperimentConfig, cells: list, out: Path, command: ExperimentCommand) -> ExperimentResult:
    """Train, sample and evaluate what is left, then write the outputs; the caller holds the lock."""
    log = command.log
    state = ExperimentState.open(out)  # read under the lock: another writer may have just saved it
    if not (out / CONFIG_FILE).is_file():
        save_experiment_config(cfg, out / CONFIG_FILE)
        state.data["preset"] = command.preset
        state.save()
    label = state.data.get("preset")
    failed: list[str] = []
    if not command.report_only:
        log(f"qgen experiment: {len(cells)} cells in {out}")
        options = RunnerOptions(out=out, backends_file=command.backends_file, show_progress=command.progress,
                                max_cells=command.max_cells, device=command.device, executor=command.executor,
                                workers=command.workers, address=command.address, log=log)
        try:
            result = run_experiment(cfg, cells, options)
        except KeyboardInterrupt:
            log(f"qgen experiment: interrupted; finished cells and checkpoints are kept. Resume with: "
                f"qgen experiment --out {out}")
            raise
        failed = sorted(result.failed)
        log(f"qgen experiment: {len(result.done)} cells finished now, {len(result.skipped)} were already done"
            + (f", {len(failed)} failed" if failed else "")
            + (f"; stopped after --max-cells {command.max_cells}" if result.stopped_early else ""))
    files = write_outputs(cfg, cells, out, failed=failed, preset=label)
    lines = [f"verdict: {files.verdict.outcome} ({files.verdict.reason})",
             f"wrote {files.report}, {files.summary}, {files.tables}, {len(files.plots)} plot(s), "
             f"{len(files.grids)} grid(s)"]
    return ExperimentResult(out, lines, failed)
