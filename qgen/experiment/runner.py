"""Run the cells of an experiment with an executor, skipping what is already done.

Executors: ``local`` runs the cells one after another in this process; ``ray``
(qgen.experiment.ray_executor) runs each cell as a Ray task. Both run the same ``run_cell``
(qgen.experiment.cell_run, which also says how a cell resumes); only the driver (this process)
writes ``state.json``, a worker reports its cell's record back.
"""

from __future__ import annotations

from dataclasses import replace

from qgen.errors import QgenError
from qgen.experiment.cell_run import (
    RunnerOptions,
    RunnerResult,
    pinned_threads,
    run_cell,
    set_final_status,
    skip_if_done,
)
from qgen.experiment.cells import Cell
from qgen.experiment.config import ExperimentConfig
from qgen.experiment.ray_executor import run_on_ray
from qgen.experiment.state import ExperimentState
from qgen.threads import configured_threads
from qgen.torch_device import device_name, resolve_device

EXECUTORS = ("local", "ray")


def run_experiment(cfg: ExperimentConfig, cells: list[Cell], opts: RunnerOptions) -> RunnerResult:
    """Run the cells not yet done with ``opts.executor``; resumable after any interrupt."""
    if opts.executor == "ray":
        return run_on_ray(cfg, cells, opts)
    if opts.executor != "local":
        raise QgenError(f"unknown executor {opts.executor!r}; choose one of {', '.join(EXECUTORS)}")
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
