"""qgen in the PyTorch / Hugging Face / Qiskit ecosystem: TensorBoard event files, model folders
(safetensors + config.json, loaded without unpickling), the Python API and its example script."""

from __future__ import annotations

import csv
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import REPO, qgen as run_cli

TINY = ["--class", "3", "--n-train", "16", "--batch-size", "4", "--widths", "8,8,8", "--qubits", "4", "--layers", "1",
        "--timesteps", "40", "--no-download", "--no-progress", "--seed", "1"]
SAMPLE = ["--n", "5", "--steps", "4", "--batch-size", "3", "--seed", "7", "--no-progress"]

# Every time an Unpickler resolves a global (any pickle of a tensor or an object does), Python raises
# this audit event; a hook cannot be removed, so it records only while a test switches it on.
_PICKLE_EVENTS: list | None = None


def _audit(event: str, args) -> None:
    if _PICKLE_EVENTS is not None and event == "pickle.find_class":
        _PICKLE_EVENTS.append(args)


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """One tiny quantum run with two in-training evaluations (the module's tests share it)."""
    tmp = tmp_path_factory.mktemp("eco")
    env = {**os.environ, "QGEN_RUNS": str(tmp / "runs"), "QGEN_CIRCUITS": str(tmp / "circuits"),
           "QGEN_DATA": str(tmp / "data"), "PYTHONUNBUFFERED": "1"}
    res = run_cli(["train", "--steps", "8", "--eval-every", "4", "--eval-samples", "16", "--checkpoint-every", "4",
                "--name", "eco", *TINY], env)
    assert res.returncode == 0, res.stderr
    (run,) = (tmp / "runs").iterdir()
    return run, env


@pytest.fixture(scope="module")
def exported(trained) -> Path:
    run, env = trained
    out = run.parent.parent / "models" / "eco"
    res = run_cli(["export", "--run", str(run), "--out", str(out)], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"wrote {out}"
    return out


def _run_samples(trained) -> dict:
    """The run's own samples for SAMPLE (drawn once)."""
    run, env = trained
    if not list(run.glob("samples-ddim4-statevector-*.npz")):
        res = run_cli(["sample", "--run", str(run), *SAMPLE], env)
        assert res.returncode == 0, res.stderr
    return _samples(run)


def _samples(folder: Path) -> dict:
    (npz,) = sorted(folder.glob("samples-ddim4-statevector-*.npz"))
    with np.load(npz) as data:
        return {key: data[key] for key in data.files}


# ------------------------------------------------------------------------------------ TensorBoard


def test_training_writes_event_files_that_tensorboards_reader_reads_back(trained) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run, _ = trained
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    with open(run / "loss.csv") as fh:
        losses = list(csv.DictReader(fh))
    with open(run / "metrics.csv") as fh:
        quality = list(csv.DictReader(fh))
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [int(r["step"]) for r in losses] == list(range(1, 9))
    np.testing.assert_allclose([e.value for e in loss], [float(r["loss"]) for r in losses], atol=1e-5)
    lr = [e.value for e in events.Scalars("train/lr")]
    assert len(lr) == 8 and lr[0] == pytest.approx(2e-3 / 100) and lr == sorted(lr)  # the warm-up's ramp
    fld = events.Scalars("quality/fld")
    assert [e.step for e in fld] == [int(r["step"]) for r in quality] == [4, 8]
    np.testing.assert_allclose([e.value for e in fld], [float(r["fld"]) for r in quality], rtol=1e-4)
    for key in ("copy_fraction", "floor", "memorizer"):
        assert [e.step for e in events.Scalars(f"quality/{key}")] == [4, 8]
    # sample grids at each evaluation and the end-of-run preview, never per step
    assert [e.step for e in events.Images("samples/evaluation")] == [4, 8]
    assert [e.step for e in events.Images("samples/preview")] == [8]
    assert sorted(tags["images"]) == ["samples/evaluation", "samples/preview"]
    # hyper-parameters with the final metrics (TensorBoard's HParams tab)
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["model.kind"].string_value == "quantum" and hparams["train.steps"].number_value == 8
    assert hparams["backend"].string_value == "statevector"
    final = events.Scalars("hparam/validation_fld")
    assert [e.value for e in final] == pytest.approx([float(quality[-1]["fld"])], rel=1e-4)
    assert events.Scalars("hparam/final_loss")[0].value == pytest.approx(float(losses[-1]["loss"]), rel=1e-5)


def test_no_tensorboard_is_recorded_in_the_config_and_writes_no_events(tmp_path: Path, env: dict) -> None:
    from qgen.config import load_run_config

    res = run_cli(["train", "--model", "plain", "--steps", "2", "--no-tensorboard", "--name", "quiet", *TINY], env)
    assert res.returncode == 0, res.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert not (run / "tensorboard").exists()
    assert load_run_config(run / "config.toml").train.tensorboard is False


def test_a_resumed_run_purges_the_events_past_its_checkpoint(tmp_path: Path) -> None:
    """A kill after the checkpoint at step 4 leaves events of steps 5-6; the resume redoes them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from qgen.training.tensorboard import TrainingBoard

    first = TrainingBoard(tmp_path)
    for step in range(1, 7):
        first.step(step, loss=1.0, lr=0.1)
    first.close()
    resumed = TrainingBoard(tmp_path, purge_step=5)
    for step in range(5, 9):
        resumed.step(step, loss=2.0, lr=0.1)
    resumed.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [(e.step, e.value) for e in loss] == [(s, 1.0) for s in range(1, 5)] + [(s, 2.0) for s in range(5, 9)]


def test_training_further_with_resume_keeps_one_loss_event_per_step(tmp_path: Path, env: dict) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["--model", "plain", "--name", "more", *TINY]
    assert run_cli(["train", "--steps", "4", *args], env).returncode == 0
    (run,) = (tmp_path / "runs").iterdir()
    res = run_cli(["train", "--resume", str(run), "--steps", "6", "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    with open(run / "loss.csv") as fh:
        losses = [float(r["loss"]) for r in csv.DictReader(fh)]
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 7)) and len(list((run / "tensorboard").iterdir())) == 2
    np.testing.assert_allclose([e.value for e in loss], losses, atol=1e-5)


# ------------------------------------------------------------------------------------ model folders


def test_export_writes_a_self_describing_folder_without_pickles(trained, exported) -> None:
    from qiskit import qpy
    from safetensors.torch import load_file

    run, _ = trained
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "circuit", "config.json", "model.safetensors"]
    assert not [p for p in exported.rglob("*") if p.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt")]
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "qgen-diffusion-unet" and config["backend"] == "statevector"
    assert config["model"]["qubits"] == 4 and config["diffusion"]["T"] == 40 and config["diffusion"]["prediction"] == "v"
    assert config["diffusion"]["schedule_params"] == {"beta_start": 1e-4, "beta_end": 0.02}
    assert config["weights"] == {"file": "model.safetensors", "source": "ema", "step": 8}
    assert config["data"]["n_train_images"] == 16 and config["data"]["classes"] == [3]
    assert [int(r["step"]) for r in config["metrics"]["validation"]] == [4, 8]
    # the EMA weights, tensor for tensor
    ema = torch.load(run / "checkpoint-ema.pt", weights_only=True)["model"]
    weights = load_file(exported / "model.safetensors")
    assert weights.keys() == ema.keys() and all(torch.equal(weights[k], ema[k]) for k in ema)
    # the circuit exactly as the run's backend received it, in QPY and OpenQASM 3
    manifest = json.loads((run / "manifest.json").read_text())
    recorded = Path(manifest["circuits"][0])
    assert (exported / "circuit" / "circuit.qpy").read_bytes() == (recorded / "circuit.qpy").read_bytes()
    with open(exported / config["circuit"]["files"]["qpy"], "rb") as fh:
        (circuit,) = qpy.load(fh)
    assert circuit.num_qubits == 4 and circuit.num_parameters == config["circuit"]["num_parameters"] == 4 + 8
    assert "OPENQASM 3" in (exported / config["circuit"]["files"]["qasm3"]).read_text()
    card = (exported / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: qgen" in card
    assert "N = 16" in card and "8 of 8 planned" in card and "floor" in card and "memorizer" in card
    assert "No test-set evaluation" in card and "not Inception FID" in card


def test_sampling_a_model_folder_is_bit_identical_to_sampling_its_run(trained, exported, tmp_path: Path) -> None:
    run, env = trained
    from_run = _run_samples(trained)
    # a copy elsewhere, with no run directory, circuits/ or backends file beside it
    shared = tmp_path / "shared-model"
    subprocess.run(["cp", "-r", str(exported), str(shared)], check=True)
    res = run_cli(["sample", "--model", str(shared), "--out", str(tmp_path / "out"), *SAMPLE],
               {**env, "QGEN_RUNS": str(tmp_path / "no-runs"), "QGEN_CIRCUITS": str(tmp_path / "no-circuits")})
    assert res.returncode == 0, res.stderr
    from_model = _samples(tmp_path / "out")
    assert from_run["samples"].shape == (5, 1, 28, 28)
    assert np.array_equal(from_run["samples"], from_model["samples"])
    assert np.array_equal(from_run["images"], from_model["images"])
    meta = json.loads(str(from_model["metadata"]))
    assert meta["model"] == str(shared) and meta["checkpoint_step"] == 8 and meta["weights"] == "ema"
    assert sorted(p.name for p in shared.iterdir()) == sorted(p.name for p in exported.iterdir())  # left as shared
    assert not (tmp_path / "no-runs").exists()


def test_from_pretrained_never_unpickles(trained, exported, tmp_path: Path, monkeypatch) -> None:
    """No Unpickler resolves anything while loading and sampling, and a pickle planted in the folder
    (which would write a file when unpickled) is never opened."""
    global _PICKLE_EVENTS
    import shutil

    import qgen

    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "unpickled"))

    for name in ("pytorch_model.bin", "model.pt", "checkpoint-ema.pt"):
        (folder / name).write_bytes(pickle.dumps(Payload()))

    def refuse(*args, **kwargs):
        raise AssertionError("a model folder must never be unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setenv("QGEN_CIRCUITS", str(tmp_path / "circuits"))
    _PICKLE_EVENTS = []
    try:
        pickle._loads(pickle.dumps(Path("x")))  # the hook sees an unpickling (the test can fail)
        assert _PICKLE_EVENTS, "the audit hook must record unpickling"
        _PICKLE_EVENTS.clear()
        model = qgen.from_pretrained(folder)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the CLI runs (one intra-op thread): same float sums, same images
        try:
            images = model.sample(5, sampler="ddim", steps=4, seed=7, batch_size=3)
        finally:
            torch.set_num_threads(threads)
        found = list(_PICKLE_EVENTS)
    finally:
        _PICKLE_EVENTS = None
    assert found == [] and not marker.exists()
    monkeypatch.undo()
    np.testing.assert_array_equal(images.numpy(), _run_samples(trained)["samples"])  # the API's samples: the same


def _break(folder: Path, case: str) -> None:
    config = folder / "config.json"
    data = json.loads(config.read_text())
    if case == "missing config":
        config.unlink()
    elif case == "not json":
        config.write_text("{ this is not json")
    elif case == "another library's config":
        config.write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    elif case == "unknown key":
        data["model"]["heads"] = 4
        config.write_text(json.dumps(data))
    elif case == "wrong type":
        data["model"]["qubits"] = "four"
        config.write_text(json.dumps(data))
    elif case == "weights do not fit":
        data["model"]["widths"] = [16, 16, 16]
        config.write_text(json.dumps(data))
    elif case == "missing weights":
        (folder / "model.safetensors").unlink()
    elif case == "damaged weights":
        (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")


BROKEN = {
    "missing config": "is not a qgen model folder: it has no config.json",
    "not json": "cannot read .*config.json",
    "another library's config": "is not a qgen model config \\(model_type 'bert'",
    "unknown key": "config.json: unknown key 'model.heads'",
    "wrong type": "config.json: model.qubits: expected an integer",
    "weights do not fit": "model.safetensors does not fit the model its config.json describes",
    "missing weights": "has no model.safetensors",
    "damaged weights": "cannot read .*model.safetensors",
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_model_folder_is_refused_with_one_clear_error(exported, tmp_path: Path, case: str) -> None:
    import shutil

    import qgen
    from qgen.errors import QgenError

    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    _break(folder, case)
    with pytest.raises(QgenError, match=BROKEN[case]) as err:
        qgen.from_pretrained(folder)
    assert "\n" not in str(err.value)


def test_the_cli_refuses_a_wrong_model_folder_in_one_line_and_writes_nothing(trained, exported, tmp_path: Path) -> None:
    import shutil

    run, env = trained
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    _break(folder, "another library's config")
    for args, message in ((["--model", str(folder)], "is not a qgen model config"),
                          (["--model", str(run)], "is not a qgen model folder: it has no config.json"),
                          (["--run", str(exported)], "is a model folder, not a run directory")):
        res = run_cli(["sample", *args, "--out", str(tmp_path / "out"), *SAMPLE], env)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("qgen: error: "), res.stderr
        assert message in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_export_refuses_what_it_cannot_do_and_leaves_nothing(trained, exported, tmp_path: Path) -> None:
    run, env = trained
    cases = ((["--run", str(run), "--out", str(exported)], "already exists and is not an empty folder"),
             (["--run", str(tmp_path / "nope"), "--out", str(tmp_path / "a")], "no run found at"),
             (["--run", str(run), "--out", str(tmp_path / "b"), "--weights", "last"], "'--weights': 'last' is not"))
    for args, message in cases:
        res = run_cli(["export", *args], env)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and message in lines[0], res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no staging left behind


def test_export_transpiles_the_circuit_again_when_circuits_is_gone(trained, tmp_path: Path) -> None:
    """The manifest's circuits/ folder lives outside the run; without it the run's backend remakes it."""
    from qgen.commands import ExportCommand
    from qgen.pretrained import export_run

    run, _ = trained
    manifest = json.loads((run / "manifest.json").read_text())
    recorded = Path(manifest["circuits"][0])
    moved = tmp_path / "away"
    recorded.rename(moved)
    try:
        out = export_run(ExportCommand(run, tmp_path / "model"))
    finally:
        moved.rename(recorded)
    assert (out / "circuit" / "circuit.qasm3").read_text() == (recorded / "circuit.qasm3").read_text()
    # the transpiled files as circuits/ holds them, and the logical circuit (export adds it)
    assert sorted(p.name for p in (out / "circuit").iterdir()) == sorted([*(p.name for p in recorded.iterdir()),
                                                                          "logical.qpy"])


# ------------------------------------------------------------------------------------ Python API


def test_import_qgen_is_light_and_the_api_is_at_the_top_level(env: dict) -> None:
    code = ("import sys, qgen; light = 'torch' not in sys.modules and 'qgen.api' not in sys.modules; "
            "import qgen.api; print(light, qgen.train is qgen.api.train, qgen.from_pretrained is qgen.api.from_pretrained, "
            "set(qgen.API) <= set(dir(qgen)), 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True", "True", "True", "False"]


def test_qgen_train_is_a_thin_layer_over_the_api(monkeypatch) -> None:
    """The command builds its config with qgen.run_config and hands it to qgen.train: same options,
    same RunConfig (the recipe where an option is not given)."""
    from click.testing import CliRunner

    import qgen
    from qgen import api
    from qgen.cli import cli

    calls = []
    monkeypatch.setattr(api, "train", lambda cfg, **kw: calls.append((cfg, kw)))
    monkeypatch.setattr("qgen.cli.signal.signal", lambda *args: None)
    result = CliRunner().invoke(cli, ["train", "--model", "classical", "--steps", "30", "--lr", "1e-3", "--mix",
                                      "0.1,0.9,2", "--no-tensorboard", "--name", "same", *TINY])
    assert result.exit_code == 0, result.output
    ((cfg, kw),) = calls
    assert cfg == qgen.run_config(name="same", model="classical", steps=30, lr=1e-3, mix=(0.1, 0.9, 2.0),
                                  tensorboard=False, classes=(3,), n_train=16, batch_size=4, widths=(8, 8, 8),
                                  qubits=4, layers=1, timesteps=40, download=False, seed=1)
    assert cfg.train.lr_schedule == "cosine" and cfg.diffusion.prediction == "v"  # the recipe's
    assert kw["progress"] is False and kw["epochs"] is None


def test_the_quickstart_example_trains_samples_evaluates_and_exports(tmp_path: Path, env: dict) -> None:
    res = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py"), "--runs-dir", "runs",
                          "--models-dir", "models", "--no-download"], cwd=tmp_path,
                         env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "FLD" in res.stdout and "the same samples, bit for bit" in res.stdout
    (run,) = (tmp_path / "runs").iterdir()
    (model,) = (tmp_path / "models").iterdir()
    assert (run / "metrics.json").is_file() and list((run / "tensorboard").iterdir())
    # evaluated before export: the card reports the test metrics with both baselines
    config = json.loads((model / "config.json").read_text())
    base = config["metrics"]["test"]["baselines"]
    assert base["fld"] == pytest.approx(json.loads((run / "metrics.json").read_text())["fld"]["value"])
    card = (model / "README.md").read_text()
    assert "| real-data floor (same sizes) |" in card and "| memorizer (the N training images replayed) |" in card
