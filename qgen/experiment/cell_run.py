"""One cell of an experiment: train -> sample -> evaluate, and what both executors share.

The local executor (qgen.experiment.runner) and the Ray executor (qgen.experiment.ray_executor)
run every cell through ``run_cell`` with the same options and record its progress the same way
(an ``ExperimentState``, or a worker's ``CellRecord`` that the driver writes into state.json).

Resumption, cell by cell:
  * ``cells/<id>/metrics.json`` exists      -> done, skipped (it is written last, atomically);
  * a run folder with a checkpoint exists    -> training resumed from it, or, when all steps are
                                                done, straight to sampling;
  * a run folder without a checkpoint        -> removed and the cell restarted cleanly;
  * nothing                                  -> trained from scratch.
Sampling and evaluation are cheap next to training and are simply redone after an interrupt.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import click
import torch
from threadpoolctl import threadpool_limits

from qgen.commands import EvaluateCommand, ResumeCommand, SampleCommand, TrainCommand
from qgen.errors import QgenError
from qgen.evaluation import evaluate_run
from qgen.experiment.cells import (
    CELL_METRICS,
    RUNS_SUBDIR,
    Cell,
    cell_is_done,
    checkpoint_step,
    find_run_dir,
    reference_size,
    run_config,
    sample_request,
)
from qgen.experiment.config import ExperimentConfig
from qgen.experiment.environment import environment
from qgen.experiment.state import ExperimentState
from qgen.metrics import write_metrics_json
from qgen.rundir import RunDir
from qgen.sampling import sample
from qgen.training.run import resume_training, start_training

# One feature net and one held-out protocol for every cell: with per-seed nets the metrics of
# different seeds would be measured with different rulers.
EVALUATION_SEED = 0


@dataclass(frozen=True)
class RunnerOptions:
    out: Path
    backends_file: Path | None = None
    show_progress: bool = False
    max_cells: int | None = None          # stop after this many cells were worked on (not skipped)
    log: Callable[[str], None] = lambda line: click.echo(line, err=True)
    device: str = "cpu"                   # torch device of every cell (qgen.torch_device; "auto" allowed)
    executor: str = "local"               # "local": one cell after another here; "ray": Ray tasks
    workers: int | None = None            # ray: most cells at once (default: the cluster's CPUs / threads)
    address: str | None = None            # ray: an existing cluster ("auto", "ray://host:10001"); None: start one


@dataclass
class RunnerResult:
    done: list[str]         # finished in this invocation
    skipped: list[str]      # already finished before
    failed: dict[str, str]  # id -> error
    stopped_early: bool     # --max-cells reached before the grid was complete


@contextmanager
def pinned_threads(threads: int):
    """torch intra-op threads and every BLAS pool (numpy, scipy) limited to ``threads`` inside.

    Both executors run their cells like this: a Ray worker keeps to its share of the machine, and
    the sequential runner computes with the same thread counts, so the two give the same numbers
    (a multi-threaded BLAS sums in another order: FLD then differs in the 9th digit).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def skip_if_done(cell: Cell, state: ExperimentState, result: RunnerResult, out: Path) -> bool:
    """Whether the cell is already done (its metrics.json exists): then counted as skipped, and
    marked done in state.json if an earlier invocation stopped before saying so."""
    if not cell_is_done(out, cell):
        return False
    result.skipped.append(cell.id)
    if state.cell(cell.id)["status"] != "done":
        state.update_cell(cell.id, status="done")
    return True


def set_final_status(state: ExperimentState, result: RunnerResult) -> None:
    """state.json's status once an invocation ends without an interrupt."""
    complete = not result.stopped_early and not result.failed
    state.set_status("finished" if complete else ("stopped" if result.stopped_early else "failed-cells"))


def run_cell(cfg: ExperimentConfig, cell: Cell, state: ExperimentState | CellRecord, opts: RunnerOptions) -> str:
    """Train (or resume), sample and evaluate one cell; returns a one-line summary.

    ``state`` is the experiment's state (local executor) or a worker's ``CellRecord`` (Ray), whose
    fields the driver then writes into state.json.
    """
    cell_dir = cell.directory(opts.out)
    cell_dir.mkdir(parents=True, exist_ok=True)
    run = train_cell(cfg, cell, state, opts)

    state.update_cell(cell.id, status="sampling")
    t0 = time.perf_counter()
    request = sample_request(cfg, cell, reference_size(cfg, run.config()))
    samples = sample(SampleCommand(request, run=run, backends_file=opts.backends_file,
                                   progress=opts.show_progress, device=opts.device))
    sample_seconds = time.perf_counter() - t0

    state.update_cell(cell.id, status="evaluating", sample_seconds=round(sample_seconds, 3))
    t0 = time.perf_counter()
    # the dependence ratios redraw the samples under each ablation of the middle (exact backend,
    # classical noise): part of the evaluation's time, and only for arms that have a middle
    metrics, _ = evaluate_run(EvaluateCommand(run, samples=samples["npz"], heldout=cfg.heldout_limit,
                                              seed=EVALUATION_SEED, device=opts.device,
                                              ablate=cfg.dependence and cell.arm.gated,
                                              backends_file=opts.backends_file))
    eval_seconds = time.perf_counter() - t0

    record = state.cell(cell.id)
    metrics["cell"] = {
        "id": cell.id, "dataset": cell.dataset.label, "arm": cell.arm.name, "n_train": cell.n, "seed": cell.seed,
        "run_dir": str(run.path.relative_to(opts.out)),
        "samples_file": str(Path(samples["npz"]).relative_to(opts.out)),
        "train_wall_seconds": record["train_wall_seconds"],
        "train_step_seconds": run.loss_log().total_seconds(),
        "trainings": record["trainings"],
        "sample_seconds": round(sample_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "parameters": run.manifest().get("parameters"),
        "weights": request.weights,
        "environment": environment(),
    }
    # written last: its presence is what marks the cell as done
    write_metrics_json(cell_dir / CELL_METRICS, metrics)
    state.update_cell(cell.id, status="done", eval_seconds=round(eval_seconds, 3), error=None)
    fd_key = "fld" if "fld" in metrics else "fd_small_cnn"
    fd = metrics[fd_key].get("value")
    return (f"done: train {record['train_wall_seconds']:.1f}s, sample {sample_seconds:.1f}s, "
            f"evaluate {eval_seconds:.1f}s; {fd_key} {fd:.4g}" if fd is not None else "done")


def train_cell(cfg: ExperimentConfig, cell: Cell, state: ExperimentState | CellRecord, opts: RunnerOptions) -> RunDir:
    """Bring the cell's run to ``cfg.train.steps`` steps: start, resume or leave alone; returns the run."""
    cell_dir = cell.directory(opts.out)
    run_dir = find_run_dir(cell_dir)
    step = checkpoint_step(run_dir) if run_dir is not None else None
    if run_dir is not None and step is None:
        # killed before its first checkpoint: nothing worth keeping, and a clean start is reproducible
        opts.log(f"qgen experiment: {cell.id}: removing {run_dir.name} (no checkpoint), restarting")
        with RunDir(run_dir).lock():  # refused while another process still writes into it
            shutil.rmtree(run_dir)
        run_dir = None
    if run_dir is not None and step >= cfg.train.steps:
        return RunDir(run_dir)  # trained; an earlier invocation stopped during sampling or evaluation

    record = state.cell(cell.id)
    state.update_cell(cell.id, status="training", trainings=record["trainings"] + 1)
    t0 = time.perf_counter()
    run = None
    try:
        if run_dir is None:
            run = start_training(TrainCommand(replace(run_config(cfg, cell), device=opts.device),
                                              runs_dir=cell_dir / RUNS_SUBDIR, backends_file=opts.backends_file,
                                              progress=opts.show_progress, report=opts.log))
        else:
            opts.log(f"qgen experiment: {cell.id}: resuming {run_dir.name} at step {step}")
            run = resume_training(ResumeCommand(run_dir, backends_file=opts.backends_file,
                                                progress=opts.show_progress, report=opts.log, device=opts.device))
    finally:
        # counted on interrupts too, so the recorded cost of a resumed cell is its whole cost
        state.add_train_time(cell.id, time.perf_counter() - t0)
        found = find_run_dir(cell_dir)
        state.update_cell(cell.id, run_dir=str(found.relative_to(opts.out)) if found else None)
    if run is None:
        raise QgenError(f"training of {cell.id} produced no run folder")
    return run


@dataclass
class CellRecord:
    """One cell's state.json record, kept by a worker process (which must not write state.json).

    The same three methods as ``ExperimentState``, so ``run_cell`` runs unchanged in a worker; the
    driver writes ``fields`` into state.json when the worker reports back.
    """

    cell_id: str
    fields: dict = field(default_factory=dict)

    def cell(self, cell_id: str) -> dict:
        return self.fields

    def update_cell(self, cell_id: str, **fields) -> None:
        self.fields.update(fields)

    def add_train_time(self, cell_id: str, seconds: float) -> None:
        self.fields["train_wall_seconds"] = round(self.fields["train_wall_seconds"] + seconds, 3)
