"""Shot budgets and job plans: know what a hardware run will cost, and refuse it before submitting.

Counting: IBM counts *executions* = bindings x shots, summed over a job's PUBs, and caps a sampler job
at 10,000,000 of them. One execution is one shot, so the shot budget is spent in executions.
For the estimator we count bindings x ceil(1/precision**2); the executor Estimator multiplies that by
the number of measurement bases and by mitigation (TREX calibration, ZNE noise factors), so for the
estimator this is a lower bound.

Usage model (documented, deliberately simple): QPU seconds ~ SECONDS_PER_JOB per job (loading and
compiling) + SECONDS_PER_EXECUTION per execution (the default repetition delay of ~250 us dominates
short circuits). On hardware qiskit-ibm-runtime gives better numbers, after submission:
``RuntimeJobV2.usage_estimation["quantum_seconds"]`` (the service's estimate, queued jobs included),
``job.usage()`` (charged seconds, once done), and ``primitive.run(pubs, dry_run=True)`` (a server-side
dry run that costs nothing and returns usage metadata). The journal can store them in ``extra``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgen.errors import QgenError
from qgen.fileio import atomic_write_text

MAX_EXECUTIONS_PER_JOB = 10_000_000
SECONDS_PER_EXECUTION = 250e-6
SECONDS_PER_JOB = 2.0


@dataclass(frozen=True)
class PubCost:
    """One PUB as the planner sees it: how many parameter bindings, how many shots each."""

    bindings: int
    shots: int

    @property
    def executions(self) -> int:
        return self.bindings * self.shots


@dataclass(frozen=True)
class PlannedJob:
    pubs: tuple[PubCost, ...]

    @property
    def executions(self) -> int:
        return sum(pub.executions for pub in self.pubs)


@dataclass(frozen=True)
class JobPlan:
    """How a list of PUBs splits into jobs, and what it costs."""

    jobs: tuple[PlannedJob, ...]
    estimated_seconds: float

    @property
    def num_jobs(self) -> int:
        return len(self.jobs)

    @property
    def num_pubs(self) -> int:
        return sum(len(job.pubs) for job in self.jobs)

    @property
    def executions(self) -> int:
        """Total executions = total shots: what the shot budget is charged."""
        return sum(job.executions for job in self.jobs)

    @property
    def shots(self) -> int:
        return self.executions

    def summary(self) -> str:
        """One line for --dry-run."""
        jobs = f"{self.num_jobs:,} job{'s' if self.num_jobs != 1 else ''}"
        pubs = f"{self.num_pubs:,} PUB{'s' if self.num_pubs != 1 else ''}"
        return (
            f"{jobs}, {pubs}, {self.executions:,} shots (bindings x shots), "
            f"estimated QPU usage ~{_duration(self.estimated_seconds)}"
        )


def shots_for_precision(precision: float) -> int:
    """Shots per binding that reach a target ``precision`` (standard error 1/sqrt(shots)): the one
    place where a precision becomes a shot count."""
    return math.ceil(1.0 / precision**2)


def pub_cost(item: Any, default_shots: int | None = None, default_precision: float | None = None) -> PubCost:
    """A PubCost from ``(bindings, shots)``, a PubCost, or a coerced SamplerPub/EstimatorPub."""
    if isinstance(item, PubCost):
        return item
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(v, int) for v in item):
        return PubCost(bindings=item[0], shots=item[1])
    shape = getattr(item, "shape", None)
    if shape is None:
        raise QgenError(f"cannot plan {type(item).__name__}: pass coerced PUBs or (bindings, shots) pairs")
    bindings = math.prod(shape)
    if hasattr(item, "precision"):  # EstimatorPub: shots follow from the target precision
        precision = item.precision or default_precision
        if not precision:
            raise QgenError("cannot plan an estimator PUB without a precision")
        return PubCost(bindings=bindings, shots=shots_for_precision(precision))
    shots = getattr(item, "shots", None) or default_shots
    if not shots:
        raise QgenError("cannot plan a sampler PUB without shots")
    return PubCost(bindings=bindings, shots=shots)


def plan(
    items: Iterable[Any],
    max_executions_per_job: int = MAX_EXECUTIONS_PER_JOB,
    max_pubs_per_job: int | None = None,
    *,
    max_bindings_per_job: int | None = None,
    default_shots: int | None = None,
    default_precision: float | None = None,
    seconds_per_execution: float = SECONDS_PER_EXECUTION,
    seconds_per_job: float = SECONDS_PER_JOB,
) -> JobPlan:
    """Pack PUBs into jobs in order: a job closes when the next PUB would pass a limit.

    A PUB too big for one job is split along its bindings (the caller submits the slices as PUBs).
    """
    pieces: list[PubCost] = []
    for item in items:
        cost = pub_cost(item, default_shots, default_precision)
        if cost.bindings < 1 or cost.shots < 1:
            continue
        if cost.shots > max_executions_per_job:
            raise QgenError(
                f"one binding with {cost.shots:,} shots exceeds the {max_executions_per_job:,}-execution job limit"
            )
        per_piece = max_executions_per_job // cost.shots
        if max_bindings_per_job is not None:
            per_piece = min(per_piece, max_bindings_per_job)
        left = cost.bindings
        while left > 0:
            take = min(left, per_piece)
            pieces.append(PubCost(take, cost.shots))
            left -= take

    jobs: list[PlannedJob] = []
    current: list[PubCost] = []
    for piece in pieces:
        too_many_pubs = max_pubs_per_job is not None and len(current) >= max_pubs_per_job
        too_many_executions = sum(p.executions for p in current) + piece.executions > max_executions_per_job
        too_many_bindings = (
            max_bindings_per_job is not None and sum(p.bindings for p in current) + piece.bindings > max_bindings_per_job
        )
        if current and (too_many_pubs or too_many_executions or too_many_bindings):
            jobs.append(PlannedJob(tuple(current)))
            current = []
        current.append(piece)
    if current:
        jobs.append(PlannedJob(tuple(current)))

    executions = sum(job.executions for job in jobs)
    seconds = len(jobs) * seconds_per_job + executions * seconds_per_execution
    return JobPlan(jobs=tuple(jobs), estimated_seconds=seconds)


def plan_for_spec(items: Iterable[Any], spec: Any) -> JobPlan:
    """plan() with the per-job limits and default shots/precision of a BackendSpec."""
    return plan(
        items,
        max_pubs_per_job=spec.max_pubs_per_job,
        max_bindings_per_job=spec.max_bindings_per_job,
        default_shots=spec.shots,
        default_precision=spec.precision or None,
    )


@dataclass
class ShotBudget:
    """Shots one run may spend on one backend; ``limit=None`` means unlimited."""

    limit: int | None
    spent: int = 0

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.spent, 0)

    def check(self, job_plan: JobPlan) -> None:
        """Refuse, before anything is submitted, a plan that would pass the budget."""
        remaining = self.remaining
        if remaining is None or job_plan.executions <= remaining:
            return
        raise QgenError(
            f"plan needs {job_plan.executions:,} shots but the shot budget has {remaining:,} left "
            f"(over by {job_plan.executions - remaining:,}); raise shot_budget in backends.toml or pass --shot-budget"
        )

    def charge(self, executions: int) -> None:
        self.spent += executions

    # Persistence: the run's budget file = {backend: {"limit": ..., "spent": ...}}. The limit in force is
    # the configured one (so raising shot_budget takes effect on resume); what was spent is remembered.

    @classmethod
    def load(cls, path: str | os.PathLike[str], backend: str, limit: int | None) -> ShotBudget:
        stored = _read_budgets(Path(path)).get(backend, {})
        return cls(limit=limit, spent=int(stored.get("spent", 0)))

    def save(self, path: str | os.PathLike[str], backend: str) -> None:
        path = Path(path)
        budgets = _read_budgets(path)
        budgets[backend] = {"limit": self.limit, "spent": self.spent}
        atomic_write_text(path, json.dumps(budgets, indent=2))


def _read_budgets(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise QgenError(f"{path}: corrupt shot budget file ({exc.msg}); fix or delete it") from None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"

