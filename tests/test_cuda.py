"""--device cuda on a real GPU: runs where torch sees one, and is skipped elsewhere (CI has none).

tests/test_torch_device.py checks the device plumbing on a CPU-only machine, patched where needed.
These tests run the CUDA kernels: a training step on the GPU agrees with the same step on the CPU
(float32 rounding apart), the quantum layer trains from a GPU model while its circuit runs on the
host, and a GPU-trained run samples on the GPU and on the CPU alike. ``benchmarks/gpu/check.sh``
runs them on a lent GPU machine. ``QGEN_TEST_GPU=cpu`` runs them against the CPU instead, which
checks only the tests' own code.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from qgen.backends.registry import load_backend
from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.schedules import make_schedule
from qgen.models.build import build_model
from qgen.models.config import ModelConfig
from qgen.noise import ClassicalNoise
from tests import helpers

GPU = os.environ.get("QGEN_TEST_GPU", "cuda")

pytestmark = pytest.mark.skipif(GPU == "cuda" and not torch.cuda.is_available(),
                                reason="no CUDA GPU here (QGEN_TEST_GPU=cpu runs these against the CPU)")


def _model(kind: str, device: str) -> torch.nn.Module:
    cfg = ModelConfig(kind=kind, widths=(8, 16, 16), qubits=3, layers=1)
    return build_model(cfg, 1, 0, load_backend("statevector") if kind == "quantum" else None).to(device)


def _steps(kind: str, device: str, steps: int = 3) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Losses of a few SGD steps and the gradients of the last one, every random number drawn on the
    host from fixed seeds. More than one step: the U-Net's output convolution starts at zero, so the
    first step's gradient reaches nothing but that layer."""
    model = _model(kind, device)
    diffusion = GaussianDiffusion(make_schedule("linear", 50)).to(device)
    x0 = (torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    noise, generator = ClassicalNoise(0), torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = diffusion.training_loss(model, x0, noise, generator)
        loss.backward()
        losses.append(float(loss.detach()))
        optimizer.step()
    return losses, {name: p.grad.detach().cpu() for name, p in model.named_parameters() if p.grad is not None}


@pytest.fixture
def no_tf32():
    """cuDNN may run float32 convolutions in TF32 (10-bit mantissa, ~1e-3 relative): off here, so that
    the comparison is one of float32 rounding."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("kind", ["classical", "quantum"])
def test_a_training_step_on_the_gpu_agrees_with_the_same_step_on_the_cpu(kind, no_tf32):
    cpu_losses, cpu_grads = _steps(kind, "cpu")
    gpu_losses, gpu_grads = _steps(kind, GPU)
    assert gpu_losses == pytest.approx(cpu_losses, rel=1e-4)
    assert cpu_grads.keys() == gpu_grads.keys()
    for name, grad in cpu_grads.items():
        scale = float(grad.abs().max()) or 1.0
        assert torch.allclose(gpu_grads[name], grad, rtol=1e-3, atol=1e-3 * scale), name
    if kind == "quantum":  # the circuit's weights train from a GPU model: a real, non-zero gradient
        qnn = [name for name in gpu_grads if name.startswith("gate.middle.qnn")]
        assert qnn and all(float(gpu_grads[name].abs().sum()) > 0 for name in qnn)


def test_the_circuit_stays_on_the_host_while_the_rest_of_a_quantum_model_is_on_the_gpu():
    model = _model("quantum", GPU)
    placed = {name: p.device.type for name, p in model.named_parameters()}
    assert {d for name, d in placed.items() if name.startswith("gate.middle.qnn")} == {"cpu"}
    assert {d for name, d in placed.items() if not name.startswith("gate.middle.qnn")} == {torch.device(GPU).type}


def test_a_gpu_trained_run_records_its_device_and_samples_on_the_gpu_and_the_cpu(tmp_path):
    env = {**os.environ, "QGEN_RUNS": str(tmp_path / "runs"), "QGEN_CIRCUITS": str(tmp_path / "circuits")}

    def qgen(*args: str) -> str:
        proc = helpers.qgen(list(args), env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    qgen("train", "--class", "3", "--n-train", "8", "--steps", "6", "--batch-size", "4", "--widths", "8,8,8",
         "--name", "gpu", "--device", GPU, "--no-progress", "--no-download")
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "manifest.json").read_text())["device"]["device"].startswith(torch.device(GPU).type)
    images = {}
    for device in (GPU, "cpu"):
        qgen("sample", "--run", "gpu", "--sampler", "ddim", "--steps", "5", "--n", "8", "--seed", "3",
             "--device", device, "--no-progress")
        newest = max(run.glob("samples-*.npz"), key=lambda p: p.stat().st_mtime_ns)
        with np.load(newest) as data:
            images[device] = torch.from_numpy(data["samples"])  # float32 in [-1, 1]
    # the same noise (drawn on the host) through the same weights: equal up to rounding (TF32 convolutions
    # on the GPU, as a user's run has them: ~1e-3 per layer, a few 1e-3 after 5 steps)
    assert torch.isfinite(images["cpu"]).all()
    assert torch.allclose(images[GPU], images["cpu"], atol=2e-2)
