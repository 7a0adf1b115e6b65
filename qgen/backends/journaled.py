"""Primitives whose every job is journaled and charged to the run's shot budget.

Wrapping the estimator/sampler (rather than the training or sampling loops) keeps the rule in
one place: before anyone waits on a job its ID is in ``jobs.jsonl``; a job that would pass the
budget is refused before submission; and an identical request after an interruption (same
circuits, parameter values and observables) is answered from the journal, not resubmitted.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from qiskit import qasm3
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qgen.backends.budget import ShotBudget, plan_for_spec
from qgen.backends.journal import JobJournal, submit_or_resume
from qgen.errors import QgenError


class CompletedJob:
    """What ``run`` returns: the result is already in hand (waited on inside the journal)."""

    def __init__(self, result: Any, job_id: str):
        self._result, self._job_id = result, job_id

    def result(self) -> Any:
        return self._result

    def job_id(self) -> str:
        return self._job_id

    def done(self) -> bool:
        return True


class _Journaled:
    kind = "primitive"

    def __init__(self, inner: Any, spec: Any):
        self.inner = inner
        self.spec = spec
        self.journal: JobJournal | None = None
        self.budget: ShotBudget | None = None
        self.budget_path: Path | None = None
        self._circuit_digests: dict[int, str] = {}

    def attach(self, run_dir: Path, shot_budget: int | None = None) -> None:
        """Journal into ``run_dir``; the budget is the run's (persisted in its budget file)."""
        from qgen.rundir import RunDir

        run = RunDir(run_dir)
        limit = shot_budget if shot_budget is not None else self.spec.shot_budget
        self.journal = JobJournal(run.journal_path, run.job_results_dir)
        self.budget_path = run.budget_path
        self.budget = ShotBudget.load(self.budget_path, self.spec.name, limit)

    def _digest(self, circuit) -> str:
        """The circuit's content, stable across processes: OpenQASM 3 names parameters, while QPY
        would also store their per-process UUIDs and so never match after a restart."""
        key = id(circuit)
        if key not in self._circuit_digests:
            text = qasm3.dumps(circuit)
            self._circuit_digests[key] = hashlib.sha256(text.encode()).hexdigest()
        return self._circuit_digests[key]

    def _submit(self, pubs: list, key_parts: list, submit) -> CompletedJob:
        if self.journal is None:
            raise QgenError(f"{self.spec.name}: jobs need a run directory to be journaled in (internal error)")
        key = hashlib.sha256(json.dumps(key_parts, sort_keys=True, default=str).encode()).hexdigest()
        job_plan = plan_for_spec(pubs, self.spec)
        previous = self.journal.find(key)
        if previous is None:
            self.budget.check(job_plan)
        shots = max((p.shots for job in job_plan.jobs for p in job.pubs), default=0)
        result = submit_or_resume(self.journal, key, submit, kind=self.kind, backend=self.spec.name,
                                  pub_shapes=[p.shape for p in pubs], shots=shots)
        entry = self.journal.find(key)
        if previous is None:
            self.budget.charge(job_plan.executions)
            self.budget.save(self.budget_path, self.spec.name)
        return CompletedJob(result, entry.job_id if entry else "")


class JournaledEstimator(_Journaled, BaseEstimatorV2):
    kind = "estimator"

    def run(self, pubs, *, precision: float | None = None):
        precision = precision if precision is not None else (self.spec.precision or None)
        coerced = [EstimatorPub.coerce(p, precision) for p in pubs]
        key = [[self._digest(p.circuit), p.parameter_values.as_array().tolist(),
                p.observables.tolist(), p.precision]
               for p in coerced]
        return self._submit(coerced, key, lambda: self.inner.run(coerced, precision=precision))


class JournaledSampler(_Journaled, BaseSamplerV2):
    kind = "sampler"

    def run(self, pubs, *, shots: int | None = None):
        shots = shots or self.spec.shots
        coerced = [SamplerPub.coerce(p, shots) for p in pubs]
        # Measured bits are consumed by the entropy pool, which persists them itself: replaying an old
        # job's bits would hand out the same randomness twice, so every sampler call gets a fresh key.
        key = [[self._digest(p.circuit), p.shots] for p in coerced] + [uuid.uuid4().hex]
        return self._submit(coerced, key, lambda: self.inner.run(coerced, shots=shots))
