"""The Python API and the command line follow the same rules: every request below is made once through
``qgen.*`` and once through ``qgen`` (a subprocess, as a user runs it), and both refuse it -- with the same
message where the rule is qgen's, in one line, writing nothing -- or both accept it and do the same thing.

The command line checks a few things while parsing, before qgen sees the request (an option's type
and range: ``--n 0`` is click's "not in the range"); there the two messages differ, but both refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import qgen
from qgen.errors import QgenError
from tests.helpers import SAMPLE, TINY, make_env, one_error_line, qgen as run_cli


@dataclass(frozen=True)
class Paths:
    run: Path      # a trained run (its directory)
    folder: Path   # that run exported as a model folder
    out: Path      # where sample sets would go (must never appear for a refused request)


@pytest.fixture(scope="module")
def paths(trained: Path) -> Paths:
    base = trained.parent.parent
    folder = base / "models" / "m"
    if not folder.exists():
        res = run_cli(["export", "--run", str(trained), "--out", str(folder)], make_env(base))
        assert res.returncode == 0, res.stderr
    return Paths(trained, folder, base / "out")


@pytest.fixture
def env(paths: Paths, monkeypatch) -> dict:
    """The subprocess's environment, and the same settings for the calls made in this process."""
    env = make_env(paths.run.parent.parent)
    for name in ("QGEN_RUNS", "QGEN_CIRCUITS", "QGEN_DATA", "QGEN_BACKENDS"):
        monkeypatch.setenv(name, env[name])
    return env


def files_under(base: Path) -> dict[str, int]:
    return {str(p.relative_to(base)): p.stat().st_mtime_ns for p in base.rglob("*")
            if p.is_file() and p.name != ".qgen.lock"}


SMALL = dict(n=2, steps=2)
TRAIN = dict(classes=None, n_train=16, batch_size=4, widths=(8, 8, 8), qubits=4, layers=1, timesteps=40,
             download=False, seed=1)

# name: (the request through the API, the same request on the command line, qgen's message or None when
# the command line refuses it while parsing, with a message of its own)
REFUSED = {
    "sample with neither --run nor --model": (
        lambda p: qgen.sample(**SMALL),
        lambda p: ["sample", *SAMPLE],
        "give either --run RUN or --model DIR"),
    "sample with both --run and --model": (
        lambda p: qgen.sample(p.run, model=p.folder, **SMALL),
        lambda p: ["sample", "--run", str(p.run), "--model", str(p.folder), *SAMPLE],
        "give either --run RUN or --model DIR"),
    "a model folder's best weights": (
        lambda p: qgen.sample(model=p.folder, weights="best", out=p.out, **SMALL),
        lambda p: ["sample", "--model", str(p.folder), "--weights", "best", "--out", str(p.out), *SAMPLE],
        "--weights chooses a run's checkpoint; a model folder holds the weights it was exported with"),
    "a model folder's last weights": (
        lambda p: qgen.sample(model=p.folder, weights="last", **SMALL),
        lambda p: ["sample", "--model", str(p.folder), "--weights", "last", *SAMPLE],
        "--weights chooses a run's checkpoint"),
    "a dry run of a model folder": (
        lambda p: qgen.plan_sample(model=p.folder, **SMALL),
        lambda p: ["sample", "--model", str(p.folder), "--dry-run", *SAMPLE],
        "--dry-run plans a run's sampling; give --run"),
    "quantum noise from a model folder": (
        lambda p: qgen.sample(model=p.folder, noise="quantum", **SMALL),
        lambda p: ["sample", "--model", str(p.folder), "--noise", "quantum", *SAMPLE],
        "--noise quantum needs a run directory"),
    "replaying the noise pool of a model folder": (
        lambda p: qgen.sample(model=p.folder, reuse_noise=True, **SMALL),
        lambda p: ["sample", "--model", str(p.folder), "--reuse-noise", *SAMPLE],
        "--reuse-noise replays a run's quantum noise pool; a model folder has none"),
    "a model folder given as the run": (
        lambda p: qgen.sample(p.folder, **SMALL),
        lambda p: ["sample", "--run", str(p.folder), *SAMPLE],
        "is a model folder, not a run directory; sample it with --model"),
    "a run given as the model folder": (
        lambda p: qgen.sample(model=p.run, out=p.out, **SMALL),
        lambda p: ["sample", "--model", str(p.run), "--out", str(p.out), *SAMPLE],
        "is not a qgen model folder: it has no config.json"),
    "an output folder for a run's samples": (
        lambda p: qgen.sample(p.run, out=p.out, **SMALL),
        lambda p: ["sample", "--run", str(p.run), "--out", str(p.out), *SAMPLE],
        "--out is for --model; a run's samples go into its run directory"),
    "an output folder for a run's dry run": (
        lambda p: qgen.plan_sample(p.run, out=p.out, **SMALL),
        lambda p: ["sample", "--run", str(p.run), "--out", str(p.out), "--dry-run", *SAMPLE],
        "--out is for --model"),
    "eta for a sampler without one": (
        lambda p: qgen.sample(p.run, sampler="dpm", eta=0.5, **SMALL),
        lambda p: ["sample", "--run", str(p.run), "--sampler", "dpm", "--eta", "0.5", *SAMPLE],
        "--eta applies to --sampler ddim only; --sampler dpm has no eta"),
    "eta above 1": (
        lambda p: qgen.sample(p.run, eta=1.5, **SMALL),
        lambda p: ["sample", "--run", str(p.run), "--eta", "1.5", *SAMPLE],
        "--eta must be <= 1"),
    "more sampler steps than the run's timesteps": (
        lambda p: qgen.sample(p.run, n=2, steps=41),
        lambda p: ["sample", "--run", str(p.run), "--n", "2", "--steps", "41", "--no-progress"],
        "--steps must be between 1 and T=40, got 41"),
    "too few in-training evaluation samples": (
        lambda p: qgen.train(qgen.run_config(steps=2, eval_every=1, eval_samples=1, **TRAIN)),
        lambda p: ["train", "--steps", "2", "--eval-every", "1", "--eval-samples", "1", *TINY],
        "--eval-samples 1 is too few for the validation FLD that picks the best checkpoint"),
    "reps and layers that disagree (train)": (
        lambda p: qgen.run_config(**{**TRAIN, "layers": 2}, ansatz="real_amplitudes", reps=3),
        lambda p: ["train", *TINY, "--layers", "2", "--ansatz", "real_amplitudes", "--reps", "3"],
        "reps and layers are one setting (the ansatz's repetitions); got 3 and 2"),
    "reps and layers that disagree (circuits)": (
        lambda p: qgen.write_circuits(qubits=2, layers=2, reps=3),
        lambda p: ["circuits", "--qubits", "2", "--layers", "2", "--reps", "3"],
        "reps and layers are one setting (the ansatz's repetitions); got 3 and 2"),
    "a circuit of no qubits": (
        lambda p: qgen.write_circuits(qubits=0),
        lambda p: ["circuits", "--qubits", "0"],
        "n_qubits must be >= 1, got 0"),
    "an unknown backend for the circuits": (
        lambda p: qgen.write_circuits("nope", qubits=2),
        lambda p: ["circuits", "--backend", "nope", "--qubits", "2"],
        "unknown backend 'nope'"),
    "an unknown sampler": (
        lambda p: qgen.sample(p.run, sampler="euler", **SMALL),
        lambda p: ["sample", "--run", str(p.run), "--sampler", "euler", *SAMPLE],
        None),
    "no samples": (
        lambda p: qgen.sample(p.run, n=0),
        lambda p: ["sample", "--run", str(p.run), "--n", "0"],
        None),
    "an unknown way with journaled jobs": (
        lambda p: qgen.sample(p.run, journaled_jobs="keep", **SMALL),
        lambda p: ["sample", "--run", str(p.run), "--journaled-jobs", "keep", *SAMPLE],
        None),
    "exporting the raw last weights": (
        lambda p: qgen.export(p.run, p.out, weights="last"),
        lambda p: ["export", "--run", str(p.run), "--out", str(p.out), "--weights", "last"],
        None),
    "zero epochs": (
        lambda p: qgen.train(qgen.run_config(**TRAIN), epochs=0),
        lambda p: ["train", "--epochs", "0", *TINY],
        None),
    "resuming to step 0": (
        lambda p: qgen.resume(p.run, steps=0),
        lambda p: ["train", "--resume", str(p.run), "--steps", "0"],
        None),
    "a single held-out image": (
        lambda p: qgen.evaluate(p.run, heldout=1),
        lambda p: ["evaluate", "--run", str(p.run), "--heldout", "1"],
        None),
    "a seed out of range": (
        lambda p: qgen.evaluate(p.run, seed=-1),
        lambda p: ["evaluate", "--run", str(p.run), "--seed", "-1"],
        None),
    "no noise values to test": (
        lambda p: qgen.noise_report(gaussians=0),
        lambda p: ["noise-report", "--gaussians", "0"],
        None),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_request_the_cli_refuses_the_api_refuses_too(paths: Paths, env: dict, case: str) -> None:
    through_api, through_cli, message = REFUSED[case]
    base = paths.run.parent.parent
    before = files_under(base)
    with pytest.raises(QgenError) as refused:
        through_api(paths)
    assert "\n" not in str(refused.value)
    line = one_error_line(run_cli(through_cli(paths), env))
    if message is not None:
        assert message in str(refused.value) and message in line, (str(refused.value), line)
    assert files_under(base) == before, "a refused request must leave nothing written"
    assert not paths.out.exists()


def test_a_model_folder_is_sampled_alike_with_its_own_weights(paths: Paths, env: dict, tmp_path: Path) -> None:
    """The default weights are the folder's (whichever it was exported with): the API and the command line
    write the same images, which are also what ``PretrainedModel.sample`` draws."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the command line's (one torch thread): the same bits
    try:
        by_api = qgen.sample(model=paths.folder, out=tmp_path / "api", n=3, steps=3, batch_size=2, seed=4)
        drawn = qgen.from_pretrained(paths.folder).sample(3, steps=3, batch_size=2, seed=4)
    finally:
        torch.set_num_threads(threads)
    res = run_cli(["sample", "--model", str(paths.folder), "--out", str(tmp_path / "cli"), "--n", "3", "--steps",
                   "3", "--batch-size", "2", "--seed", "4", "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    (by_cli,) = (tmp_path / "cli").glob("*.npz")
    with np.load(by_cli, allow_pickle=False) as npz:
        assert np.array_equal(npz["samples"], by_api.images.numpy())
    assert torch.equal(drawn, by_api.images)
    assert by_api.metadata["weights"] == "ema" and by_api.images.shape == (3, 1, 28, 28)


def test_a_dry_run_says_the_same_through_the_api_and_the_cli(paths: Paths, env: dict) -> None:
    before = files_under(paths.run)
    plan = qgen.plan_sample(paths.run, n=3, sampler="dpm", steps=4)
    res = run_cli(["sample", "--run", str(paths.run), "--n", "3", "--sampler", "dpm", "--steps", "4", "--dry-run"],
                  env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == plan.lines and plan.refusals == []
    assert plan.lines[0].startswith("sampling: 3 samples x 1x28x28, dpm with 4 model calls per batch")
    assert files_under(paths.run) == before
