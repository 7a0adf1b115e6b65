"""The run's shot ledger (``budget.json``): what a run spent per backend, derived from its job journal,
and the budget that leaves (``ShotBudget``).

The journal (journal.py) says of every job what it is charged: the shots a submitted or finished job
runs, what a failed or cancelled one ran (from the service's metrics), nothing for a local job lost
with its process. The ledger is the sum per backend, itemised by job, so:

* a missing ``budget.json`` is rebuilt from ``jobs.jsonl`` (deleting it no longer resets spending);
* a present one is checked against the journal: the journal's charge of every job it holds wins (an
  edited ``spent`` is ignored, said on stderr), and jobs the ledger charged that the journal no
  longer holds (a deleted or cut journal) stay charged;
* a damaged one (not JSON, a negative or non-integer ``spent``, wrong types) is one error line.

It is rewritten (atomically, under the run's lock) whenever the journal changes what is charged.
``--local`` runs have their own journal and ledger (job_files.py).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qgen.backends.job_files import job_files
from qgen.backends.journal import JobJournal
from qgen.errors import QgenError
from qgen.fileio import atomic_write_text
from qgen.rundir.layout import JOURNAL
from qgen.rundir.lock import read_holder

if TYPE_CHECKING:
    from qgen.backends.executor_cost import JobPlan
    from qgen.rundir import RunDir

logger = logging.getLogger(__name__)
#: The ledger row of a budget.json written before jobs were itemised: its spent, less the journal's.
UNITEMISED = "(charged before jobs were itemised)"


@dataclass(frozen=True)
class ShotBudget:
    """Shots one run may spend on one backend; ``limit=None`` means unlimited."""

    limit: int | None
    spent: int = 0

    def __post_init__(self) -> None:
        # a negative spent would add to what is left
        if self.spent < 0:
            raise QgenError(f"shots spent cannot be negative (got {self.spent:,})")

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.spent, 0)

    def fits(self, shots: int) -> bool:
        return self.remaining is None or shots <= self.remaining

    def check(self, job_plan: JobPlan) -> None:
        """Refuse, before anything is submitted, a plan that would pass the budget."""
        if self.fits(job_plan.executions):
            return
        raise QgenError(
            f"plan needs {job_plan.executions:,} shots but the shot budget has {self.remaining:,} left "
            f"(over by {job_plan.executions - self.remaining:,}); raise shot_budget in backends.toml or pass --shot-budget"
        )


class ShotLedger:
    """The shots a run spent per backend (see the module docstring)."""

    def __init__(self, run: RunDir, local: bool = False) -> None:
        files = job_files(run, local)
        self.path = files.ledger
        self.lock_path = files.lock
        self.journal = JobJournal(files.journal, files.results, local=local)

    def spent(self, backend: str) -> int:
        return self.rows().get(backend, {}).get("spent", 0)

    def budget(self, backend: str, limit: int | None) -> ShotBudget:
        """The budget in force: the configured ``limit`` (raising it takes effect on resume) and
        what the ledger says was spent."""
        return ShotBudget(limit=limit, spent=self.spent(backend))

    def rows(self) -> dict[str, dict[str, Any]]:
        """{backend: {"spent": shots, "jobs": {job_id: shots}}}: the journal's charges, plus the jobs
        the stored ledger charged that the journal no longer holds."""
        recorded = read_ledger(self.path, self.journal.path.name)
        charged: dict[str, dict[str, int]] = {}
        for entry in self.journal.entries().values():
            charged.setdefault(entry.backend, {})[entry.job_id] = entry.charged
        rows = {}
        for backend in sorted(set(recorded) | set(charged)):
            jobs = charged.get(backend, {})
            row = recorded.get(backend, {})
            if "jobs" in row:
                missing = {job_id: shots for job_id, shots in row["jobs"].items() if job_id not in jobs}
            else:  # a ledger from before itemising: whatever it counted beyond the journal stays charged
                extra = int(row.get("spent", 0)) - sum(v for k, v in jobs.items())
                missing = {UNITEMISED: extra} if extra > 0 else {}
            items = {**missing, **jobs}
            rows[backend] = {"spent": sum(items.values()), "jobs": items,
                             "limit": row.get("limit"), "missing": sorted(missing)}
        return rows

    def sync(self, backend: str | None = None, limit: int | None = None) -> None:
        """Rewrite budget.json from the journal (``limit``: the one configured for ``backend``, kept
        for the reader). Writing needs the run's lock, held by this process."""
        recorded = read_ledger(self.path, self.journal.path.name)
        rows = self.rows()
        out = {}
        for name, row in rows.items():
            old = recorded.get(name)
            if old is not None and "jobs" in old and old["spent"] != sum(old["jobs"].values()):
                logger.warning(f"qgen: {self.path} said {old['spent']:,} shots were spent on {name}, its jobs add "
                               f"up to {sum(old['jobs'].values()):,}: the edited total is ignored")
            if row["missing"] and (old is None or sorted(old.get("jobs", {})) != sorted(row["jobs"])):
                logger.warning(f"qgen: {len(row['missing'])} job(s) charged on {name} in {self.path.name} are "
                               f"not in {self.journal.path.name}; they stay charged")
            out[name] = {"limit": limit if name == backend else row["limit"], "spent": row["spent"],
                         "jobs": row["jobs"]}
        if out != recorded and (out or self.path.exists()):
            self._require_lock()
            atomic_write_text(self.path, json.dumps(out, indent=2))

    def _require_lock(self) -> None:
        holder = read_holder(self.lock_path)
        if holder is None or holder.pid != os.getpid() or holder.host != socket.gethostname():
            raise QgenError(f"{self.path}: shots are charged only while this process holds the run's lock "
                            f"({self.lock_path.name}) (internal error)")


def read_ledger(path: Path, journal_name: str = JOURNAL) -> dict[str, dict[str, Any]]:
    """budget.json, checked: {backend: {"limit": int | None, "spent": int >= 0, "jobs"?: {id: int >= 0}}}."""
    if not path.is_file():
        return {}

    def damaged(what: str) -> QgenError:
        return QgenError(f"{path}: damaged shot ledger ({what}); delete it and qgen rebuilds it from "
                         f"{journal_name}")

    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise damaged(getattr(exc, "msg", str(exc))) from None
    if not isinstance(data, dict):
        raise damaged("not a JSON object")
    for backend, row in data.items():
        if not isinstance(row, dict):
            raise damaged(f"{backend!r} is not an object")
        if not _count(row.get("spent", 0)):
            raise damaged(f"'spent' of {backend!r} must be a whole number >= 0, got {row.get('spent')!r}")
        if row.get("limit") is not None and not _count(row["limit"]):
            raise damaged(f"'limit' of {backend!r} must be a whole number >= 0 or null, got {row['limit']!r}")
        jobs = row.get("jobs", {})
        if not isinstance(jobs, dict) or not all(isinstance(k, str) and _count(v) for k, v in jobs.items()):
            raise damaged(f"'jobs' of {backend!r} must map job ids to whole numbers >= 0")
    return data


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
