"""What the tests share: the checkout's paths, ``qgen`` run as a user runs it (a subprocess of this checkout,
its runs, circuits and data wherever the test's environment puts them), a tiny run trained in seconds, and
the one-error-line check. ``conftest.py`` turns these into fixtures; test modules import the functions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
#: Real data the suite reads offline (CI clones the repository with ``shared/`` beside it).
SHARED_DATA = REPO.parent / "shared" / "data"
PNEUMONIA_NPZ = SHARED_DATA / "pneumoniamnist_subset.npz"
#: A run that trains in seconds on this CPU (the reliability tests' shape).
TINY = ["--n-train", "16", "--batch-size", "4", "--widths", "8,8,8", "--qubits", "4", "--layers", "1",
        "--timesteps", "40", "--no-download", "--no-progress", "--seed", "1"]
SAMPLE = ["--n", "2", "--steps", "2", "--no-progress"]


def _qgen_process(args: list[str], env: Mapping[str, str]) -> tuple[list[str], dict]:
    """The one definition of a ``qgen`` subprocess: this interpreter runs ``-m qgen.cli``, and this checkout
    comes first on its path, whatever else ``env`` holds."""
    return [sys.executable, "-m", "qgen.cli", *args], {**env, "PYTHONPATH": str(REPO)}


def qgen(args: list[str], env: Mapping[str, str], timeout: float = 300, cwd: Path = REPO,
         **kwargs) -> subprocess.CompletedProcess:
    """Run ``qgen ARGS`` to its end in ``cwd`` with ``env``; stdout and stderr are captured as text. ``kwargs``
    go to ``subprocess.run`` (``input=``, for one)."""
    command, env = _qgen_process(args, env)
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)


def start_qgen(args: list[str], env: Mapping[str, str], cwd: Path = REPO, **kwargs) -> subprocess.Popen:
    """Start ``qgen ARGS`` and return at once, for a test that watches, signals or races it: the same process
    as ``qgen()``, with stdout and stderr as text pipes. ``kwargs`` go to ``subprocess.Popen``."""
    command, env = _qgen_process(args, env)
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def make_env(base: Path) -> dict:
    """The environment of a user whose runs, circuits and data live under ``base``, with the shipped
    backends file."""
    return {**os.environ, "QGEN_RUNS": str(base / "runs"), "QGEN_CIRCUITS": str(base / "circuits"),
            "QGEN_DATA": str(base / "data"), "QGEN_BACKENDS": str(REPO / "backends.toml")}


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
