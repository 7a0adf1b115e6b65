"""``qgen experiment --executor ray``: every cell (train -> sample -> evaluate) as a Ray task.

The driver (this process) decides what runs, submits at most ``workers`` cells at once and writes
``state.json``; a worker runs ``run_cell`` with a ``CellRecord`` and hands the record back. The
safety rules of the sequential runner hold unchanged:

* a cell's ``metrics.json`` is still its done-marker (written last, atomically, by the worker);
* a failed cell is reported as failed and the other cells carry on;
* Ctrl-C (or SIGTERM) cancels the running tasks -- the cancel reaches a trainer as an interrupt,
  so it checkpoints and stops -- waits a little for them, and leaves every cell resumable;
* cells whose backend spends shots (IBM hardware: a shot budget and a job journal) run one at a
  time, never next to each other.

Cells are submitted longest first (by the dry run's cost model), so that the long ones -- quantum
noise, noisy devices -- do not start last and leave the other workers idle at the end. When nothing
is left to submit and a worker falls idle, the driver imports what the report needs, on that idle
CPU instead of after the last cell.

Each task asks Ray for ``$QGEN_THREADS`` CPUs (default 1) and, with a CUDA device, a share of a GPU
(the cluster's GPUs / workers, at most one); the worker pins torch and BLAS to its CPUs. Without an
address qgen starts a local Ray for the command and stops it at the end; with one (``auto``,
``ray://host:10001``) it joins that cluster, whose nodes must see the output folder and data root.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from qgen.backends.registry import backend_class, get_backend
from qgen.errors import QgenError, first_line, named_first_line
from qgen.experiment.cells import Cell, run_config
from qgen.experiment.config import ExperimentConfig
from qgen.experiment.estimate import train_seconds
from qgen.experiment.cell_run import (
    CellRecord,
    RunnerOptions,
    RunnerResult,
    pinned_threads,
    run_cell,
    set_final_status,
    skip_if_done,
)
from qgen.experiment.state import ExperimentState
from qgen.threads import configured_threads
from qgen.torch_device import check_device_name, device_name, resolve_device

RAY_EXTRA = "pip install -e '.[ray]'"
# how long an interrupted driver waits for the cancelled cells to checkpoint before it stops Ray
CANCEL_GRACE_SECONDS = 60.0
# how often the driver's wait for a finished cell returns to Python (to notice Ctrl-C)
WAIT_SECONDS = 0.5
# a local Ray's shared-memory object store: cells return small records, so keep it small
LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2
# how long the check of an explicit --address waits for a TCP answer
ADDRESS_PROBE_SECONDS = 5.0
# what the driver needs after the cells (summary, figures, grids): imported while the last cells run
REPORT_MODULE = "qgen.experiment.outputs"


def import_ray():
    try:
        import ray  # deferred: an optional extra (and ~0.3 s of import, measured) that only --executor ray needs
    except ImportError:
        raise QgenError(f"--executor ray needs Ray, which is not installed; install the 'ray' extra "
                        f"({RAY_EXTRA}) or use --executor local") from None
    return ray


@dataclass(frozen=True)
class CellTask:
    """What one worker needs; everything in it pickles (paths absolute: a worker's cwd is its own)."""

    cfg: ExperimentConfig
    cell: Cell
    record: dict
    out: Path
    backends_file: Path | None
    device: str
    threads: int


def execute_cell(task: CellTask) -> dict:
    """The body of a Ray task: one cell in a worker; never raises for a failed cell (the driver records it)."""
    lines: list[str] = []
    record = CellRecord(task.cell.id, dict(task.record))
    opts = RunnerOptions(out=task.out, backends_file=task.backends_file, device=task.device, log=lines.append)
    try:
        with pinned_threads(task.threads):  # the CPUs Ray granted the task; same numbers as the local runner
            line = run_cell(task.cfg, task.cell, record, opts)
    except KeyboardInterrupt:  # ray.cancel: the trainer has checkpointed; the cell resumes next time
        record.update_cell(task.cell.id, status="interrupted")
        return {"outcome": "interrupted", "record": record.fields, "lines": lines}
    except Exception as exc:  # one broken cell must not sink the other cells of the grid
        message = f"{type(exc).__name__}: {exc}"
        record.update_cell(task.cell.id, status="failed", error=message)
        return {"outcome": "failed", "error": message, "record": record.fields, "lines": lines}
    return {"outcome": "done", "line": line, "record": record.fields, "lines": lines}


def check_address(address: str, timeout: float = ADDRESS_PROBE_SECONDS) -> None:
    """Refuse an explicit cluster address (``host:port``, ``ray://host:port``) that nothing answers on.

    ``ray.init`` would retry such an address for minutes, printing its own C++ log lines; one TCP
    connect says it at once. ``auto`` is left to Ray, which fails fast when no cluster runs here.
    """
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise QgenError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise QgenError(f"cannot connect to the Ray cluster at {address!r}: {reason}; is it running "
                        "(ray start --head) and is the address right?") from None


@dataclass
class _Cluster:
    ray: object
    started_here: bool
    cpus: float
    gpus: float

    def shutdown(self) -> None:
        if self.started_here:
            self.ray.shutdown()


def connect(opts: RunnerOptions, workers: int | None, threads: int) -> _Cluster:
    """Join the Ray that is already up in this process, the cluster at ``opts.address``, or start one."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                      configure_logging=True)
        if opts.address is None:
            cpus = (workers or os.cpu_count() or 1) * threads
            ray.init(num_cpus=cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
        else:
            # the workers of a cluster do not inherit this shell: pass qgen's settings along
            env = {k: v for k, v in os.environ.items() if k.startswith("QGEN_")}
            try:
                ray.init(address=opts.address, runtime_env={"env_vars": env}, **common)
            except Exception as exc:  # ConnectionError, ValueError for a malformed address, ...
                raise QgenError(f"cannot connect to the Ray cluster at {opts.address!r}: {first_line(exc)}") from None
        started = opts.address is None
    resources = ray.cluster_resources()
    return _Cluster(ray, started, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)))


def cell_device(requested: str, cluster: _Cluster) -> str:
    """The device a worker uses: Ray gives a task its GPU(s) as cuda:0.., so CUDA is just ``cuda``."""
    name = check_device_name(requested)
    if name == "auto":
        return "cuda" if cluster.gpus > 0 else "cpu"
    if name.startswith("cuda"):
        if cluster.gpus <= 0:
            raise QgenError(f"--device {name}: the Ray cluster has no GPUs (resources: {cluster.cpus:g} CPUs); "
                            "use --device cpu or auto")
        return "cuda"
    return device_name(resolve_device(name))  # cpu, or mps on this (local) machine


def exclusive(cfg: ExperimentConfig, cell: Cell, backends_file: Path | None) -> bool:
    """Whether the cell's backend spends shots (IBM: a shot budget and a job journal): run it alone."""
    if cell.arm.model_kind != "quantum" and cell.arm.noise == "classical":
        return False
    return backend_class(get_backend(run_config(cfg, cell).backend, backends_file)).spends_shots


def run_on_ray(cfg: ExperimentConfig, cells: list[Cell], opts: RunnerOptions) -> RunnerResult:
    if opts.workers is not None and opts.workers < 1:
        raise QgenError(f"--workers must be >= 1, got {opts.workers}")
    threads = configured_threads()
    out = Path(opts.out).resolve()
    backends_file = Path(opts.backends_file).resolve() if opts.backends_file is not None else None
    state = ExperimentState.open(opts.out)
    result = RunnerResult([], [], {}, False)
    todo: list[tuple[int, Cell]] = []
    for index, cell in enumerate(cells, 1):
        if skip_if_done(cell, state, result, opts.out):
            continue
        if opts.max_cells is not None and len(todo) >= opts.max_cells:
            result.stopped_early = True
        else:
            todo.append((index, cell))
    todo = longest_first(cfg, todo)
    lone = {cell.id for _, cell in todo if exclusive(cfg, cell, opts.backends_file)}
    cluster = connect(opts, opts.workers, threads)
    try:
        device = cell_device(opts.device, cluster)
        workers = opts.workers or max(1, int(cluster.cpus // threads))
        gpus = min(1.0, cluster.gpus / workers) if device == "cuda" else 0
        remote = cluster.ray.remote(execute_cell).options(num_cpus=threads, num_gpus=gpus, max_retries=0)
        state.begin_invocation()
        _drive(cluster.ray, remote, todo, lone, workers, state, result, opts, len(cells),
               lambda cell: CellTask(cfg, cell, dict(state.cell(cell.id)), out, backends_file, device, threads))
    finally:
        cluster.shutdown()
    set_final_status(state, result)
    return result


def longest_first(cfg: ExperimentConfig, todo: list[tuple[int, Cell]]) -> list[tuple[int, Cell]]:
    """The queue by estimated training time, longest first (ties keep the grid order): a greedy
    schedule of the longest jobs first ends within 4/3 of the best possible (Graham's LPT bound)."""
    return sorted(todo, key=lambda item: -train_seconds(cfg, item[1]))


@contextlib.contextmanager
def _interruptible():
    """Ctrl-C raises KeyboardInterrupt in the driver even where SIGINT was inherited ignored (a
    command started in the background by a non-interactive shell), as ``qgen train`` honours it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _drive(ray, remote, todo, lone, workers, state, result, opts, total, make_task) -> None:
    """Submit, collect and record; on an interrupt cancel what runs and leave it resumable."""
    with _interruptible():
        _drive_cells(ray, remote, todo, lone, workers, state, result, opts, total, make_task)


def _drive_cells(ray, remote, todo, lone, workers, state, result, opts, total, make_task) -> None:
    queue = list(todo)
    running: dict = {}  # ObjectRef -> Cell
    try:
        while queue or running:
            while queue and len(running) < workers:
                pick = _next_submittable(queue, running, lone)
                if pick is None:
                    break
                index, cell = queue.pop(pick)
                state.update_cell(cell.id, status="running")
                running[remote.remote(make_task(cell))] = cell
                opts.log(f"qgen experiment: [{index}/{total}] {cell.id}")
            if not queue and len(running) < workers and REPORT_MODULE not in sys.modules:
                importlib.import_module(REPORT_MODULE)  # a worker is idle for good: use its CPU for this
            # a bounded wait: Python runs its signal handlers between calls, so Ctrl-C is seen within
            # WAIT_SECONDS even while every cell is still running
            finished, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_SECONDS)
            for ref in finished:
                _record(ray, ref, running.pop(ref), state, result, opts)
    except KeyboardInterrupt:
        _cancel(ray, running, state, opts)
        state.set_status("interrupted")
        raise


def _next_submittable(queue, running, lone) -> int | None:
    """The first queued cell that may start now: an exclusive cell only when no other one runs."""
    busy = any(cell.id in lone for cell in running.values())
    for i, (_, cell) in enumerate(queue):
        if cell.id not in lone or not busy:
            return i
    return None


def _record(ray, ref, cell: Cell, state: ExperimentState, result: RunnerResult, opts: RunnerOptions) -> None:
    try:
        report = ray.get(ref)
    except Exception as exc:  # the worker died (killed, out of memory) or Ray itself failed
        message = named_first_line(exc)
        state.update_cell(cell.id, status="failed", error=message)
        result.failed[cell.id] = message
        opts.log(f"qgen experiment: {cell.id} FAILED: {message}")
        return
    for line in report["lines"]:
        opts.log(line)
    state.update_cell(cell.id, **report["record"])
    if report["outcome"] == "done":
        result.done.append(cell.id)
        opts.log(f"qgen experiment: {cell.id} {report['line']}")
    elif report["outcome"] == "failed":
        result.failed[cell.id] = report["error"]
        opts.log(f"qgen experiment: {cell.id} FAILED: {report['error']}")
    else:  # interrupted inside the worker (a signal that reached it directly)
        raise KeyboardInterrupt


def _cancel(ray, running: dict, state: ExperimentState, opts: RunnerOptions) -> None:
    """Ask every running cell to stop (the trainer checkpoints), wait a little, mark them interrupted."""
    for ref in running:
        ray.cancel(ref)  # not force: a KeyboardInterrupt inside the task, which the trainer honours
    refs = list(running)
    finished, _ = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_SECONDS) if refs else ([], [])
    for ref, cell in running.items():
        fields = {"status": "interrupted"}
        if ref in finished:
            try:
                fields = ray.get(ref)["record"] | fields
            except Exception:  # cancelled before it reported: the folders still say how far it got
                pass
        state.update_cell(cell.id, **fields)
    if running:
        opts.log(f"qgen experiment: cancelled {len(running)} running cell(s); they resume from their checkpoints")
