"""Bottleneck designs: shapes, parameter-matched twins, separable circuits, gradients, ablations,
the dependence measure, and that runs made before the designs existed rebuild their own model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit.primitives import StatevectorEstimator

from qgen.backends.spec import BackendSpec
from qgen.circuits import AnsatzSpec, build_ansatz
from qgen.dependence import dependence_ratios
from qgen.errors import QgenError
from qgen.models.ablation import ABLATIONS, Ablate, ablated, bottlenecks
from qgen.models.bottlenecks import DESIGNS, make_bottleneck
from qgen.models.build import build_model, count_parameters
from qgen.models.config import BOTTLENECKS as CONFIG_BOTTLENECKS
from qgen.models.config import ModelConfig
from qgen.models.middles import ClassicalMiddle
from tests.helpers import qgen as run_cli  # ``qgen`` is the package

SMALL = dict(widths=(16, 16, 16), time_dim=32, qubits=3, layers=2)
STATEVECTOR = BackendSpec(name="statevector", kind="statevector")


def model(kind="quantum", **kw):
    return build_model(ModelConfig(kind=kind, **{**SMALL, **kw}), 1, seed=0, backend=STATEVECTOR)


def test_config_and_module_list_the_same_designs() -> None:
    assert CONFIG_BOTTLENECKS == tuple(DESIGNS)
    assert [ModelConfig(bottleneck=d).circuit_rows_per_image for d in DESIGNS] == [1, 49, 16, 1]
    assert ModelConfig(kind="classical", bottleneck="site").circuit_rows_per_image == 0


@pytest.mark.parametrize("design", CONFIG_BOTTLENECKS)
@pytest.mark.parametrize("readout", ["z", "zz"])
def test_every_design_keeps_the_shape_and_its_twin_has_as_many_parameters(design, readout) -> None:
    quantum, classical = model(bottleneck=design, readout=readout), model("classical", bottleneck=design,
                                                                          readout=readout)
    x = torch.randn(2, 1, 28, 28)
    for m in (quantum, classical):
        assert m(x, torch.tensor([3, 900])).shape == x.shape
    assert count_parameters(quantum.gate.middle) == count_parameters(classical.gate.middle) == 2 * 3 * 2
    assert count_parameters(quantum) == count_parameters(classical)
    # the shell is the same module for both arms: same names and shapes outside the middle
    shell = {k: v.shape for k, v in quantum.state_dict().items() if ".middle." not in k}
    assert shell == {k: v.shape for k, v in classical.state_dict().items() if ".middle." not in k}


@pytest.mark.parametrize("skips, dec_in", [((28, 14), (32, 32)), ((28,), (16, 32)), ((), (16, 16)), ((14,), (32, 16))])
def test_dropped_skips_shrink_the_decoder_inputs_and_the_output_ignores_them(skips, dec_in) -> None:
    m = model("classical", bottleneck="site", skips=skips)
    assert (m.dec2.conv1.in_channels, m.dec1.conv1.in_channels) == dec_in
    if not skips:  # nothing from the encoder reaches the decoder except through the bottleneck
        torch.nn.init.normal_(m.out.weight, std=0.1)
        x = torch.randn(2, 1, 28, 28)
        seen = {}
        m.gate.register_forward_hook(lambda mod, inp, out: seen.setdefault("h", out))
        out = m(x, torch.tensor([5, 5]))
        # rebuild the decoder's path from the bottleneck output alone: the same output
        temb = m.time_mlp(__import__("qgen.models.unet", fromlist=["x"]).timestep_embedding(torch.tensor([5, 5]), 32))
        h = m.mid2(seen["h"], temb)
        h = m.dec1(m.up1(m.dec2(m.up2(h), temb)), temb)
        assert torch.allclose(out, m.out(torch.nn.functional.silu(m.out_norm(h))))


@pytest.mark.parametrize("skips", [(14,), (28, 14)])
def test_narrowed_skips_feed_k_channels_and_the_twins_stay_matched(skips) -> None:
    quantum = model(bottleneck="site", skips=skips, skip_channels=8)
    classical = model("classical", bottleneck="site", skips=skips, skip_channels=8)
    assert sorted(quantum.skip_proj) == sorted(str(level) for level in skips)
    assert quantum.dec2.conv1.in_channels == 16 + 8
    assert quantum.dec1.conv1.in_channels == 16 + (8 if 28 in skips else 0)
    x = torch.randn(2, 1, 28, 28)
    assert quantum(x, torch.tensor([3, 900])).shape == x.shape
    assert count_parameters(quantum) == count_parameters(classical)
    # full width adds no module: a run's state dict from before the option loads unchanged
    assert not any(k.startswith("skip_proj") for k in model(bottleneck="site").state_dict())


def test_dropped_skips_zero_whole_images_in_training_only() -> None:
    from qgen.models.unet import SkipDrop

    drop = SkipDrop(0.5)
    x = torch.rand(4000, 3, 2, 2) + 0.5
    torch.manual_seed(0)
    y = drop.train()(x)
    zeroed = (y == 0).flatten(1).all(dim=1)
    kept = ~zeroed
    assert abs(zeroed.float().mean().item() - 0.5) < 4 * (0.25 / 4000) ** 0.5  # binomial, 4 sd
    assert torch.allclose(y[kept], 2 * x[kept])  # rescaled: the expectation is the input
    assert torch.equal(drop.eval()(x), x)
    m = model("classical", bottleneck="site", skips=(14,), skip_drop=0.5).eval()
    t = torch.tensor([3, 900])
    assert torch.equal(m(x[:2, :1].expand(2, 1, 2, 2).repeat(1, 1, 14, 14), t),
                       m(x[:2, :1].expand(2, 1, 2, 2).repeat(1, 1, 14, 14), t))  # sampling is deterministic


def test_bad_design_options_are_one_clear_error() -> None:
    with pytest.raises(QgenError, match="unknown bottleneck 'grid'"):
        ModelConfig(bottleneck="grid")
    with pytest.raises(QgenError, match="unknown readout 'x'"):
        ModelConfig(readout="x")
    with pytest.raises(QgenError, match="skips are pixel levels among 28, 14"):
        ModelConfig(skips=(7,))
    with pytest.raises(QgenError, match=r"skip_drop is a probability in \[0, 1\), got 1.0"):
        ModelConfig(skip_drop=1.0)
    with pytest.raises(QgenError, match="skip_channels must be 0 .full width. or a positive multiple of groups=8"):
        ModelConfig(skip_channels=-1)
    with pytest.raises(QgenError, match="got 12"):
        ModelConfig(skip_channels=12)
    with pytest.raises(QgenError, match="unknown entanglement 'star'"):
        ModelConfig(entanglement="star")


def test_separable_circuit_has_no_entangling_gate_and_zz_adds_neighbour_correlators() -> None:
    sep = build_ansatz(AnsatzSpec(4, 2, "none", "zz"))
    assert all(inst.operation.num_qubits == 1 for inst in sep.circuit.data)
    assert len(sep.observables) == 4 + 3 and sep.circuit.name.endswith("_zz")
    # on a product state <Z_q Z_q+1> = <Z_q><Z_q+1>: the ZZ readouts carry nothing new there
    rng = np.random.default_rng(0)
    values = rng.uniform(-np.pi, np.pi, sep.circuit.num_parameters)
    est = StatevectorEstimator()
    ev = est.run([(sep.circuit, list(sep.observables), values)]).result()[0].data.evs
    assert np.allclose(ev[4:], ev[:3] * ev[1:4], atol=1e-12)
    ent = build_ansatz(AnsatzSpec(4, 2, "linear", "zz"))
    ev = est.run([(ent.circuit, list(ent.observables), values)]).result()[0].data.evs
    assert not np.allclose(ev[4:], ev[:3] * ev[1:4], atol=1e-3)


@pytest.mark.parametrize("design", ["site", "patch"])
def test_per_site_quantum_middle_matches_qiskit_reference_estimator(design) -> None:
    m = model(bottleneck=design, readout="zz")
    rows = []
    m.gate.middle.register_forward_hook(lambda mod, inp, out: rows.append((inp[0].detach(), out.detach())))
    m(torch.randn(2, 1, 28, 28), torch.tensor([1, 2]))
    angles, readouts = rows[0]
    assert angles.shape[0] == 2 * m.gate.sites()
    qnn = build_ansatz(AnsatzSpec(3, 2, "linear", "zz"))
    weights = m.gate.middle.qnn.weight.detach().double().numpy()
    order = list(qnn.circuit.parameters)  # qiskit sorts them by name: bind by parameter, not position

    def values(a):
        bound = dict(zip(qnn.input_params, a)) | dict(zip(qnn.weight_params, weights))
        return [bound[p] for p in order]

    pubs = [(qnn.circuit, list(qnn.observables), values(a)) for a in angles[:5].double().numpy()]
    reference = np.array([r.data.evs for r in StatevectorEstimator().run(pubs).result()])
    assert np.allclose(readouts[:5].numpy(), reference, atol=1e-5)


def test_gradients_through_a_per_site_quantum_bottleneck_match_finite_differences() -> None:
    gate = model(bottleneck="patch").gate.double()  # the shell in float64; the circuit runs in float64 anyway
    h = torch.randn(2, 16, 7, 7, dtype=torch.float64)
    target = torch.randn(2, 16, 7, 7, dtype=torch.float64)
    weight = gate.middle.qnn.weight

    def loss():
        return (gate(h) - target).pow(2).mean()

    loss().backward()
    analytic = weight.grad.clone()
    assert analytic.abs().min() > 0, "every circuit weight gets gradient"
    step = 1e-3
    for j in (0, 5, 11):
        with torch.no_grad():
            weight[j] += step
            up = loss().item()
            weight[j] -= 2 * step
            down = loss().item()
            weight[j] += step
        # the connector hands float32 readouts on: a tolerance above float32 rounding of the loss
        assert analytic[j].item() == pytest.approx((up - down) / (2 * step), rel=2e-2, abs=1e-5)
    encode = gate.encode.weight.grad
    assert encode is not None and encode.abs().sum() > 0, "input gradients reach the encoder before the circuit"


def test_models_from_before_the_designs_rebuild_the_original_channel_gate() -> None:
    old = ModelConfig(kind="quantum", widths=(16, 16, 16), time_dim=32, qubits=3, layers=2)  # no new keys
    assert (old.bottleneck, old.readout, old.skips) == ("channel_gate", "z", (28, 14))
    keys = set(build_model(old, 1, seed=0, backend=STATEVECTOR).state_dict())
    assert {"gate.squeeze.weight", "gate.middle.qnn.weight", "gate.excite.weight", "gate.excite.bias"} <= keys
    assert build_model(old, 1, seed=0, backend=STATEVECTOR).dec1.conv1.in_channels == 32


def test_ablations_replace_readouts_as_defined() -> None:
    r = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)  # 2 images, 3 sites, 2 readouts
    g = torch.Generator().manual_seed(0)
    assert torch.equal(Ablate("removal_mean", g)(r), r.mean(dim=(0, 1), keepdim=True).expand_as(r))
    assert torch.equal(Ablate("content_mean", g)(r), r.mean(dim=0, keepdim=True).expand_as(r))
    shuffled = Ablate("removal_shuffle", g)(r).reshape(6, 2)
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, r.reshape(6, 2).tolist()))
    swapped = Ablate("content_shuffle", torch.Generator().manual_seed(3))(r)
    # whole images' maps move together, layout intact
    assert all(any(torch.equal(swapped[i], r[j]) for j in range(2)) for i in range(2))
    with pytest.raises(QgenError, match="unknown ablation"):
        Ablate("zero", g)


def test_ablated_context_sets_and_clears_every_bottleneck() -> None:
    m = model("classical", bottleneck="site")
    with ablated(m, "content_mean", seed=1):
        assert all(b.ablation is not None for b in bottlenecks(m))
    assert all(b.ablation is None for b in bottlenecks(m))
    with pytest.raises(QgenError, match="no bottleneck block"):
        with ablated(model("plain"), "removal_mean"):
            pass


def test_a_model_that_ignores_its_middle_is_unchanged_by_every_ablation() -> None:
    m = model("classical")  # channel gate
    torch.nn.init.zeros_(m.gate.excite.weight)  # the gate no longer reads the readouts
    torch.nn.init.normal_(m.out.weight, std=0.1)
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    base = m(x, t)
    for mode in ABLATIONS:
        with ablated(m, mode):
            assert torch.equal(m(x, t), base)


class ToyDecoder(torch.nn.Module):
    """Images made *only* from what a per-site bottleneck hands on: the 7x7 map of an image goes in,
    the identity-like middle carries it, the decoder upsamples it. Ablating its content must hurt."""

    def __init__(self):
        super().__init__()
        self.gate = make_bottleneck("site", 8, 2, 2, ClassicalMiddle(2, 1, seed=0), groups=8)

    def forward(self, codes):
        return torch.nn.functional.interpolate(self.gate(codes)[:, :1], size=28)


def test_dependence_ratios_are_one_without_dependence_and_large_with_it() -> None:
    torch.manual_seed(0)
    codes = torch.randn(64, 8, 7, 7) * torch.linspace(0.2, 3, 64)[:, None, None, None]
    toy = ToyDecoder()
    real = toy(codes).detach()

    def features(images):  # a fixed random projection: enough to compare distributions
        proj = torch.Generator().manual_seed(1)
        return images.flatten(1) @ torch.randn(28 * 28, 8, generator=proj)

    from qgen.metrics.frechet import frechet_distance

    ref = features(toy(codes.flip(0)).detach()).numpy()

    def score(images):
        return frechet_distance(features(images).numpy(), ref) + 1e-3

    def needs(mode):
        if mode is None:
            return toy(codes).detach()
        with ablated(toy, mode, seed=0):
            return toy(codes).detach()

    block = dependence_ratios(needs, score, global_design=False)
    assert block["removal_mean"]["ratio"] > 10 and block["content_mean"]["ratio"] > 10
    ignores = dependence_ratios(lambda mode: real, score, global_design=False)
    assert all(ignores[m]["ratio"] == pytest.approx(1.0) for m in ABLATIONS)
    glob = dependence_ratios(lambda mode: real, score, global_design=True)
    assert glob["content_mean"]["same_as"] == "removal_mean"


TINY = ["--class", "3", "--n-train", "16", "--batch-size", "4", "--widths", "8,8,8", "--qubits", "3", "--layers", "1",
        "--timesteps", "40", "--no-download", "--no-progress", "--seed", "1", "--steps", "6"]


def test_evaluate_reports_dependence_through_the_cli(env, tmp_path) -> None:
    import json

    res = run_cli(["train", *TINY, "--name", "site", "--bottleneck", "site", "--skips", "none"], env)
    assert res.returncode == 0, res.stderr
    res = run_cli(["sample", "--run", "site", "--sampler", "dpm", "--steps", "3", "--n", "12", "--batch-size", "6",
                   "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    res = run_cli(["evaluate", "--run", "site", "--heldout", "64"], env)  # --ablate is the default
    assert res.returncode == 0, res.stderr
    (run,) = (tmp_path / "runs").glob("*-site")
    dependence = json.loads((run / "metrics.json").read_text())["dependence"]
    assert "dependence on the bottleneck (site, quantum middle" in res.stdout
    assert dependence["sites_per_image"] == 49 and dependence["n"] == 12 and dependence["batch_size"] == 6
    # drawn exactly with classical noise: the evaluated samples are the as-trained reference
    assert dependence["reference"] == "the samples evaluated"
    for mode in ABLATIONS:  # with no skips the output is made from the circuit's readouts alone
        assert dependence[mode]["ratio"] is not None and dependence[mode]["fld"] > 0
    res = run_cli(["evaluate", "--run", "site", "--heldout", "64", "--no-ablate"], env)
    assert res.returncode == 0 and "dependence" not in res.stdout
    assert "dependence" not in json.loads((run / "metrics.json").read_text())


def test_a_plain_unet_has_no_dependence_to_measure(tmp_path) -> None:
    import qgen
    from qgen.dependence import measure_run_dependence

    cfg = qgen.run_config(name="plain", classes=(3,), n_train=8, download=False, model="plain", widths=(8, 8, 8),
                          timesteps=20, steps=2, batch_size=4, eval_every=0, tensorboard=False, device="cpu")
    run = qgen.train(cfg, runs_dir=tmp_path)
    request = {"n": 4, "sampler": "dpm", "steps": 2, "seed": 0, "batch_size": 4}
    assert measure_run_dependence(run, request, lambda images: 1.0) is None


def test_hardware_plans_bind_the_circuit_at_every_site_of_a_per_site_design() -> None:
    from qgen.backends.registry import get_backend
    from qgen.diffusion.schedules import make_schedule
    from qgen.draw import SampleRequest
    from qgen.planner import model_call_jobs, sampling_jobs

    spec = get_backend("ibm_fez")
    req = SampleRequest(n=5, sampler="dpm", steps=3, batch_size=4)
    scheduler = req.make_scheduler(make_schedule("linear", 100))
    rows = ModelConfig(bottleneck="site").circuit_rows_per_image
    plan = sampling_jobs(spec, req.n, req.batch_size, scheduler.model_calls(), rows)
    # two chunks (4 + 1 images) x 3 calls, each one job of one PUB with a binding per image and site
    assert plan == model_call_jobs(spec, [4 * 49, 1 * 49], 3)
    assert plan.executions > 20 * sampling_jobs(spec, req.n, req.batch_size, scheduler.model_calls(), 1).executions  # TREX etc. do not scale


@pytest.mark.parametrize("args, needle", [
    (["--skips", "7"], "skips are pixel levels among 28, 14, got [7]"),
    (["--skips", "a,b"], "--skips must be a comma-separated list of integers"),
    (["--bottleneck", "grid"], "'grid' is not one of"),
    (["--readout", "x"], "'x' is not one of"),
    (["--skip-drop", "1"], "skip_drop is a probability in [0, 1), got 1.0"),
    (["--skips", "none", "--skip-channels", "8"], "skip_channels and skip_drop act on kept skip connections"),
])
def test_bad_design_options_are_one_error_line_and_no_run(env, tmp_path, args, needle) -> None:
    res = run_cli(["train", *TINY, *args], env)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("qgen: error:")]
    assert needle in line
    assert not (tmp_path / "runs").exists()
