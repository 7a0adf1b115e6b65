"""Job journal (write-before-wait, resume without resubmitting) and shot budgets / job plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from qiskit.primitives import StatevectorSampler
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qgen.backends.executor_cost import JobPlan, PlannedJob, executor_jobs, pub_cost
from qgen.backends.journal import JobJournal, submit_or_resume
from qgen.backends.ledger import ShotBudget
from qgen.backends.spec import BackendSpec
from qgen.errors import QgenError
from qgen.rundir import RunDir

JOB_META = {"kind": "sampler", "backend": "fake_brisbane", "pub_shapes": [(4,), (2, 3)], "shots": 100}


class Crash(BaseException):  # a dying process runs no except-Exception handler
    """Stands in for the process dying (Ctrl-C, OOM, node reboot)."""


class FakeJob:
    """A job whose result() can check the journal, or crash like an interrupted wait."""

    def __init__(self, job_id: str, result: object, on_wait=None) -> None:  # noqa: ANN001
        self._job_id = job_id
        self._result = result
        self._on_wait = on_wait

    def job_id(self) -> str:
        return self._job_id

    def status(self) -> str:
        return "DONE"

    def result(self) -> object:
        if self._on_wait:
            self._on_wait(self)
        return self._result


def journal_in(run_dir: Path) -> JobJournal:
    run = RunDir(run_dir)
    return JobJournal(run.journal_path, run.job_results_dir)


def journal_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "jobs.jsonl").read_text().splitlines()]


def sampler_result(shots: int = 16) -> object:
    circuit = QuantumCircuit(1)
    circuit.h(0)
    circuit.measure_all()
    return StatevectorSampler(seed=3).run([circuit], shots=shots).result()


# ------------------------------------------------------------------------------------------ journal


def test_journal_line_is_on_disk_before_anyone_waits(tmp_path: Path) -> None:
    journal = journal_in(tmp_path)
    seen: list[dict] = []

    def inspect_journal(job: FakeJob) -> None:  # runs inside job.result(), i.e. while "waiting"
        lines = journal_lines(tmp_path)
        seen.extend(lines)
        assert lines[-1]["job_id"] == job.job_id() and lines[-1]["status"] == "submitted"

    result = submit_or_resume(journal, "step-1", lambda: FakeJob("job-a", sampler_result(), inspect_journal), **JOB_META)
    assert seen and seen[-1]["executions"] == (4 + 6) * 100
    assert seen[-1]["pub_shapes"] == [[4], [2, 3]] and seen[-1]["kind"] == "sampler"
    assert seen[-1]["backend"] == "fake_brisbane" and isinstance(seen[-1]["time"], float)
    assert result[0].data.meas.num_shots == 16
    assert [line["status"] for line in journal_lines(tmp_path)] == ["submitted", "done"]
    assert journal.pending() == []


def test_crash_after_the_result_is_stored_resumes_without_resubmitting(tmp_path: Path) -> None:
    submits: list[str] = []
    original = sampler_result()

    def submit() -> FakeJob:
        submits.append("submit")
        return FakeJob("job-b", original)

    journal = journal_in(tmp_path)
    job = submit()
    journal.record(job, key="step-2", **JOB_META)
    journal.store_result(job.job_id(), job.result())
    # -- crash here: mark_done never ran --
    resumed = journal_in(tmp_path)
    assert [entry.job_id for entry in resumed.pending()] == ["job-b"]
    result = submit_or_resume(resumed, "step-2", submit, **JOB_META)
    assert submits == ["submit"]  # no second submission
    assert result[0].data.meas.get_counts() == original[0].data.meas.get_counts()
    assert resumed.pending() == []


def test_crash_while_waiting_on_hardware_retrieves_the_job_from_the_service(tmp_path: Path) -> None:
    original = sampler_result()
    submits: list[str] = []

    def crash_while_waiting(job: FakeJob) -> None:
        raise Crash

    def submit() -> FakeJob:
        submits.append("submit")
        return FakeJob("job-c", original, crash_while_waiting)

    class Service:  # what QiskitRuntimeService.job(job_id) offers, without the network
        is_local = False

        def __init__(self) -> None:
            self.looked_up: list[str] = []

        def job(self, job_id: str) -> FakeJob:
            self.looked_up.append(job_id)
            return FakeJob(job_id, original)

    with pytest.raises(Crash):
        submit_or_resume(journal_in(tmp_path), "step-3", submit, **JOB_META)
    service = Service()
    result = submit_or_resume(journal_in(tmp_path), "step-3", submit, service=service, **JOB_META)
    assert submits == ["submit"] and service.looked_up == ["job-c"]
    assert result[0].data.meas.get_counts() == original[0].data.meas.get_counts()
    assert journal_in(tmp_path).pending() == []
    # and once stored, a further resume needs neither the service nor a submission
    assert submit_or_resume(journal_in(tmp_path), "step-3", submit, **JOB_META) is not None
    assert submits == ["submit"] and service.looked_up == ["job-c"]


def test_a_failed_hardware_job_is_resubmitted(tmp_path: Path) -> None:
    journal = journal_in(tmp_path)
    journal.record(FakeJob("job-x", None), key="step-4", **JOB_META)

    class FailedJob(FakeJob):
        def status(self) -> str:
            return "ERROR"

    class Service:
        is_local = False

        def job(self, job_id: str) -> FakeJob:
            return FailedJob(job_id, None)

    submits: list[str] = []

    def submit() -> FakeJob:
        submits.append("submit")
        return FakeJob("job-y", sampler_result())

    submit_or_resume(journal, "step-4", submit, service=Service(), **JOB_META)
    assert submits == ["submit"]


def test_a_local_job_lost_mid_wait_is_resubmitted(tmp_path: Path) -> None:
    """Local fake jobs live in this process only: if it dies before the result is stored, resubmit."""
    journal = journal_in(tmp_path)
    journal.record(FakeJob("job-local", None), key="step-5", **JOB_META)
    submits: list[str] = []

    def submit() -> FakeJob:
        submits.append("submit")
        return FakeJob("job-local-2", sampler_result())

    submit_or_resume(journal, "step-5", submit, **JOB_META)
    assert submits == ["submit"]


def test_a_lost_local_job_is_charged_nothing_and_a_done_one_its_shots(tmp_path: Path) -> None:
    """#22.5: the ledger charges what ran; a local job that died with its process gave nothing."""
    from qgen.backends.ledger import ShotLedger

    journal = JobJournal(tmp_path / "local" / "jobs.jsonl", tmp_path / "local" / "job_results", local=True)
    journal.record(FakeJob("local-1", None), key="a", **JOB_META)
    submit_or_resume(journal, "b", lambda: FakeJob("local-2", sampler_result()), **JOB_META)
    journal.recover(None)  # the next process: local-1 died with the last one
    assert journal.entries()["local-1"].status == "lost"
    assert ShotLedger(RunDir(tmp_path), local=True).spent("fake_brisbane") == 1000  # local-2 only: (4 + 6) x 100
    assert ShotLedger(RunDir(tmp_path)).spent("fake_brisbane") == 0, "never on the hardware ledger"


def test_real_primitive_job_result_round_trips_through_the_journal(tmp_path: Path) -> None:
    journal = journal_in(tmp_path)
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    job = StatevectorSampler(seed=5).run([circuit], shots=64)
    result = submit_or_resume(journal, "bell", lambda: job, kind="sampler", backend="statevector",
                              pub_shapes=[()], shots=64)
    stored = journal.load_result(job.job_id())
    assert stored[0].data.meas.get_counts() == result[0].data.meas.get_counts()
    assert journal_lines(tmp_path)[0]["executions"] == 64


def test_torn_last_journal_line_is_ignored(tmp_path: Path) -> None:
    journal = journal_in(tmp_path)
    journal.record(FakeJob("job-d", None), key="k", **JOB_META)
    with open(tmp_path / "jobs.jsonl", "a") as handle:
        handle.write('{"job_id": "job-e", "sta')  # the write a crash interrupted
    assert [entry.job_id for entry in journal.pending()] == ["job-d"]


def test_writing_after_a_torn_line_removes_it_first(tmp_path: Path) -> None:
    """A kill mid-append: the next line must not be appended onto the torn one (#22.6)."""
    journal = journal_in(tmp_path)
    journal.record(FakeJob("job-d", None), key="k", **JOB_META)
    with open(tmp_path / "jobs.jsonl", "a") as handle:
        handle.write('{"job_id": "job-e", "sta')
    journal.record(FakeJob("job-f", None), key="k2", **JOB_META)
    journal.mark_done("job-f")
    assert [(line["job_id"], line["status"]) for line in journal_lines(tmp_path)] == [
        ("job-d", "submitted"), ("job-f", "submitted"), ("job-f", "done")]


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    journal = journal_in(tmp_path)
    journal.record(FakeJob("job-d", None), key="k", **JOB_META)
    path = tmp_path / "jobs.jsonl"
    path.write_text(path.read_text().rstrip("\n"))  # the kill came between the record and its newline
    journal.record(FakeJob("job-e", None), key="k2", **JOB_META)
    assert [line["job_id"] for line in journal_lines(tmp_path)] == ["job-d", "job-e"]


def test_result_paths_are_relative_to_the_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """#22.9: a run addressed through a relative path records its result relative to itself."""
    monkeypatch.chdir(tmp_path)
    run = Path("runs") / "r"
    journal = journal_in(run)
    submit_or_resume(journal, "k", lambda: FakeJob("job-r", sampler_result()), **JOB_META)
    assert journal_lines(tmp_path / run)[-1]["result_path"] == "job_results/job-r.json"
    moved = tmp_path / "moved"
    (tmp_path / run).rename(moved)
    assert journal_in(moved).load_result("job-r") is not None


def test_mark_done_of_an_unknown_job_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(QgenError, match="never recorded"):
        journal_in(tmp_path).mark_done("nope")


# ------------------------------------------------------------------------------------------- budget


def test_budget_refuses_with_the_exact_overshoot() -> None:
    job_plan = plan([(32, 4096)] * 10)  # 1,310,720 shots
    with pytest.raises(QgenError) as info:
        ShotBudget(limit=1_000_000).check(job_plan)
    assert str(info.value) == (
        "plan needs 1,310,720 shots but the shot budget has 1,000,000 left (over by 310,720); "
        "raise shot_budget in backends.toml or pass --shot-budget"
    )


def test_budget_counts_what_was_already_spent() -> None:
    budget = ShotBudget(limit=1_000_000, spent=400_000)
    budget.check(plan([(100, 6000)]))  # exactly the 600,000 left: allowed
    with pytest.raises(QgenError, match="has 600,000 left \\(over by 1\\)"):
        budget.check(plan([(1, 600_001)]))
    ShotBudget(limit=None, spent=10**12).check(plan([(10**4, 10**5)]))  # unlimited


def test_a_negative_spent_is_refused_rather_than_adding_to_what_is_left() -> None:
    with pytest.raises(QgenError, match="cannot be negative"):
        ShotBudget(limit=1000, spent=-500)


def plan(items) -> JobPlan:
    """One job holding ``items``, each binding run ``shots`` times (a plain primitive: no twirling, no TREX)."""
    return JobPlan.of((PlannedJob(tuple(pub_cost(item) for item in items)),))


def test_plan_respects_the_pub_limit_per_job() -> None:
    spec = BackendSpec(name="hw", kind="ibm", device="ibm_fez", shots=100, max_pubs_per_job=3)
    job_plan = executor_jobs([(1, 100)] * 7, spec)
    assert job_plan.num_jobs == 3
    assert [len(job.pubs) for job in job_plan.jobs] == [3, 3, 1] and job_plan.executions == 700
    assert executor_jobs([(1, 100)] * 7, BackendSpec(name="hw", kind="ibm", device="ibm_fez", shots=100)).num_jobs == 1


def test_plan_reads_coerced_pubs() -> None:
    circuit = QuantumCircuit(1)
    circuit.measure_all()
    sampler_pub = SamplerPub.coerce((circuit, None, 300))
    observables = [["Z", "X"], ["Y", "Z"]]  # shape (2, 2), no parameters: one binding
    estimator_pub = EstimatorPub.coerce((QuantumCircuit(1), observables), precision=0.01)
    assert (pub_cost(sampler_pub).bindings, pub_cost(sampler_pub).shots) == (1, 300)
    # the executor measures the one binding in 3 bases (Z, X, Y), not once per observable entry
    assert (pub_cost(estimator_pub).bindings, pub_cost(estimator_pub).shots) == (3, 10_000)
    assert plan([sampler_pub, estimator_pub]).executions == 300 + 30_000


def test_plan_summary_is_one_line_with_counts_and_usage_estimate() -> None:
    summary = plan([(32, 4096)] * 10).summary()
    assert "\n" not in summary
    assert summary.startswith("1 job, 10 PUBs, 1,310,720 shots")
    assert "~330 s" not in summary and "5.5 min" in summary  # 2 s + 1,310,720 x 250 us = 329.7 s
