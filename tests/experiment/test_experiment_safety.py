"""``qgen experiment --out`` (issue #21, sections 2 and 4): never adopts a folder that is not an
experiment (its report.md and summary.csv are the user's), one writer at a time, and options that
contradict each other are refused before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import make_env, one_error_line, qgen

TINY_TOML = """name = "tiny"
arms = ["classical"]
sizes = [10]
seeds = [0]

[[datasets]]
label = "mnist-c3"
dataset = "mnist"
classes = [3]

[model]
widths = [8, 8, 8]
qubits = 2
layers = 1
T = 20

[train]
steps = 4
batch_size = 4
checkpoint_every = 2

[sampling]
n = 4
steps = 2
batch_size = 4
heldout_limit = 100
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def test_an_existing_folder_that_is_not_an_experiment_is_not_adopted(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my own report")
    (out / "summary.csv").write_text("a,b\n1,2\n")
    for extra in ([], ["--report-only"], ["--dry-run"]):
        line = one_error_line(qgen(["experiment", "--config", str(config), "--out", str(out), *extra],
                                   make_env(tmp_path)))
        assert f"--out {out} exists and is not an experiment folder (no experiment.toml)" in line
    assert (out / "report.md").read_text() == "my own report"
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "summary.csv"]


def test_an_experiment_being_written_refuses_a_second_writer(tmp_path: Path, config: Path) -> None:
    from qgen.rundir.lock import hold_lock

    out = tmp_path / "exp"
    out.mkdir()
    (out / "experiment.toml").write_text(TINY_TOML)
    with hold_lock(out / ".qgen.lock", out, "qgen experiment --out exp"):
        line = one_error_line(qgen(["experiment", "--out", str(out), "--report-only"], make_env(tmp_path)))
    assert f"experiment {out} is in use by pid {os.getpid()} (qgen experiment --out exp)" in line
    assert not (out / "state.json").exists() and not (out / "report.md").exists()
    # the lock released, the same command works, and a folder that holds only a lock is a fresh start
    res = qgen(["experiment", "--out", str(out), "--report-only"], make_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert (out / "report.md").is_file()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".qgen.lock").touch()
    res = qgen(["experiment", "--config", str(config), "--out", str(fresh), "--report-only"], make_env(tmp_path))
    assert res.returncode == 0, res.stderr


def test_report_only_and_dry_run_together_are_refused(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "exp"
    line = one_error_line(qgen(["experiment", "--config", str(config), "--out", str(out), "--report-only",
                                "--dry-run"], make_env(tmp_path)))
    assert "either --dry-run" in line and "--report-only" in line
    assert not out.exists()


def test_a_size_larger_than_the_data_is_refused_before_the_first_cell(tmp_path: Path) -> None:
    config = tmp_path / "big.toml"
    config.write_text(TINY_TOML.replace("sizes = [10]", "sizes = [10, 1000000]"))
    out = tmp_path / "exp"
    line = one_error_line(qgen(["experiment", "--config", str(config), "--out", str(out)], make_env(tmp_path)))
    assert "1000000" in line
    assert not out.exists()  # no cell trained, no folder made
