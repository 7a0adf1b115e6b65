"""--device plumbing, tested on a CPU-only machine.

What can be tested here, and how: device *resolution* (cpu, auto, the errors for a CUDA or MPS that
is not there, with CUDA availability monkeypatched for the positive branches); the CLI's one-line
errors; config.toml / manifest records; loading a checkpoint whose tensors were saved on
``cuda:0`` (the storages are tagged with that location, exactly as a GPU run's file is; without
``map_location`` this machine cannot even read it). Mixed host/device arithmetic is caught by
running the sampling loop and the training loss with the model on torch's ``meta`` device, which
refuses elementwise ops between a meta tensor and a CPU tensor (a partial check: it does not see
everything a real GPU would). No test here runs a CUDA kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.pipeline import sample
from qgen.diffusion.samplers import make_scheduler
from qgen.diffusion.schedules import make_schedule
from qgen.errors import QgenError
from qgen.models.build import build_model
from qgen.models.config import ModelConfig
from qgen.noise import ClassicalNoise
from qgen.torch_device import describe_device, resolve_device
from qgen.training.ema import EMA
from tests.helpers import qgen

TINY_MODEL = ModelConfig(kind="plain", widths=(8, 8, 8), qubits=2, layers=1)


# -- resolution ---------------------------------------------------------------------------------

def test_cpu_and_auto_resolve_to_the_cpu_here():
    assert not torch.cuda.is_available()  # this suite runs on CPU machines; the branches below patch it
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert describe_device("auto", resolve_device("auto")) == {"requested": "auto", "device": "cpu"}


def test_auto_prefers_cuda_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(QgenError, match=r"--device cuda:2: this machine has 2 CUDA device\(s\)"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name, message", [
    ("cuda", "--device cuda: CUDA is not available"),
    ("cuda:0", "--device cuda:0: CUDA is not available"),
    ("mps", "--device mps: no Apple-silicon GPU"),
    ("gpu", "unknown device 'gpu'; choose auto"),
    ("cuda:x", "unknown device 'cuda:x'"),
])
def test_a_device_that_is_not_there_is_one_error(name, message):
    with pytest.raises(QgenError, match=message.replace("(", r"\(")):
        resolve_device(name)


def test_cli_cuda_without_a_gpu_is_one_line_and_writes_nothing(env, tmp_path):
    result = qgen(["train", "--n-train", "8", "--steps", "2", "--device", "cuda"], env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "qgen: error: --device cuda: CUDA is not available (this torch build has no CUDA support; torch "
        f"{torch.__version__}); use --device cpu or auto"] if torch.version.cuda is None else len(
        result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args", [
    ["sample", "--run", "nothing-yet", "--device", "cuda"],
    ["evaluate", "--run", "nothing-yet", "--device", "cuda:1"],
    ["experiment", "--smoke", "--out", "exp", "--device", "cuda"],
    ["experiment", "--smoke", "--out", "exp", "--executor", "ray", "--device", "cuda"],
])
def test_every_command_refuses_a_missing_gpu_before_touching_anything(args, tmp_path, monkeypatch, capsys):
    from qgen.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QGEN_RUNS", str(tmp_path / "runs"))
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qgen: error: --device cuda"), lines
    assert "CUDA is not available" in lines[0] or "has no GPUs" in lines[0]
    assert list(tmp_path.iterdir()) == []


# -- a run records its device; a checkpoint from another device loads --------------------------

def _tag_storages_as_cuda(path: Path) -> None:
    """Re-save a checkpoint so that every storage claims ``cuda:0``, as a GPU-trained run's does."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(state, path)
    finally:
        torch.serialization.location_tag = original


def _train(tmp_path: Path, name: str, device: str, kind: str = "plain", steps: int = 2) -> Path:
    from qgen.config import DiffusionConfig, RunConfig, TrainConfig
    from qgen.data import DataConfig
    from qgen.commands import TrainCommand
    from qgen.training.run import start_training

    cfg = RunConfig(name=name, data=DataConfig(dataset="mnist", classes=(3,), n_train=8, download=False),
                    model=ModelConfig(kind=kind, widths=(8, 8, 8), qubits=2, layers=1),
                    diffusion=DiffusionConfig(T=20),
                    train=TrainConfig(steps=steps, batch_size=4, eval_every=0, checkpoint_every=2), device=device)
    return start_training(TrainCommand(cfg, runs_dir=tmp_path / "runs")).path


def test_explicit_cpu_and_auto_are_recorded_and_a_cuda_checkpoint_samples_on_the_cpu(tmp_path):
    from qgen.commands import SampleCommand
    from qgen.draw import SampleRequest
    from qgen.sampling import sample

    runs = {device: _train(tmp_path, f"on{device}", device) for device in ("cpu", "auto")}
    for requested, run in runs.items():
        assert 'device = "cpu"' in (run / "config.toml").read_text()
        assert json.loads((run / "manifest.json").read_text())["device"] == {"requested": requested, "device": "cpu"}
    # the same model on the same batches: spelling the device out changes nothing
    assert _losses(runs["cpu"]) == _losses(runs["auto"])

    run = runs["cpu"]
    req = SampleRequest(n=4, sampler="ddim", steps=5, batch_size=4)
    before = sample(SampleCommand(req, run=run))["images"]
    _tag_storages_as_cuda(run / "checkpoint-ema.pt")
    with pytest.raises(RuntimeError, match="CUDA"):  # the file really claims a CUDA device
        torch.load(run / "checkpoint-ema.pt", weights_only=False)
    out = sample(SampleCommand(req, run=run, device="cpu"))
    assert torch.equal(out["images"], before)
    assert out["metadata"]["device"] == {"requested": "cpu", "device": "cpu"}


def test_resume_reads_a_cuda_checkpoint_onto_the_cpu(tmp_path):
    from qgen.commands import ResumeCommand
    from qgen.training.run import resume_training

    whole = _train(tmp_path, "whole", "cpu", kind="classical", steps=4)
    half = _train(tmp_path, "half", "cpu", kind="classical", steps=2)
    _tag_storages_as_cuda(half / "checkpoint-last.pt")
    resume_training(ResumeCommand(half, steps=4))
    assert _losses(half) == _losses(whole)  # resumed exactly where it stopped


def _losses(run: Path) -> list[str]:
    return [row.split(",")[1] for row in (run / "loss.csv").read_text().splitlines()[1:]]


# -- where tensors live ----------------------------------------------------------------------------

def test_the_quantum_layer_stays_on_the_host_when_the_model_moves():
    from qgen.backends.registry import load_backend

    model = build_model(ModelConfig(kind="quantum", widths=(8, 8, 8), qubits=2, layers=1), 1, 0,
                        load_backend("statevector"))
    model.to("meta")
    qnn_weight = model.gate.middle.qnn.weight
    assert qnn_weight.device.type == "cpu" and qnn_weight.dtype == torch.float32
    others = {p.device.type for name, p in model.named_parameters() if not name.startswith("gate.middle.qnn")}
    assert others == {"meta"}


def test_sampling_and_the_training_loss_never_mix_host_and_device_tensors():
    model = build_model(TINY_MODEL, 1, 0).to("meta")
    schedule = make_schedule("linear", 20)
    for sampler in ("ddpm", "ddim", "dpm"):
        x = sample(model, make_scheduler(sampler, schedule, steps=4), (2, 1, 28, 28), ClassicalNoise(0))
        assert x.device.type == "meta", sampler
    diffusion = GaussianDiffusion(schedule).to("meta")
    x0 = torch.zeros(2, 1, 28, 28, device="meta")
    loss = diffusion.training_loss(model, x0, ClassicalNoise(0), torch.Generator().manual_seed(0))
    assert loss.device.type == "meta"


def test_noise_and_timesteps_are_drawn_on_the_host_whatever_the_device():
    from qgen.diffusion.ddpm import draw_noise

    on_meta = draw_noise(ClassicalNoise(3), (2, 3), 5, device="meta")
    assert on_meta.device.type == "meta"
    # the host stream advanced exactly as a CPU draw would: the next values agree
    a, b = ClassicalNoise(3), ClassicalNoise(3)
    draw_noise(a, (2, 3), 5, device="meta")
    draw_noise(b, (2, 3), 5)
    assert torch.equal(a.randn((4,)), b.randn((4,)))


def test_ema_state_loads_onto_the_models_device():
    model = build_model(TINY_MODEL, 1, 0)
    state = EMA(model, 0.9).state_dict()  # CPU tensors, as a checkpoint is read
    ema = EMA(model.to("meta"), 0.9)
    ema.load_state_dict(state)
    assert {v.device.type for v in ema.shadow.values()} == {"meta"}
