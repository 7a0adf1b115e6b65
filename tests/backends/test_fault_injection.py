"""Fault injection against a stand-in IBM Quantum service (standin_ibm.py): ``qgen sample`` on a hardware
backend, killed at every state a job can be in the journal, resumed, moved, copied, run beside
``--local``, with the ledger edited or deleted, and with jobs that fail or are cancelled.

In every case: no job runs twice on the QPU, the ledger is what the QPU ran (counted by the stand-in
from the runtime's own ``prepare()``, not by qgen), and a resumed run gives the uninterrupted run's
images bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from qgen.backends.devices import fake_backend
from qgen.backends.journal import JobJournal
from qgen.backends.ledger import ShotLedger
from qgen.errors import QgenError
from qgen.noise.pool import EntropyPool
from qgen.commands import SampleCommand
from qgen.draw import SampleRequest
from qgen.rundir import RunDir
from qgen.sampling import sample
from tests.backends.standin_ibm import Fate, Killed, StandInService, install
from tests.helpers import REPO, qgen

TINY = ["--n-train", "16", "--batch-size", "4", "--widths", "8,8,8", "--qubits", "4", "--layers", "1",
        "--timesteps", "40", "--no-download", "--no-progress", "--seed", "1", "--steps", "1"]
#: The hardware backend of these tests (the stand-in plays ibm_fez; 0.0625 precision = 256 shots a binding).
STANDIN = """
[backends.standin]
kind = "ibm"
device = "ibm_fez"
optimization_level = 1
seed_transpiler = 1234
precision = 0.0625
shot_budget = 10_000_000
execution_mode = "batch"
twirling = false
resilience_level = 0
"""
DEVICE = fake_backend("ibm_fez")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny hybrid run (trained on the exact simulator), copied by each test."""
    root = tmp_path_factory.mktemp("trained")
    env = dict(os.environ, QGEN_RUNS=str(root / "runs"), QGEN_CIRCUITS=str(root / "circuits"),
               QGEN_DATA=str(root / "data"))
    proc = qgen(["train", "--name", "tiny", *TINY], env, timeout=600)
    runs = list((root / "runs").iterdir()) if (root / "runs").exists() else []
    assert proc.returncode == 0 and len(runs) == 1, proc.stderr
    return runs[0]


class Bench:
    """One test's run directory, backends file and stand-in service."""

    def __init__(self, trained: Path, tmp_path: Path, monkeypatch) -> None:
        self.run = tmp_path / "runs" / "tiny"
        shutil.copytree(trained, self.run)
        self.backends = tmp_path / "backends.toml"
        self.backends.write_text((REPO / "backends.toml").read_text() + STANDIN)
        self.service = StandInService(DEVICE)
        self.monkeypatch = monkeypatch
        install(monkeypatch, self.service)

    def sample(self, noise: str = "classical", run: Path | None = None, local: bool = False,
               journaled_jobs: str | None = None, **fields) -> dict:
        req = SampleRequest(**({"n": 2, "steps": 2, "batch_size": 2, "seed": 3, "backend": "standin",
                                "noise": noise} | fields))
        return sample(SampleCommand(req, run=run or self.run, backends_file=self.backends, local=local,
                                    journaled_jobs=journaled_jobs))

    def edit_backend(self, **settings) -> None:
        """Edit the stand-in's table of backends.toml (between a kill and the resume)."""
        text = self.backends.read_text()
        for key, value in settings.items():
            line = next(ln for ln in text[text.index("[backends.standin]"):].splitlines() if ln.startswith(f"{key} ="))
            text = text.replace(line, f"{key} = {value}")
        self.backends.write_text(text)

    def killed(self, **kwargs) -> None:
        with pytest.raises(Killed):
            self.sample(**kwargs)
        self.service.advance()  # the jobs at IBM run on while no process is connected

    def journal(self, run: Path | None = None, local: bool = False) -> list[dict]:
        path = (run or self.run) / ("local/jobs.jsonl" if local else "jobs.jsonl")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def spent(self, run: Path | None = None, local: bool = False) -> int:
        return ShotLedger(RunDir(run or self.run), local=local).spent("standin")

    def check(self, run: Path | None = None) -> None:
        """No request ran twice on the QPU; the ledger (and budget.json) hold what the QPU ran."""
        assert self.service.ran_twice() == []
        assert self.service.sessions_opened == self.service.sessions_closed, "no Session/Batch left open"
        assert self.spent(run) == self.service.shots_run
        stored = json.loads(((run or self.run) / "budget.json").read_text())["standin"]
        assert stored["spent"] == self.service.shots_run


_REFERENCE: dict[str, torch.Tensor] = {}


def reference(trained: Path, tmp_path: Path, monkeypatch, noise: str) -> torch.Tensor:
    """The images of an uninterrupted run (computed once per noise kind)."""
    if noise not in _REFERENCE:
        bench = Bench(trained, tmp_path / f"reference-{noise}", monkeypatch)
        _REFERENCE[noise] = bench.sample(noise=noise)["images"]
        install(monkeypatch, bench.service)
    return _REFERENCE[noise]


@pytest.fixture
def bench(trained, tmp_path, monkeypatch) -> Bench:
    return Bench(trained, tmp_path, monkeypatch)


# ---------------------------------------------------------------- kill at every journal state


@pytest.mark.parametrize("wait", [1, 2])  # the first or the second model call's job
def test_kill_with_an_estimator_job_queued_fetches_it_by_id(bench, trained, tmp_path, monkeypatch, wait) -> None:
    want = reference(trained, tmp_path, monkeypatch, "classical")
    install(monkeypatch, bench.service)
    bench.service.kill_on_wait(wait)
    bench.killed()
    assert [line["status"] for line in bench.journal()][-1] == "submitted"
    images = bench.sample()["images"]
    assert torch.equal(images, want)
    assert len(bench.service.submitted) == 2 and bench.service.lookups == [f"ibm-{wait - 1}"]
    bench.check()


def test_kill_with_the_first_noise_refill_queued_reuses_its_bits_and_writes_images(bench, trained, tmp_path,
                                                                                   monkeypatch) -> None:
    """#22.1: the refill job is fetched by ID and its bits reach the pool; the pool without its .npz
    (a kill during the first refill) is an empty pool, not a traceback."""
    want = reference(trained, tmp_path, monkeypatch, "quantum")
    install(monkeypatch, bench.service)
    bench.service.kill_on_wait(1)  # the first job is the refill for x_T
    bench.killed(noise="quantum")
    pool = bench.run / "noise" / "standin"
    assert (pool / "noise_pool.json").exists() and not (pool / "noise_pool.npz").exists()
    result = bench.sample(noise="quantum")
    images = result["images"]
    assert torch.equal(images, want)
    kinds = [job.kind for job in bench.service.submitted]
    assert kinds.count("sampler") == 1, "the refill was paid once"
    assert result["metadata"]["noise"]["pool"] == "noise/standin", "paths in a run are relative to it"
    assert bench.service.lookups[0] == "ibm-0"
    bench.check()


@pytest.mark.parametrize("noise", ["quantum", "classical"])  # the first job: a refill / an estimator job
def test_kill_after_a_result_is_stored_but_before_the_journal_says_done(bench, trained, tmp_path, monkeypatch,
                                                                        noise) -> None:
    want = reference(trained, tmp_path, monkeypatch, noise)
    install(monkeypatch, bench.service)
    original = JobJournal.mark_done

    def die(self, job_id, result_path=None):
        monkeypatch.setattr(JobJournal, "mark_done", original)
        raise Killed

    monkeypatch.setattr(JobJournal, "mark_done", die)
    bench.killed(noise=noise)
    assert (bench.run / "job_results" / "ibm-0.json").exists()
    assert torch.equal(bench.sample(noise=noise)["images"], want)
    assert [job.kind for job in bench.service.submitted].count("sampler") == (noise == "quantum")
    assert bench.service.lookups == [], "the stored result is used: no look-up, no new job"
    bench.check()


@pytest.mark.parametrize("commit_step", ["_save_bits", "_save_meta"])
def test_kill_after_the_refill_job_is_done_but_before_the_pool_commits_its_bits(bench, trained, tmp_path,
                                                                                monkeypatch, commit_step) -> None:
    want = reference(trained, tmp_path, monkeypatch, "quantum")
    install(monkeypatch, bench.service)
    original = getattr(EntropyPool, commit_step)
    calls = {"n": 0}

    def die_in_refill(self):
        # _save_meta also runs when the pool opens; die at the refill's commit
        if commit_step == "_save_meta" and not self.meta["jobs"]:
            return original(self)
        monkeypatch.setattr(EntropyPool, commit_step, original)
        if commit_step == "_save_meta":
            calls["n"] += 1
        raise Killed

    monkeypatch.setattr(EntropyPool, commit_step, die_in_refill)
    bench.killed(noise="quantum")
    assert [line["status"] for line in bench.journal()] == ["submitted", "done"]
    assert torch.equal(bench.sample(noise="quantum")["images"], want)
    assert [job.kind for job in bench.service.submitted].count("sampler") == 1
    bench.check()


def test_a_torn_journal_tail_is_repaired_before_the_next_write(bench, trained, tmp_path, monkeypatch) -> None:
    """#22.6: a kill mid-append leaves a torn last line; the next run writes after it, not onto it."""
    want = reference(trained, tmp_path, monkeypatch, "classical")
    install(monkeypatch, bench.service)
    bench.service.kill_on_wait(2)
    bench.killed()
    with open(bench.run / "jobs.jsonl", "a") as handle:
        handle.write('{"job_id": "ibm-9", "status": "subm')
    assert torch.equal(bench.sample()["images"], want)
    lines = bench.journal()  # every line parses
    assert [line["job_id"] for line in lines].count("ibm-9") == 0
    assert torch.equal(bench.sample()["images"], want), "and the run after that is not blocked either"
    bench.check()


# ---------------------------------------------------------------- moved and copied runs


def test_a_moved_run_uses_its_own_stored_results(bench, tmp_path) -> None:
    """#22.9: result paths are relative to the run directory."""
    first = bench.sample()["images"]
    moved = tmp_path / "elsewhere" / "tiny"
    shutil.move(bench.run, moved)
    again = bench.sample(run=moved)["images"]
    assert torch.equal(first, again)
    assert len(bench.service.submitted) == 2 and bench.service.lookups == []
    bench.check(moved)


def test_a_moved_local_run_is_not_run_and_charged_again(bench, tmp_path) -> None:
    bench.sample(local=True)
    local_jobs = len(bench.service.jobs)
    moved = tmp_path / "elsewhere" / "tiny"
    shutil.move(bench.run, moved)
    bench.sample(run=moved, local=True)
    assert len(bench.service.jobs) == local_jobs
    assert bench.spent(moved, local=True) == bench.service.local_shots_run


def test_a_copied_run_never_reads_the_originals_results(bench, tmp_path) -> None:
    bench.sample()
    copy = tmp_path / "copy" / "tiny"
    shutil.copytree(bench.run, copy)
    shutil.rmtree(copy / "job_results")  # the copy's own results are gone: the original's must not be read
    for path in (bench.run / "job_results").iterdir():
        path.write_text("{}")  # ... and would be wrong if they were
    bench.sample(run=copy)
    assert sorted(bench.service.lookups) == ["ibm-0", "ibm-1"], "fetched again by ID, not read from the original"
    assert len(bench.service.submitted) == 2
    bench.check(copy)


# ---------------------------------------------------------------- --local beside hardware


def test_local_runs_beside_hardware_never_touch_its_jobs_or_ledger(bench, trained, tmp_path, monkeypatch) -> None:
    """#22.3: a --local run in a hardware run directory neither marks the in-flight hardware job lost nor
    lends its simulated results to a later hardware run, and is charged to its own ledger."""
    want = reference(trained, tmp_path, monkeypatch, "classical")
    install(monkeypatch, bench.service)
    bench.service.kill_on_wait(1)
    bench.killed()
    hardware_before = bench.journal()
    local = bench.sample(local=True)
    assert local["metadata"]["backend"]["local"] is True
    assert bench.journal() == hardware_before, "the hardware journal is untouched: its job is still in flight"
    assert all(line["job_id"].startswith("local-") for line in bench.journal(local=True))
    hardware = bench.sample()
    assert torch.equal(hardware["images"], want) and hardware["metadata"]["backend"]["local"] is False
    assert bench.service.lookups == ["ibm-0"] and len(bench.service.submitted) == 2
    bench.check()
    assert bench.spent(local=True) == bench.service.local_shots_run
    assert json.loads((bench.run / "budget.json").read_text())["standin"]["spent"] == bench.service.shots_run


# ---------------------------------------------------------------- the ledger


def test_a_deleted_ledger_is_rebuilt_from_the_journal(bench) -> None:
    """#22.5: deleting budget.json no longer resets what was spent."""
    bench.sample()
    spent = bench.service.shots_run
    (bench.run / "budget.json").unlink()
    assert bench.spent() == spent
    with pytest.raises(QgenError, match="shot budget has"):
        bench.sample(seed=4, shot_budget=spent + 1)
    bench.sample(seed=4)
    bench.check()


def test_an_edited_ledger_total_is_ignored(bench) -> None:
    bench.sample()
    path = bench.run / "budget.json"
    data = json.loads(path.read_text())
    data["standin"]["spent"] = 0
    path.write_text(json.dumps(data))
    assert bench.spent() == bench.service.shots_run
    bench.sample(seed=4)
    bench.check()


def test_a_deleted_journal_keeps_the_ledgers_charges(bench) -> None:
    bench.sample()
    (bench.run / "jobs.jsonl").unlink()
    assert bench.spent() == bench.service.shots_run


@pytest.mark.parametrize("spent, why", [(-40_000, "whole number >= 0"), ("lots", "whole number >= 0"),
                                        (1.5, "whole number >= 0"), (None, "whole number >= 0")])
def test_a_damaged_ledger_is_one_error_line_and_nothing_is_submitted(bench, spent, why) -> None:
    (bench.run / "budget.json").write_text(json.dumps({"standin": {"limit": None, "spent": spent}}))
    with pytest.raises(QgenError, match=why) as error:
        bench.sample()
    assert "\n" not in str(error.value) and "rebuilds it from jobs.jsonl" in str(error.value)
    assert bench.service.jobs == {}


def test_a_corrupt_ledger_is_one_error_line(bench) -> None:
    (bench.run / "budget.json").write_text('{"standin": {"spent": 12')
    with pytest.raises(QgenError, match="damaged shot ledger"):
        bench.sample()
    assert bench.service.jobs == {}


# ---------------------------------------------------------------- failed, cancelled, lost contact


@pytest.mark.parametrize("end", ["ERROR", "CANCELLED"])
def test_a_failed_or_cancelled_job_is_one_line_charged_what_it_ran_and_redone(bench, trained, tmp_path, monkeypatch,
                                                                             end) -> None:
    """#22.5 and #22.8: charged what ran (a cancelled queued job nothing), one error line, then redone."""
    want = reference(trained, tmp_path, monkeypatch, "classical")
    install(monkeypatch, bench.service)
    bench.service.fates = [Fate(), Fate(end=end)]
    with pytest.raises(QgenError) as error:
        bench.sample()
    message = str(error.value)
    assert "\n" not in message and f"ended {end}" in message and "ibm-1" in message
    assert bench.journal()[-1]["status"] == "failed"
    bench.check()
    assert torch.equal(bench.sample()["images"], want)
    assert len(bench.service.submitted) == 3
    bench.check()


def test_lost_contact_while_waiting_is_one_line_and_the_job_is_fetched_later(bench, trained, tmp_path,
                                                                           monkeypatch) -> None:
    want = reference(trained, tmp_path, monkeypatch, "classical")
    install(monkeypatch, bench.service)
    original = bench.service.waited

    def drop(job):
        bench.service.online = False
        bench.service.waited = original
        bench.service.check_online()

    bench.service.waited = drop
    with pytest.raises(QgenError, match="lost contact with IBM Quantum while waiting for job ibm-0") as error:
        bench.sample()
    assert "\n" not in str(error.value)
    assert [line["status"] for line in bench.journal()] == ["submitted"]
    bench.service.online = True
    bench.service.advance()
    assert torch.equal(bench.sample()["images"], want)
    assert bench.service.lookups == ["ibm-0"] and len(bench.service.submitted) == 2
    bench.check()


def test_a_truncated_stored_result_is_fetched_again_by_id(bench, trained, tmp_path, monkeypatch) -> None:
    want = reference(trained, tmp_path, monkeypatch, "classical")
    install(monkeypatch, bench.service)
    bench.sample()
    stored = bench.run / "job_results" / "ibm-0.json"
    stored.write_text(stored.read_text()[:100])
    assert torch.equal(bench.sample()["images"], want)
    assert bench.service.lookups == ["ibm-0"] and len(bench.service.submitted) == 2
    bench.check()


# ---------------------------------------------------------------- settings edited between kill and resume


@pytest.mark.parametrize("edit", [{"twirling": "true"}, {"resilience_level": "1"}, {"precision": "0.125"}])
def test_edited_settings_after_a_kill_are_named_and_nothing_is_decided_silently(bench, trained, tmp_path,
                                                                              monkeypatch, edit) -> None:
    """#22.4: the journal key holds everything that changes the job; on a mismatch the user chooses."""
    bench.service.kill_on_wait(1)
    bench.killed()
    bench.edit_backend(**edit)
    with pytest.raises(QgenError, match="--journaled-jobs reuse") as error:
        bench.sample()
    (name, _), = edit.items()
    assert "\n" not in str(error.value) and "ibm-0" in str(error.value)
    assert name.split("_")[0] in str(error.value), "the message names the setting that changed"
    assert len(bench.service.submitted) == 1, "nothing submitted (the paid job's result is fetched and kept)"


def test_reuse_takes_the_journaled_job_and_resubmit_pays_for_a_new_one(bench, trained, tmp_path, monkeypatch) -> None:
    want = reference(trained, tmp_path, monkeypatch, "classical")
    install(monkeypatch, bench.service)
    bench.service.kill_on_wait(1)
    bench.killed()
    bench.edit_backend(twirling="true")
    other = tmp_path / "other"
    shutil.copytree(bench.run, other)
    reused = bench.sample(journaled_jobs="reuse")
    assert torch.equal(reused["images"], want)
    assert bench.service.lookups == ["ibm-0"] and len(bench.service.submitted) == 2
    # the samples name the settings the reused job ran with, not only the new ones
    assert reused["metadata"]["reused_jobs_under_other_settings"] == [
        {"job_id": "ibm-0", "kind": "estimator",
         "settings": {"twirling.enable_gates": None, "twirling.enable_measure": None}}]
    bench.check()
    bench.sample(run=other, journaled_jobs="resubmit")
    assert len(bench.service.submitted) == 4, "the new job for the first call, and the second call"
    assert bench.spent(other) == sum(job.shots for job in bench.service.submitted if job.job_id() != "ibm-1")


# ---------------------------------------------------------------- the dry run is what is submitted


def dry_run_total(bench, **fields) -> tuple[int, int]:
    """(shots, jobs) of the dry run's total line."""
    from qgen.sampling import plan_sampling

    req = SampleRequest(**({"n": 2, "steps": 2, "batch_size": 2, "seed": 3, "backend": "standin"} | fields))
    plan = plan_sampling(SampleCommand(req, run=bench.run, backends_file=bench.backends))
    line = next(line for line in plan.lines if line.startswith("total: "))
    words = line.split()
    return int(words[1].replace(",", "")), int(words[4].replace(",", ""))


@pytest.mark.parametrize("fields", [
    {"noise": "quantum", "eta": 1.0},
    pytest.param({"noise": "quantum", "sampler": "ddpm"}, marks=pytest.mark.slow),  # 40 model calls
    {"noise": "quantum", "sampler": "dpm", "n": 3},
    {"noise": "mixed", "sampler": "unipc"},
    {"noise": "quantum", "n": 3, "batch_size": 2},
])
def test_the_dry_run_is_what_is_submitted_for_every_sampler_and_the_noise_refill(bench, fields) -> None:
    """#22.2: refill jobs are planned as the pool sizes them (4,096 shots at least), and the request's
    bits are fetched up front in the planned job(s), not in one refill per draw."""
    shots, jobs = dry_run_total(bench, **fields)
    bench.sample(**fields)
    assert (shots, jobs) == (bench.service.shots_run, len(bench.service.submitted))
    bench.check()
    # a second request with bits left in the pool plans (and submits) only what it lacks
    more, more_jobs = dry_run_total(bench, **(fields | {"steps": 3}))  # the pool's extractors fix the seed
    bench.sample(**(fields | {"steps": 3}))
    assert (shots + more, jobs + more_jobs) == (bench.service.shots_run, len(bench.service.submitted))


def test_a_plan_over_budget_is_refused_before_any_job_and_one_within_finishes(bench) -> None:
    fields = {"noise": "quantum", "eta": 1.0}
    shots, _ = dry_run_total(bench, **fields)
    with pytest.raises(QgenError, match="over by 1\\)"):
        bench.sample(shot_budget=shots - 1, **fields)
    assert bench.service.submitted == []
    result = bench.sample(shot_budget=shots, **fields)
    assert result["images"].shape[0] == 2 and bench.service.shots_run == shots


# ---------------------------------------------------------------- Sessions


def test_a_session_is_opened_only_where_jobs_run_and_closed_on_every_path(bench, trained, tmp_path,
                                                                         monkeypatch) -> None:
    """#22.7: the dry run, qgen circuits and a refused model-folder sample open none; a sample opens one
    and closes it, also when a job fails."""
    from qgen import api

    dry_run_total(bench, noise="quantum")
    assert bench.service.dry_runs >= 1 and bench.service.sessions_opened == 0
    monkeypatch.setenv("QGEN_CIRCUITS", str(tmp_path / "circuits"))
    api.write_circuits("standin", backends_file=bench.backends, qubits=4, layers=1, entanglement="linear",
                           noise_circuit=True)
    assert bench.service.sessions_opened == 0
    bench.sample()
    assert (bench.service.sessions_opened, bench.service.sessions_closed) == (1, 1)
    bench.service.fates = [Fate(end="ERROR")]
    with pytest.raises(QgenError):
        bench.sample(seed=5)
    assert (bench.service.sessions_opened, bench.service.sessions_closed) == (2, 2)


def test_sampling_a_model_folder_on_hardware_opens_no_session(bench, tmp_path) -> None:
    from qgen import api

    folder = api.export(bench.run, tmp_path / "model")
    req = SampleRequest(n=1, steps=2, backend="standin")
    with pytest.raises(QgenError, match="journaled in a run"):
        sample(SampleCommand(req, model=folder, out=tmp_path / "out", backends_file=bench.backends))
    assert bench.service.sessions_opened == 0 and bench.service.jobs == {}


# ---------------------------------------------------------------- training on hardware


def test_training_killed_mid_step_resumes_without_paying_twice(bench, tmp_path, monkeypatch) -> None:
    """The estimator path of qgen train: a kill with a step's job queued, then --resume."""
    from qgen import api

    for name in ("QGEN_RUNS", "QGEN_CIRCUITS"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    cfg = api.run_config(name="hw", backend="standin", n_train=16, download=False, qubits=4, layers=1,
                         widths=(8, 8, 8), timesteps=40, steps=3, batch_size=4, seed=1, eval_every=0,
                         checkpoint_every=1, tensorboard=False, device="cpu")
    runs = tmp_path / "train-runs"
    bench.service.kill_on_wait(4)  # step 2's backward job: step 1 is checkpointed, step 2 is not
    with pytest.raises(Killed):
        api.train(cfg, runs_dir=runs, backends_file=bench.backends)
    bench.service.advance()
    run, = runs.iterdir()
    api.resume(run, runs_dir=runs, backends_file=bench.backends)
    assert len(bench.service.submitted) == 6, "3 steps x (forward + backward), each paid once"
    assert bench.service.lookups == ["ibm-3"]
    bench.check(run)
