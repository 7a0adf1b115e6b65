"""Bring-your-own circuit through the command line (issue #24): a circuit-library ansatz and a QPY
file train, resume, sample, export and reload; bad circuit input is one ``qgen: error:`` line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from qiskit import QuantumCircuit, qpy
from qiskit.circuit import ParameterVector

from tests.helpers import qgen

TINY = ["--class", "3", "--n-train", "16", "--batch-size", "4", "--widths", "8,8,8", "--qubits", "3",
        "--timesteps", "40", "--no-download", "--no-progress", "--seed", "1", "--eval-every", "0"]
SAMPLE = ["--sampler", "dpm", "--steps", "2", "--n", "4", "--no-progress"]


@pytest.fixture
def env(env: dict) -> dict:
    """The suite's CLI environment (``conftest.env``), one thread per process."""
    return {**env, "QGEN_THREADS": "1"}


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stderr
    return res


def samples_of(folder: Path) -> np.ndarray:
    (npz,) = folder.glob("samples-*.npz")
    return np.load(npz)["images"]


def user_circuit() -> QuantumCircuit:
    """Two inputs through a circuit with gates the exact simulator transpiles (rxx) and Aer misbinds (crx)."""
    x, w = ParameterVector("x", 2), ParameterVector("w", 4)
    qc = QuantumCircuit(3, name="my ansatz")
    qc.ry(x[0], 0)
    qc.ry(x[1], 2)
    qc.h(1)
    qc.rxx(w[0], 0, 1)
    qc.crx(w[1], 1, 2)
    qc.ry(w[2], 0)
    qc.rz(w[3], 2)
    return qc


def test_library_ansatz_trains_resumes_samples_exports_and_reloads(tmp_path, env) -> None:
    ok(qgen(["train", *TINY, "--steps", "3", "--name", "lib", "--ansatz", "n_local", "--rotation-blocks", "rx,ry",
             "--entanglement-blocks", "crz", "--reps", "2", "--entanglement", "ring", "--feature-map",
             "zz_feature_map", "--observables", "z+zz"], env))
    (run,) = (tmp_path / "runs").glob("*-lib")
    res = qgen(["train", "--resume", "lib", "--ansatz", "real_amplitudes"], env)
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith("qgen: error: --ansatz cannot change")
    ok(qgen(["train", "--resume", "lib", "--steps", "5"], env))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["steps_done"] == 5
    ok(qgen(["sample", "--run", "lib", *SAMPLE], env))
    ok(qgen(["export", "--run", "lib", "--out", str(tmp_path / "model")], env))
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())["model"]
    assert cfg["ansatz_family"] == "n_local" and cfg["feature_map"] == "zz_feature_map"
    assert cfg["rotation_blocks"] == ["rx", "ry"] and cfg["observables"] == ["IIZ", "IZI", "ZII", "IZZ", "ZZI"]
    card = (tmp_path / "model" / "README.md").read_text()
    assert "zz_feature_map" in card and "n_local (rx, ry rotations, crz entanglers)" in card
    ok(qgen(["sample", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "s"), *SAMPLE], env))
    # the folder rebuilt the same model: the same images as the run gives with the same options
    assert np.array_equal(samples_of(run), samples_of(tmp_path / "s"))


def test_qpy_circuit_trains_and_travels_with_the_run_and_the_model_folder(tmp_path, env) -> None:
    path = tmp_path / "mine.qpy"
    with path.open("wb") as fh:
        qpy.dump(user_circuit(), fh)
    res = ok(qgen(["train", *TINY, "--steps", "2", "--name", "mine", "--circuit", str(path), "--input-params", "x",
                   "--observables", "ZZI,0.5*IXX + 0.5*XIX"], env))
    assert res.stderr.count("transpiled it into the gates it simulates") == 1
    (run,) = (tmp_path / "runs").glob("*-mine")
    path.unlink()  # the run carries its circuit: resuming, sampling and exporting need no file
    ok(qgen(["train", "--resume", "mine", "--steps", "3"], env))
    ok(qgen(["sample", "--run", "mine", *SAMPLE], env))
    ok(qgen(["export", "--run", "mine", "--out", str(tmp_path / "model")], env))
    model = json.loads((tmp_path / "model" / "config.json").read_text())["model"]
    assert model["ansatz_family"] == "custom" and model["circuit_inputs"] == ["x[0]", "x[1]"]
    with (tmp_path / "model" / "circuit" / "logical.qpy").open("rb") as fh:
        (logical,) = qpy.load(fh)
    assert [(i.operation.name, [str(p) for p in i.operation.params]) for i in logical.data] == \
        [(i.operation.name, [str(p) for p in i.operation.params]) for i in user_circuit().data]
    ok(qgen(["sample", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "s"), *SAMPLE], env))
    assert np.array_equal(samples_of(run), samples_of(tmp_path / "s"))


def _bad_circuit_files(tmp: Path) -> dict[str, Path]:
    x = ParameterVector("x", 2)
    only_inputs = QuantumCircuit(2)
    only_inputs.ry(x[0], 0)
    only_inputs.ry(x[1], 1)
    files = {"no_weights": tmp / "no_weights.qpy", "fine": tmp / "fine.qpy", "text": tmp / "text.qpy"}
    with files["no_weights"].open("wb") as fh:
        qpy.dump(only_inputs, fh)
    with files["fine"].open("wb") as fh:
        qpy.dump(user_circuit(), fh)
    files["text"].write_text("OPENQASM 3.0;\n")
    return files


# the circuit checks themselves are tested in-process (tests/circuits/test_circuit_library.py); these are the
# command line's own paths: reading the file, and the options that exclude each other
@pytest.mark.parametrize("args, message", [
    (["--circuit", "{no_weights}"], "needs at least one trainable weight"),
    (["--circuit", "{text}"], "is not a QPY circuit file"),
    (["--circuit", "{fine}", "--ansatz", "real_amplitudes"], "a circuit of your own replaces --ansatz"),
])
def test_bad_circuit_input_is_one_error_line_and_no_run(tmp_path, env, args, message) -> None:
    files = _bad_circuit_files(tmp_path)
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    res = qgen(["train", *TINY, "--steps", "1", *args], env)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("qgen: error: "), res.stderr
    assert message in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_qgen_circuits_writes_a_library_ansatz_as_a_device_receives_it(tmp_path, env) -> None:
    res = ok(qgen(["circuits", "--backend", "fake_fez", "--qubits", "3", "--ansatz", "efficient_su2", "--reps", "2",
                   "--entanglement", "circular", "--feature-map", "z_feature_map", "--no-noise-circuit"], env))
    (folder,) = [Path(line) for line in res.stdout.splitlines() if line.strip()]
    assert folder.parent.name == "fake_fez" and folder.name.startswith("efficient_su2_z_feature_map1_circular_q3_l2")
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["num_parameters"] == 3 + 2 * 3 * 3  # 3 inputs, efficient_su2: (ry, rz) x 3 qubits x (2 + 1) layers
    assert set(stats["count_ops"]) <= {"rz", "sx", "x", "cz", "barrier"}, "transpiled to the device's ISA"
