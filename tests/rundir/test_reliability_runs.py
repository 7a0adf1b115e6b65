"""Broken and weak cases around run directories (reliability issue): checkpoints that do not fit,
diverged samples, unwritable runs roots, full disks, damaged loss logs, killed runs, resume options,
dry runs over budget, runs found by --name, file modes."""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from qgen.errors import QgenError
from qgen.rundir import LossLog, RunDir
from tests.helpers import REPO, TINY, make_env, one_error_line, qgen


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny quantum run (8 steps, a checkpoint every 4), trained once; tests work on copies (conftest's
    ``run`` fixture copies this one). The channel gate binds the circuit once per image, which keeps the shot
    arithmetic below readable."""
    base = tmp_path_factory.mktemp("trained")
    res = qgen(["train", "--backend", "statevector", "--steps", "8", "--checkpoint-every", "4", "--name", "tiny",
                "--bottleneck", "channel_gate", *TINY], make_env(base))
    assert res.returncode == 0, res.stderr
    (run,) = (base / "runs").iterdir()
    return run


@pytest.fixture
def env(tmp_path: Path) -> dict:
    return make_env(tmp_path)


def samples_in(run: Path) -> list[Path]:
    return sorted(run.glob("samples-*.npz"))


SAMPLE = ["--n", "2", "--steps", "2", "--no-progress"]


# ------------------------------------------------------------------ 4: checkpoint vs config.toml


def test_sample_with_a_checkpoint_that_does_not_fit_config_is_one_line(run: Path, env: dict) -> None:
    config = run / "config.toml"
    config.write_text(config.read_text().replace("qubits = 4", "qubits = 3"))
    line = one_error_line(qgen(["sample", "--run", str(run), *SAMPLE], env))
    assert f"{run / 'checkpoint-ema.pt'} does not fit the model that config.toml describes" in line
    assert "config.toml and the checkpoint disagree" in line
    assert "in the checkpoint" in line and "in the model" in line  # the first mismatching shapes
    assert not samples_in(run)


def test_load_model_state_names_source_and_first_mismatches() -> None:
    from torch import nn

    from qgen.models.build import load_model_state

    model = nn.Sequential(nn.Linear(3, 2))
    foreign = {"0.weight": torch.zeros(4, 3), "0.bias": torch.zeros(4), "1.weight": torch.zeros(1)}
    with pytest.raises(QgenError) as err:
        load_model_state(model, foreign, "other/checkpoint-last.pt")
    message = str(err.value)
    assert message.startswith("other/checkpoint-last.pt does not fit the model that config.toml describes")
    assert "0.weight is (4, 3) in the checkpoint, (2, 3) in the model" in message
    assert "unexpected 1.weight" in message and "\n" not in message
    fitting = {k: torch.ones_like(v) for k, v in model.state_dict().items()}
    load_model_state(model, fitting, "ok.pt")
    assert torch.equal(model[0].weight, torch.ones(2, 3))


# ------------------------------------------------------------------ 14: non-finite samples


def test_diverged_model_writes_no_samples(run: Path, env: dict) -> None:
    path = run / "checkpoint-ema.pt"
    ckpt = torch.load(path, weights_only=False)
    ckpt["model"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                     for k, v in ckpt["model"].items()}
    torch.save(ckpt, path)
    manifest_before = (run / "manifest.json").read_text()
    line = one_error_line(qgen(["sample", "--run", str(run), *SAMPLE], env))
    assert "non-finite pixel values" in line and "nothing was written" in line
    assert not samples_in(run) and not list(run.glob("samples-*.png"))
    assert (run / "manifest.json").read_text() == manifest_before


# ------------------------------------------------------------------ 15: runs directory cannot be made


def test_runs_dir_under_a_regular_file_is_one_line(tmp_path: Path, env: dict) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    env = {**env, "QGEN_RUNS": str(blocker / "runs")}
    line = one_error_line(qgen(["train", "--backend", "statevector", "--steps", "1", *TINY], env))
    assert f"cannot create runs directory {blocker / 'runs'}" in line
    assert "is a file" in line or "in the way" in line


def test_read_only_runs_root(tmp_path: Path) -> None:
    from qgen.config import RunConfig

    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        if os.access(root, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(QgenError, match=rf"cannot create run directory {root / 'r'}: Permission denied"):
            RunDir.create(root, "r", config=RunConfig(name="r"), manifest={})
    finally:
        root.chmod(0o700)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_run_directory_that_cannot_be_written_leaves_nothing(tmp_path: Path, monkeypatch, code) -> None:
    from qgen.config import RunConfig

    def refuse(self, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(QgenError, match=rf"cannot create run directory {tmp_path / 'r'}: {os.strerror(code)}"):
        RunDir.create(tmp_path, "r", config=RunConfig(name="r"), manifest={})
    assert list(tmp_path.iterdir()) == []  # no half-made run, no staging folder


# ------------------------------------------------------------------ 16: disk full at a checkpoint


def test_disk_full_at_a_checkpoint_keeps_the_previous_one(tmp_path: Path, monkeypatch) -> None:
    from qgen.rundir import CheckpointWriteError

    rundir = RunDir(tmp_path)
    rundir.save_checkpoint("last", {"step": 4, "model": {}})
    before = rundir.checkpoint_path("last").read_bytes()

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(CheckpointWriteError) as err:
        rundir.save_checkpoint("last", {"step": 8, "model": {}})
    exc = err.value
    assert isinstance(exc, QgenError)
    assert (exc.path, exc.errno, exc.step, exc.previous_intact) == (
        rundir.checkpoint_path("last"), errno.ENOSPC, 8, True)
    assert str(exc) == (f"could not write checkpoint {tmp_path / 'checkpoint-last.pt'} at step 8: No space left "
                        "on device; the previous checkpoint checkpoint-last.pt is intact; free space and resume "
                        "from it")
    assert exc.manifest_fields() == {"status": "failed", "error": str(exc), "failed_at_step": 8}
    assert rundir.checkpoint_path("last").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))

    with pytest.raises(CheckpointWriteError, match="no earlier checkpoint exists") as err:
        rundir.save_checkpoint("ema", {"step": 8, "model": {}})
    assert err.value.previous_intact is False


# ------------------------------------------------------------------ 18: damaged loss.csv rows


def test_truncate_drops_damaged_rows_and_says_which(tmp_path: Path, caplog) -> None:
    path = tmp_path / "loss.csv"
    path.write_text("step,loss,seconds\n1,0.5,0.1\n\n2,0.4,0.1\n3,zz\x00,?\n4,0.3,0.1\n5,0.2,0.1\n")
    with caplog.at_level(logging.WARNING):
        dropped = LossLog(path).truncate(4)
    assert dropped == [3, 5]
    assert path.read_text() == "step,loss,seconds\n1,0.5,0.1\n2,0.4,0.1\n4,0.3,0.1\n"
    (record,) = caplog.records
    assert "dropped 2 damaged row(s) (lines 3, 5)" in record.getMessage()


def test_resume_with_a_garbled_loss_row_rebuilds_the_log(run: Path, env: dict) -> None:
    with open(run / "loss.csv", "a") as fh:  # killed mid-row after the last checkpoint, then edited
        fh.write("9,0.1")
    lines = (run / "loss.csv").read_text().splitlines()
    lines.insert(3, "garbage,,")
    (run / "loss.csv").write_text("\n".join(lines) + "\n")
    res = qgen(["train", "--resume", str(run), "--steps", "10", "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    assert "dropped 2 damaged row(s) (lines 4, 11)" in res.stderr
    with open(run / "loss.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == list(range(1, 11))  # the damaged lines dropped, steps 9-10 redone once


# ------------------------------------------------------------------ 19: killed before the first checkpoint


def test_resume_before_the_first_checkpoint_gives_the_restart_command(run: Path, env: dict) -> None:
    for ckpt in run.glob("checkpoint-*.pt"):
        ckpt.unlink()
    line = one_error_line(qgen(["train", "--resume", str(run), "--no-progress"], env))
    assert f"run {run} never saved a checkpoint (one is written every 4 steps)" in line
    assert "start it again with: qgen train --backend statevector --steps 8 --checkpoint-every 4 --name tiny" in line


# ------------------------------------------------------------------ 20: killed during a checkpoint write


def test_stale_temp_files_are_removed_when_the_run_is_locked(run: Path) -> None:
    stale = run / ".checkpoint-last.pt.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 1024)
    (run / "noise").mkdir(exist_ok=True)
    nested = run / "noise" / ".pool.bin.x.tmp"
    nested.write_bytes(b"x")
    with RunDir(run).lock():
        assert not stale.exists() and not nested.exists()
    assert (run / "checkpoint-last.pt").is_file()


def test_sample_without_ema_falls_back_to_last_and_says_so(run: Path, env: dict) -> None:
    (run / "checkpoint-ema.pt").unlink()
    res = qgen(["sample", "--run", str(run), *SAMPLE], env)
    assert res.returncode == 0, res.stderr
    assert "checkpoint-ema.pt is missing; sampling with the last training weights" in res.stderr
    (npz,) = samples_in(run)
    assert json.loads(str(np.load(npz)["metadata"]))["weights"] == "last"
    assert json.loads((run / "manifest.json").read_text())["samples"][-1]["weights"] == "last"


# ------------------------------------------------------------------ 21: options that cannot change on resume


def test_resume_refuses_options_fixed_by_the_config(env: dict) -> None:
    line = one_error_line(qgen(["train", "--resume", "nope", "--lr", "0.1", "--qubits", "3", "--backend",
                                "aer_simulator", "--steps", "9"], env))
    assert line == ("qgen: error: --backend, --qubits, --lr cannot change on --resume (the run's config.toml "
                    "fixes them); only --steps may be given to train further. Start a new run to change them")


def test_resume_accepts_steps_and_the_harmless_options(env: dict, tmp_path: Path) -> None:
    line = one_error_line(qgen(["train", "--resume", "nope", "--steps", "9", "--no-progress", "--local",
                                "--runs-dir", str(tmp_path), "--backends", str(REPO / "backends.toml")], env))
    assert "no run found" in line  # got past the option check


# ------------------------------------------------------------------ 27: dry run over budget, retired device


def test_dry_run_over_budget_on_a_retired_device_prints_plan_then_fails(run: Path, env: dict) -> None:
    res = qgen(["sample", "--run", str(run), "--dry-run", "--backend", "ibm_brisbane", "--steps", "20"], env)
    line = one_error_line(res)
    assert "quantum layer:" in res.stdout and "dry run: nothing was submitted" in res.stdout
    assert "ibm_brisbane was retired on 2025-11-03" in res.stdout
    assert line.startswith("qgen: error: the real run would be refused: ibm_brisbane was retired")
    # 20 model calls, each one PUB of 64 bindings x 4,096 shots, plus the executor's TREX calibration
    assert "plan needs 5,324,800 shots but the shot budget has 2,000,000 left (over by 3,324,800)" in line


def test_dry_run_within_budget_exits_zero(run: Path, env: dict) -> None:
    res = qgen(["sample", "--run", str(run), "--dry-run", "--backend", "ibm_fez", "--local", "--n", "1",
                "--steps", "1"], env)
    assert res.returncode == 0, res.stderr
    assert "retired" not in res.stdout


# ------------------------------------------------------------------ 28: runs found by their --name


def test_run_is_found_by_its_name_newest_first(tmp_path: Path, run: Path, caplog) -> None:
    root = run.parent
    older = root / "20240101-000000-tiny"
    newer = root / "20990101-000000-tiny"
    shutil.copytree(run, older)
    shutil.copytree(run, newer)
    (root / "20990101-000000-nottiny").mkdir()
    with caplog.at_level(logging.WARNING):
        assert RunDir.resolve("tiny", root) == RunDir(newer)
    assert "3 runs are named 'tiny'; using the newest" in caplog.text
    shutil.rmtree(older)
    shutil.rmtree(newer)
    caplog.clear()
    assert RunDir.resolve("tiny", root) == RunDir(run)
    assert not caplog.records  # one match: nothing to say
    with pytest.raises(QgenError, match="no run found"):
        RunDir.resolve("tin", root)


def test_sample_by_name(run: Path, env: dict) -> None:
    env = {**env, "QGEN_RUNS": str(run.parent)}
    res = qgen(["sample", "--run", "tiny", "--dry-run", "--steps", "5"], env)
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------ 29: one file mode for everything


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_respects_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    from qgen.fileio import atomic_write_text

    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_every_file_of_a_run_has_the_same_mode(trained: Path) -> None:
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in trained.iterdir()
             if p.is_file() and p.name != ".qgen.lock"}
    assert {"checkpoint-last.pt", "manifest.json", "config.toml", "loss.csv", "samples.png"} <= set(modes)
    assert len(set(modes.values())) == 1, modes


def test_resume_with_a_checkpoint_that_does_not_fit_config_is_one_line(run: Path, env: dict) -> None:
    config = run / "config.toml"
    config.write_text(config.read_text().replace("qubits = 4", "qubits = 3"))
    res = qgen(["train", "--resume", str(run), "--steps", "50", "--no-progress"], env)
    line = one_error_line(res)
    assert f"{run / 'checkpoint-last.pt'} does not fit the model that config.toml describes" in line
    assert "Traceback" not in res.stderr
