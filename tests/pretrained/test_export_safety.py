"""``qgen export`` (issue #21, sections 2 and 4): it checks what ``sample`` checks before writing,
two exports to one destination never mix, and the model folder's files are shared like the rest."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.helpers import make_env, one_error_line, qgen, start_qgen


def test_export_refuses_a_checkpoint_that_does_not_fit_config_toml(run: Path, tmp_path: Path) -> None:
    config = run / "config.toml"
    config.write_text(config.read_text().replace("qubits = 4", "qubits = 3"))
    out = tmp_path / "models" / "m"
    line = one_error_line(qgen(["export", "--run", str(run), "--out", str(out)], make_env(tmp_path)))
    assert f"{run / 'checkpoint-ema.pt'} does not fit the model that config.toml describes" in line
    assert not out.exists() and not (tmp_path / "models").exists()  # refused before anything was made


def test_exported_files_are_readable_by_others_like_every_file_qgen_writes(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    res = qgen(["export", "--run", str(run), "--out", str(out)], make_env(tmp_path))
    assert res.returncode == 0, res.stderr
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()}
    assert modes["model.safetensors"] == 0o666 & ~umask, modes
    assert set(modes.values()) == {0o666 & ~umask}
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no lock, no staging


def test_an_export_into_a_destination_being_written_is_refused_at_once(run: Path, tmp_path: Path) -> None:
    from qgen.rundir import ModelFolder

    out = tmp_path / "m"
    with ModelFolder(out).writing():
        line = one_error_line(qgen(["export", "--run", str(run), "--out", str(out)], make_env(tmp_path)))
    assert f"model folder {out} is in use by pid {os.getpid()}" in line
    assert not out.exists()


def test_publishing_never_replaces_a_folder_that_filled_meanwhile(tmp_path: Path) -> None:
    from qgen.errors import QgenError
    from qgen.rundir import ModelFolder

    folder = ModelFolder(tmp_path / "m")
    with folder.writing() as staging:
        (staging.path / "config.json").write_text("{}")
        folder.path.mkdir()
        (folder.path / "README.md").write_text("someone else's")
        with pytest.raises(QgenError, match="already exists and is not an empty folder"):
            folder.publish(staging)
    assert [p.name for p in folder.path.iterdir()] == ["README.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_two_exports_at_once_leave_one_whole_folder(run: Path, tmp_path: Path) -> None:
    other = run.parent / "other-run"
    shutil.copytree(run, other)
    out = tmp_path / "models" / "x"
    env = make_env(tmp_path)
    procs = [start_qgen(["export", "--run", str(r), "--out", str(out)], env) for r in (run, other)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results
    loser = results[1 - winners[0]]
    assert loser[0] == 2 and "Traceback" not in loser[2] and loser[2].startswith("qgen: error: "), loser
    assert "already exists" in loser[2] or "is in use by pid" in loser[2]
    name = (run, other)[winners[0]].name
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["run"] == name and f"# {name}" in (out / "README.md").read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["x"]
