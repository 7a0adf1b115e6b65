"""qgen experiment --executor ray: same results as the sequential runner, failures, Ctrl-C, exclusivity.

One local Ray (2 CPUs) serves the module; the CLI test joins it with ``--address``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import ray  # the suite exercises Ray: CI installs the 'ray' extra (README's install command)

from qgen.experiment.cells import expand_cells
from qgen.experiment.config import experiment_from_dict, save_experiment_config
from qgen.experiment.ray_executor import _next_submittable, exclusive, longest_first
from qgen.experiment.cell_run import RunnerOptions
from qgen.experiment.runner import run_experiment
from qgen.metrics.metrics_json import result_values
from tests.experiment.test_experiment import TINY  # the experiment tests' tiny grid
from tests.helpers import qgen, start_qgen


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # workers inherit the environment of ray.init: circuits go to a temporary folder
    circuits = tmp_path_factory.mktemp("circuits")
    previous = os.environ.get("QGEN_CIRCUITS")
    os.environ["QGEN_CIRCUITS"] = str(circuits)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024**2,
             logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    if previous is None:
        os.environ.pop("QGEN_CIRCUITS", None)
    else:
        os.environ["QGEN_CIRCUITS"] = previous


def _metrics(out: Path) -> dict[str, dict]:
    return {p.parent.name: result_values(json.loads(p.read_text())) for p in out.glob("cells/*/metrics.json")}


def test_ray_gives_the_sequential_results(cluster, tmp_path):
    cfg = experiment_from_dict(TINY)
    cells = expand_cells(cfg)
    quiet = {"log": lambda line: None}
    local = run_experiment(cfg, cells, RunnerOptions(out=tmp_path / "local", **quiet))
    lines: list[str] = []
    on_ray = run_experiment(cfg, cells, RunnerOptions(out=tmp_path / "ray", executor="ray", workers=2, log=lines.append))
    assert sorted(local.done) == sorted(on_ray.done) == sorted(c.id for c in cells)
    submitted = [line for line in lines if "] mnist-c3_" in line]
    assert submitted[0].endswith("[2/2] mnist-c3_quantum_n10_s0")  # the longer cell went first
    seq, par = _metrics(tmp_path / "local"), _metrics(tmp_path / "ray")
    assert len(seq) == 2 and seq == par  # every FLD, KID, baseline and count, to the last digit
    state = json.loads((tmp_path / "ray" / "state.json").read_text())
    assert state["status"] == "finished" and state["invocations"] == 1
    assert all(c["status"] == "done" and c["trainings"] == 1 and c["train_wall_seconds"] > 0
               for c in state["cells"].values())


def test_a_failed_cell_does_not_sink_the_others(cluster, tmp_path):
    cfg = experiment_from_dict({**TINY, "arms": ["plain"], "datasets": [
        TINY["datasets"][0], {"label": "missing", "dataset": str(tmp_path / "no-such.npz")}]})
    cells = expand_cells(cfg)
    result = run_experiment(cfg, cells, RunnerOptions(out=tmp_path / "exp", executor="ray", log=lambda line: None))
    assert result.done == ["mnist-c3_plain_n10_s0"] and list(result.failed) == ["missing_plain_n10_s0"]
    assert "no-such.npz" in result.failed["missing_plain_n10_s0"]
    state = json.loads((tmp_path / "exp" / "state.json").read_text())
    assert state["status"] == "failed-cells"
    assert state["cells"]["missing_plain_n10_s0"]["status"] == "failed"
    assert (tmp_path / "exp" / "cells" / "mnist-c3_plain_n10_s0" / "metrics.json").is_file()
    assert not (tmp_path / "exp" / "cells" / "missing_plain_n10_s0" / "metrics.json").exists()


def test_ctrl_c_cancels_running_cells_and_leaves_them_resumable(cluster, tmp_path):
    # long enough that the interrupt lands mid-training (checkpoints every 4 steps), short to resume
    cfg = experiment_from_dict({**TINY, "arms": ["plain", "classical"], "train": {**TINY["train"], "steps": 200}})
    save_experiment_config(cfg, tmp_path / "exp.toml")
    out = tmp_path / "exp"
    env = {**os.environ, "QGEN_THREADS": "1"}
    driver = start_qgen(["experiment", "--config", str(tmp_path / "exp.toml"), "--out", str(out), "--executor", "ray",
                         "--address", cluster], env, cwd=tmp_path)
    deadline = time.monotonic() + 240
    while len(list(out.glob("cells/*/run/*/checkpoint-last.pt"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr[-2000:]
    assert "cancelled 2 running cell(s)" in stderr and "Resume with: qgen experiment --out" in stderr
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "interrupted"
    assert {c["status"] for c in state["cells"].values()} == {"interrupted"}
    stopped = {}
    for cell in expand_cells(cfg):
        run = next((out / "cells" / cell.id / "run").iterdir())
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "interrupted" and 0 < manifest["steps_done"] < 200
        stopped[cell.id] = run
    assert not list(out.glob("cells/*/metrics.json"))

    # either executor picks the cells up where the cancelled tasks checkpointed them
    result = run_experiment(cfg, expand_cells(cfg), RunnerOptions(out=out, log=lambda line: None))
    assert sorted(result.done) == sorted(stopped) and not result.failed
    for cell_id, run in stopped.items():
        assert [p for p in (out / "cells" / cell_id / "run").iterdir()] == [run]  # resumed, not restarted
        steps = [int(line.split(",")[0]) for line in (run / "loss.csv").read_text().splitlines()[1:]]
        assert steps == list(range(1, 201))
        assert json.loads((out / "state.json").read_text())["cells"][cell_id]["trainings"] == 2


def test_cells_are_submitted_longest_first_and_ties_keep_the_grid_order():
    cfg = experiment_from_dict({**TINY, "arms": ["plain", "classical", "quantum", "quantum_noise"], "seeds": [0, 1]})
    cells = expand_cells(cfg)
    order = [cell.id.split("_n10_")[0].removeprefix("mnist-c3_") + f"/{i}" for i, cell in
             longest_first(cfg, list(enumerate(cells, 1)))]
    # the smoke grid's measured cost order (6-8 s, 3 s, 2 s): quantum noise, the quantum gate, then the
    # plain and classical cells, which the cost model prices alike (so they keep their grid order)
    assert order == ["quantum_noise/4", "quantum_noise/8", "quantum/3", "quantum/7",
                     "plain/1", "classical/2", "plain/5", "classical/6"]


def test_shot_spending_cells_never_run_side_by_side(tmp_path):
    cfg = experiment_from_dict({**TINY, "arms": ["plain", "quantum"], "seeds": [0, 1], "backend": "ibm_fez"})
    cells = expand_cells(cfg)
    lone = {c.id for c in cells if exclusive(cfg, c, None)}
    assert lone == {"mnist-c3_quantum_n10_s0", "mnist-c3_quantum_n10_s1"}  # the plain arm spends no shots
    queue = [(i, c) for i, c in enumerate(cells, 1)]
    by_id = {c.id: c for c in cells}
    assert _next_submittable(queue, {}, lone) == 0
    running = {"ref": by_id["mnist-c3_quantum_n10_s0"]}
    quantum_next = [(2, by_id["mnist-c3_quantum_n10_s1"]), (3, by_id["mnist-c3_plain_n10_s1"])]
    assert _next_submittable(quantum_next, running, lone) == 1  # the plain cell, not the second quantum one
    assert _next_submittable(quantum_next[:1], running, lone) is None
    assert _next_submittable(quantum_next, {"ref": by_id["mnist-c3_plain_n10_s0"]}, lone) == 0


def test_without_ray_the_ray_executor_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    from qgen.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # ``import ray`` now fails as if it were not installed
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["experiment", "--smoke", "--out", "exp", "--executor", "ray"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["qgen: error: --executor ray needs Ray, which is not installed; install the 'ray' extra "
                     "(pip install -e '.[ray]') or use --executor local"]
    assert list(tmp_path.iterdir()) == []


def test_ray_only_options_are_refused_with_the_local_executor(tmp_path, monkeypatch, capsys):
    from qgen.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["experiment", "--smoke", "--out", "exp", "--workers", "2"])
    assert capsys.readouterr().err.strip() == "qgen: error: --workers only apply to --executor ray"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, message", [
    (["--address", "127.0.0.1:1"], "qgen: error: cannot connect to the Ray cluster at '127.0.0.1:1': Connection refused"),
    (["--address", "ray://127.0.0.1:1"], "qgen: error: cannot connect to the Ray cluster at 'ray://127.0.0.1:1'"),
    (["--address", "headnode"], "qgen: error: --address 'headnode': expected auto, HOST:PORT or ray://HOST:PORT"),
    (["--address", "headnode:port"], "qgen: error: --address 'headnode:port': expected auto"),
    (["--workers", "0"], "qgen: error: Invalid value for '--workers': 0 is not in the range x>=1."),
    (["--workers", "-1"], "qgen: error: Invalid value for '--workers': -1 is not in the range x>=1."),
])
def test_a_bad_address_or_worker_count_is_one_line_and_touches_nothing(tmp_path, monkeypatch, capsys, option,
                                                                       message):
    from qgen.cli import main

    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as stop:
        main(["experiment", "--smoke", "--out", "exp", "--executor", "ray", *option])
    lines = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(lines) == 1 and lines[0].startswith(message), lines
    assert list(tmp_path.iterdir()) == []
    assert time.monotonic() - t0 < 30  # ray.init alone would retry an unanswered address for minutes


@pytest.mark.slow
def test_smoke_preset_with_two_ray_workers_matches_the_sequential_run(tmp_path):
    env = {**os.environ, "QGEN_THREADS": "1", "QGEN_CIRCUITS": str(tmp_path / "circuits")}
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--workers", "2"])):
        run = qgen(["experiment", "--smoke", "--out", str(tmp_path / name), *extra], env, timeout=1200, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
    seq, par = _metrics(tmp_path / "local"), _metrics(tmp_path / "ray")
    assert len(seq) == 8 and seq == par
