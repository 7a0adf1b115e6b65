"""Every command validates what it reads before it writes anything (issue #21, sections 2 and 3):
a damaged or foreign manifest.json, samples file or read-only run directory is one line, and no
samples, metrics.json, config.toml rewrite or TensorBoard event file comes before it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from qgen.errors import QgenError
from tests.helpers import SAMPLE, make_env, one_error_line, qgen


@pytest.fixture
def env(trained: Path) -> dict:
    return make_env(trained.parent.parent)  # the module's data folder: its feature net is trained once


def files_of(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()
            and p.name != ".qgen.lock"}


@pytest.mark.parametrize("manifest, needle", [
    ('{"status": ', "damaged file"),
    ("[1, 2]", "holds a JSON list, not an object"),
    ('{"samples": "x"}', "entry 'samples' is a str, not a JSON array"),
])
def test_sample_checks_the_manifest_before_drawing(run: Path, env: dict, manifest: str, needle: str) -> None:
    (run / "manifest.json").write_text(manifest)
    before = files_of(run)
    line = one_error_line(qgen(["sample", "--run", str(run), *SAMPLE], env))
    assert needle in line and str(run / "manifest.json") in line
    assert files_of(run) == before  # no samples-*.npz for a later evaluate to pick up


def test_resume_checks_the_manifest_before_rewriting_anything(run: Path, env: dict) -> None:
    (run / "manifest.json").write_text("[]")
    before = files_of(run)
    line = one_error_line(qgen(["train", "--resume", str(run), "--steps", "6", "--no-progress"], env))
    assert "manifest.json" in line
    assert files_of(run) == before  # config.toml as it was, no new TensorBoard event file


def _npz_with(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_bytes(b"PK\x03\x04 truncated"), "not a readable .npz"),
    (lambda p: p.write_bytes(b""), "not a readable .npz"),
    (lambda p: _npz_with(p, images=np.zeros((2, 1, 28, 28))), "has no 'samples' array (it has: images)"),
    (lambda p: _npz_with(p, samples=np.array(["a", "b"])), "holds <U1 values, not numbers"),
    (lambda p: _npz_with(p, samples=np.zeros((2, 28, 28))), "has shape (2, 28, 28), not (N, 1 or 3, 28, 28)"),
    (lambda p: _npz_with(p, samples=np.full((2, 1, 28, 28), np.nan)), "non-finite"),
])
def test_evaluate_refuses_a_foreign_or_damaged_samples_file(run: Path, env: dict, tmp_path: Path, make,
                                                            needle: str) -> None:
    path = tmp_path / "s.npz"
    make(path)
    line = one_error_line(qgen(["evaluate", "--run", str(run), "--samples", str(path)], env))
    assert f"cannot read samples from {path}" in line and needle in line
    assert not (run / "metrics.json").exists()


def test_evaluate_of_a_single_sample_prints_what_it_can(run: Path, env: dict) -> None:
    res = qgen(["sample", "--run", str(run), "--n", "1", "--steps", "2", "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    res = qgen(["evaluate", "--run", str(run), "--heldout", "50"], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("FLD n/a") and "n_samples=1" in res.stdout
    assert f"wrote {run / 'metrics.json'}" in res.stdout


def _read_only(monkeypatch) -> None:
    """What a read-only mount does to new files (root ignores chmod, so the tests cannot use it)."""
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


@pytest.mark.parametrize("command", ["sample", "evaluate", "resume"])
def test_a_read_only_run_is_refused_before_any_work(run: Path, monkeypatch, command: str) -> None:
    import qgen

    calls = []
    monkeypatch.setattr("qgen.sampling.load_trained_model", lambda *a, **k: calls.append("model"))
    monkeypatch.setattr("qgen.evaluation.load_dataset", lambda *a, **k: calls.append("data"))
    monkeypatch.setattr("qgen.training.run.load_backend", lambda *a, **k: calls.append("backend"))
    _read_only(monkeypatch)
    with pytest.raises(QgenError, match=rf"cannot write into run {run}: Read-only file system; nothing was done"):
        if command == "sample":
            qgen.sample(run, n=1, steps=2)
        elif command == "evaluate":
            qgen.evaluate(run)
        else:
            qgen.resume(run, steps=6)
    assert calls == []


def test_a_read_only_run_directory_for_real(run: Path, env: dict) -> None:
    run.chmod(0o555)
    try:
        if os.access(run, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        line = one_error_line(qgen(["sample", "--run", str(run), *SAMPLE], env))
        assert f"cannot write into run {run}" in line
    finally:
        run.chmod(0o755)


def test_sampling_more_than_fits_in_memory_is_refused_before_drawing(run: Path, env: dict) -> None:
    before = files_of(run)
    line = one_error_line(qgen(["sample", "--run", str(run), "--n", "1000000000", "--batch-size", "8", "--steps", "2",
                                "--no-progress"], env))
    assert "sampling --n 1000000000 needs about" in line and "fits in one command" in line
    assert files_of(run) == before
