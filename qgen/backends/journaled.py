"""Primitives whose every job is journaled and charged to the run's shot ledger.

Wrapping the estimator/sampler (rather than the training or sampling loops) keeps the rules in
one place:

* before anyone waits on a job its ID is in ``jobs.jsonl``, and its shots are in the ledger;
* before the first submission of a process, every job an interrupted run left ``submitted`` is
  retrieved by its ID (``service.job(id)`` on hardware), so nothing queued or running at IBM is
  ever submitted twice; an identical request (same circuits, parameter values and observables)
  is answered from the journal;
* a job that would pass the budget is refused before submission;
* estimator PUBs that differ only in their observable (EstimatorQNN sends one per readout) go out
  as ONE PUB with an ``(n_obs, ...)`` observable array: the executor measures all Z readouts from
  the same shots, so this costs what one readout costs (``merge_observables``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import qasm3
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2, DataBin, PrimitiveResult, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qgen.backends.budget import ShotLedger, plan_for_spec
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

    def __init__(self, inner: Any, spec: Any, service: Any | None = None):
        """``service``: the QiskitRuntimeService that can fetch this run's jobs again by their ID
        (None locally, where a job lives only as long as its process)."""
        self.inner = inner
        self.spec = spec
        self.service = service
        self.journal: JobJournal | None = None
        self.ledger: ShotLedger | None = None
        self.limit: int | None = None
        self._recovered = False
        self._circuit_digests: dict[int, tuple[Any, str]] = {}

    def attach(self, run_dir: Path, shot_budget: int | None = None) -> None:
        """Journal into ``run_dir`` and charge its one ledger (``budget.json``)."""
        from qgen.rundir import RunDir

        run = RunDir(run_dir)
        self.limit = shot_budget if shot_budget is not None else self.spec.shot_budget
        self.journal = JobJournal(run.journal_path, run.job_results_dir)
        self.ledger = ShotLedger(run.path)
        self._recovered = False

    def _digest(self, circuit) -> str:
        """The circuit's content, stable across processes: OpenQASM 3 names parameters, while QPY
        would also store their per-process UUIDs and so never match after a restart."""
        cached = self._circuit_digests.get(id(circuit))
        if cached is None or cached[0] is not circuit:
            # the entry keeps its circuit alive: a freed circuit's id() may be reused by another one,
            # which would then be journaled under the first one's digest
            cached = (circuit, hashlib.sha256(qasm3.dumps(circuit).encode()).hexdigest())
            self._circuit_digests[id(circuit)] = cached
        return cached[1]

    def _submit(self, pubs: list, key_parts: list, submit) -> CompletedJob:
        if self.journal is None:
            raise QgenError(f"{self.spec.name}: jobs need a run directory to be journaled in (internal error)")
        if not self._recovered:  # an interrupted run's jobs first: never submit what may still come back
            self.journal.recover(self.service)
            self._recovered = True
        key = hashlib.sha256(json.dumps(key_parts, sort_keys=True, default=str).encode()).hexdigest()
        job_plan = plan_for_spec(pubs, self.spec, self.kind)

        def checked_submit():
            self.ledger.budget(self.spec.name, self.limit).check(job_plan)
            return submit()

        def charge(job) -> None:
            self.ledger.charge(self.spec.name, self.limit, job_plan.executions)

        shots = max((p.shots for job in job_plan.jobs for p in job.pubs), default=0)
        result = submit_or_resume(self.journal, key, checked_submit, kind=self.kind, backend=self.spec.name,
                                  pub_shapes=[p.shape for p in pubs], shots=shots,
                                  executions=job_plan.executions, service=self.service, on_submit=charge)
        entry = self.journal.find(key)
        return CompletedJob(result, entry.job_id if entry else "")


class JournaledEstimator(_Journaled, BaseEstimatorV2):
    kind = "estimator"

    def run(self, pubs, *, precision: float | None = None):
        # EstimatorQNN passes its default_precision, 0.0 for a spec with shots only: 0 means "not
        # given" (the runtime's default_shots then apply), never a target of zero error
        precision = precision or self.spec.precision or None
        coerced = [EstimatorPub.coerce(p, precision) for p in pubs]
        merged, members = merge_observables(coerced)
        key = [[self._digest(p.circuit), p.parameter_values.as_array().tolist(),
                p.observables.tolist(), p.precision]
               for p in merged]
        job = self._submit(merged, key, lambda: self.inner.run(merged, precision=precision))
        return CompletedJob(split_results(job.result(), members, len(coerced)), job.job_id())


class JournaledSampler(_Journaled, BaseSamplerV2):
    kind = "sampler"

    def run(self, pubs, *, shots: int | None = None):
        shots = shots or self.spec.shots
        coerced = [SamplerPub.coerce(p, shots) for p in pubs]
        # Measured bits are consumed by the entropy pool, which persists them itself: replaying an old
        # job's bits would hand out the same randomness twice, so every sampler call gets a fresh key.
        key = [[self._digest(p.circuit), p.shots] for p in coerced] + [uuid.uuid4().hex]
        return self._submit(coerced, key, lambda: self.inner.run(coerced, shots=shots))


# ------------------------------------------------------------------------------ one PUB per circuit


def merge_observables(pubs: list[EstimatorPub]) -> tuple[list[EstimatorPub], list[list[int]]]:
    """PUBs of the same circuit, parameter values, precision and observable shape, merged into one
    PUB whose observables gain a leading axis (one entry per original PUB); returns the merged PUBs
    and, for each, the indices of the PUBs it holds (in order). Lone PUBs pass through unchanged.
    """
    groups: dict[tuple, list[int]] = {}
    for index, pub in enumerate(pubs):
        values = pub.parameter_values.as_array()
        key = (id(pub.circuit), pub.precision, pub.observables.shape, values.shape, values.tobytes())
        groups.setdefault(key, []).append(index)
    merged = []
    for members in groups.values():
        if len(members) == 1:
            merged.append(pubs[members[0]])
            continue
        first = pubs[members[0]]
        # pad each observable array to the PUB's broadcast rank, so the new leading axis never
        # lines up with a parameter axis: (K, 1.., *obs) x values -> (K, *pub.shape)
        padded = (1,) * (len(first.shape) - first.observables.ndim) + first.observables.shape
        observables = ObservablesArray([pubs[i].observables.reshape(padded).tolist() for i in members])
        merged.append(EstimatorPub(first.circuit, observables, first.parameter_values, first.precision))
    return merged, list(groups.values())


def split_results(result: Any, members: list[list[int]], count: int) -> Any:
    """The merged PUBs' result as one PubResult per original PUB, in their order."""
    if all(len(group) == 1 for group in members):
        return result
    out: list[PubResult | None] = [None] * count
    for pub_result, group in zip(result, members):
        if len(group) == 1:
            out[group[0]] = pub_result
            continue
        data = pub_result.data
        shape = data.shape[1:]
        for k, index in enumerate(group):
            fields = {name: _member(value, k, len(group)) for name, value in data.items()}
            out[index] = PubResult(DataBin(**fields, shape=shape), metadata=dict(pub_result.metadata))
    return PrimitiveResult(out, metadata=dict(result.metadata))


def _member(value: Any, k: int, size: int) -> Any:
    """Entry ``k`` of a merged PUB's data field: arrays with the merged axis are sliced along it."""
    array = np.asarray(value) if isinstance(value, np.ndarray) else None
    if array is not None and array.ndim >= 1 and array.shape[0] == size:
        return array[k]
    return value
