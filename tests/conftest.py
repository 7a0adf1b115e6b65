"""Shared fixtures: real offline data locations and a fast torch set-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PNEUMONIA_NPZ = SHARED_DATA / "pneumoniamnist_subset.npz"

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
