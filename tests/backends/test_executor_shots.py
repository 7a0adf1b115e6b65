"""What hardware jobs cost, held against qiskit-ibm-runtime's own executor ``prepare()``: the shot
model of the planner, one PUB per circuit, the run's one ledger, and zero resubmissions after an
interruption (stand-in services that count submissions and ``service.job(id)`` look-ups)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2, StatevectorEstimator, StatevectorSampler
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime.executor_estimator.prepare import prepare as prepare_estimator
from qiskit_ibm_runtime.executor_sampler.prepare import prepare as prepare_sampler
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

from qgen.backends.executor_cost import executor_jobs
from qgen.backends.ledger import ShotLedger
from qgen.backends.journaled import JournaledEstimator, JournaledSampler, merge_observables
from qgen.backends.executor_options import estimator_options, sampler_options
from qgen.backends.spec import BackendSpec
from qgen.circuits import AnsatzSpec, build_ansatz
from qgen.errors import QgenError
from qgen.rundir import RunDir

DEVICE = FakeManilaV2()  # 5 qubits: ISA circuits the exact reference estimator can still simulate
RNG = np.random.default_rng(7)


def spec(**fields) -> BackendSpec:
    base = {"name": "hw", "kind": "ibm", "device": "ibm_fez", "precision": 0.015625, "twirling": True,
            "resilience_level": 1, "dynamical_decoupling": True, "shot_budget": 10_000_000}
    return BackendSpec(**(base | fields))


def isa_circuit(qubits: int = 3):
    qc = build_ansatz(AnsatzSpec(qubits, 1, "linear"))
    isa = generate_preset_pass_manager(optimization_level=1, backend=DEVICE, seed_transpiler=3).run(qc.circuit)
    return isa, [obs.apply_layout(isa.layout) for obs in qc.observables]


def executor_shots(program) -> int:
    """What the executor runs: shots per randomization x the items' sizes (Estimator.run logs the same)."""
    return program.shots * sum(item.size() for item in program.items)


def prepared_estimator_shots(pubs, backend_spec: BackendSpec, precision=None) -> int:
    program, _ = prepare_estimator(pubs, estimator_options(backend_spec), precision, backend=DEVICE)
    return executor_shots(program)


def per_observable_pubs(isa, observables, rows: int):
    values = RNG.uniform(-1, 1, (rows, isa.num_parameters))
    return [EstimatorPub.coerce((isa, obs, values)) for obs in observables]


# ------------------------------------------------------------------------------- the shot model


@pytest.mark.parametrize("resilience_level", [0, 1, 2])
@pytest.mark.parametrize("twirling", [False, True])
@pytest.mark.parametrize("precision, shots", [(0.015625, None), (0.05, None), (0.0, 1000)])
def test_planned_estimator_shots_equal_the_runtimes_prepared_program(resilience_level, twirling, precision, shots):
    backend_spec = spec(resilience_level=resilience_level, twirling=twirling, precision=precision, shots=shots)
    isa, observables = isa_circuit()
    merged, _ = merge_observables(per_observable_pubs(isa, observables, rows=5))
    planned = executor_jobs(merged, backend_spec).executions
    assert planned == prepared_estimator_shots(merged, backend_spec, precision or None)
    assert executor_jobs(merged, backend_spec).num_jobs == 1


def test_planned_gradient_shots_count_bindings_not_observables():
    """The parameter-shift PUB: observables (O, 1, 1) against values (1, R, 2S, P)."""
    backend_spec = spec()
    isa, observables = isa_circuit()
    grid = np.empty((len(observables), 1, 1), dtype=object)
    for i, obs in enumerate(observables):
        grid[i, 0, 0] = obs
    shifts = 2 * isa.num_parameters
    pub = EstimatorPub.coerce((isa, grid, RNG.uniform(-1, 1, (1, 4, shifts, isa.num_parameters))))
    planned = executor_jobs([pub], backend_spec).executions
    assert planned == prepared_estimator_shots([pub], backend_spec)
    # 4 rows x 2S shifts bindings, 32 randomizations x 128 shots each, plus the TREX calibration
    assert planned == (4 * shifts * 32 + 32) * 128


@pytest.mark.parametrize("twirling", [False, True])
def test_planned_sampler_shots_equal_the_runtimes_prepared_program(twirling):
    backend_spec = spec(twirling=twirling, shots=1000, precision=0.0)
    isa, _ = isa_circuit()
    measured = isa.copy()
    measured.measure_active()
    pubs = [(measured, RNG.uniform(-1, 1, (3, isa.num_parameters)))]
    program, _ = prepare_sampler(pubs, sampler_options(backend_spec), None, backend=DEVICE)
    from qiskit.primitives.containers.sampler_pub import SamplerPub

    coerced = [SamplerPub.coerce(p, 1000) for p in pubs]
    assert executor_jobs(coerced, backend_spec, "sampler").executions == executor_shots(program)


def test_one_pub_per_circuit_cuts_the_forward_shots():
    """The issue's measurement: 8 readouts of a batch of 4 cost 135,168 shots as 8 PUBs, 20,480 as one."""
    backend_spec = spec()
    isa, observables = isa_circuit(qubits=5)
    pubs = per_observable_pubs(isa, observables, rows=4)
    merged, members = merge_observables(pubs)
    assert len(merged) == 1 and members == [[0, 1, 2, 3, 4]] and merged[0].shape == (5, 4)
    separate, together = prepared_estimator_shots(pubs, backend_spec), prepared_estimator_shots(merged, backend_spec)
    assert (separate, together) == ((5 * 4 * 32 + 32) * 128, (4 * 32 + 32) * 128)
    assert executor_jobs(merged, backend_spec).executions == together


# ------------------------------------------------------------ journaled primitives and the ledger


class PreparingEstimator(BaseEstimatorV2):
    """Stand-in for the executor Estimator: counts submissions and the shots of the program the
    runtime's prepare() builds from what it receives, and answers exactly."""

    def __init__(self, backend_spec: BackendSpec) -> None:
        super().__init__()
        self.options = estimator_options(backend_spec)
        self.submissions = 0
        self.shots = 0
        self.received: list = []
        self._exact = StatevectorEstimator()

    def run(self, pubs, *, precision=None):
        pubs = list(pubs)
        self.submissions += 1
        self.received.append((pubs, precision))
        self.shots += executor_shots(prepare_estimator(pubs, self.options, precision, backend=DEVICE)[0])
        return self._exact.run([(p.circuit, p.observables, p.parameter_values) for p in pubs])


class PreparingSampler(BaseSamplerV2):
    def __init__(self, backend_spec: BackendSpec) -> None:
        super().__init__()
        self.options = sampler_options(backend_spec)
        self.submissions = 0
        self.shots = 0
        self._sampler = StatevectorSampler(seed=1)

    def run(self, pubs, *, shots=None):
        pubs = list(pubs)
        self.submissions += 1
        self.shots += executor_shots(prepare_sampler(pubs, self.options, shots, backend=DEVICE)[0])
        return self._sampler.run(pubs, shots=shots)


def test_estimator_and_sampler_charge_one_ledger_exactly_what_the_executor_runs(tmp_path: Path):
    backend_spec = spec()
    isa, observables = isa_circuit()
    estimator_inner, sampler_inner = PreparingEstimator(backend_spec), PreparingSampler(backend_spec)
    estimator = JournaledEstimator(estimator_inner, backend_spec)
    sampler = JournaledSampler(sampler_inner, backend_spec)
    measured = isa.copy()
    measured.measure_active()
    with RunDir(tmp_path).lock():
        for primitive in (estimator, sampler):
            primitive.attach(RunDir(tmp_path))
        pubs = [(isa, obs, RNG.uniform(-1, 1, (3, isa.num_parameters))) for obs in observables]
        estimator.run(pubs).result()
        sampler.run([(measured, RNG.uniform(-1, 1, (2, isa.num_parameters)))], shots=4096).result()
        estimator.run([(isa, observables[0], RNG.uniform(-1, 1, (2, isa.num_parameters)))]).result()
    assert estimator_inner.submissions == 2 and sampler_inner.submissions == 1
    ledger = json.loads((tmp_path / "budget.json").read_text())["hw"]
    assert ledger["spent"] == estimator_inner.shots + sampler_inner.shots  # to the shot, both primitives
    journal = [json.loads(line) for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert sum(line["executions"] for line in journal if line["status"] == "submitted") == ledger["spent"]


def test_merged_results_come_back_per_observable_and_match_the_exact_values(tmp_path: Path):
    backend_spec = spec()
    isa, observables = isa_circuit()
    inner = PreparingEstimator(backend_spec)
    estimator = JournaledEstimator(inner, backend_spec)
    values = RNG.uniform(-1, 1, (4, isa.num_parameters))
    with RunDir(tmp_path).lock():
        estimator.attach(RunDir(tmp_path))
        result = estimator.run([(isa, obs, values) for obs in observables]).result()
    sent, _ = inner.received[0]
    assert len(sent) == 1 and sent[0].observables.shape == (3, 1)  # one PUB for the circuit
    exact = StatevectorEstimator().run([(isa, obs, values) for obs in observables]).result()
    assert len(result) == 3
    for got, want in zip(result, exact):
        assert got.data.evs.shape == (4,)
        np.testing.assert_allclose(got.data.evs, want.data.evs, atol=1e-12)


def test_max_pubs_per_job_sends_a_run_as_several_jobs_as_planned(tmp_path: Path):
    """max_pubs_per_job = 2: three circuits' PUBs go out as two journaled jobs (2 + 1 PUBs), the results
    come back per PUB in order, the ledger holds what the planner counts, and a rerun resubmits nothing."""
    backend_spec = spec(max_pubs_per_job=2)
    isa, observables = isa_circuit()
    values = [RNG.uniform(-1, 1, (2, isa.num_parameters)) for _ in range(3)]
    pubs = [(isa, obs, v) for v in values for obs in observables]
    merged, _ = merge_observables([EstimatorPub.coerce(p, backend_spec.precision) for p in pubs])
    job_plan = executor_jobs(merged, backend_spec)
    assert len(merged) == 3 and [len(job.pubs) for job in job_plan.jobs] == [2, 1]
    inner = PreparingEstimator(backend_spec)
    with RunDir(tmp_path).lock():
        estimator = JournaledEstimator(inner, backend_spec)
        estimator.attach(RunDir(tmp_path))
        result = estimator.run(pubs).result()
        again = JournaledEstimator(PreparingEstimator(backend_spec), backend_spec)
        again.attach(RunDir(tmp_path))
        replayed = again.run(pubs).result()
    assert inner.submissions == job_plan.num_jobs == 2
    assert ShotLedger(RunDir(tmp_path)).spent("hw") == inner.shots == job_plan.executions
    assert again.inner.submissions == 0
    exact = StatevectorEstimator().run(pubs).result()
    assert len(result) == len(replayed) == len(pubs)
    for got, replay, want in zip(result, replayed, exact):
        np.testing.assert_allclose(got.data.evs, want.data.evs, atol=1e-12)
        np.testing.assert_allclose(replay.data.evs, want.data.evs, atol=1e-12)


def test_shots_without_precision_run_on_the_runtime_default_shots(tmp_path: Path):
    """EstimatorQNN passes precision 0.0 for a spec without one; that means 'use the shots'."""
    backend_spec = spec(precision=0.0, shots=2000)
    isa, observables = isa_circuit()
    inner = PreparingEstimator(backend_spec)
    estimator = JournaledEstimator(inner, backend_spec)
    with RunDir(tmp_path).lock():
        estimator.attach(RunDir(tmp_path))
        estimator.run([(isa, observables[0], RNG.uniform(-1, 1, (2, isa.num_parameters)))], precision=0.0).result()
    (pubs, precision), = inner.received
    assert precision is None and pubs[0].precision is None
    # 2000 shots twirled: 32 randomizations x 64 shots (rounded up to 2,048), 2 bindings + TREX
    assert json.loads((tmp_path / "budget.json").read_text())["hw"]["spent"] == inner.shots == (2 * 32 + 32) * 64


def test_writing_the_ledger_needs_the_run_lock(tmp_path: Path):
    from qgen.backends.journal import JobJournal

    class Job:
        def job_id(self):
            return "job-1"

    JobJournal(tmp_path / "jobs.jsonl", tmp_path / "job_results").record(
        Job(), kind="sampler", backend="hw", pub_shapes=[()], shots=10)
    with pytest.raises(QgenError, match="only while this process holds the run's lock"):
        ShotLedger(RunDir(tmp_path)).sync("hw", None)
    with RunDir(tmp_path).lock():
        ShotLedger(RunDir(tmp_path)).sync("hw", None)
    assert ShotLedger(RunDir(tmp_path)).spent("hw") == 10


# ------------------------------------------------------------------- zero resubmissions, hardware


class Interrupted(BaseException):  # a dying process runs no except-Exception handler
    """Stands in for the process dying while it waits on a job."""


class QueuedJob:
    """A hardware job seen from a process that is killed while waiting (``result()`` raises)."""

    def __init__(self, job_id: str, inner_job) -> None:
        self._id, self._inner = job_id, inner_job

    def job_id(self) -> str:
        return self._id

    def result(self):
        raise Interrupted


class ServiceJob:
    def __init__(self, job_id: str, result, status: str = "DONE") -> None:
        self._id, self._result, self._status = job_id, result, status

    def job_id(self) -> str:
        return self._id

    def status(self) -> str:
        return self._status

    def result(self):
        return self._result


class StandInService:
    """QiskitRuntimeService.job(id) without the network: the jobs IBM still holds."""

    is_local = False

    def __init__(self) -> None:
        self.jobs: dict[str, object] = {}
        self.looked_up: list[str] = []

    def job(self, job_id: str) -> ServiceJob:
        self.looked_up.append(job_id)
        return ServiceJob(job_id, self.jobs[job_id])


class HardwareEstimator(PreparingEstimator):
    """Submits to the stand-in service; the first process dies waiting on its first job."""

    def __init__(self, backend_spec, service: StandInService, die_waiting: bool) -> None:
        super().__init__(backend_spec)
        self.service, self.die_waiting = service, die_waiting

    def run(self, pubs, *, precision=None):
        job = super().run(pubs, precision=precision)
        job_id = f"ibm-{len(self.service.jobs)}"
        self.service.jobs[job_id] = job.result()
        return QueuedJob(job_id, job) if self.die_waiting else ServiceJob(job_id, job.result())


def _interrupted_while_waiting(tmp_path: Path, backend_spec, service, pubs) -> HardwareEstimator:
    """Submit ``pubs`` through the journal and die waiting for the job (a kill mid-job); the estimator."""
    first = HardwareEstimator(backend_spec, service, die_waiting=True)
    with RunDir(tmp_path).lock():
        estimator = JournaledEstimator(first, backend_spec, service)
        estimator.attach(RunDir(tmp_path))
        with pytest.raises(Interrupted):
            estimator.run(pubs)
    return first


def test_a_job_still_queued_at_ibm_is_retrieved_not_resubmitted(tmp_path: Path):
    backend_spec = spec()
    isa, observables = isa_circuit()
    service = StandInService()
    pubs = [(isa, obs, RNG.uniform(-1, 1, (3, isa.num_parameters))) for obs in observables]
    first = _interrupted_while_waiting(tmp_path, backend_spec, service, pubs)
    spent = ShotLedger(RunDir(tmp_path)).spent("hw")
    assert first.submissions == 1 and spent == first.shots  # charged at submission, before the wait

    # a new process, the same request: the journaled job is fetched by its ID
    second = HardwareEstimator(backend_spec, service, die_waiting=False)
    with RunDir(tmp_path).lock():
        estimator = JournaledEstimator(second, backend_spec, service)
        estimator.attach(RunDir(tmp_path))
        result = estimator.run(pubs).result()
    assert second.submissions == 0 and service.looked_up == ["ibm-0"]
    assert len(result) == 3 and ShotLedger(RunDir(tmp_path)).spent("hw") == spent
    statuses = [json.loads(line)["status"] for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert statuses == ["submitted", "done"]


def test_every_pending_job_is_retrieved_before_anything_new_is_submitted(tmp_path: Path):
    """A sampler job interrupted mid-wait is fetched by ID (its result stored) before the next job goes out."""
    backend_spec = spec()
    isa, observables = isa_circuit()
    service = StandInService()
    measured = isa.copy()
    measured.measure_active()

    class DyingSampler(PreparingSampler):
        def run(self, pubs, *, shots=None):
            job = super().run(pubs, shots=shots)
            service.jobs["ibm-s"] = job.result()
            return QueuedJob("ibm-s", job)

    with RunDir(tmp_path).lock():
        sampler = JournaledSampler(DyingSampler(backend_spec), backend_spec, service)
        sampler.attach(RunDir(tmp_path))
        with pytest.raises(Interrupted):
            sampler.run([(measured, RNG.uniform(-1, 1, (1, isa.num_parameters)))], shots=256)
    order: list[str] = []
    original_job = service.job
    service.job = lambda job_id: (order.append(f"lookup {job_id}"), original_job(job_id))[1]
    inner = HardwareEstimator(backend_spec, service, die_waiting=False)
    inner_run = inner.run
    inner.run = lambda pubs, **kw: (order.append("submit"), inner_run(pubs, **kw))[1]
    with RunDir(tmp_path).lock():
        estimator = JournaledEstimator(inner, backend_spec, service)
        estimator.attach(RunDir(tmp_path))
        estimator.run([(isa, observables[0], RNG.uniform(-1, 1, (1, isa.num_parameters)))]).result()
    assert order == ["lookup ibm-s", "submit"]
    assert (tmp_path / "job_results" / "ibm-s.json").is_file()


def test_a_job_that_failed_at_ibm_is_marked_and_submitted_again_and_charged_again(tmp_path: Path):
    backend_spec = spec()
    isa, observables = isa_circuit()
    service = StandInService()
    pubs = [(isa, observables[0], RNG.uniform(-1, 1, (2, isa.num_parameters)))]
    first = _interrupted_while_waiting(tmp_path, backend_spec, service, pubs)
    service.job = lambda job_id: ServiceJob(job_id, None, status="ERROR")
    second = HardwareEstimator(backend_spec, service, die_waiting=False)
    with RunDir(tmp_path).lock():
        estimator = JournaledEstimator(second, backend_spec, service)
        estimator.attach(RunDir(tmp_path))
        estimator.run(pubs).result()
    assert second.submissions == 1
    assert ShotLedger(RunDir(tmp_path)).spent("hw") == first.shots + second.shots
    statuses = [json.loads(line)["status"] for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert statuses == ["submitted", "failed", "submitted", "done"]


# -------------------------------------------------------------------------- the training planner


def test_training_plan_is_what_one_step_charges(tmp_path: Path):
    """One forward + one backward of EstimatorQNN through the journaled estimator: two jobs, and the
    ledger holds exactly the planner's count (the gradient's readout axis adds no shots)."""
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    from qgen.planner import training_jobs
    from qgen.quantum import BatchedParamShiftEstimatorGradient

    backend_spec = spec()
    qc = build_ansatz(AnsatzSpec(3, 1, "linear"))
    isa = generate_preset_pass_manager(optimization_level=1, backend=DEVICE, seed_transpiler=3).run(qc.circuit)
    inner = PreparingEstimator(backend_spec)
    estimator = JournaledEstimator(inner, backend_spec)
    qnn = EstimatorQNN(circuit=isa, observables=[o.apply_layout(isa.layout) for o in qc.observables],
                       input_params=list(qc.input_params), weight_params=list(qc.weight_params),
                       estimator=estimator, gradient=BatchedParamShiftEstimatorGradient(estimator),
                       input_gradients=True, default_precision=backend_spec.precision)
    rows = 2
    with RunDir(tmp_path).lock():
        estimator.attach(RunDir(tmp_path))
        inputs, weights = RNG.uniform(-1, 1, (rows, qnn.num_inputs)), RNG.uniform(-1, 1, qnn.num_weights)
        qnn.forward(inputs, weights)
        qnn.backward(inputs, weights)
    job_plan = training_jobs(backend_spec, isa, rows, steps=1)
    assert inner.submissions == job_plan.num_jobs == 2
    assert ShotLedger(RunDir(tmp_path)).spent("hw") == inner.shots == job_plan.executions
