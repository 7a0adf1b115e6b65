"""Bad input gets one clear error (reliability cases of the issue tracker): data files, TOML, CLI numbers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from qgen.data import DataConfig, load_dataset
from qgen.errors import QgenError
from qgen.tomlconfig import from_dict, read_toml
from tests.helpers import REPO, qgen


def _npz(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    np.savez(path, train_images=images, train_labels=labels)
    return path


def _load(path: Path):
    return load_dataset(DataConfig(dataset=str(path)))


def test_empty_npz_is_one_clear_error(tmp_path):
    path = _npz(tmp_path / "empty.npz", np.zeros((0, 28, 28), np.uint8), np.zeros((0, 1), np.uint8))
    with pytest.raises(QgenError, match="holds no images"):
        _load(path)


def test_string_labels_are_refused(tmp_path):
    path = _npz(tmp_path / "s.npz", np.zeros((3, 28, 28), np.uint8), np.array([["a"], ["b"], ["c"]]))
    with pytest.raises(QgenError, match="labels must be integer class numbers.*dtype <U1"):
        _load(path)


def test_fractional_labels_are_refused_but_whole_floats_load(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    with pytest.raises(QgenError, match="labels must be integer"):
        _load(_npz(tmp_path / "f.npz", images, np.array([[0.7], [1.0], [0.0]])))
    loaded = _load(_npz(tmp_path / "w.npz", images, np.array([[2.0], [1.0], [0.0]])))
    assert loaded.labels.tolist() == [2, 1, 0]


def test_random_bytes_npz_says_damaged_not_pickled(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(QgenError, match="damaged or not an .npz in the MedMNIST layout"):
        _load(path)


def test_data_root_that_is_a_file(tmp_path):
    root = tmp_path / "afile"
    root.write_text("x")
    with pytest.raises(QgenError, match="is a file, not a folder"):
        load_dataset(DataConfig(dataset="mnist", root=str(root), download=False))


@dataclass(frozen=True)
class _Needs:
    name: str
    size: int = 1


def test_missing_required_key_names_it():
    with pytest.raises(QgenError, match="missing required key 'run.name'"):
        from_dict(_Needs, {"size": 2}, "run")
    assert from_dict(_Needs, {"name": "x"}) == _Needs("x")


def test_run_config_without_name_is_one_line(tmp_path):
    from qgen.config import load_run_config

    path = tmp_path / "config.toml"
    path.write_text('backend = "statevector"\n')
    with pytest.raises(QgenError, match="missing required key 'name'"):
        load_run_config(path)


def test_toml_that_is_not_utf8(tmp_path):
    path = tmp_path / "b.toml"
    path.write_bytes(b'name = "\xff\xfe"\n')
    with pytest.raises(QgenError, match="not UTF-8"):
        read_toml(path)


@pytest.mark.parametrize("args, needle", [
    (("train", "--lr", "nan"), "'--lr': 'nan' is not a finite number"),
    (("train", "--lr", "inf"), "'--lr': 'inf' is not a finite number"),
    (("train", "--lr", "0"), "'--lr': '0' must be > 0"),
    (("train", "--steps", "0"), "'--steps': 0 is not in the range"),
    (("sample", "--run", "x", "--eta", "nan"), "'--eta': 'nan' is not a finite number"),
    (("sample", "--run", "x", "--shot-budget", "-5"), "'--shot-budget': -5 is not in the range"),
    (("noise-report", "--gaussians", "0"), "'--gaussians': 0 is not in the range"),
    (("train", "--no-such-flag"), "No such option"),
    # the recipe's options
    (("train", "--lr-warmup", "-1"), "'--lr-warmup': -1 is not in the range"),
    (("train", "--ema-power", "nan"), "'--ema-power': 'nan' is not a finite number"),
    (("train", "--ema-decay", "-0.5"), "'--ema-decay': '-0.5' must be >= 0"),
    (("train", "--min-snr-gamma", "0"), "'--min-snr-gamma': '0' must be > 0"),
    (("train", "--augment-shift", "9"), "'--augment-shift': 9 is not in the range"),
    (("train", "--eval-every", "-2"), "'--eval-every': -2 is not in the range"),
    (("train", "--eval-samples", "0"), "'--eval-samples': 0 is not in the range"),
    (("train", "--prediction", "x0"), "'--prediction': 'x0' is not one of"),
    (("sample", "--run", "x", "--weights", "bogus"), "'--weights': 'bogus' is not one of"),
    (("sample", "--run", "x", "--sampler", "euler"), "'--sampler'"),
])
def test_cli_rejects_bad_numbers_in_one_line(args, needle):
    res = qgen(list(args), os.environ, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qgen: error: ") and needle in lines[0], res.stderr
    assert "Traceback" not in res.stderr


# --------------------------------------------------------------------------------- backends.toml


def _backends(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "backends.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_backend_without_kind_names_file_and_line(tmp_path):
    from qgen.backends.registry import load_backends

    path = _backends(tmp_path, '# comment\n\n[backends.x]\ndescription = "no kind"\n')
    with pytest.raises(QgenError, match=rf"^{path}:3: missing required key 'backends.x.kind'$"):
        load_backends(path)


@pytest.mark.parametrize("text, got", [
    ("backends = 5\n", "int 5"),
    ('backends = "x"\n', "str 'x'"),
    ('[[backends]]\nkind = "aer"\n', "an array"),
])
def test_backends_that_is_not_a_table(tmp_path, text, got):
    from qgen.backends.registry import load_backends

    path = _backends(tmp_path, text)
    with pytest.raises(QgenError, match=rf"^{path}:1: 'backends' must hold \[backends.NAME\] tables, got {got}"):
        load_backends(path)


def test_backends_file_that_is_not_utf8(tmp_path):
    from qgen.backends.registry import load_backends

    path = _backends(tmp_path, b'[backends.x]\nkind = "aer"\ndescription = "\xff\xfe"\n')
    with pytest.raises(QgenError, match="is not UTF-8 text"):
        load_backends(path)


@pytest.mark.parametrize("kind, device", [("aer", None), ("fake", "ibm_fez")])
def test_unknown_aer_method_is_refused_when_the_file_is_read(tmp_path, kind, device):
    from qgen.backends.registry import load_backends

    dev = f'device = "{device}"\n' if device else ""
    path = _backends(tmp_path, f'[backends.x]\nkind = "{kind}"\n{dev}method = "bogus"\n')
    with pytest.raises(QgenError, match=r":\d: backend 'x': method must be one of automatic, statevector, "
                                        r"density_matrix.* got 'bogus'"):
        load_backends(path)


def test_ibm_takes_no_method(tmp_path):
    from qgen.backends.registry import load_backends

    path = _backends(tmp_path, '[backends.x]\nkind = "ibm"\ndevice = "ibm_fez"\nmethod = "statevector"\n')
    with pytest.raises(QgenError, match="kind 'ibm' runs on hardware and takes no method"):
        load_backends(path)


def test_aer_methods_cover_what_qiskit_aer_offers():
    from qiskit_aer import AerSimulator

    from qgen.backends.aer import AER_METHODS

    assert set(AerSimulator().available_methods()) <= set(AER_METHODS)


def test_aer_method_missing_from_this_build_fails_before_training():
    from qgen.backends.registry import backend_for
    from qgen.backends.spec import BackendSpec
    from qgen.circuits import build_ansatz
    from qgen.models.config import ModelConfig

    backend = backend_for(BackendSpec(name="tn", kind="aer", method="tensor_network"))
    circuit = build_ansatz(ModelConfig(qubits=2, layers=1).ansatz)
    from qiskit_aer import AerSimulator

    if "tensor_network" in AerSimulator().available_methods():
        pytest.skip("this qiskit-aer build has tensor_network (GPU)")
    with pytest.raises(QgenError, match="method 'tensor_network' is not available in this qiskit-aer build"):
        backend.make_qnn(circuit)


def test_ibm_without_shots_or_precision_plans_with_the_runtime_default(tmp_path):
    from qgen.backends.ibm import DEFAULT_SHOTS
    from qgen.backends.registry import backend_for, load_backends
    from qgen.config import RunConfig
    from qgen.planner import training_plan

    path = _backends(tmp_path, '[backends.x]\nkind = "ibm"\ndevice = "ibm_fez"\nshot_budget = 1000\n')
    spec = load_backends(path)["x"]
    assert spec.shots == DEFAULT_SHOTS == 4096 and spec.shots_per_binding == 4096
    with pytest.raises(QgenError, match="training plan needs .* shots"):  # the arithmetic, not a TypeError
        training_plan(RunConfig(name="r", backend="x"), backend_for(spec, local=True)).check()


def test_empty_backends_file_says_it_defines_none(tmp_path):
    path = _backends(tmp_path, "# nothing here yet\n")
    for args in (("backends", "--backends", str(path)), ("train", "--backends", str(path), "--steps", "1")):
        res = qgen(list(args), os.environ, timeout=120)
        assert res.returncode != 0, res.stdout
        assert res.stderr.strip() == (f"qgen: error: {path} defines no backends; add a [backends.NAME] table "
                                      f"with a kind (see {REPO / 'backends.toml'}) or pass --backends FILE")
        assert "name" not in res.stdout  # no table header for an empty list


def test_ema_decay_of_one_is_one_line():
    """Outside [0, 1) the EMA never moves: refused by the config, not only by the CLI's finite check."""
    res = qgen(["train", "--ema-decay", "1", "--no-download", "--n-train", "4", "--class", "3"], os.environ,
               timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == "qgen: error: train.ema_decay must be in [0, 1), got 1.0"
