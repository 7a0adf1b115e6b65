"""Where a run directory keeps its journaled jobs, their results and its shot ledger: hardware and
``--local`` apart.

A ``--local`` run simulates the device; its jobs can never be fetched from IBM and its shots cost
nothing. Kept in the same journal, a local run marked a paid, in-flight hardware job "lost", a
hardware run reused simulated results, and simulated shots were charged to the device's ledger. So
local jobs live under ``local/`` (journal, results, ledger and noise pools), hardware jobs at the top
of the run directory, and neither ever reads the other's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qgen.rundir import RunDir

#: The run-directory folder of everything ``--local`` journals.
LOCAL_DIR = "local"


@dataclass(frozen=True)
class JobFiles:
    journal: Path      # jobs.jsonl
    results: Path      # job_results/
    ledger: Path       # budget.json
    noise_root: Path   # noise/ (one pool per backend below it)
    lock: Path         # the run directory's lock (one for both kinds)
    local: bool


def job_files(run: RunDir, local: bool) -> JobFiles:
    """The files of ``run`` that the hardware (``local=False``) or the ``--local`` jobs use."""
    if not local:
        return JobFiles(run.journal_path, run.job_results_dir, run.budget_path, run.noise_pool_dir("x").parent,
                        run.lock_path, local=False)
    base = run.path / LOCAL_DIR
    return JobFiles(base / run.journal_path.name, base / run.job_results_dir.name, base / run.budget_path.name,
                    base / run.noise_pool_dir("x").parent.name, run.lock_path, local=True)
