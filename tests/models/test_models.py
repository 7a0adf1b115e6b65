"""U-Net shapes, the parameter-matched control, and gradients through the gated bottleneck."""

from __future__ import annotations

import pytest
import torch

from qgen.backends.spec import BackendSpec
from qgen.models.build import build_model, count_parameters
from qgen.models.config import ModelConfig
from qgen.models.unet import timestep_embedding

SMALL = dict(widths=(16, 16, 16), time_dim=32, qubits=4, layers=2)
STATEVECTOR = BackendSpec(name="statevector", kind="statevector")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", ["plain", "classical", "quantum"])
def test_unet_maps_images_to_same_shape(kind: str, channels: int) -> None:
    model = build_model(ModelConfig(kind=kind, **SMALL), channels, seed=0, backend=STATEVECTOR)
    x = torch.randn(3, channels, 28, 28)
    out = model(x, torch.tensor([0, 500, 999]))
    assert out.shape == x.shape
    assert out.dtype == torch.float32


def test_time_embedding_distinguishes_timesteps() -> None:
    emb = timestep_embedding(torch.arange(1000), 32)
    assert emb.shape == (1000, 32)
    dists = torch.cdist(emb[:10], emb[:10])
    assert (dists + torch.eye(10) * 1e3).min() > 1e-3


def test_classical_gate_is_parameter_matched_to_quantum_gate() -> None:
    for qubits, layers in [(4, 2), (8, 3)]:
        cfg = dict(SMALL, qubits=qubits, layers=layers)
        quantum = build_model(ModelConfig(kind="quantum", **cfg), 1, seed=0, backend=STATEVECTOR)
        classical = build_model(ModelConfig(kind="classical", **cfg), 1, seed=0)
        plain = build_model(ModelConfig(kind="plain", **cfg), 1, seed=0)
        assert count_parameters(quantum.gate.middle) == 2 * qubits * layers
        assert count_parameters(classical.gate.middle) == 2 * qubits * layers
        assert count_parameters(quantum) == count_parameters(classical)
        assert count_parameters(plain) < count_parameters(classical)


def test_seeded_build_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_model(ModelConfig(kind="classical", **SMALL), 1, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build_model(ModelConfig(kind="classical", **SMALL), 1, seed=7)
    c = build_model(ModelConfig(kind="classical", **SMALL), 1, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_quantum_gate_trains_circuit_weights_and_projection() -> None:
    """A diffusion-style loss reaches the circuit weights and the projection before the circuit."""
    model = build_model(ModelConfig(kind="quantum", **SMALL), 1, seed=0, backend=STATEVECTOR)
    x = torch.randn(4, 1, 28, 28)
    # the output conv is zero-initialised; give it weights so the loss depends on the bottleneck
    torch.nn.init.normal_(model.out.weight, std=0.1)
    loss = (model(x, torch.tensor([10, 200, 400, 900])) - x).pow(2).mean()
    loss.backward()
    circuit_grad = model.gate.middle.qnn.weight.grad
    assert circuit_grad is not None and circuit_grad.abs().min() > 0, "every circuit weight must get gradient"
    assert model.gate.squeeze.weight.grad.abs().sum() > 0, "input gradients must reach the projection"


def test_model_config_builds_its_ansatz_spec():
    from qgen.circuits import AnsatzSpec
    from qgen.models.config import ModelConfig

    assert ModelConfig(qubits=4, layers=2, entanglement="ring").ansatz == AnsatzSpec(4, 2, "ring")
