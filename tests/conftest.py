"""Shared fixtures: real offline data locations, a fast torch set-up, and the CLI tests' environment and
tiny trained run. The functions behind them (``qgen`` as a subprocess among them) are in ``helpers.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

pytest.register_assert_rewrite("tests.helpers")

from tests.helpers import PNEUMONIA_NPZ, copy_run, train_tiny  # noqa: E402 (after the rewrite hook)

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def pneumonia_npz() -> Path:
    if not PNEUMONIA_NPZ.is_file():
        pytest.fail(f"real test data missing: {PNEUMONIA_NPZ} (CI clones the repo with shared/ beside it)")
    return PNEUMONIA_NPZ


@pytest.fixture
def env(tmp_path: Path) -> dict:
    """The environment of a CLI subprocess whose runs, circuits and data live in the test's folder."""
    out = dict(os.environ)
    out.update(QGEN_RUNS=str(tmp_path / "runs"), QGEN_CIRCUITS=str(tmp_path / "circuits"),
               QGEN_DATA=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run trained once per test module that uses it (``helpers.train_tiny``)."""
    return train_tiny(tmp_path_factory.mktemp("trained"))


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A copy of ``trained`` of the test's own, which it may damage."""
    return copy_run(trained, tmp_path)
