"""What the reliability tests share: run ``qgen`` as a user would (a subprocess of this checkout, its
runs, circuits and data in the test's folder), a tiny run trained once, and the one-error-line check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: A run that trains in seconds on this CPU (the reliability tests' shape).
TINY = ["--n-train", "16", "--batch-size", "4", "--widths", "8,8,8", "--qubits", "4", "--layers", "1",
        "--timesteps", "40", "--no-download", "--no-progress", "--seed", "1"]
SAMPLE = ["--n", "2", "--steps", "2", "--no-progress"]


def qgen(args: list[str], env: dict, timeout: float = 300, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qgen.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def make_env(base: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "QGEN_RUNS": str(base / "runs"),
            "QGEN_CIRCUITS": str(base / "circuits"), "QGEN_DATA": str(base / "data"),
            "QGEN_BACKENDS": str(REPO / "backends.toml")}


def one_error_line(res: subprocess.CompletedProcess) -> str:
    """The single ``qgen: error:`` line of a refused command (non-zero exit, no traceback)."""
    assert res.returncode != 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("qgen: error: ")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def train_tiny(base: Path, *extra: str) -> Path:
    """Train a 4-step tiny run under ``base``/runs; returns its directory."""
    res = qgen(["train", "--backend", "statevector", "--steps", "4", "--checkpoint-every", "2", "--name", "t",
                *TINY, *extra], make_env(base))
    assert res.returncode == 0, res.stderr
    (run,) = (base / "runs").iterdir()
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run trained once per test module that imports this fixture."""
    return train_tiny(tmp_path_factory.mktemp("trained"))


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A copy of ``trained`` of the test's own, which it may damage."""
    return copy_run(trained, tmp_path)


def copy_run(trained: Path, tmp_path: Path) -> Path:
    """A private copy of a module's trained run (tests may damage it)."""
    copy = tmp_path / "runs" / trained.name
    shutil.copytree(trained, copy)
    (copy / ".qgen.lock").unlink(missing_ok=True)
    return copy


def without(args: list[str], option: str) -> list[str]:
    """``args`` without ``option`` and its value (to give it another one)."""
    i = args.index(option)
    return args[:i] + args[i + 2:]
