"""Run directories are untrusted input (issue #21, section 1): a checkpoint or samples file that is a
crafted pickle must run nothing on sample, evaluate, train --resume or export; checkpoints written
the old way (torch.save of plain numbers and tensors, NumPy scalars included) still load."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from qgen.errors import QgenError
from tests.helpers import SAMPLE, make_env, one_error_line, qgen


class Payload:
    """Unpickling this runs ``touch <marker>``: the marker existing afterwards means code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path) -> None:
    """Replace a checkpoint by one whose model entry is the payload (the rest looks right)."""
    torch.save({"step": 4, "channels": 1, "model": {"w": Payload(marker)}}, path)


@pytest.mark.parametrize("command, checkpoint", [
    (["sample", *SAMPLE], "checkpoint-ema.pt"),
    (["export"], "checkpoint-ema.pt"),
    (["train", "--resume", "RUN", "--steps", "6", "--no-progress"], "checkpoint-last.pt"),
])
def test_a_malicious_checkpoint_runs_nothing(run: Path, tmp_path: Path, command, checkpoint) -> None:
    marker = tmp_path / "payload-ran"
    plant(run / checkpoint, marker)
    if command[0] == "export":
        args = ["export", "--run", str(run), "--out", str(tmp_path / "model")]
    elif command[0] == "train":
        args = [str(run) if a == "RUN" else a for a in command]
    else:
        args = [command[0], "--run", str(run), *command[1:]]
    line = one_error_line(qgen(args, make_env(tmp_path)))
    assert not marker.exists(), "the pickle's payload ran"
    assert f"cannot read checkpoint {run / checkpoint}" in line and "never unpickles" in line
    assert "posix.system" in line or "os.system" in line
    assert not (tmp_path / "model").exists()


def test_a_malicious_samples_file_runs_nothing_on_evaluate(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    npz = run / "samples-evil.npz"
    np.savez(npz, samples=np.array([Payload(marker)], dtype=object))
    line = one_error_line(qgen(["evaluate", "--run", str(run), "--samples", str(npz)], make_env(tmp_path)))
    assert not marker.exists(), "the pickle's payload ran"
    assert str(npz) in line
    assert not (run / "metrics.json").exists()


def test_checkpoints_written_the_old_way_still_load(run: Path, tmp_path: Path) -> None:
    """Earlier versions torch.save'd the same dicts; a NumPy float (a validation FLD) must not block them."""
    from qgen.rundir import RunDir

    path = run / "checkpoint-best.pt"
    ema = torch.load(run / "checkpoint-ema.pt", weights_only=True)
    torch.save({**ema, "validation_fld": np.float64(12.5), "step": 4}, path)  # pickled as numpy scalar
    state = RunDir(run).load_checkpoint("best")
    assert float(state["validation_fld"]) == 12.5
    res = qgen(["export", "--run", str(run), "--out", str(tmp_path / "model"), "--weights", "best"],
               make_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert '"validation_fld": 12.5' in (tmp_path / "model" / "config.json").read_text()


@pytest.mark.parametrize("state, needle", [
    ([1, 2, 3], "holds a list, not a dict"),
    ({"step": 1, "channels": 1}, "entry 'model' is missing"),
    ({"step": "4", "model": {}, "channels": 1}, "entry 'step' is missing or is not int"),
])
def test_a_checkpoint_of_the_wrong_shape_is_one_line(tmp_path: Path, state, needle) -> None:
    from qgen.rundir.checkpoints import load_checkpoint

    path = tmp_path / "checkpoint-ema.pt"
    torch.save(state, path)
    with pytest.raises(QgenError, match=needle):
        load_checkpoint(path)


def test_resume_from_a_last_checkpoint_without_its_training_state_is_one_line(run: Path, tmp_path: Path) -> None:
    path = run / "checkpoint-last.pt"
    state = torch.load(path, weights_only=True)
    del state["optimizer"]
    torch.save(state, path)
    config_before = (run / "config.toml").read_text()
    line = one_error_line(qgen(["train", "--resume", str(run), "--steps", "6", "--no-progress"], make_env(tmp_path)))
    assert f"checkpoint {path} is not a qgen checkpoint: entry 'optimizer' is missing" in line
    assert (run / "config.toml").read_text() == config_before
