"""Quantum noise: Sampler bits -> extraction -> pool -> Gaussians, budgets, and torch sources."""

import json
import math
import time

import numpy as np
import pytest
import torch
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.primitives import BitArray

from qgen.diffusion.samplers import make_scheduler
from qgen.diffusion.schedules import NoiseMixing, make_schedule
from qgen.errors import QgenError
from qgen.noise import (
    BITS_PER_GAUSSIAN,
    ClassicalNoise,
    EntropyPool,
    MixedNoise,
    NoiseSource,
    QuantumBitSource,
    QuantumNoise,
    SeedChain,
    ToeplitzExtractor,
    VonNeumannExtractor,
    aer_sampler_factory,
    bits_to_gaussians,
    bits_to_uniforms,
    default_extractors,
    extract,
    fixed_sampler,
    format_report,
    hadamard_circuit,
    noise_report,
    nominal_yield,
)
from qgen.noise.bit_source import bitarray_to_bits
from qgen.noise.pool import BITS_FILE, META_FILE


def ideal_source(n_qubits=16, root=1, **kwargs):
    return QuantumBitSource(aer_sampler_factory(), [hadamard_circuit(n_qubits)],
                            backend_name="aer_simulator_mps", seeds=SeedChain(root), **kwargs)


# ------------------------------------------------------------------ bits and conversion
def test_bitarray_bits_come_out_qubit_major_with_clbit_zero_first():
    # "001": clbit0 = 1; "011": clbit0 = clbit1 = 1 (Qiskit prints clbit 0 rightmost).
    bit_array = BitArray.from_samples(["001", "011"], num_bits=3)
    assert bitarray_to_bits(bit_array).tolist() == [1, 1, 0, 1, 0, 0]


def test_uniforms_never_hit_0_or_1_and_gaussians_stay_finite():
    extremes = np.concatenate([np.zeros(24, np.uint8), np.ones(24, np.uint8)])
    u = bits_to_uniforms(extremes)
    assert 0 < u[0] < 1e-7 and 1 - 1e-7 < u[1] < 1
    z = bits_to_gaussians(extremes)
    assert z.dtype == np.float32 and np.isfinite(z).all() and z[0] < -5 and z[1] > 5
    with pytest.raises(QgenError):
        bits_to_uniforms(np.zeros(25, np.uint8))


@pytest.mark.parametrize("method", ["inverse_cdf", "box_muller"])
def test_fair_bits_become_standard_normal(method):
    bits = np.random.default_rng(0).integers(0, 2, 20_000 * BITS_PER_GAUSSIAN, dtype=np.uint8)
    report = noise_report(samples=bits_to_gaussians(bits, method))
    assert report["pass"], format_report(report)


# ------------------------------------------------------------------ ideal Aer source
def test_127_qubit_hadamard_runs_locally_and_gives_normal_noise():
    source = QuantumBitSource(aer_sampler_factory(), [hadamard_circuit(127)],
                              backend_name="aer_simulator_mps", seeds=SeedChain(7))
    start = time.perf_counter()
    batch = source.fetch(4096)
    seconds = time.perf_counter() - start
    assert batch.bits.size == 127 * 4096 and seconds < 30
    n_gauss = batch.bits.size // BITS_PER_GAUSSIAN  # 21,674 Gaussians
    report = noise_report(samples=bits_to_gaussians(batch.bits[: n_gauss * BITS_PER_GAUSSIAN]),
                          bits=batch.bits)
    g = report["gaussians"]
    assert report["pass"], format_report(report)
    assert g["ks_pvalue"] > 0.01 and abs(g["mean"]) < 0.03 and abs(g["variance"] - 1) < 0.04


def test_consecutive_fetches_use_fresh_seeds_and_are_reproducible():
    source = ideal_source(root=3)
    first, second = source.fetch(512), source.fetch(512)
    assert first.seed != second.seed and source.seeds.issued == [first.seed, second.seed]
    assert (first.bits != second.bits).mean() > 0.4  # a repeated seed would give identical bits
    again = ideal_source(root=3).fetch(512)
    assert np.array_equal(again.bits, first.bits)
    resumed = SeedChain(root=3, start=1)
    assert resumed.next() == second.seed  # a chain resumes from (root, index) alone


def chunk_widths(n_qubits: int, max_width: int) -> list[int]:
    """Split ``n_qubits`` into near-equal chunks of at most ``max_width`` (e.g. 127 -> 6 x ~21)."""
    n_chunks = math.ceil(n_qubits / max_width)
    base, extra = divmod(n_qubits, n_chunks)
    return [base + 1 if i < extra else base for i in range(n_chunks)]


def chunked_hadamard_circuits(n_qubits: int, max_width: int = 24) -> list[QuantumCircuit]:
    """The same bits as ``hadamard_circuit(n_qubits)`` as several circuits narrow enough for a state vector."""
    return [hadamard_circuit(w) for w in chunk_widths(n_qubits, max_width)]


def ry_circuit(n_qubits: int) -> QuantumCircuit:
    """RY(pi/2 + delta) on every qubit + measure_all: P(1) = (1 + sin(delta))/2, a coin of known bias."""
    qc = QuantumCircuit(n_qubits, name=f"ry_{n_qubits}")
    qc.ry(math.pi / 2 + Parameter("delta"), range(n_qubits))
    qc.measure_all()
    return qc


def ry_one_probability(delta: float) -> float:
    """Ideal probability of measuring 1 after RY(pi/2 + delta) on |0>."""
    return math.sin((math.pi / 2 + delta) / 2) ** 2


def test_wide_register_split_into_chunks_gives_all_bits_in_one_job():
    assert chunk_widths(127, 24) == [22, 21, 21, 21, 21, 21]
    source = QuantumBitSource(aer_sampler_factory(method="statevector"),
                              chunked_hadamard_circuits(127), backend_name="aer_statevector")
    batch = source.fetch(256)
    assert source.bits_per_shot == 127 and batch.bits.size == 127 * 256
    assert noise_report(bits=batch.bits)["pass"]


def test_ry_circuit_has_the_bias_it_was_built_with():
    delta = 0.4
    source = QuantumBitSource(aer_sampler_factory(), [(ry_circuit(8), [delta])],
                              backend_name="aer_simulator_mps", seeds=SeedChain(5))
    bits = source.fetch(20_000).bits
    assert abs(bits.mean() - ry_one_probability(delta)) < 0.01  # P(1) = (1 + sin 0.4)/2 = 0.69
    assert not noise_report(bits=bits)["pass"]
    assert noise_report(bits=extract(bits, default_extractors()))["pass"]


# ------------------------------------------------------------------ extraction
def test_extractors_unbias_a_synthetic_p06_stream():
    raw = (np.random.default_rng(1).random(400_000) < 0.6).astype(np.uint8)
    assert noise_report(bits=raw)["bits"]["bias_z"] > 50
    vn = VonNeumannExtractor()(raw)
    assert abs(vn.size / raw.size - 0.6 * 0.4) < 0.005  # rate p(1-p) per input bit
    for out in (vn, ToeplitzExtractor(ratio=0.5, seed=2)(raw), extract(raw, default_extractors())):
        report = noise_report(bits=out)
        assert report["pass"], format_report(report)


def test_von_neumann_needs_pairs_from_the_same_qubit():
    # Two qubits with biases 0.2 and 0.8. Shot-major order would pair qubit 0 with qubit 1 and
    # produce mostly zeros; the qubit-major order of bitarray_to_bits pairs each qubit with itself.
    rng = np.random.default_rng(2)
    shots = np.stack([rng.random(100_000) < 0.2, rng.random(100_000) < 0.8], axis=1)
    shot_major = VonNeumannExtractor()(shots.reshape(-1).astype(np.uint8))
    assert shot_major.mean() < 0.1
    qubit_major = bitarray_to_bits(BitArray.from_bool_array(shots[:, ::-1]))
    assert noise_report(bits=VonNeumannExtractor()(qubit_major))["pass"]


# ------------------------------------------------------------------ entropy pool
def test_pool_resumes_at_the_saved_offset_and_never_replays_unless_asked(tmp_path):
    pool = EntropyPool.open(tmp_path, source=ideal_source(), seed=1)
    first = pool.take(5000)
    assert pool.offset == 5000 and pool.bits_total >= 5000
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["offset"] == 5000 and meta["jobs"][0]["job_id"] and meta["jobs"][0]["seed"] is not None
    assert "OPENQASM 3" in meta["sources"][0]["circuits"][0]["qasm3"]

    reopened = EntropyPool.open(tmp_path)  # no source: only the stored bits
    assert reopened.offset == 5000 and reopened.available == pool.bits_total - 5000
    second = reopened.take(1000)
    assert (second != first[:1000]).mean() > 0.3
    replay = EntropyPool.open(tmp_path, reuse=True)
    assert np.array_equal(replay.take(5000), first)
    assert not list(tmp_path.glob("*.tmp")) and {p.name for p in tmp_path.iterdir()} == {BITS_FILE, META_FILE}


def test_exhausted_pool_without_source_says_how_many_bits_are_missing(tmp_path):
    pool = EntropyPool.open(tmp_path, source=ideal_source(), seed=2, refill_shots=64)
    pool.take(100)
    empty = EntropyPool.open(tmp_path)
    want = empty.available + 10
    with pytest.raises(QgenError, match=f"{want} needed, {empty.available} available"):
        empty.take(want)


def test_refill_within_budget_uses_fresh_seeds_and_refuses_beyond_it(tmp_path):
    pool = EntropyPool.open(tmp_path, source=ideal_source(), seed=3, shot_budget=20_000,
                            refill_shots=1024)
    pool.take(10_000)
    pool.take(pool.available + 10_000)  # forces a second refill
    seeds = [j["seed"] for j in pool.meta["jobs"]]
    assert len(seeds) >= 2 and len(set(seeds)) == len(seeds)
    assert pool.shots_this_session <= 20_000

    reopened = EntropyPool.open(tmp_path, source=ideal_source(), shot_budget=10)
    shots_before = reopened.meta["shots_total"]
    with pytest.raises(QgenError, match="budget"):
        reopened.take(reopened.available + 100_000)
    assert reopened.meta["shots_total"] == shots_before  # refused before spending any shot
    reopened_ok = EntropyPool.open(tmp_path, source=ideal_source(), shot_budget=100_000)
    reopened_ok.take(reopened_ok.available + 5000)
    all_seeds = [j["seed"] for j in reopened_ok.meta["jobs"]]
    assert len(set(all_seeds)) == len(all_seeds)  # the seed chain resumed across processes


def test_pool_refuses_to_mix_bits_from_different_extractors(tmp_path):
    EntropyPool.open(tmp_path, source=ideal_source(), seed=4, refill_shots=64).take(10)
    with pytest.raises(QgenError, match="extractors"):
        EntropyPool.open(tmp_path, extractors=[ToeplitzExtractor(ratio=0.25)])


# ------------------------------------------------------------------ budget planning
def plan_bits(n, channels, size=28, steps=1000, sampler="ddpm", eta=0.0, **kwargs):
    # the draw count is the scheduler's: a T=steps schedule visits exactly ``steps`` timesteps
    from qgen.noise import plan_bits as plan

    return plan(n, channels, make_scheduler(sampler, make_schedule("linear", steps), steps=steps, eta=eta), size,
                **kwargs)


def test_plan_bits_ddim_eta0_needs_only_x_T_while_ddpm_needs_every_step():
    ddim = plan_bits(16, 1, 28, steps=1000, sampler="ddim", eta=0.0)
    ddpm = plan_bits(16, 1, 28, steps=1000, sampler="ddpm")
    assert ddim.draws_per_sample == 1 and ddpm.draws_per_sample == 1000
    assert ddim.gaussians == 16 * 784 and ddim.bits == 16 * 784 * 24 == 301_056
    assert ddim.shots == math.ceil(301_056 / 127) == 2371 and ddim.jobs == 1
    assert ddpm.bits == 301_056_000 and ddpm.shots == 2_370_520 and ddpm.jobs == 24
    assert plan_bits(16, 1, 28, steps=50, sampler="ddim", eta=1.0).draws_per_sample == 50
    extracted = plan_bits(16, 1, 28, steps=1000, sampler="ddim", extraction_yield=0.125)
    assert extracted.raw_bits == 8 * ddim.bits
    assert "301,056 bits" in ddim.summary() and "2,371 shots" in ddim.summary()
    with pytest.raises(QgenError):
        plan_bits(16, 1, sampler="euler")


# ------------------------------------------------------------------ torch noise sources
def test_classical_noise_is_a_reproducible_noise_source():
    a, b = ClassicalNoise(seed=5), ClassicalNoise(seed=5)
    assert isinstance(a, NoiseSource)
    assert torch.equal(a.randn((2, 1, 4, 4)), b.randn((2, 1, 4, 4)))
    assert a.provenance()["gaussians_drawn"] == 32


def test_quantum_noise_spends_24_pool_bits_per_gaussian(tmp_path):
    pool = EntropyPool.open(tmp_path, source=ideal_source(), seed=6)
    noise = QuantumNoise(pool)
    assert isinstance(noise, NoiseSource)
    x = noise.randn((2, 1, 28, 28), dtype=torch.float64)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float64
    assert pool.offset == 2 * 784 * BITS_PER_GAUSSIAN
    assert noise_report(samples=x.numpy())["pass"]
    assert noise.provenance()["job_ids"] == [j["job_id"] for j in pool.meta["jobs"]]
    starved = QuantumNoise(EntropyPool.open(tmp_path))  # no source: must fail, never fake
    with pytest.raises(QgenError, match="short of quantum bits"):
        starved.randn((64, 1, 28, 28))


def test_mixed_noise_skips_the_quantum_pool_where_its_weight_is_zero(tmp_path):
    pool = EntropyPool.open(tmp_path, source=ideal_source(), seed=7)
    mixed = MixedNoise(QuantumNoise(pool), ClassicalNoise(0), NoiseMixing(T=100, lam_min=0.0))
    mixed.randn((4, 8), t=0)
    assert pool.offset == 0
    bound = mixed.at(torch.tensor([10, 50, 99, 99]))
    assert isinstance(bound, NoiseSource)
    x = bound.randn((4, 8))
    assert x.shape == (4, 8) and pool.offset == 32 * BITS_PER_GAUSSIAN
    with pytest.raises(QgenError, match="timestep"):
        mixed.randn((4, 8))


def test_a_ready_sampler_is_used_as_is_without_seeds(tmp_path):
    # Stands in for qiskit_ibm_runtime.SamplerV2 on hardware: injected, never re-seeded by us.
    from qiskit_aer.primitives import SamplerV2

    circuits = (hadamard_circuit(8), hadamard_circuit(4))  # a tuple of circuits = two pubs
    source = QuantumBitSource(fixed_sampler(SamplerV2()), circuits, backend_name="injected", seeded=False)
    assert source.bits_per_shot == 12
    pool = EntropyPool.open(tmp_path, source=source, refill_shots=2048)
    pool.take(1000)
    assert [j["seed"] for j in pool.meta["jobs"]] == [None] and pool.provenance()["backends"] == ["injected"]
    assert nominal_yield(default_extractors()) == 0.125
