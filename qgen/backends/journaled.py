"""Primitives whose every job is journaled and charged to the run's shot ledger.

Wrapping the estimator/sampler (rather than the training or sampling loops) keeps the rules in
one place:

* before anyone waits on a job its ID is in ``jobs.jsonl``, and its shots are in the ledger;
* before the first submission of a process, every job an interrupted run left ``submitted`` is
  retrieved by its ID (``service.job(id)`` on hardware), so nothing queued or running at IBM is
  ever submitted twice; an identical request (same circuits, parameter values and observables)
  under the same settings (executor options, precision) is answered from the journal; under other
  settings (backends.toml edited between a kill and the resume) the user chooses: reuse or resubmit;
* a job that would pass the budget is refused before submission;
* a ``run`` with more PUBs than the spec's ``max_pubs_per_job`` goes out as several jobs of at most
  that many PUBs, each journaled and checked on its own (executor_cost.pub_groups, which the planner
  counts the same way);
* estimator PUBs that differ only in their observable (EstimatorQNN sends one per readout) go out
  as ONE PUB with an ``(n_obs, ...)`` observable array: the executor measures all Z readouts from
  the same shots, so this costs what one readout costs (``merge_observables``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit import qasm3
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2, DataBin, PrimitiveResult, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qgen.backends.executor_cost import executor_job, pub_groups
from qgen.backends.executor_options import estimator_options, sampler_options
from qgen.backends.job_files import job_files
from qgen.backends.journal import JobJournal, submit_or_resume
from qgen.backends.ledger import ShotLedger
from qgen.errors import QgenError

if TYPE_CHECKING:
    from qgen.rundir import RunDir


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
    #: QuantumBitSource passes ``request=`` (its pool's job number) to samplers that say so.
    journals_requests = False

    def __init__(self, inner: Any, spec: Any, service: Any | None = None, local: bool = False,
                 on_mismatch: str | None = None):
        """``service``: the QiskitRuntimeService that can fetch this run's jobs again by their ID
        (None locally, where a job lives only as long as its process). ``local``: journal in the
        ``--local`` files (job_files.py). ``on_mismatch``: what to do with a journaled job that asked
        for the same thing under other settings: "reuse", "resubmit", or None (refuse, and say so)."""
        self.inner = inner
        self.spec = spec
        self.service = service
        self.local = local
        self.on_mismatch = on_mismatch
        self.journal: JobJournal | None = None
        self.ledger: ShotLedger | None = None
        self.limit: int | None = None
        self._recovered = False
        self._circuit_digests: dict[int, tuple[Any, str]] = {}
        #: journaled jobs reused under other settings (the user's "reuse"), for the provenance of results
        self.reused_under_other_settings: list[dict[str, Any]] = []

    def attach(self, run: RunDir, shot_budget: int | None = None) -> None:
        """Journal into ``run`` and charge its one ledger (``budget.json``) of this kind."""
        files = job_files(run, self.local)
        self.limit = shot_budget if shot_budget is not None else self.spec.shot_budget
        self.journal = JobJournal(files.journal, files.results, local=self.local)
        self.ledger = ShotLedger(run, local=self.local)
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

    def _settings(self, **extra: Any) -> dict[str, Any]:
        """Everything of the spec that changes what a job returns (the executor options, flattened),
        plus ``extra`` (e.g. the PUBs' precision); the simulator seed and job tags do not count."""
        options = self._options().model_dump(mode="json")
        for ignored in ("environment", "simulator", "experimental"):
            options.pop(ignored, None)
        return {**_flatten(options), **extra}

    def _options(self):
        raise NotImplementedError

    def _run_in_jobs(self, pubs: list, request_parts: Callable[[list], list], settings: Callable[[list], dict],
                     submit: Callable[[list], Any]) -> CompletedJob:
        """``pubs`` in jobs of at most ``spec.max_pubs_per_job`` PUBs (``pub_groups``), each journaled and
        checked on its own; the results of all, in the order of ``pubs``. A run that fits one job is
        asked exactly as before the limit existed, so a journaled job of an older run still matches."""
        groups = pub_groups(pubs, self.spec.max_pubs_per_job)
        if len(groups) == 1:
            return self._submit(pubs, request_parts(pubs), settings(pubs), lambda: submit(pubs))
        jobs = [self._submit(group, request_parts(group) + [["job", index, len(groups)]], settings(group),
                             lambda group=group: submit(group))
                for index, group in enumerate(groups)]
        results = [pub_result for job in jobs for pub_result in job.result()]
        ids = [job.job_id() for job in jobs]
        return CompletedJob(PrimitiveResult(results, metadata={"job_ids": ids}), ",".join(ids))

    def _submit(self, pubs: list, request_parts: list, settings: dict, submit) -> CompletedJob:
        if self.journal is None:
            raise QgenError(f"{self.spec.name}: jobs need a run directory to be journaled in (internal error)")
        if not self._recovered:  # an interrupted run's jobs first: never submit what may still come back
            self.journal.recover(self.service)
            self.ledger.sync(self.spec.name, self.limit)  # settling may have changed what is charged
            self._recovered = True
        request = _sha(request_parts)
        key = _sha([request, settings])
        previous = self.journal.find(key)
        if previous is None:
            previous = self._other_settings(self.journal.find_request(request), settings)
        job_plan = executor_job(pubs, self.spec, self.kind)

        def checked_submit():
            self.ledger.budget(self.spec.name, self.limit).check(job_plan)
            return submit()

        def charge(job) -> None:
            self.ledger.sync(self.spec.name, self.limit)

        shots = max((p.shots for job in job_plan.jobs for p in job.pubs), default=0)
        try:
            result = submit_or_resume(self.journal, key, checked_submit, kind=self.kind, backend=self.spec.name,
                                      pub_shapes=[p.shape for p in pubs], shots=shots,
                                      executions=job_plan.executions, service=self.service, on_submit=charge,
                                      request=request, settings=settings, previous=previous)
        finally:  # a job that failed while we waited is charged what it ran, also when that ends the command
            self.ledger.sync(self.spec.name, self.limit)
        entry = self.journal.find(key) or previous
        return CompletedJob(result, entry.job_id if entry else "")

    def _other_settings(self, entry, settings: dict):
        """A journaled job asked for the same under other settings (backends.toml edited between a kill
        and the resume): reuse it or submit anew as the user chose; without a choice, refuse and say so."""
        if entry is None:
            return None
        changed = sorted(k for k in set(entry.settings) | set(settings) if entry.settings.get(k) != settings.get(k))
        if self.on_mismatch == "reuse":
            self.reused_under_other_settings.append(
                {"job_id": entry.job_id, "kind": self.kind,
                 "settings": {k: entry.settings.get(k) for k in changed}})
            return entry
        if self.on_mismatch == "resubmit":
            return None
        diff = ", ".join(f"{k}: {entry.settings.get(k)!r} -> {settings.get(k)!r}" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise QgenError(f"{self.kind} job {entry.job_id} in {self.journal.path.name} asked for the same under other "
                        f"settings of backend {self.spec.name} ({diff}{more}); pass --journaled-jobs reuse to use its "
                        f"result, or --journaled-jobs resubmit to pay for a new job")


class JournaledEstimator(_Journaled, BaseEstimatorV2):
    kind = "estimator"

    def _options(self):
        return estimator_options(self.spec)

    def run(self, pubs, *, precision: float | None = None):
        # EstimatorQNN passes its default_precision, 0.0 for a spec with shots only: 0 means "not
        # given" (the runtime's default_shots then apply), never a target of zero error
        precision = precision or self.spec.precision or None
        coerced = [EstimatorPub.coerce(p, precision) for p in pubs]
        merged, members = merge_observables(coerced)
        job = self._run_in_jobs(
            merged,
            lambda group: [[self._digest(p.circuit), p.parameter_values.as_array().tolist(), p.observables.tolist()]
                           for p in group],
            lambda group: self._settings(pub_precision=[p.precision for p in group]),
            lambda group: self.inner.run(group, precision=precision))
        return CompletedJob(split_results(job.result(), members, len(coerced)), job.job_id())


class JournaledSampler(_Journaled, BaseSamplerV2):
    kind = "sampler"
    journals_requests = True

    def _options(self):
        return sampler_options(self.spec)

    def run(self, pubs, *, shots: int | None = None, request: str | None = None):
        """``request``: what this job is for, when the caller consumes each job's bits exactly once (the
        entropy pool passes its own identity and job number): after a kill, the same request gets the
        journaled job's bits, whatever its shots. Without one, every call is a new job: replaying an
        old job's bits would hand out the same randomness twice."""
        shots = shots or self.spec.shots
        coerced = [SamplerPub.coerce(p, shots) for p in pubs]
        fresh = uuid.uuid4().hex

        def parts(group: list) -> list:
            circuits = [self._digest(p.circuit) for p in group]
            return [circuits, [p.shots for p in group], fresh] if request is None else [circuits, request]

        def settings(group: list) -> dict:
            found = self._settings()
            if request is not None:  # the shots are the pool's to count (it reads them from the result)
                found.pop("default_shots", None)
            return found

        return self._run_in_jobs(coerced, parts, settings, lambda group: self.inner.run(group, shots=shots))


def _sha(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _flatten(options: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in options.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


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
