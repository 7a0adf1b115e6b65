"""Values the tool used to pass on unchecked (issue #21, section 3): seeds outside what numpy and
torch take, wherever a seed enters -- options, config.toml, a model folder, an experiment file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qgen.errors import QgenError
from qgen.seed import MAX_SEED, check_seed
from tests.helpers import TINY, make_env, one_error_line, qgen, without


@pytest.mark.parametrize("command, seed", [
    (["train", "--steps", "1", *without(TINY, "--seed")], "-5"),
    (["train", "--steps", "1", *without(TINY, "--seed")], "1e23"),
    (["sample", "--run", "nope"], str(MAX_SEED + 1)),
    (["evaluate", "--run", "nope"], "-1"),
    (["noise-report", "--gaussians", "10"], "-1"),
])
def test_a_seed_out_of_range_is_one_line_before_anything_runs(tmp_path: Path, command, seed) -> None:
    line = one_error_line(qgen([*command, "--seed", seed], make_env(tmp_path)))
    assert "'--seed'" in line
    assert not (tmp_path / "runs").exists()


def test_the_rule_itself() -> None:
    assert check_seed(0, "s") == 0 and check_seed(MAX_SEED, "s") == MAX_SEED
    for bad in (-1, MAX_SEED + 1, True, 1.0, "3", None):
        with pytest.raises(QgenError, match=r"s must be a whole number from 0 to 4294967295"):
            check_seed(bad, "s")


def test_config_files_are_held_to_the_same_rule(tmp_path: Path) -> None:
    from qgen.config import load_run_config
    from qgen.experiment.config import experiment_from_dict

    path = tmp_path / "config.toml"
    path.write_text('name = "r"\n[train]\nseed = -1\n')
    with pytest.raises(QgenError, match="train.seed must be a whole number"):
        load_run_config(path)
    path.write_text('name = "r"\n[data]\nseed = 99999999999\n')
    with pytest.raises(QgenError, match="data.seed must be a whole number"):
        load_run_config(path)
    with pytest.raises(QgenError, match="experiment seeds must be a whole number"):
        experiment_from_dict({"datasets": [{"label": "m", "dataset": "mnist"}], "seeds": [0, -2]})


def test_a_model_folder_with_a_negative_seed_is_one_line_naming_its_config(tmp_path: Path) -> None:
    from qgen.config import DiffusionConfig
    from qgen.models.config import ModelConfig
    from qgen.pretrained.folder_config import FORMAT_VERSION, MODEL_TYPE, FolderConfig, read_folder_config

    good = FolderConfig(model_type=MODEL_TYPE, format_version=FORMAT_VERSION, model=ModelConfig(), channels=1,
                        diffusion=DiffusionConfig(), backend="statevector", seed=0)
    data = json.loads(good.to_json())
    data["seed"] = -1
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(QgenError, match=rf"{path}: seed must be a whole number from 0"):
        read_folder_config(path)


def test_noise_report_json_into_a_missing_folder_is_refused_before_the_report(tmp_path: Path) -> None:
    target = tmp_path / "nodir" / "out.json"
    res = qgen(["noise-report", "--backend", "aer_simulator", "--gaussians", "10", "--json", str(target)],
               make_env(tmp_path))
    line = one_error_line(res)
    assert f"--json {target}: the folder {target.parent} does not exist" in line
    assert res.stdout == ""  # refused before any bits were fetched or any report printed


def test_absurd_thread_counts_are_one_line_not_an_abort(tmp_path: Path) -> None:
    env = {**make_env(tmp_path), "QGEN_THREADS": "100000"}
    line = one_error_line(qgen(["sample", "--run", "nope"], env))
    assert "$QGEN_THREADS=100000 is more threads than" in line and "use at most" in line


@pytest.mark.parametrize("command", [["train", "--steps", "1", *TINY], ["sample", "--run", "nope"],
                                     ["evaluate", "--run", "nope"]])
def test_an_empty_device_is_refused_not_taken_for_auto(tmp_path: Path, command) -> None:
    line = one_error_line(qgen([*command, "--device", ""], make_env(tmp_path)))
    assert "'--device'" in line and "is empty" in line


@pytest.mark.parametrize("name, needle", [
    ("a/b", "is a path; a run name is one folder name (put runs elsewhere with --runs-dir"),
    ("two\nlines", "control characters"),
    ("x" * 300, "--name is 300 bytes long"),
])
def test_a_run_name_that_cannot_be_one_folder_is_refused_before_the_data_loads(tmp_path: Path, name, needle) -> None:
    res = qgen(["train", "--steps", "1", *TINY, "--name", name], make_env(tmp_path))
    line = one_error_line(res)
    assert needle in line
    assert "MNIST" not in res.stderr  # no data note: refused before the dataset was loaded
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("option, needle", [
    (["--widths", "800000,8,8"], "parameters) needs about"),
    (["--timesteps", "1000000000000"], "diffusion T = 1,000,000,000,000 needs about"),
    (["--batch-size", "100000000"], "training with --batch-size 100000000 needs about"),
])
def test_sizes_that_cannot_be_allocated_are_refused_before_the_data_loads(tmp_path: Path, option, needle) -> None:
    args = TINY
    for name in (option[0],):
        if name in args:
            args = without(args, name)
    res = qgen(["train", "--steps", "1", *args, *option], make_env(tmp_path))
    line = one_error_line(res)
    assert needle in line and "but this machine has" in line
    assert "MNIST" not in res.stderr and not (tmp_path / "runs").exists()


def test_memory_estimates_say_what_fits() -> None:
    from qgen.memory import check_sampling_memory, check_training_memory
    from qgen.models.config import ModelConfig

    small = ModelConfig(kind="plain", widths=(8, 8, 8))
    check_training_memory(small, 16, 1000, limit=2**30)
    with pytest.raises(QgenError, match=r"at most --batch-size \d+ fits"):
        check_training_memory(small, 10**6, 1000, limit=2**30)
    check_sampling_memory(small, 1, 64, 64, 1000, limit=2**30)
    with pytest.raises(QgenError, match=r"sampling --n 100000000 needs .* at most --n \d+ fits"):
        check_sampling_memory(small, 1, 10**8, 64, 1000, limit=2**30)
    with pytest.raises(QgenError, match=r"sampling in batches of 1000000000 needs .* use a smaller --batch-size"):
        check_sampling_memory(small, 1, 10**9, 10**9, 1000, limit=2**30)


def test_config_files_name_themselves_in_type_and_size_errors(tmp_path: Path) -> None:
    from qgen.config import DiffusionConfig, load_run_config
    from qgen.models.config import ModelConfig
    from qgen.pretrained.folder_config import FORMAT_VERSION, MODEL_TYPE, FolderConfig, read_folder_config

    path = tmp_path / "config.toml"
    path.write_text('name = "r"\n[train]\nsteps = "many"\n')
    with pytest.raises(QgenError, match=rf"^{path}: "):
        load_run_config(path)
    good = FolderConfig(model_type=MODEL_TYPE, format_version=FORMAT_VERSION, model=ModelConfig(), channels=1,
                        diffusion=DiffusionConfig(), backend="statevector", seed=0)
    data = json.loads(good.to_json())
    data["diffusion"]["T"] = 10**12
    folder_config = tmp_path / "config.json"
    folder_config.write_text(json.dumps(data))
    with pytest.raises(QgenError, match=rf"^{folder_config}: diffusion T = 1,000,000,000,000 needs about"):
        read_folder_config(folder_config)


def test_eta_outside_zero_to_one_or_for_a_sampler_without_it_is_refused() -> None:
    from qgen.draw import SampleRequest

    SampleRequest(eta=1.0).validate(1000)
    with pytest.raises(QgenError, match="--eta must be <= 1"):
        SampleRequest(eta=5.0).validate(1000)
    for sampler in ("dpm", "ddpm"):
        with pytest.raises(QgenError, match=f"--eta applies to --sampler ddim only; --sampler {sampler} has no eta"):
            SampleRequest(sampler=sampler, steps=10, eta=0.5).validate(1000)
    SampleRequest(sampler="dpm", steps=10).validate(1000)


def test_too_few_evaluation_samples_to_pick_a_best_checkpoint_are_refused(tmp_path: Path) -> None:
    res = qgen(["train", "--steps", "2", *TINY, "--eval-every", "1", "--eval-samples", "1"], make_env(tmp_path))
    line = one_error_line(res)
    assert "--eval-samples 1 is too few" in line and "at least 16" in line
    assert "MNIST" not in res.stderr and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("option, needle", [
    (["--qubits", "0"], "n_qubits must be >= 1, got 0"),
    (["--layers", "0"], "layers must be >= 1, got 0"),
    (["--entanglement", "bogus"], "unknown entanglement 'bogus'"),
])
def test_circuit_options_are_checked_before_the_data_loads(tmp_path: Path, option, needle) -> None:
    args = without(TINY, option[0]) if option[0] in TINY else TINY
    res = qgen(["train", "--steps", "1", *args, *option], make_env(tmp_path))
    assert needle in one_error_line(res)
    assert "MNIST" not in res.stderr  # no data note: the dataset was never loaded
