"""Hardware realism: fake devices measure like the device (readout error, shot noise, fresh randomness),
``--local`` runs on the active qubits and honours Ctrl-C, and an interrupted quantum-noise sample
resumes from the pool bits it had reserved (so its journaled jobs are reused)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.noise import NoiseModel

from qgen.backends.devices import fake_backend
from qgen.backends.reduction import active_qubits, observable_support, reduce_circuit, reduced_noise_model
from qgen.backends.runtime import runtime_primitives
from qgen.backends.shot_estimator import ShotNoiseEstimator
from qgen.backends.spec import BackendSpec
from qgen.noise.pool import EntropyPool
from tests.helpers import REPO, TINY, start_qgen

THETA = Parameter("theta")
ANGLES = np.array([[0.2], [1.3], [2.6]])
OBSERVABLES = [SparsePauliOp("ZZ"), SparsePauliOp("IZ"), SparsePauliOp("XX")]
SHOTS = 4096
REPEATS = 8


def bell_like() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.ry(THETA, 0)
    circuit.cx(0, 1)
    return circuit


def fake_and_local_means() -> tuple[dict, np.ndarray]:
    """Mean and standard error over REPEATS calls of the fake estimator and of --local, same ISA inputs."""
    spec = BackendSpec(name="fez_local", kind="ibm", device="ibm_fez", shots=SHOTS, seed_simulator=5)
    with runtime_primitives(spec, local=True) as primitives:
        isa = primitives.pass_manager().run(bell_like())
        observables = [[obs.apply_layout(isa.layout)] for obs in OBSERVABLES]
        local = [primitives.estimator().run([(isa, observables, ANGLES.T)]).result()[0].data
                 for _ in range(REPEATS)]
    keep = active_qubits(isa, observable_support([o[0] for o in observables]))
    reduced = reduce_circuit(isa, keep)
    small = [[reduced.reduce_observable(o[0])] for o in observables]
    from qgen.backends.reduced_device import with_calibrated_readout

    fez = fake_backend("ibm_fez")  # the fake kind's model: calibrated, asymmetric readout (as --local uses)
    model = reduced_noise_model(with_calibrated_readout(NoiseModel.from_backend(fez), fez), keep)
    estimator = ShotNoiseEstimator(model, shots=SHOTS, seed=5)
    fake = [estimator.run([(reduced.circuit, small, ANGLES.T)]).result()[0].data for _ in range(REPEATS)]
    exact = ShotNoiseEstimator(model, shots=None).run([(reduced.circuit, small, ANGLES.T)]).result()[0].data.evs
    stats = {}
    for name, runs in (("fake", fake), ("local", local)):
        evs = np.stack([r.evs for r in runs])
        stds = np.stack([r.stds for r in runs])
        stats[name] = (evs, evs.mean(axis=0), np.sqrt((stds**2).mean(axis=0) / REPEATS))
    return stats, exact


@pytest.fixture(scope="module")
def means() -> tuple[dict, np.ndarray]:
    return fake_and_local_means()


@pytest.mark.slow  # the local simulator process and a small run: about a minute
def test_fake_and_local_agree_within_shot_noise(means) -> None:
    stats, _ = means
    _, fake_mean, fake_se = stats["fake"]
    _, local_mean, local_se = stats["local"]
    z = (fake_mean - local_mean) / np.sqrt(fake_se**2 + local_se**2)
    assert np.all(np.abs(z) < 4.5), z


@pytest.mark.slow  # the local simulator process and a small run: about a minute
def test_fake_shot_noise_is_fresh_per_call_and_of_the_right_size(means) -> None:
    stats, exact = means
    evs, mean, _ = stats["fake"]
    assert not np.array_equal(evs[0], evs[1]), "every call must draw new shots"
    spread = evs.std(axis=0, ddof=1)
    expected = np.sqrt(np.clip(1 - exact**2, 1e-3, None) / SHOTS)
    assert np.all((spread > 0.3 * expected) & (spread < 2.5 * expected)), (spread, expected)


@pytest.mark.slow  # the local simulator process and a small run: about a minute
def test_fake_includes_readout_error_that_the_old_exact_values_lacked(means) -> None:
    stats, exact = means
    from qiskit_aer.primitives import EstimatorV2

    # the old fake: Aer's exact density-matrix value, which never passes a measurement
    spec = BackendSpec(name="fez_local", kind="ibm", device="ibm_fez")
    with runtime_primitives(spec, local=True) as primitives:
        isa = primitives.pass_manager().run(bell_like())
    keep = active_qubits(isa)
    reduced = reduce_circuit(isa, keep)
    small = [[reduced.reduce_observable(o.apply_layout(isa.layout))] for o in OBSERVABLES]
    model = reduced_noise_model(NoiseModel.from_backend(fake_backend("ibm_fez")), keep)
    old = EstimatorV2(options={"backend_options": {"method": "density_matrix", "noise_model": model}})
    no_readout = old.run([(reduced.circuit, small, ANGLES.T)]).result()[0].data.evs
    _, local_mean, local_se = stats["local"]
    assert np.max(np.abs(no_readout - local_mean) / local_se) > 4.5, "the z-test must be able to see readout error"
    # readout error moves every value; it need not shrink |<P>|: the calibrated readout is asymmetric
    # (P(0|1) > P(1|0) shifts <Z> towards +1), so a small positive value can grow
    assert np.all(np.abs(exact - no_readout) > 1e-3), "readout error moves every value"


# ----------------------------------------------------------------------------- entropy-pool reservations


class CountingSource:
    """A seeded fake bit source (fair bits), enough for the pool."""

    backend_name = "test"
    circuit_name = "h"
    seeded = True
    max_shots_per_job = 10_000
    bits_per_shot = 8

    def shots_for_bits(self, n: int) -> int:
        return -(-n // 8)

    def fetch(self, shots: int, seed=None, request=None):
        from qgen.noise.bit_source import BitBatch

        return BitBatch(np.random.default_rng(seed).integers(0, 2, shots * 8, dtype=np.uint8), f"job{seed}",
                        shots, seed, 0.0)

    def describe(self) -> dict:
        return {"backend": "test"}


def test_an_interrupted_request_resumes_its_reserved_bits_and_no_other_request_gets_them(tmp_path: Path) -> None:
    pool = EntropyPool.open(tmp_path, source=CountingSource(), extractors=[], seed=3, resume_key="A")
    first = pool.take(64)  # ... and the command is interrupted: no complete()
    again = EntropyPool.open(tmp_path, source=CountingSource(), extractors=[], seed=3, resume_key="A")
    assert np.array_equal(again.take(64), first), "the same request continues from where it had started"
    again.complete()
    after = EntropyPool.open(tmp_path, source=CountingSource(), extractors=[], seed=3, resume_key="A")
    assert after.cursor == 64, "a finished request's bits are spent: the next command starts after them"
    # another request abandons the open reservation of "A": A can no longer replay bits B will use
    EntropyPool.open(tmp_path, source=CountingSource(), extractors=[], seed=3, resume_key="B").take(8)
    late = EntropyPool.open(tmp_path, source=CountingSource(), extractors=[], seed=3, resume_key="A")
    assert late.cursor == 72
    statuses = [r["status"] for r in json.loads((tmp_path / "noise_pool.json").read_text())["reservations"]]
    assert statuses == ["done", "abandoned", "abandoned", "open"]


# ------------------------------------------------------------------------------- CLI: Ctrl-C and resume

#: An ibm backend on a 5-qubit fake (FakeManila) with cheap jobs: the resume test needs many quick ones.
SMALL_IBM = """
[backends.manila_small]
kind = "ibm"
device = "ibm_manila"
optimization_level = 1
precision = 0.0625
seed_simulator = 7
"""


def journal_lines(run: Path) -> list[dict]:
    path = run / "local" / "jobs.jsonl"  # these tests run --local: its journal is apart from hardware's
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def wait_for(predicate, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("hw")
    env = dict(os.environ, QGEN_RUNS=str(root / "runs"), QGEN_CIRCUITS=str(root / "circuits"),
               QGEN_DATA=str(root / "data"), PYTHONUNBUFFERED="1")
    (root / "backends.toml").write_text((REPO / "backends.toml").read_text() + SMALL_IBM)
    env["QGEN_BACKENDS"] = str(root / "backends.toml")
    out, err = start_qgen(["train", "--steps", "2", "--name", "hw", *TINY], env).communicate(timeout=300)
    runs = list((root / "runs").iterdir())
    assert len(runs) == 1, err
    return runs[0], env


@pytest.mark.slow  # the local simulator process and a small run: about a minute
def test_ctrl_c_during_a_local_job_exits_within_5_s_with_the_journal_intact(tiny_run) -> None:
    run, env = tiny_run
    # the repository's ibm_fez (156 qubits, twirling, TREX, 4096 shots): each job takes seconds
    proc = start_qgen(["sample", "--run", str(run), "--backend", "ibm_fez", "--local", "--n", "2", "--sampler",
                       "ddim", "--steps", "3", "--no-progress"], env)
    wait_for(lambda: any(line["status"] == "submitted" for line in journal_lines(run)), proc, timeout=240)
    time.sleep(1.0)  # inside the simulation now
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    waited = time.monotonic() - sent
    assert waited < 5, f"Ctrl-C took {waited:.1f} s"
    assert proc.returncode == 130 and "Traceback" not in err, err
    lines = journal_lines(run)  # every line parses: nothing torn
    assert lines and lines[-1]["status"] == "submitted", "the interrupted job is recorded as submitted, not done"
    assert not list(run.glob("samples-*.npz")), "nothing half-written"


@pytest.mark.slow  # the local simulator process and a small run: about a minute
def test_an_interrupted_quantum_noise_sample_resumes_with_the_same_x_T_and_reuses_its_jobs(tiny_run) -> None:
    run, env = tiny_run
    args = ["sample", "--run", str(run), "--backend", "manila_small", "--local", "--noise", "quantum", "--n", "2",
            "--sampler", "ddim", "--steps", "6", "--no-progress"]
    journal_before = len(journal_lines(run))

    def estimator_lines() -> list[dict]:
        return [line for line in journal_lines(run)[journal_before:] if line["kind"] == "estimator"]

    proc = start_qgen(args, env)
    wait_for(lambda: sum(line["status"] == "done" for line in estimator_lines()) >= 2, proc, timeout=300)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    done_before = {line["key"] for line in estimator_lines() if line["status"] == "done"}

    out, err = start_qgen(args, env).communicate(timeout=600)
    assert "Traceback" not in err and list(run.glob("samples-ddim*-manila_small-*.npz")), err
    lines = estimator_lines()
    submitted = [line["key"] for line in lines if line["status"] == "submitted"]
    keys = set(submitted)
    assert len(keys) == 6, "6 model calls in all: the resumed command asked the same questions as the first"
    assert all(submitted.count(key) == 1 for key in done_before), "jobs done before Ctrl-C are not resubmitted"
    pool = json.loads((run / "local" / "noise" / "manila_small" / "noise_pool.json").read_text())
    reservation = pool["reservations"][-1]
    assert reservation["status"] == "done" and reservation["resumed"] == 1
    assert reservation["start"] == pool["sessions"][-1]["start_offset"] == pool["sessions"][-2]["start_offset"]


# ----------------------------------------------------------------------------- asymmetric readout


@pytest.mark.slow  # fake_fez's full noise model: about a minute on a busy machine
def test_fake_device_readout_is_the_calibrated_asymmetric_confusion_matrix() -> None:
    """#22.10: P(1|0) = a and P(0|1) = b per qubit as calibrated, not (a + b) / 2 for both."""
    from qiskit.quantum_info import SparsePauliOp as Pauli

    from qgen.backends.reduced_device import readout_flip_probabilities
    from qgen.backends.reduction import readout_confusion
    from qgen.backends.registry import REPO_BACKENDS, load_backend

    backend = load_backend("fake_fez", REPO_BACKENDS)
    device = backend.device
    full = backend.noise_model()
    confusion = readout_confusion(full, device.num_qubits)
    for q in range(device.num_qubits):
        a, b = readout_flip_probabilities(device, q)
        np.testing.assert_allclose(confusion[q], [[1 - a, a], [b, 1 - b]])
    q = max(range(device.num_qubits), key=lambda q: abs(np.subtract(*readout_flip_probabilities(device, q))))
    a, b = readout_flip_probabilities(device, q)
    assert abs(b - a) > 0.05
    model = reduced_noise_model(full, (q,))
    circuit = QuantumCircuit(1)
    circuit.rx(THETA, 0)  # theta = 0: |0>; theta = pi: |1>
    values = ShotNoiseEstimator(model, shots=None).run([(circuit, Pauli("Z"), [[0.0], [np.pi]])]).result()[0].data.evs
    assert values[0] == pytest.approx(1 - 2 * a, abs=2e-3)
    assert values[1] == pytest.approx(-(1 - 2 * b), abs=2e-3)  # the gates' own error is ~1e-4
    assert abs(values[1] + (1 - a - b)) > 0.02, "the symmetric model's value is far off"
