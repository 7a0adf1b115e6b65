"""What a job costs on the executor primitives of qiskit-ibm-runtime: shots and QPU time.

Counting: a shot is one execution of one circuit. The executor primitives turn each PUB into a
quantum program whose items the device runs (``executor_*/prepare.py``); what that program runs is
what a job costs, so this model counts the same way (``ExecutorShots``), from the options that
executor_options.py makes of a backend spec:

  * an estimator PUB runs once per *parameter binding* and measurement basis, never once per
    observable: an ``(n_obs, 1)`` observable array against ``(R, P)`` values costs R bindings;
  * with twirling (on, or implied by resilience_level >= 1) the shots of a binding become
    ``num_randomizations x shots_per_randomization`` (the runtime's ``calculate_twirling_shots``
    rounds up: 1,000 shots run as 16 x 64 = 1,024);
  * ZNE (resilience_level 2) runs every PUB once per noise factor;
  * TREX readout mitigation (resilience_level >= 1) adds one calibration item per job.

``tests/backends/test_executor_shots.py`` holds this model against the runtime's own ``prepare()``.

Jobs: a journaled primitive (journaled.py) sends one ``run`` as one job, or, where the spec sets
``max_pubs_per_job``, as one job per that many PUBs (``pub_groups``, which ``executor_jobs`` costs
the same way).

Usage model (documented, deliberately simple, labelled "local model" wherever it is shown): QPU
seconds ~ SECONDS_PER_JOB per job + SECONDS_PER_EXECUTION per shot. The service's own estimate
(``RuntimeJobV2.usage_estimation["quantum_seconds"]`` of a ``dry_run=True`` job) is used where it
can be had (runtime.py, ``service_usage_estimate``).

What a command will submit is qgen.planner's answer; what a run spent is the ledger's (ledger.py).
qiskit-ibm-runtime is imported inside the methods that need it (deferred): it takes ~0.9 s to import
(measured), qgen.planner imports this module for every plan, and only plans for kind ``ibm`` need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from qiskit.quantum_info import PauliList

from qgen.backends.executor_options import estimator_options, sampler_options
from qgen.backends.spec import BackendSpec, shots_for_precision
from qgen.errors import QgenError

SECONDS_PER_EXECUTION = 250e-6
SECONDS_PER_JOB = 2.0
LOCAL_MODEL = "local model"

T = TypeVar("T")


@dataclass(frozen=True)
class PubCost:
    """One PUB as the planner sees it: how many circuit bindings the executor runs (parameter
    bindings x measurement bases), and the shots asked for each."""

    bindings: int
    shots: int

    @property
    def executions(self) -> int:
        return self.bindings * self.shots


@dataclass(frozen=True)
class ExecutorShots:
    """How qiskit-ibm-runtime's executor primitives turn PUBs into shots (see the module docstring).
    The defaults are a primitive that runs each binding ``shots`` times and nothing else."""

    twirled: bool = False
    num_randomizations: int | str = "auto"
    shots_per_randomization: int | str = "auto"
    noise_factors: int = 1
    trex: bool = False
    trex_randomizations: int | str = "auto"

    @classmethod
    def for_spec(cls, spec: BackendSpec, kind: str) -> ExecutorShots:
        """The shot model of ``spec``'s estimator (``kind="estimator"``) or sampler."""
        if kind == "estimator":
            return cls.for_estimator(estimator_options(spec))
        return cls.for_sampler(sampler_options(spec))

    @classmethod
    def for_estimator(cls, options: Any) -> ExecutorShots:
        """From executor ``EstimatorOptions``, finalized as ``Estimator.run`` finalizes them."""
        # deferred: see the module docstring
        from qiskit_ibm_runtime.executor_estimator.finalize_options import finalize_estimator_options
        from qiskit_ibm_runtime.executor_estimator.utils import resolve_noise_factors

        final = finalize_estimator_options(options)
        twirling, resilience = final.twirling, final.resilience
        if resilience.pec_mitigation:  # never set from a backends.toml spec
            raise QgenError("cannot plan PEC-mitigated estimator jobs")
        factors = len(resolve_noise_factors(resilience.zne)[0]) if resilience.zne_mitigation else 1
        trex = bool(resilience.measure_mitigation)
        return cls(twirled=bool(twirling.enable_gates or twirling.enable_measure),
                   num_randomizations=twirling.num_randomizations,
                   shots_per_randomization=twirling.shots_per_randomization,
                   noise_factors=factors, trex=trex,
                   trex_randomizations=resilience.measure_noise_learning.num_randomizations if trex else "auto")

    @classmethod
    def for_sampler(cls, options: Any) -> ExecutorShots:
        """From executor ``SamplerOptions`` (the sampler twirls, or runs each binding ``shots`` times)."""
        from qiskit_ibm_runtime.executor_sampler.finalize_options import finalize_sampler_options  # deferred

        twirling = finalize_sampler_options(options).twirling
        return cls(twirled=bool(twirling.enable_gates or twirling.enable_measure),
                   num_randomizations=twirling.num_randomizations,
                   shots_per_randomization=twirling.shots_per_randomization)

    def split(self, shots: int) -> tuple[int, int]:
        """(randomizations, shots per randomization) for ``shots`` per binding: the runtime's rule."""
        if not self.twirled:
            return 1, shots
        from qiskit_ibm_runtime.executor.calculate_twirling_shots import calculate_twirling_shots  # deferred

        return calculate_twirling_shots(shots, self.num_randomizations, self.shots_per_randomization)

    def job_shots(self, pubs: Sequence[PubCost]) -> int:
        """Shots of one executor job holding ``pubs`` (one program: they share one shot count)."""
        pubs = [p for p in pubs if p.bindings > 0]
        if not pubs:
            return 0
        if len({p.shots for p in pubs}) != 1:
            raise QgenError(f"one executor job runs one shot count; got {sorted({p.shots for p in pubs})}")
        randomizations, per_randomization = self.split(pubs[0].shots)
        items = sum(p.bindings for p in pubs) * randomizations * self.noise_factors
        if self.trex:
            trex = randomizations if self.trex_randomizations == "auto" else int(self.trex_randomizations)
            items += trex
        return items * per_randomization


@dataclass(frozen=True)
class PlannedJob:
    pubs: tuple[PubCost, ...]
    cost: ExecutorShots | None = None  # None: bindings x shots (a plain primitive)

    @property
    def executions(self) -> int:
        if self.cost is None:
            return sum(pub.executions for pub in self.pubs)
        return self.cost.job_shots(self.pubs)


@dataclass(frozen=True)
class JobPlan:
    """How a list of PUBs splits into jobs, and what it costs."""

    jobs: tuple[PlannedJob, ...]
    estimated_seconds: float
    usage_source: str = LOCAL_MODEL  # who estimated the QPU seconds

    @classmethod
    def of(cls, jobs: Sequence[PlannedJob]) -> JobPlan:
        """``jobs`` with their QPU seconds by the local usage model."""
        executions = sum(job.executions for job in jobs)
        return cls(tuple(jobs), len(jobs) * SECONDS_PER_JOB + executions * SECONDS_PER_EXECUTION)

    @classmethod
    def none(cls) -> JobPlan:
        """No jobs: what a command that submits nothing costs."""
        return cls((), 0.0)

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

    def __add__(self, other: JobPlan) -> JobPlan:
        source = self.usage_source if self.usage_source == other.usage_source else "mixed estimates"
        return JobPlan(self.jobs + other.jobs, self.estimated_seconds + other.estimated_seconds, source)

    def times(self, n: int) -> JobPlan:
        """The same jobs ``n`` times over (e.g. one plan per model call)."""
        return JobPlan(self.jobs * n, self.estimated_seconds * n, self.usage_source)

    def summary(self) -> str:
        """One line for --dry-run."""
        jobs = f"{self.num_jobs:,} job{'s' if self.num_jobs != 1 else ''}"
        pubs = f"{self.num_pubs:,} PUB{'s' if self.num_pubs != 1 else ''}"
        return (
            f"{jobs}, {pubs}, {self.executions:,} shots (as the executor runs them), "
            f"estimated QPU usage ~{_duration(self.estimated_seconds)} ({self.usage_source})"
        )


def pub_cost(item: Any, default_shots: int | None = None, default_precision: float | None = None) -> PubCost:
    """A PubCost from ``(bindings, shots)``, a PubCost, or a coerced SamplerPub/EstimatorPub.

    An estimator PUB costs its parameter bindings times its measurement bases: the executor
    measures every observable of a binding from the same shots (qubit-wise commuting Paulis share
    a basis), so the observable axis of a broadcast PUB adds no shots.
    """
    if isinstance(item, PubCost):
        return item
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(v, int) for v in item):
        return PubCost(bindings=item[0], shots=item[1])
    shape = getattr(item, "shape", None)
    if shape is None:
        raise QgenError(f"cannot plan {type(item).__name__}: pass coerced PUBs or (bindings, shots) pairs")
    if hasattr(item, "precision"):  # EstimatorPub: shots follow from the target precision
        precision = item.precision or default_precision
        if precision:
            shots = shots_for_precision(precision)
        elif default_shots:
            shots = default_shots
        else:
            raise QgenError("cannot plan an estimator PUB without a precision or shots")
        bindings = math.prod(item.parameter_values.shape) * measurement_bases(item.observables)
        return PubCost(bindings=bindings, shots=shots)
    shots = getattr(item, "shots", None) or default_shots
    if not shots:
        raise QgenError("cannot plan a sampler PUB without shots")
    return PubCost(bindings=math.prod(shape), shots=shots)


def measurement_bases(observables: Any) -> int:
    """How many measurement bases the executor needs for an ObservablesArray: qubit-wise commuting
    groups of all its Pauli terms (1 for any set of Z readouts). Counted as if every binding needs
    every basis, which is exact for the outer-product PUBs qgen sends."""
    labels = sorted({label for obs in observables.ravel().tolist() for label in obs})
    if all(set(label) <= {"I", "Z"} for label in labels):
        return 1
    return len(PauliList(labels).group_commuting(qubit_wise=True))


def pub_groups(pubs: Sequence[T], max_pubs_per_job: int | None) -> list[Sequence[T]]:
    """The PUBs of one primitive ``run``, in the jobs that carry them: in order, at most
    ``max_pubs_per_job`` each (all in one job when it is None; an empty run is one empty job)."""
    if max_pubs_per_job is None or len(pubs) <= max_pubs_per_job:
        return [pubs]
    return [pubs[start:start + max_pubs_per_job] for start in range(0, len(pubs), max_pubs_per_job)]


def executor_job(items: Iterable[Any], spec: BackendSpec, kind: str = "estimator") -> JobPlan:
    """One executor job holding ``items`` (coerced PUBs, PubCosts or ``(bindings, shots)``) on
    ``spec``'s backend, costed as the executor will run it; ``kind``: "estimator" or "sampler"."""
    default_shots = spec.shots if kind == "sampler" or not spec.precision else None
    if kind == "sampler" and default_shots is None and spec.precision:
        default_shots = shots_for_precision(spec.precision)
    pubs = tuple(pub_cost(item, default_shots, spec.precision or None) for item in items)
    return JobPlan.of((PlannedJob(pubs, ExecutorShots.for_spec(spec, kind)),))


def executor_jobs(items: Sequence[Any], spec: BackendSpec, kind: str = "estimator") -> JobPlan:
    """The jobs a journaled primitive's ``run(items)`` submits on ``spec``'s backend (``pub_groups``),
    each costed as the executor will run it."""
    plans = [executor_job(group, spec, kind) for group in pub_groups(list(items), spec.max_pubs_per_job)]
    return sum(plans[1:], plans[0])


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"

