"""A stand-in IBM Quantum service for fault injection: jobs with controllable queue, run and failure
times, a process that can be killed while it waits, a connection that can drop, and independent
counts of what was submitted and what actually ran.

What it shares with the real service is what qgen relies on: ``service.job(id)`` with ``status()``
(RuntimeJobV2's strings), ``result()`` that waits (raising ``RuntimeJobFailureError`` for a failed or
cancelled job), ``metrics()["usage"]``, and executor primitives whose shots are counted by
qiskit-ibm-runtime's own ``prepare()`` from the PUBs and options, never by qgen's planner.

Time is a counter (``clock``): a job is QUEUED for ``queue`` ticks after its submission, RUNNING for
``run`` ticks, then DONE or ERROR (a failure after running: it used QPU time); a CANCELLED job is
cancelled while queued and never ran. A process waiting on a job (``result()``) moves the clock to the
job's end, as waiting does; a killed process does not.

Install it with ``install(monkeypatch, service)``: ``qgen``'s IBM backends then get their runtime
(service, device, Session/Batch, primitives) from here, in-process, hardware and ``--local`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qiskit.primitives import (
    BaseEstimatorV2,
    BaseSamplerV2,
    BitArray,
    DataBin,
    PrimitiveResult,
    PubResult,
    StatevectorEstimator,
)
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit_ibm_runtime.exceptions import RuntimeJobFailureError
from qiskit_ibm_runtime.executor_estimator.prepare import prepare as prepare_estimator
from qiskit_ibm_runtime.executor_sampler.prepare import prepare as prepare_sampler


class Killed(BaseException):
    """The process dies (kill -9, power loss): no ``except Exception`` and no ``finally`` of qgen's
    matters any more; what is on disk is what the next process finds."""


class ConnectionLost(ConnectionError):
    pass


@dataclass
class Fate:
    """How a job goes at the service: ticks queued, ticks running, and how it ends."""

    queue: int = 2
    run: int = 1
    end: str = "DONE"  # "DONE", "ERROR" (after running) or "CANCELLED" (while queued, never ran)


def program_shots(program) -> int:
    """The shots of a runtime executor program: shots per randomization x its items' sizes."""
    return program.shots * sum(item.size() for item in program.items)


class StandInJob:
    def __init__(self, service: StandInService, job_id: str, kind: str, result, shots: int, fate: Fate,
                 request_fingerprint: str) -> None:
        self.service, self._id, self.kind = service, job_id, kind
        self._result, self.shots, self.fate = result, shots, fate
        self.submitted_at = service.clock
        self.fingerprint = request_fingerprint
        self.dry_run = False

    # -- the service's view
    def _state(self) -> str:
        elapsed = self.service.clock - self.submitted_at
        if self.fate.end == "CANCELLED":
            return "QUEUED" if elapsed < self.fate.queue else "CANCELLED"
        if elapsed < self.fate.queue:
            return "QUEUED"
        if elapsed < self.fate.queue + self.fate.run:
            return "RUNNING"
        return self.fate.end

    @property
    def ran(self) -> bool:
        """It used the QPU (its shots were spent): running, done, or failed after running."""
        return self._state() in ("RUNNING", "DONE", "ERROR")

    @property
    def finished(self) -> bool:
        return self._state() in ("DONE", "ERROR", "CANCELLED")

    # -- RuntimeJobV2's interface
    def job_id(self) -> str:
        return self._id

    def status(self) -> str:
        self.service.check_online()
        return self._state()

    def result(self):
        self.service.check_online()
        self.service.waited(self)  # may kill the waiting process
        self.service.clock = max(self.service.clock, self.submitted_at + self.fate.queue + self.fate.run)
        state = self._state()
        if state != "DONE":
            raise RuntimeJobFailureError(f"Unable to retrieve job result. Job {self._id} is {state}.")
        return self._result

    def metrics(self) -> dict:
        self.service.check_online()
        used = self.fate.run if self.ran else 0
        return {"usage": {"qpu_charge_time_seconds": used, "status": "complete" if self.finished else "pending"}}

    @property
    def usage_estimation(self) -> dict:
        return {"quantum_seconds": 1.5}


@dataclass
class StandInService:
    """The IBM side: every job ever submitted, what ran, Sessions open, and the faults to inject."""

    device: object  # the BackendV2 whose target the ISA circuits are for
    is_local = False
    clock: int = 0
    jobs: dict = field(default_factory=dict)
    lookups: list = field(default_factory=list)
    fates: list = field(default_factory=list)     # Fate of each next submission (default: Fate())
    kill_at_wait: int | None = None               # the process dies at its n-th wait from now (1 = next)
    online: bool = True
    sessions_opened: int = 0
    sessions_closed: int = 0
    dry_runs: int = 0

    # -- faults
    def kill_on_wait(self, n: int = 1) -> None:
        self.kill_at_wait = n

    def waited(self, job: StandInJob) -> None:
        if self.kill_at_wait is None:
            return
        self.kill_at_wait -= 1
        if self.kill_at_wait == 0:
            self.kill_at_wait = None
            raise Killed(f"killed while waiting on {job.job_id()}")

    def check_online(self) -> None:
        if not self.online:
            raise ConnectionLost("HTTPSConnectionPool(host='quantum.cloud.ibm.com'): Max retries exceeded")

    def advance(self, ticks: int = 100) -> None:
        """Time passes while no one is connected (the jobs at IBM run on)."""
        self.clock += ticks

    # -- QiskitRuntimeService
    def job(self, job_id: str) -> StandInJob:
        self.check_online()
        self.lookups.append(job_id)
        return self.jobs[job_id]

    def submit(self, kind: str, result, shots: int, fingerprint: str, prefix: str = "ibm") -> StandInJob:
        self.check_online()
        fate = self.fates.pop(0) if self.fates else Fate()
        job = StandInJob(self, f"{prefix}-{len(self.jobs)}", kind, result, shots, fate, fingerprint)
        self.jobs[job.job_id()] = job
        return job

    # -- what the tests compare against
    @property
    def submitted(self) -> list[StandInJob]:
        """Hardware jobs submitted (dry-run estimates and --local jobs are not)."""
        return [job for job in self.jobs.values() if not job.dry_run and job.job_id().startswith("ibm-")]

    @property
    def shots_run(self) -> int:
        return sum(job.shots for job in self.submitted if job.ran)

    @property
    def local_shots_run(self) -> int:
        return sum(job.shots for job in self.jobs.values() if job.job_id().startswith("local-") and job.ran)

    def ran_twice(self) -> list[str]:
        """Fingerprints of requests the QPU ran more than once (a failed run and its redo excepted)."""
        seen: dict[str, int] = {}
        for job in self.submitted:
            if job._state() in ("RUNNING", "DONE", "QUEUED"):
                seen[job.fingerprint] = seen.get(job.fingerprint, 0) + 1
        return [key for key, count in seen.items() if count > 1]


class StandInEstimator(BaseEstimatorV2):
    """The executor Estimator against the stand-in: shots from the runtime's prepare(), values exact
    (on the circuit's active qubits, so a 156-qubit ISA circuit is cheap)."""

    def __init__(self, service: StandInService, options, prefix: str = "ibm") -> None:
        super().__init__()
        self.service, self.options, self.prefix = service, options, prefix

    def run(self, pubs, *, precision=None, dry_run: bool = False):
        from qgen.backends.local_worker import reduce_estimator_pubs

        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        shots = program_shots(prepare_estimator(coerced, self.options, precision, backend=self.service.device)[0])
        _, reduced = reduce_estimator_pubs(coerced)
        result = StatevectorEstimator().run([(p.circuit, p.observables, p.parameter_values) for p in reduced]).result()
        fingerprint = repr([(p.parameter_values.as_array().round(12).tolist(), p.observables.tolist())
                            for p in coerced])
        job = self.service.submit("estimator", result, shots, fingerprint, self.prefix)
        if dry_run:
            self.service.dry_runs += 1
            job.dry_run = True
            job.fate = Fate(0, 0, "DONE")
        return job


class StandInSampler(BaseSamplerV2):
    """The executor Sampler against the stand-in: shots from the runtime's prepare(), fair random bits
    seeded by the submission's number (a rerun that reuses a job gets the same bits)."""

    def __init__(self, service: StandInService, options, prefix: str = "ibm") -> None:
        super().__init__()
        self.service, self.options, self.prefix = service, options, prefix

    def run(self, pubs, *, shots=None):
        coerced = [SamplerPub.coerce(pub, shots) for pub in pubs]
        count = program_shots(prepare_sampler(coerced, self.options, shots, backend=self.service.device)[0])
        rng = np.random.default_rng(len(self.service.jobs))
        results = []
        for pub in coerced:
            register = pub.circuit.cregs[0]
            bits = rng.integers(0, 2, (pub.shots, register.size)).astype(bool)
            results.append(PubResult(DataBin(**{register.name: BitArray.from_bool_array(bits, order="little")},
                                             shape=pub.shape)))
        return self.service.submit("sampler", PrimitiveResult(results), count,
                                   f"sampler {len(self.service.jobs)}", self.prefix)


class StandInMode:
    """A Session/Batch at the stand-in: counted open and closed."""

    def __init__(self, service: StandInService) -> None:
        self.service = service
        service.sessions_opened += 1

    def close(self) -> None:
        self.service.sessions_closed += 1


def standin_runtime(spec, service: StandInService, local: bool):
    """qgen's own RuntimePrimitives (so when it opens and closes a Session/Batch is qgen's code) on the
    stand-in: its device, its modes, its primitives. ``local``: the same jobs, journaled as ``--local``
    ones (no service to fetch them from; ids ``local-N``)."""
    from qgen.backends.runtime import RuntimePrimitives

    prefix = "local" if local else "ibm"

    def estimator(mode, options):
        return StandInEstimator(service, options, prefix)

    def sampler(mode, options):
        return StandInSampler(service, options, prefix)

    opens = None if local or spec.execution_mode == "job" else (lambda: StandInMode(service))
    return RuntimePrimitives(spec, service.device, open_mode=opens, service=None if local else service,
                             primitive_classes=(estimator, sampler))


def install(monkeypatch, service: StandInService) -> None:
    """Every IBM backend built from now on talks to ``service``."""
    import qgen.backends.runtime as runtime

    monkeypatch.setattr(runtime, "runtime_primitives", lambda spec, local: standin_runtime(spec, service, local))
