"""qgen experiment: config, statistics, verdict wording, and resumption end to end."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from qgen.errors import QgenError
from qgen.experiment.cells import expand_cells, run_config
from qgen.cli.experiment import experiment_command
from qgen.experiment.config import experiment_from_dict, load_experiment_config, save_experiment_config
from qgen.experiment.presets import full_preset, smoke_preset
from qgen.experiment.report import report_markdown
from qgen.experiment.cell_run import RunnerOptions
from qgen.experiment.runner import run_experiment
from qgen.experiment.stats import mean_ci, paired_comparison
from qgen.experiment.verdict import EQUIVALENT, INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, decide
from tests.helpers import REPO, qgen

# the text columns of summary.csv (qgen.experiment.summary.COLUMNS); every other column is a number
SUMMARY_TEXT_COLUMNS = frozenset({"cell_id", "dataset", "arm", "fd_metric", "feature_net", "run_dir", "samples_file",
                                  "baseline_reading", "weights", "qgen_commit"})


def read_summary_csv(path: Path) -> list[dict]:
    """summary.csv's rows with numbers as numbers and empty cells as None."""
    def parse(key: str, value: str):
        if value == "":
            return None
        if key in SUMMARY_TEXT_COLUMNS:
            return value
        try:
            return int(value)
        except ValueError:
            return float(value)

    with open(path, newline="") as fh:
        return [{k: parse(k, v) for k, v in row.items()} for row in csv.DictReader(fh)]


OUTPUT_FILES = ("summary.csv", "tables.md", "report.md", "state.json", "experiment.toml")

# Smaller than the smoke preset: for the in-process interrupt test, where only the mechanics matter.
TINY = {
    "name": "tiny",
    "arms": ["classical", "quantum"],
    "sizes": [10],
    "seeds": [0],
    "datasets": [{"label": "mnist-c3", "dataset": "mnist", "classes": [3]}],
    "model": {"widths": [8, 8, 8], "qubits": 2, "layers": 1, "T": 20},
    "train": {"steps": 12, "batch_size": 4, "ema_decay": 0.5, "checkpoint_every": 4},
    "sampling": {"n": 8, "steps": 4, "batch_size": 8, "heldout_limit": 100},
}


@pytest.fixture(autouse=True)
def _circuits_in_tmp(tmp_path, monkeypatch):
    # start_training writes the bottleneck circuit to $QGEN_CIRCUITS (default ./circuits)
    monkeypatch.setenv("QGEN_CIRCUITS", str(tmp_path / "circuits"))


# -- configuration ----------------------------------------------------------------------------

def test_unknown_key_is_one_line_error(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('name = "x"\n[train]\nsteps = 10\nlearning_rate = 0.1\n')
    with pytest.raises(QgenError) as err:
        load_experiment_config(path)
    assert "unknown key 'train.learning_rate'" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("patch, message", [
    ({"arms": ["quantum", "qantum"]}, "unknown arm 'qantum'"),
    ({"sizes": []}, "sizes is empty"),
    ({"seeds": [1, 1]}, "seeds has duplicates"),
    ({"datasets": [{"label": "a_b", "dataset": "mnist"}]}, "dataset label"),
    ({"sampling": {"steps": 50}}, "cannot exceed model.T"),
    ({"datasets": [{"label": "m", "dataset": "mnist", "clases": [3]}]}, "unknown key 'datasets[0].clases'"),
])
def test_config_validation(patch, message):
    with pytest.raises(QgenError, match=message.replace("[", r"\[").replace("]", r"\]")):
        experiment_from_dict({**TINY, **patch})


def test_config_round_trips_through_toml(tmp_path):
    for cfg in (smoke_preset(), full_preset(), experiment_from_dict(TINY)):
        save_experiment_config(cfg, tmp_path / "e.toml")
        assert load_experiment_config(tmp_path / "e.toml") == cfg


def test_cells_are_paired_across_arms():
    cfg = smoke_preset()
    cells = expand_cells(cfg)
    assert len(cells) == len(cfg.arms) * len(cfg.sizes) * len(cfg.seeds) * len(cfg.datasets)
    assert cells[0].id == "mnist-c3_plain_n10_s0"
    by_id = {c.id: run_config(cfg, c) for c in cells}
    q, c = by_id["mnist-c3_quantum_noise_n10_s1"], by_id["mnist-c3_classical_n10_s1"]
    assert q.data == c.data and q.train.steps == c.train.steps and q.train.seed == c.train.seed == 1
    assert (q.model.kind, q.train.noise, c.model.kind, c.train.noise) == ("quantum", "quantum", "classical", "classical")


def test_conflicting_config_for_existing_out_is_refused(tmp_path):
    save_experiment_config(experiment_from_dict(TINY), tmp_path / "experiment.toml")
    group = click.Group(commands=[experiment_command])
    result = CliRunner().invoke(group, ["experiment", "--preset", "smoke", "--out", str(tmp_path), "--dry-run"])
    assert isinstance(result.exception, QgenError) and "different experiment" in str(result.exception)
    result = CliRunner().invoke(group, ["experiment", "--out", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "mnist-c3_quantum_n10_s0" in result.output and "estimated time" in result.output


# -- statistics against scipy -------------------------------------------------------------------

def test_mean_ci_matches_scipy_t_interval():
    x = [1.0, 2.0, 3.0, 4.0]
    ci = mean_ci(x)
    low, high = stats.t.interval(0.95, df=3, loc=2.5, scale=stats.sem(x))
    assert ci.n == 4 and ci.mean == pytest.approx(2.5)
    assert (ci.low, ci.high) == pytest.approx((low, high))
    assert (ci.low, ci.high) == pytest.approx((0.44574, 4.55426), abs=1e-5)  # known value: t(0.975, 3) = 3.1824
    assert mean_ci([5.0, None, float("nan")]) .low is None and mean_ci([]).mean is None


def test_paired_comparison_matches_scipy():
    a = [10.0, 12.5, 9.0, 11.0, 14.0]
    b = [11.0, 13.0, 11.5, 11.5, 16.0]
    c = paired_comparison(a, b)
    d = np.subtract(a, b)
    assert c.n_pairs == 5 and c.mean_diff == pytest.approx(d.mean())
    assert c.t_p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert c.wilcoxon_p == pytest.approx(stats.wilcoxon(d).pvalue)
    assert (c.ci_low, c.ci_high) == pytest.approx(stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d)))
    assert c.ci_low is not None and c.ci_low <= c.ci_high < 0  # the interval excludes zero


def test_paired_comparison_drops_incomplete_pairs():
    c = paired_comparison([1.0, None, 3.0], [0.5, 2.0, None])
    assert c.n_pairs == 1 and c.ci_low is None and c.t_p is None


# -- verdict wording on synthetic summaries -----------------------------------------------------

def synthetic_rows(log_effect: float, noise: float, datasets=("mnist-c3", "pneumonia"), seeds=tuple(range(10)),
                   sizes=(10, 30, 100), other: str = "classical") -> list[dict]:
    """Summary rows where quantum FLD = classical FLD * exp(log_effect + seeded noise per seed)."""
    rng = np.random.default_rng(0)
    rows = []
    for dataset in datasets:
        for seed in seeds:
            seed_effect = log_effect + rng.normal(0, noise)
            for n in sizes:
                base = 20.0 + 200.0 / n + rng.normal(0, 2)
                for arm, value in ((other, base), ("quantum", base * np.exp(seed_effect + rng.normal(0, noise / 4)))):
                    rows.append({"dataset": dataset, "arm": arm, "n_train": n, "seed": seed, "fd": value,
                                 "kid": value / 100, "precision": 0.5, "recall": 0.5, "copy_fraction": 0.0,
                                 "n_samples": 256, "n_reference": 1000})
    return rows


def _decide(rows, datasets=("mnist-c3", "pneumonia"), sizes=(10, 30, 100)):
    return decide(rows, datasets=datasets, sizes=sizes, margin=0.10)


@pytest.mark.parametrize("log_effect, noise, outcome", [
    (-0.30, 0.05, SUPPORTED),        # quantum FLD ~26% lower, tightly
    (+0.30, 0.05, NOT_SUPPORTED),    # ~35% higher
    (0.00, 0.02, EQUIVALENT),        # within +-10%, tightly
    (0.00, 0.40, INCONCLUSIVE),      # too noisy to say anything
])
def test_verdict_outcomes(log_effect, noise, outcome):
    rows = synthetic_rows(log_effect, noise)
    verdict = _decide(rows)
    assert verdict.outcome == outcome, verdict.reason
    assert all(f.test.n == 10 for f in verdict.findings)  # seeds are the unit, not (N, seed) pairs
    report = report_markdown(full_preset(), rows, verdict, out=Path("."), n_cells=330, failed=[], preset="full")
    assert f"**Verdict: {outcome.upper()}**" in report
    assert "not Inception" in report and "95% CI" in report and "## Environment" in report


def test_verdict_needs_every_dataset_and_enough_seeds():
    mixed = synthetic_rows(-0.3, 0.05, datasets=("mnist-c3",)) + synthetic_rows(+0.3, 0.05, datasets=("pneumonia",))
    assert _decide(mixed).outcome == INCONCLUSIVE and "mixed" in _decide(mixed).reason
    one_better_one_flat = synthetic_rows(-0.3, 0.05, datasets=("a",)) + synthetic_rows(0.0, 0.4, datasets=("b",))
    verdict = _decide(one_better_one_flat, datasets=("a", "b"))
    assert verdict.outcome == INCONCLUSIVE and "better on a only" in verdict.reason
    one_seed = synthetic_rows(-0.3, 0.05, seeds=(0,))
    verdict = _decide(one_seed)
    assert verdict.outcome == INCONCLUSIVE and all("no test possible" in f.note for f in verdict.findings)
    no_quantum = [r for r in synthetic_rows(-0.3, 0.05) if r["arm"] != "quantum"]
    assert _decide(no_quantum).outcome == INCONCLUSIVE
    # a dataset of the grid with no cells yet keeps the verdict open
    assert _decide(synthetic_rows(-0.3, 0.05, datasets=("mnist-c3",))).outcome == INCONCLUSIVE


def test_a_seed_counts_only_when_both_arms_finished_every_size():
    rows = [r for r in synthetic_rows(-0.3, 0.05) if not (r["dataset"] == "mnist-c3" and r["seed"] == 3
                                                          and r["n_train"] == 100 and r["arm"] == "quantum")]
    verdict = _decide(rows)
    assert [f.test.n for f in verdict.findings] == [9, 10]  # seed 3 of mnist-c3 lacks N = 100
    assert verdict.outcome == SUPPORTED


# -- running and resuming -----------------------------------------------------------------------

def test_smoke_preset_resumes_after_max_cells(tmp_path):
    out = tmp_path / "exp"
    env = {**os.environ, "QGEN_THREADS": "1"}
    first = qgen(["experiment", "--smoke", "--out", str(out), "--max-cells", "2"], env, timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    finished = sorted(p.parent.name for p in out.glob("cells/*/metrics.json"))
    assert finished == ["mnist-c3_classical_n10_s0", "mnist-c3_plain_n10_s0"]
    mtimes = {name: (out / "cells" / name / "metrics.json").stat().st_mtime_ns for name in finished}
    assert json.loads((out / "state.json").read_text())["status"] == "stopped"

    # the stored experiment.toml says what to continue
    second = qgen(["experiment", "--out", str(out)], env, timeout=600, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "10 cells finished now, 2 were already done" in second.stderr
    for name, mtime in mtimes.items():
        assert (out / "cells" / name / "metrics.json").stat().st_mtime_ns == mtime
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "finished" and state["invocations"] == 2
    assert all(c["status"] == "done" and c["trainings"] == 1 for c in state["cells"].values())
    assert len(state["cells"]) == 12  # 6 arms x 2 seeds: every arm of the protocol
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    assert len(list((out / "grids").glob("*.png"))) == 6 and (out / "plots" / "mnist-c3.png").is_file()
    rows = read_summary_csv(out / "summary.csv")
    assert len(rows) == 12 and list(rows[0])[:5] == ["cell_id", "dataset", "arm", "n_train", "seed"]
    # best-validation weights, test-part baselines, and dependence ratios for every gated arm (none for plain)
    assert {r["weights"] for r in rows} == {"best"}
    assert all(r["floor_fd"] > 0 and r["memorizer_fd"] > 0 for r in rows)
    for r in rows:
        assert (r["dep_removal_mean"] is None) == (r["arm"] == "plain"), r["cell_id"]
    frozen = [r for r in rows if r["arm"] == "quantum_frozen"]
    assert all(r["parameters_gate_middle"] == 0 and r["parameters_frozen"] == 8 for r in frozen)
    report = (out / "report.md").read_text()
    assert "**Verdict:" in report and "not evidence" in report  # smoke-sized runs say so
    assert "## Controls" in report and "quantum vs separable" in report and "torch" in report
    assert "Dependence ratios" in (out / "tables.md").read_text()


def _expect_interrupt(cfg, cells, opts) -> None:
    try:
        result = run_experiment(cfg, cells, opts)
    except KeyboardInterrupt:
        return
    pytest.fail(f"the experiment was not interrupted: {result}")


def test_interrupted_training_is_resumed(tmp_path, monkeypatch):
    from qgen.training.trainer import Trainer

    cfg = experiment_from_dict(TINY)
    cells = expand_cells(cfg)
    opts = RunnerOptions(out=tmp_path, log=lambda line: None)
    original = Trainer.train_step

    def interrupt_at_step_7(self):
        if self.step == 6:  # Trainer.train saves a checkpoint at step 6 on the interrupt
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_step_7)
    _expect_interrupt(cfg, cells, opts)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["status"] == "interrupted"
    assert state["cells"][cells[0].id]["status"] == "interrupted"
    run_dir = next((tmp_path / "cells" / cells[0].id / "run").iterdir())
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"

    monkeypatch.setattr(Trainer, "train_step", original)
    result = run_experiment(cfg, cells, opts)
    assert result.done == [c.id for c in cells] and not result.failed
    record = json.loads((tmp_path / "state.json").read_text())["cells"][cells[0].id]
    assert record["trainings"] == 2 and record["status"] == "done"
    assert next((tmp_path / "cells" / cells[0].id / "run").iterdir()) == run_dir  # resumed, not restarted
    steps = [int(line.split(",")[0]) for line in (run_dir / "loss.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 13))


def test_run_without_checkpoint_is_restarted(tmp_path, monkeypatch):
    from qgen.training.trainer import Trainer

    cfg = experiment_from_dict({**TINY, "arms": ["classical"]})
    cells = expand_cells(cfg)
    opts = RunnerOptions(out=tmp_path, log=lambda line: None)
    original = Trainer.train_step

    def interrupt_at_once(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_once)
    _expect_interrupt(cfg, cells, opts)
    # Trainer.train saves a step-0 checkpoint on interrupt; remove it to mimic a kill before any save
    stale = next((tmp_path / "cells" / cells[0].id / "run").iterdir())
    for ckpt in stale.glob("checkpoint-*.pt"):
        ckpt.unlink()
    monkeypatch.setattr(Trainer, "train_step", original)
    result = run_experiment(cfg, cells, opts)
    assert result.done == [cells[0].id]
    runs = list((tmp_path / "cells" / cells[0].id / "run").iterdir())  # the stale one was removed
    assert len(runs) == 1 and (runs[0] / "checkpoint-last.pt").is_file()
    assert json.loads((runs[0] / "manifest.json").read_text())["status"] == "finished"
    assert (tmp_path / "cells" / cells[0].id / "metrics.json").is_file()


@pytest.mark.parametrize("path", ["docs/results/mnist-c3.toml", "docs/results/mnist-all.toml",
                                  "docs/results/mnist-c3/experiment.toml", "docs/results/mnist-all/experiment.toml"])
def test_committed_experiment_files_of_the_old_layout_keep_their_meaning(path, tmp_path):
    # [model] T/schedule and [sampling] heldout_limit were the layout before the base RunConfig
    cfg = load_experiment_config(REPO / path)
    assert cfg.diffusion.T == 500 and cfg.diffusion.schedule == "linear" and cfg.heldout_limit == 400
    assert cfg.model.widths == (16, 32, 32) and cfg.model.qubits == 8 and cfg.model.layers == 2
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.ema_decay, cfg.train.checkpoint_every) \
        == (600, 16, 1e-3, 0.995, 100)
    assert (cfg.sampling.n, cfg.sampling.steps, cfg.sampling.batch_size, cfg.sampling.sampler, cfg.sampling.eta) \
        == (128, 50, 64, "ddim", 0.0)
    cell = expand_cells(cfg)[0]
    run = run_config(cfg, cell)
    assert run.model.kind == cell.arm.model_kind and run.train.seed == cell.seed and run.train.noise == cell.arm.noise
    assert run.train.sample_n == 16 and run.train.sample_steps == 50 and run.diffusion.T == 500
    save_experiment_config(cfg, tmp_path / "new.toml")  # written in the new layout, read back the same
    assert load_experiment_config(tmp_path / "new.toml") == cfg
    assert "heldout_limit" not in (tmp_path / "new.toml").read_text().split("[sampling]")[1]


def test_experiment_defaults_are_the_base_run_and_cells_cannot_be_overridden_in_the_file():
    from qgen.experiment.cells import sample_request
    from qgen.experiment.config import EXPERIMENT_RUN, EXPERIMENT_SAMPLING

    cfg = experiment_from_dict({"datasets": TINY["datasets"]})
    assert cfg.model == EXPERIMENT_RUN.model and cfg.train == EXPERIMENT_RUN.train
    assert cfg.diffusion.T == 500 and cfg.model.widths == (16, 32, 32) and cfg.train.ema_decay == 0.995
    assert cfg.sampling == EXPERIMENT_SAMPLING and cfg.heldout_limit == 1000
    request = sample_request(cfg, expand_cells(cfg)[0])
    assert request.seed == 1000 and request.n == 256 and request.sampler == "ddim"
    cosine = experiment_from_dict({"datasets": TINY["datasets"], "diffusion": {"schedule": "cosine"}})
    assert cosine.diffusion.make_schedule().describe()["name"] == "cosine"
    for table, key in (("model", "kind"), ("train", "seed"), ("train", "noise"), ("sampling", "noise")):
        with pytest.raises(QgenError, match=f"{table}.{key} is set per cell"):
            experiment_from_dict({**TINY, table: {key: 1}})
    with pytest.raises(QgenError, match="both given"):
        experiment_from_dict({**TINY, "diffusion": {"T": 20}})
    with pytest.raises(QgenError, match="unknown key 'bogus'"):
        experiment_from_dict({**TINY, "bogus": 1})
