"""``qgen backends`` and ``qgen info`` (issue #21, section 4): an entry that cannot be used is not
listed as usable, and a missing backends file is one line before anything is printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from qgen.errors import QgenError
from tests.helpers import make_env, one_error_line, qgen


def test_an_entry_that_cannot_be_used_is_marked_unusable(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[backends.ghost]\nkind = "fake"\ndevice = "ibm_nowhere"\n\n'
                    '[backends.brisbane]\nkind = "fake"\ndevice = "ibm_brisbane"\n')
    res = qgen(["backends", "--backends", str(path)], make_env(tmp_path))
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line for line in res.stdout.splitlines()[1:]}
    assert "UNUSABLE: no fake device 'ibm_nowhere'" in rows["ghost"]
    assert "UNUSABLE" not in rows["brisbane"]


def test_an_aer_noise_that_does_not_exist_is_refused_when_the_file_is_read() -> None:
    from qgen.backends.registry import parse_backends

    with pytest.raises(QgenError, match=r"b.toml:3: backend 'n': unknown noise 'ibm_nowhere'; noise must be ideal or depolarizing"):
        parse_backends('[backends.n]\nkind = "aer"\nnoise = "ibm_nowhere"\n', "b.toml")


def test_info_with_a_missing_backends_file_prints_only_the_error(tmp_path: Path) -> None:
    res = qgen(["info", "--backends", str(tmp_path / "missing.toml")], make_env(tmp_path))
    assert "backends file not found" in one_error_line(res)
    assert res.stdout == ""


def test_a_model_folder_naming_an_unknown_backend_is_traced_to_its_config_json(tmp_path: Path) -> None:
    import json

    import numpy as np
    from safetensors.numpy import save_file

    from qgen.config import DiffusionConfig
    from qgen.models.config import ModelConfig
    from qgen.pretrained import from_pretrained
    from qgen.pretrained.folder_config import FORMAT_VERSION, MODEL_TYPE, FolderConfig

    folder = tmp_path / "m"
    folder.mkdir()
    cfg = FolderConfig(model_type=MODEL_TYPE, format_version=FORMAT_VERSION, model=ModelConfig(kind="plain"),
                       channels=1, diffusion=DiffusionConfig(), backend="my_lab_qpu", seed=0)
    (folder / "config.json").write_text(cfg.to_json())
    save_file({"x": np.zeros(1, np.float32)}, str(folder / "model.safetensors"))
    with pytest.raises(QgenError) as err:
        from_pretrained(folder)
    message = str(err.value)
    assert message.startswith(f"{folder / 'config.json'} names backend 'my_lab_qpu'")
    assert "unknown backend 'my_lab_qpu'" in message and "--backend NAME" in message
    json.loads((folder / "config.json").read_text())  # untouched
