"""A crash-safe journal of submitted primitive jobs, so an interrupted run resumes instead of resubmitting.

The journal file (``jobs.jsonl`` in the run directory, named by ``RunDir``) is append-only: one
``submitted`` line per job, written and fsynced *before* anyone waits on the job (a crash while
waiting still leaves the job id on disk), then one ``done`` line when its result is safe (or one
``failed`` / ``lost`` line when it can never give one). The latest line per job id wins.

After an interruption, ``recover(service)`` retrieves every job still ``submitted`` by its ID
(``service.job(id)``: it waits for a queued or running job, or takes its result) before the run
submits anything new; only a job that failed at IBM, or a local job that died with its process,
is ever submitted again. Results are also stored next to the journal (``JOB_ID.json`` in the results
folder, qiskit-ibm-runtime's JSON encoding) because local fake jobs can never be fetched again from a
service, and a stored result spares a network round trip on hardware.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from qgen.errors import QgenError
from qgen.fileio import atomic_write_text

SUBMITTED = "submitted"
DONE = "done"
FAILED = "failed"  # the service says the job will never produce a result
LOST = "lost"      # a local (fake-device) job whose process died before its result was stored
# qiskit-ibm-runtime's RuntimeJobV2.status() strings for jobs that will never produce a result
FAILED_STATES = {"ERROR", "CANCELLED", "FAILED"}


@dataclass(frozen=True)
class JournalEntry:
    """The latest known state of one job."""

    job_id: str
    status: str
    kind: str
    backend: str
    key: str | None
    result_path: str | None
    record: dict[str, Any]


class JobJournal:
    """The run's job journal: which jobs this run submitted, and which of them are done."""

    def __init__(self, path: str | os.PathLike[str], results_dir: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.results_dir = Path(results_dir)

    # ------------------------------------------------------------------ writing

    def record(
        self,
        job: Any,
        *,
        kind: str,
        backend: str,
        pub_shapes: Sequence[Sequence[int]],
        shots: int,
        step: int | None = None,
        extra: dict[str, Any] | None = None,
        key: str | None = None,
        executions: int | None = None,
    ) -> JournalEntry:
        """Append the job's ``submitted`` line and fsync it. Call this before ``job.result()``."""
        shapes = [list(shape) for shape in pub_shapes]
        line = {
            "job_id": job.job_id(),
            "status": SUBMITTED,
            "time": time.time(),
            "kind": kind,
            "backend": backend,
            "key": key,
            "step": step,
            "pub_shapes": shapes,
            "shots": shots,
            # the shots the job runs (what the ledger is charged): the caller's executor count, else
            # bindings x shots summed over PUBs
            "executions": executions if executions is not None else sum(prod(shape) for shape in shapes) * shots,
            "extra": extra or {},
        }
        self._append(line)
        return _entry(line)

    def mark_done(self, job_id: str, result_path: str | os.PathLike[str] | None = None) -> None:
        """Append the job's ``done`` line (after its result is stored, if it is stored)."""
        self._mark(job_id, DONE, result_path=str(result_path) if result_path is not None else None)

    def mark_unrecoverable(self, job_id: str, status: str, reason: str) -> None:
        """Append a ``failed`` or ``lost`` line: the job will never give a result, so it may be redone."""
        self._mark(job_id, status, reason=reason)

    def _mark(self, job_id: str, status: str, **fields: Any) -> None:
        previous = self.entries().get(job_id)
        if previous is None:
            raise QgenError(f"{self.path}: job {job_id} was never recorded; cannot mark it {status}")
        self._append({**previous.record, "status": status, "time": time.time(), **fields})

    def store_result(self, job_id: str, result: Any) -> Path:
        """Write ``result`` beside the journal (atomically: temp file, fsync, rename)."""
        from qiskit_ibm_runtime import RuntimeEncoder

        self.results_dir.mkdir(parents=True, exist_ok=True)
        path = self.results_dir / f"{job_id}.json"
        try:
            payload = json.dumps(result, cls=RuntimeEncoder)
        except TypeError:
            # executor results carry metadata objects RuntimeEncoder cannot write; the data is what
            # a resumed run needs, so keep it and say what was dropped
            payload = json.dumps(_data_only(result), cls=RuntimeEncoder)
        return atomic_write_text(path, payload)

    # ------------------------------------------------------------------ reading

    def entries(self) -> dict[str, JournalEntry]:
        """Latest state per job id, in submission order. A torn last line (crash mid-write) is skipped."""
        if not self.path.is_file():
            return {}
        latest: dict[str, dict[str, Any]] = {}
        with open(self.path) as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    if text.endswith("\n"):  # damage in the middle is not a crash artefact
                        raise QgenError(f"{self.path}:{number}: corrupt journal line") from None
                    continue
                latest[line["job_id"]] = line
        return {job_id: _entry(line) for job_id, line in latest.items()}

    def pending(self) -> list[JournalEntry]:
        """Jobs submitted but not marked done (an interrupted run's jobs)."""
        return [entry for entry in self.entries().values() if entry.status == SUBMITTED]

    def find(self, key: str) -> JournalEntry | None:
        """The most recent job recorded under ``key`` that has (or may still give) a result."""
        matches = [entry for entry in self.entries().values()
                   if entry.key == key and entry.status in (SUBMITTED, DONE)]
        return matches[-1] if matches else None

    def recover(self, service: Any | None) -> list[str]:
        """Settle every job still ``submitted`` (an interrupted run's): retrieve it by its ID from
        ``service`` (waiting if it is queued or running) and store its result, or mark it failed
        (the service says so) or lost (a local job, no service). Returns the IDs retrieved."""
        retrieved = []
        for entry in self.pending():
            if self.retrieve(entry.job_id, service) is not None:
                retrieved.append(entry.job_id)
            elif self.entries()[entry.job_id].status == SUBMITTED:
                status = LOST if _is_local(service) else FAILED
                self.mark_unrecoverable(entry.job_id, status, "no result after the interruption")
        return retrieved

    def load_result(self, job_id: str) -> Any | None:
        """The stored result of ``job_id``, or None if none was stored."""
        from qiskit_ibm_runtime import RuntimeDecoder

        path = self._result_path(job_id)
        if not path.is_file():
            return None
        with open(path) as handle:
            return json.load(handle, cls=RuntimeDecoder)

    def retrieve(self, job_id: str, service_or_local: Any | None) -> Any | None:
        """A finished (or still running) job's result without resubmitting it; None if it is lost.

        ``service_or_local`` is a QiskitRuntimeService (hardware: ``service.job(id)``), or None / a
        local marker for fake-backend runs, whose jobs only survive as stored results.
        """
        stored = self.load_result(job_id)
        if stored is not None:
            entry = self.entries().get(job_id)
            if entry is not None and entry.status != DONE:  # crashed between storing and marking
                self.mark_done(job_id, self._result_path(job_id))
            return stored
        if _is_local(service_or_local):
            return None
        try:
            job = service_or_local.job(job_id)
            status = job.status()
        except Exception as exc:
            raise QgenError(f"cannot look up job {job_id} on IBM Quantum: {_one_line(exc)}") from None
        if _status_name(status) in FAILED_STATES:
            self.mark_unrecoverable(job_id, FAILED, f"IBM Quantum status {_status_name(status)}")
            return None
        result = job.result()  # waits if it is still queued or running: it was already paid for
        path = self.store_result(job_id, result)
        self.mark_done(job_id, path)
        return result

    # ------------------------------------------------------------------ internals

    def _result_path(self, job_id: str) -> Path:
        entry = self.entries().get(job_id)
        if entry is not None and entry.result_path:
            return Path(entry.result_path)
        return self.results_dir / f"{job_id}.json"

    def _append(self, line: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "a") as handle:
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if created:  # the new directory entry must survive a crash too
            _fsync_dir(self.path.parent)


def submit_or_resume(
    journal: JobJournal,
    key: str,
    submit_fn: Callable[[], Any],
    *,
    kind: str,
    backend: str,
    pub_shapes: Sequence[Sequence[int]],
    shots: int,
    step: int | None = None,
    extra: dict[str, Any] | None = None,
    executions: int | None = None,
    service: Any | None = None,
    on_submit: Callable[[Any], None] | None = None,
) -> Any:
    """The result for ``key``: from a journaled job if there is one, else submit, record, wait, mark done.

    ``submit_fn`` submits and returns the job (``primitive.run(pubs)``); it is only called when no
    earlier job under ``key`` finished or can still be retrieved (pass ``service`` on hardware).
    ``on_submit(job)`` runs once the job is journaled and before anyone waits on it (the shot
    ledger charges there).
    """
    previous = journal.find(key)
    if previous is not None:
        result = journal.retrieve(previous.job_id, service)
        if result is not None:
            return result

    job = submit_fn()
    journal.record(job, kind=kind, backend=backend, pub_shapes=pub_shapes, shots=shots, step=step,
                   extra=extra, key=key, executions=executions)
    if on_submit is not None:
        on_submit(job)
    result = job.result()
    path = journal.store_result(job.job_id(), result)
    journal.mark_done(job.job_id(), path)
    return result


def _data_only(result: Any) -> Any:
    from qiskit.primitives import PrimitiveResult, PubResult

    return PrimitiveResult([PubResult(pub.data, metadata={}) for pub in result],
                           metadata={"note": "metadata dropped: not JSON-serialisable"})


def _entry(line: dict[str, Any]) -> JournalEntry:
    return JournalEntry(
        job_id=line["job_id"], status=line["status"], kind=line.get("kind", ""),
        backend=line.get("backend", ""), key=line.get("key"), result_path=line.get("result_path"),
        record=line,
    )


def _is_local(service: Any | None) -> bool:
    """No service, or qiskit-ibm-runtime's local one: jobs cannot be fetched again by their ID."""
    return service is None or getattr(service, "is_local", True)


def _status_name(status: Any) -> str:
    # RuntimeJobV2.status() returns a string; local jobs return a JobStatus enum
    return str(getattr(status, "name", status)).upper()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
