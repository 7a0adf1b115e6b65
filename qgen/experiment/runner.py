"""Run the cells of an experiment: train -> sample -> evaluate, skipping what is already done.

Resumption, cell by cell:
  * ``cells/<id>/metrics.json`` exists      -> done, skipped (it is written last, atomically);
  * a run folder with a checkpoint exists    -> training resumed from it (``resume_training``),
                                                or, when all steps are done, straight to sampling;
  * a run folder without a checkpoint        -> removed and the cell restarted cleanly;
  * nothing                                  -> trained from scratch.
Sampling and evaluation are cheap next to training and are simply redone after an interrupt.

Executors: ``local`` runs the cells one after another in this process; ``ray``
(qgen.experiment.ray_executor) runs each cell as a Ray task. Both run the same ``run_cell``; only
the driver (this process) writes ``state.json``, a worker reports its cell's record back.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from qgen.errors import QgenError
from qgen.experiment.cells import Cell, reference_size, run_config, sample_request
from qgen.experiment.config import ExperimentConfig
from qgen.experiment.environment import environment
from qgen.experiment.state import ExperimentState
from qgen.rundir import RunDir
from qgen.threads import configured_threads

CELL_METRICS = "metrics.json"
RUNS_SUBDIR = "run"
# One feature net and one held-out protocol for every cell: with per-seed nets the metrics of
# different seeds would be measured with different rulers.
EVALUATION_SEED = 0


EXECUTORS = ("local", "ray")


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


def cell_is_done(out: Path, cell: Cell) -> bool:
    return (cell.directory(out) / CELL_METRICS).is_file()


def find_run_dir(cell_dir: Path) -> Path | None:
    """The cell's run folder (the newest if an earlier crash left several); hidden staging folders ignored."""
    runs = [p for p in (cell_dir / RUNS_SUBDIR).glob("*")
            if p.is_dir() and not p.name.startswith(".") and RunDir.is_run(p)]
    return max(runs, key=lambda p: p.name) if runs else None


def checkpoint_step(run_dir: Path) -> int | None:
    run = RunDir(run_dir)
    if not run.has_checkpoint("last"):
        return None
    try:
        return int(run.load_checkpoint("last")["step"])
    except Exception:  # a torn checkpoint is as good as none: restart the cell
        return None


@contextmanager
def pinned_threads(threads: int):
    """torch intra-op threads and every BLAS pool (numpy, scipy) limited to ``threads`` inside.

    Both executors run their cells like this: a Ray worker keeps to its share of the machine, and
    the sequential runner computes with the same thread counts, so the two give the same numbers
    (a multi-threaded BLAS sums in another order: FLD then differs in the 9th digit).
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def run_experiment(cfg: ExperimentConfig, cells: list[Cell], opts: RunnerOptions) -> RunnerResult:
    """Run the cells not yet done with ``opts.executor``; resumable after any interrupt."""
    if opts.executor == "ray":
        from qgen.experiment.ray_executor import run_on_ray

        return run_on_ray(cfg, cells, opts)
    if opts.executor != "local":
        raise QgenError(f"unknown executor {opts.executor!r}; choose one of {', '.join(EXECUTORS)}")
    from qgen.torch_device import device_name, resolve_device

    opts = replace(opts, device=device_name(resolve_device(opts.device)))  # a missing GPU: one line, before any cell
    with pinned_threads(configured_threads()):
        return _run_local(cfg, cells, opts)


def _run_local(cfg: ExperimentConfig, cells: list[Cell], opts: RunnerOptions) -> RunnerResult:
    state = ExperimentState.open(opts.out)
    state.begin_invocation()
    result = RunnerResult([], [], {}, False)
    worked = 0
    try:
        for index, cell in enumerate(cells, 1):
            if skip_if_done(cell, state, result, opts.out):
                continue
            if opts.max_cells is not None and worked >= opts.max_cells:
                result.stopped_early = True
                break
            worked += 1
            opts.log(f"qgen experiment: [{index}/{len(cells)}] {cell.id}")
            try:
                line = run_cell(cfg, cell, state, opts)
            except KeyboardInterrupt:
                state.update_cell(cell.id, status="interrupted")
                raise
            except Exception as exc:  # one broken cell must not sink the other cells of the grid
                message = f"{type(exc).__name__}: {exc}"
                state.update_cell(cell.id, status="failed", error=message)
                result.failed[cell.id] = message
                opts.log(f"qgen experiment: {cell.id} FAILED: {message}")
                continue
            result.done.append(cell.id)
            opts.log(f"qgen experiment: {cell.id} {line}")
    except KeyboardInterrupt:
        state.set_status("interrupted")
        raise
    set_final_status(state, result)
    return result


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
    from qgen.evaluation import evaluate_run
    from qgen.metrics import write_metrics_json
    from qgen.sampling import sample_run

    cell_dir = cell.directory(opts.out)
    cell_dir.mkdir(parents=True, exist_ok=True)
    run_dir = train_cell(cfg, cell, state, opts)

    state.update_cell(cell.id, status="sampling")
    t0 = time.perf_counter()
    request = sample_request(cfg, cell, reference_size(cfg, RunDir(run_dir).config()))
    samples = sample_run(str(run_dir), request, runs_dir=None, backends_file=opts.backends_file,
                         show_progress=opts.show_progress, device=opts.device)
    sample_seconds = time.perf_counter() - t0

    state.update_cell(cell.id, status="evaluating", sample_seconds=round(sample_seconds, 3))
    t0 = time.perf_counter()
    # the dependence ratios redraw the samples under each ablation of the middle (exact backend,
    # classical noise): part of the evaluation's time, and only for arms that have a middle
    metrics, _ = evaluate_run(str(run_dir), samples=samples["npz"], heldout_limit=cfg.heldout_limit,
                              seed=EVALUATION_SEED, device=opts.device, ablate=cfg.dependence and cell.arm.gated,
                              backends_file=opts.backends_file)
    eval_seconds = time.perf_counter() - t0

    record = state.cell(cell.id)
    metrics["cell"] = {
        "id": cell.id, "dataset": cell.dataset.label, "arm": cell.arm.name, "n_train": cell.n, "seed": cell.seed,
        "run_dir": str(run_dir.relative_to(opts.out)),
        "samples_file": str(Path(samples["npz"]).relative_to(opts.out)),
        "train_wall_seconds": record["train_wall_seconds"],
        "train_step_seconds": RunDir(run_dir).loss_log().total_seconds(),
        "trainings": record["trainings"],
        "sample_seconds": round(sample_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "parameters": RunDir(run_dir).manifest().get("parameters"),
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


def train_cell(cfg: ExperimentConfig, cell: Cell, state: ExperimentState | CellRecord, opts: RunnerOptions) -> Path:
    """Bring the cell's run to ``cfg.train.steps`` steps: start, resume or leave alone; returns the run folder."""
    from qgen.training.run import resume_training, start_training

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
        return run_dir  # trained; an earlier invocation stopped during sampling or evaluation

    record = state.cell(cell.id)
    state.update_cell(cell.id, status="training", trainings=record["trainings"] + 1)
    t0 = time.perf_counter()
    try:
        if run_dir is None:
            run_dir = start_training(replace(run_config(cfg, cell), device=opts.device), runs_dir=cell_dir / RUNS_SUBDIR,
                                     epochs=None, backends_file=opts.backends_file,
                                     show_progress=opts.show_progress, report=opts.log)
        else:
            opts.log(f"qgen experiment: {cell.id}: resuming {run_dir.name} at step {step}")
            run_dir = resume_training(str(run_dir), runs_dir=None, steps=None, backends_file=opts.backends_file,
                                      show_progress=opts.show_progress, report=opts.log, device=opts.device)
    finally:
        # counted on interrupts too, so the recorded cost of a resumed cell is its whole cost
        state.add_train_time(cell.id, time.perf_counter() - t0)
        found = find_run_dir(cell_dir)
        state.update_cell(cell.id, run_dir=str(found.relative_to(opts.out)) if found else None)
    if run_dir is None:
        raise QgenError(f"training of {cell.id} produced no run folder")
    return run_dir


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
