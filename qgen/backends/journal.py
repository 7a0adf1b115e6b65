"""A crash-safe journal of submitted primitive jobs, so an interrupted run resumes instead of resubmitting.

The journal file (``jobs.jsonl`` in the run directory, named by ``RunDir``; ``local/jobs.jsonl`` for
``--local`` runs, see job_files.py) is append-only: one ``submitted`` line per job, written and
fsynced *before* anyone waits on the job (a crash while waiting still leaves the job id on disk),
then one ``done`` line when its result is safe (or one ``failed`` / ``lost`` line when it can never
give one). The latest line per job id wins. A torn last line can only be an unfinished write (lines
are appended whole and fsynced); it is repaired before the next line is appended, so the next line
never lands on it.

After an interruption, ``recover(service)`` retrieves every job still ``submitted`` by its ID
(``service.job(id)``: it waits for a queued or running job, or takes its result) before the run
submits anything new; only a job that failed at IBM, or a local job that died with its process,
is ever submitted again. Results are also stored next to the journal (``JOB_ID.json`` in the results
folder, qiskit-ibm-runtime's JSON encoding) because local fake jobs can never be fetched again from a
service, and a stored result spares a network round trip on hardware. Their place is always derived
from the journal's own folder (a moved or copied run reads its own results, never another run's).

Every line carries what the job is charged (``charged_shots``): the shots a submitted or finished job
runs, 0 for a local job lost with its process, and for a job that failed or was cancelled at IBM what
its metrics say it ran (its planned shots if it used QPU time or the service does not say). The shot
ledger (ledger.py) is derived from these lines.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from qiskit.primitives import PrimitiveResult, PubResult

from qgen.errors import QgenError, first_line
from qgen.fileio import atomic_write_text

SUBMITTED = "submitted"
DONE = "done"
FAILED = "failed"  # the service says the job will never produce a result
LOST = "lost"      # a local (fake-device) job whose process died before its result was stored
# qiskit-ibm-runtime's RuntimeJobV2.status() strings for jobs that will never produce a result
FAILED_STATES = {"ERROR", "CANCELLED", "FAILED"}

logger = logging.getLogger(__name__)


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

    @property
    def executions(self) -> int:
        return int(self.record.get("executions", 0))

    @property
    def charged(self) -> int:
        """Shots this job is charged (see the module docstring)."""
        if "charged_shots" in self.record:
            return int(self.record["charged_shots"])
        return 0 if self.status == LOST else self.executions  # lines written before charged_shots

    @property
    def local(self) -> bool:
        """Run on a fake device by ``--local`` (lines without the field: local job ids say so)."""
        return bool(self.record.get("local", self.job_id.startswith("local-")))

    @property
    def request(self) -> str | None:
        return self.record.get("request")

    @property
    def settings(self) -> dict[str, Any]:
        return self.record.get("settings") or {}


class JobJournal:
    """The run's job journal: which jobs this run submitted, and which of them are done.

    ``local``: the journal of ``--local`` jobs; each journal ignores lines of the other kind (runs
    journaled before the two were kept apart hold both in one file).
    """

    def __init__(self, path: str | os.PathLike[str], results_dir: str | os.PathLike[str],
                 local: bool = False) -> None:
        self.path = Path(path)
        self.results_dir = Path(results_dir)
        self.local = local

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
        request: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> JournalEntry:
        """Append the job's ``submitted`` line and fsync it. Call this before ``job.result()``."""
        shapes = [list(shape) for shape in pub_shapes]
        # the shots the job runs (what the ledger is charged): the caller's executor count, else
        # bindings x shots summed over PUBs
        executions = executions if executions is not None else sum(prod(shape) for shape in shapes) * shots
        line = {
            "job_id": job.job_id(),
            "status": SUBMITTED,
            "time": time.time(),
            "kind": kind,
            "backend": backend,
            "local": self.local,
            "key": key,
            "request": request,
            "settings": settings or {},
            "step": step,
            "pub_shapes": shapes,
            "shots": shots,
            "executions": executions,
            "charged_shots": executions,
            "extra": extra or {},
        }
        self._append(line)
        return _entry(line)

    def mark_done(self, job_id: str, result_path: str | os.PathLike[str] | None = None) -> None:
        """Append the job's ``done`` line (after its result is stored, if it is stored). The result's
        place is recorded relative to the journal's folder, for the reader; it is always looked up
        from the journal's own folder."""
        relative = os.path.relpath(self._result_path(job_id), self.path.parent) if result_path is not None else None
        previous = self.entries().get(job_id)
        charged = previous.executions if previous is not None else 0
        self._mark(job_id, DONE, result_path=relative, charged_shots=charged)

    def mark_unrecoverable(self, job_id: str, status: str, reason: str, charged: int | None = None) -> None:
        """Append a ``failed`` or ``lost`` line: the job will never give a result, so it may be redone.
        ``charged``: the shots it ran (default: none for a lost local job, else its planned shots)."""
        previous = self.entries().get(job_id)
        if charged is None:
            charged = 0 if status == LOST or previous is None else previous.executions
        self._mark(job_id, status, reason=reason, charged_shots=int(charged))

    def _mark(self, job_id: str, status: str, **fields: Any) -> None:
        previous = self.entries().get(job_id)
        if previous is None:
            raise QgenError(f"{self.path}: job {job_id} was never recorded; cannot mark it {status}")
        self._append({**previous.record, "status": status, "time": time.time(), **fields})

    def store_result(self, job_id: str, result: Any) -> Path:
        """Write ``result`` beside the journal (atomically: temp file, fsync, rename)."""
        # deferred: every command that plans shots imports this module (qgen.planner, through the ledger),
        # and qiskit-ibm-runtime is ~0.9 s of import (measured) that only kind ibm needs
        from qiskit_ibm_runtime import RuntimeEncoder

        self.results_dir.mkdir(parents=True, exist_ok=True)
        path = self._result_path(job_id)
        try:
            payload = json.dumps(result, cls=RuntimeEncoder)
        except TypeError:
            # executor results carry metadata objects RuntimeEncoder cannot write; the data is what
            # a resumed run needs, so keep it and say what was dropped
            payload = json.dumps(_data_only(result), cls=RuntimeEncoder)
        return atomic_write_text(path, payload)

    # ------------------------------------------------------------------ reading

    def entries(self) -> dict[str, JournalEntry]:
        """Latest state per job id of this journal's kind (hardware or local), in submission order.
        A torn last line (crash mid-write) is skipped."""
        return {job_id: entry for job_id, entry in self.all_entries().items() if entry.local == self.local}

    def all_entries(self) -> dict[str, JournalEntry]:
        """Latest state per job id, of both kinds."""
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
                if not isinstance(line, dict) or not isinstance(line.get("job_id"), str):
                    raise QgenError(f"{self.path}:{number}: not a journal line (no job_id)")
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

    def find_request(self, request: str) -> JournalEntry | None:
        """The most recent job that asked for ``request`` (under any settings) and has or may give a result."""
        matches = [entry for entry in self.entries().values()
                   if entry.request == request and entry.status in (SUBMITTED, DONE)]
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
        """The stored result of ``job_id``, or None if none was stored (or it cannot be read: a result
        file is written whole, so an unreadable one was damaged after the fact; it is said on stderr)."""
        from qiskit_ibm_runtime import RuntimeDecoder  # deferred: see store_result

        path = self._result_path(job_id)
        if not path.is_file():
            return None
        try:
            with open(path) as handle:
                return json.load(handle, cls=RuntimeDecoder)
        except (ValueError, TypeError, KeyError, OSError) as exc:
            logger.warning(f"qgen: the stored result {path} cannot be read ({first_line(exc)}); "
                           f"it is not used")
            return None

    def retrieve(self, job_id: str, service_or_local: Any | None) -> Any | None:
        """A finished (or still running) job's result without resubmitting it; None if it is lost.

        ``service_or_local`` is a QiskitRuntimeService (hardware: ``service.job(id)``), or None / a
        local marker for fake-backend runs, whose jobs only survive as stored results.
        """
        stored = self.load_result(job_id)
        entry = self.entries().get(job_id)
        if stored is not None:
            if entry is not None and entry.status != DONE:  # crashed between storing and marking
                self.mark_done(job_id, self._result_path(job_id))
            return stored
        if _is_local(service_or_local):
            if entry is not None and entry.status == DONE:  # it ran; its stored result is gone
                self.mark_unrecoverable(job_id, LOST, "stored result missing or unreadable",
                                        charged=entry.charged)
            return None
        try:
            job = service_or_local.job(job_id)
            status = job.status()
        except Exception as exc:
            raise QgenError(f"cannot look up job {job_id} on IBM Quantum: {first_line(exc)}; it stays in "
                            f"{self.path.name} and is looked up again on the next run") from None
        if _status_name(status) in FAILED_STATES:
            self.mark_unrecoverable(job_id, FAILED, f"IBM Quantum status {_status_name(status)}",
                                    charged=usage_charge(job, entry.executions if entry else 0))
            return None
        result = wait_for(self, job, service_or_local)  # waits if queued or running: it was paid for
        path = self.store_result(job_id, result)
        self.mark_done(job_id, path)
        return result

    # ------------------------------------------------------------------ internals

    def _result_path(self, job_id: str) -> Path:
        return self.results_dir / f"{job_id}.json"

    def _append(self, line: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        if not created:
            self._repair_torn_tail()
        with open(self.path, "a") as handle:
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if created:  # the new directory entry must survive a crash too
            _fsync_dir(self.path.parent)

    def _repair_torn_tail(self) -> None:
        """End the file with a whole line before appending: a last line without its newline is an
        unfinished write (a kill mid-append). A complete record only lacks its newline and is kept;
        a cut one is removed, since what it recorded never fully reached the disk."""
        with open(self.path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            handle.seek(0)
            data = handle.read()
            cut = data.rfind(b"\n") + 1
            try:
                json.loads(data[cut:])
                complete = True
            except ValueError:
                complete = False
            if complete:
                handle.seek(size)
                handle.write(b"\n")
            else:
                handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        logger.warning(f"qgen: {self.path}: {'completed' if complete else 'removed'} a torn last line "
                       "(an append a kill interrupted)")


def wait_for(journal: JobJournal, job: Any, service: Any | None) -> Any:
    """``job.result()``; a job that fails, is cancelled or is lost while we wait is settled in the
    journal and becomes one ``QgenError`` line (what happened, what it was charged, what to do)."""
    try:
        return job.result()
    except Exception as exc:
        raise _settle_failure(journal, job, service, exc) from None


def _settle_failure(journal: JobJournal, job: Any, service: Any | None, exc: Exception) -> QgenError:
    job_id = job.job_id()
    entry = journal.entries().get(job_id)
    planned = entry.executions if entry else 0
    if _is_local(service):  # the local simulator failed or died: its job can never give a result
        journal.mark_unrecoverable(job_id, LOST, f"local job failed: {first_line(exc)}")
        return QgenError(f"local job {job_id} failed: {first_line(exc)}; it is marked lost in "
                         f"{journal.path.name} and the next run submits it again")
    try:
        status = _status_name(job.status())
    except Exception:
        status = None
    if status in FAILED_STATES:
        charged = usage_charge(job, planned)
        journal.mark_unrecoverable(job_id, FAILED, f"IBM Quantum status {status}: {first_line(exc)}",
                                   charged=charged)
        return QgenError(f"job {job_id} ended {status} at IBM Quantum ({first_line(exc)}); it is marked failed "
                         f"in {journal.path.name} and charged {charged:,} shots; the next run submits it again")
    return QgenError(f"lost contact with IBM Quantum while waiting for job {job_id} ({first_line(exc)}); it "
                     f"stays in {journal.path.name} and the next run fetches it by its ID")


def usage_charge(job: Any, planned: int) -> int:
    """What a job that will never give a result is charged: nothing if the service's metrics say it used
    no QPU time, else its planned shots (the service reports seconds, not shots; unknown counts as used)."""
    try:
        usage = (job.metrics() or {}).get("usage") or {}
    except Exception:
        return planned
    seconds = usage.get("qpu_charge_time_seconds", usage.get("quantum_seconds"))
    if seconds is None or usage.get("status") == "pending":
        return planned
    return 0 if float(seconds) == 0 else planned


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
    request: str | None = None,
    settings: dict[str, Any] | None = None,
    previous: JournalEntry | None = None,
) -> Any:
    """The result for ``key``: from a journaled job if there is one, else submit, record, wait, mark done.

    ``submit_fn`` submits and returns the job (``primitive.run(pubs)``); it is only called when no
    earlier job under ``key`` (or ``previous``, a journaled job the caller chose to reuse) finished or
    can still be retrieved (pass ``service`` on hardware). ``on_submit(job)`` runs once the job is
    journaled and before anyone waits on it (the shot ledger is brought up to date there).
    """
    previous = previous or journal.find(key)
    if previous is not None:
        result = journal.retrieve(previous.job_id, service)
        if result is not None:
            return result

    job = submit_fn()
    journal.record(job, kind=kind, backend=backend, pub_shapes=pub_shapes, shots=shots, step=step,
                   extra=extra, key=key, executions=executions, request=request, settings=settings)
    if on_submit is not None:
        on_submit(job)
    result = wait_for(journal, job, service)
    path = journal.store_result(job.job_id(), result)
    journal.mark_done(job.job_id(), path)
    return result


def _data_only(result: Any) -> Any:
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

