"""``qgen experiment``: the command line of ``qgen.experiment.command`` (the request and what it does).
qgen.cli loads it lazily (``_LazyGroup.lazy``). The module itself imports no torch: the command body
imports the experiment package, and the preset and executor names are read when an option is checked
or listed (``LazyChoice``), so ``qgen --help`` lists this command without them."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import click

from qgen.cli.options import LazyChoice, device_option
from qgen.errors import QgenError
from qgen.threads import set_torch_threads


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


def _to_stderr(line: str) -> None:
    click.echo(line, err=True)


def _preset_names() -> list[str]:
    # deferred, like the command body's import: the experiment package imports torch and Qiskit (~2.7 s of
    # import, measured), which qgen --help does without (it lists this command)
    from qgen.experiment.presets import PRESETS

    return sorted(PRESETS)


def _executor_names() -> tuple[str, ...]:
    from qgen.experiment.runner import EXECUTORS  # deferred: see _preset_names

    return EXECUTORS


@click.command("experiment")
@click.option("--preset", "preset_name", type=LazyChoice(_preset_names), default=None,
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
@click.option("--executor", type=LazyChoice(_executor_names), default="local", show_default=True,
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
    if smoke:  # two spellings of one option
        if preset_name not in (None, "smoke"):
            raise QgenError(f"--smoke contradicts --preset {preset_name}")
        preset_name = "smoke"
    from qgen.experiment.command import ExperimentCommand, run_experiment_command  # deferred: see _preset_names

    if not dry_run:
        set_torch_threads()  # as qgen.cli.main does, for when this command is invoked on its own
    with sigterm_as_interrupt():
        result = run_experiment_command(ExperimentCommand(
            preset_name, config_file=config_file, out=out, dry_run=dry_run, max_cells=max_cells,
            report_only=report_only, hardware=hardware, backends_file=backends_file, progress=progress,
            device=device, executor=executor, workers=workers, address=address, log=_to_stderr))
    for line in result.lines:
        click.echo(line)
    result.check()  # after the outputs are shown: non-zero exit when cells failed
