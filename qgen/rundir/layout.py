"""``RunDir``: the one place that knows a run directory's layout and how each of its files is written.

    config.toml            the RunConfig (written at creation; rewritten when --steps extends a resume)
    manifest.json          provenance and progress (status, steps, sample sets)
    checkpoint-last.pt     full training state; checkpoint-ema.pt: the EMA weights for sampling;
    checkpoint-best.pt     the EMA weights with the best validation FLD so far (when evaluated)
    loss.csv               step, loss, seconds (one row per optimizer step)
    metrics.csv            in-training quality: validation FLD, copy fraction, baselines (qgen.training.quality)
    loss.png, samples.png, schedule.png, quality.png
    samples-<tag>-<backend>-<time>.npz (+ .png grid)
    metrics.json           ``qgen evaluate``
    noise/<backend>/       the quantum noise pool of each backend
    jobs.jsonl, job_results/, budget.json   journaled primitive jobs and the shot budget (ibm)
    .qgen.lock             who is writing into the run now (see qgen.rundir.lock)

Every write is atomic (qgen.fileio), so a kill leaves each file old or new, never half.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qgen.errors import QgenError
from qgen.fileio import atomic_write_bytes, read_json, write_json
from qgen.rundir.lock import LockHolder, hold_lock
from qgen.rundir.loss_log import LossLog
from qgen.rundir.quality_log import QualityLog

CONFIG = "config.toml"
MANIFEST = "manifest.json"
CHECKPOINTS = {"last": "checkpoint-last.pt", "ema": "checkpoint-ema.pt", "best": "checkpoint-best.pt"}
LOSS_CSV = "loss.csv"
PLOTS = {"loss_png": "loss.png", "samples_png": "samples.png", "schedule_png": "schedule.png",
         "quality_png": "quality.png"}
QUALITY_CSV = "metrics.csv"
SAMPLES_PREFIX = "samples-"
SAMPLES_GLOB = f"{SAMPLES_PREFIX}*.npz"
METRICS = "metrics.json"
NOISE_POOLS = "noise"
JOURNAL = "jobs.jsonl"
JOB_RESULTS = "job_results"
BUDGET = "budget.json"
LOCK = ".qgen.lock"


def default_runs_root() -> Path:
    return Path(os.environ.get("QGEN_RUNS", "runs"))


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


@dataclass(frozen=True)
class SamplesFile:
    """One sample set: the arrays (.npz) and their image grid (.png)."""

    npz: Path
    png: Path


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    # -- creating and finding runs -------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, name: str, *, config, manifest: dict) -> RunDir:
        """Create ``root/name`` with its config, manifest and an empty loss log, whole or not at all.

        The files are staged in a hidden folder that is renamed into place, so a failure while
        writing them never leaves a half-made run directory behind.
        """
        import tomli_w

        from qgen.tomlconfig import to_dict

        files = {LOSS_CSV: LossLog.header(),
                 CONFIG: tomli_w.dumps(to_dict(config)).encode(),
                 MANIFEST: _json_bytes(manifest)}
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        final = root / name
        if final.exists():
            raise QgenError(f"run directory already exists: {final} (choose another --name)")
        staging = root / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            for rel, data in files.items():
                (staging / rel).write_bytes(data)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(final)

    @classmethod
    def resolve(cls, run: str | os.PathLike, root: Path | None = None) -> RunDir:
        """A run given as a path, or as a name under the runs root."""
        candidates = [Path(run)]
        if root is not None:
            candidates.append(Path(root) / run)
        for path in candidates:
            if cls.is_run(path):
                return cls(path)
        looked = " or ".join(str(p) for p in candidates)
        raise QgenError(f"no run found at {looked} (a run directory holds {CONFIG})")

    @staticmethod
    def is_run(path: Path) -> bool:
        return (Path(path) / CONFIG).is_file()

    # -- writers' lock -------------------------------------------------------------------------
    @contextmanager
    def lock(self, command: str | None = None) -> Iterator[LockHolder]:
        """Hold the run exclusively (train, resume, sample, evaluate); raises RunInUseError at once."""
        with hold_lock(self.path / LOCK, self.path, command) as holder:
            yield holder

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    # -- config and manifest -------------------------------------------------------------------
    def config(self):
        from qgen.config import load_run_config

        return load_run_config(self.path / CONFIG)

    def save_config(self, cfg) -> None:
        from qgen.config import save_run_config

        save_run_config(cfg, self.path / CONFIG)

    def manifest(self) -> dict:
        return read_json(self.path / MANIFEST)

    def update_manifest(self, **fields) -> dict:
        manifest = self.manifest()
        manifest.update(fields)
        write_json(self.path / MANIFEST, manifest)
        return manifest

    def append_to_manifest(self, key: str, item: dict) -> dict:
        """Add ``item`` to the list ``manifest[key]`` (created if missing)."""
        manifest = self.manifest()
        manifest[key] = manifest.get(key, []) + [item]
        write_json(self.path / MANIFEST, manifest)
        return manifest

    # -- checkpoints and the loss log ----------------------------------------------------------
    def checkpoint_path(self, which: str) -> Path:
        try:
            return self.path / CHECKPOINTS[which]
        except KeyError:
            raise QgenError(f"unknown checkpoint {which!r}; choose {' or '.join(CHECKPOINTS)}") from None

    def has_checkpoint(self, which: str) -> bool:
        return self.checkpoint_path(which).is_file()

    def save_checkpoint(self, which: str, state: dict) -> None:
        from qgen.rundir.checkpoints import save_checkpoint

        save_checkpoint(self.checkpoint_path(which), state)

    def load_checkpoint(self, which: str) -> dict:
        from qgen.rundir.checkpoints import load_checkpoint

        return load_checkpoint(self.checkpoint_path(which))

    def loss_log(self) -> LossLog:
        return LossLog(self.path / LOSS_CSV)

    def quality_log(self) -> QualityLog:
        return QualityLog(self.path / QUALITY_CSV)

    # -- plots, samples, metrics ---------------------------------------------------------------
    def path_for(self, plot: str) -> Path:
        """Where a library that writes its own file (matplotlib, PIL) puts ``loss_png``, ``samples_png`` or
        ``schedule_png``."""
        try:
            return self.path / PLOTS[plot]
        except KeyError:
            raise QgenError(f"unknown run file {plot!r}; choose {', '.join(PLOTS)}") from None

    def new_samples_file(self, tag: str, backend_name: str) -> SamplesFile:
        """A fresh sample set's files, e.g. ``samples-ddim50-statevector-<time>.npz`` / ``.png``."""
        stem = f"{SAMPLES_PREFIX}{tag}-{backend_name}-{timestamp()}"
        return SamplesFile(self.path / f"{stem}.npz", self.path / f"{stem}.png")

    def save_samples(self, file: SamplesFile, **arrays) -> None:
        import numpy as np

        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(file.npz, buf.getvalue())

    def latest_samples(self) -> Path:
        files = sorted(self.path.glob(SAMPLES_GLOB), key=lambda p: p.stat().st_mtime)
        if not files:
            raise QgenError(f"{self.path} has no {SAMPLES_GLOB} yet; run: qgen sample --run {self.path}")
        return files[-1]

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    # -- what other packages keep in the run ---------------------------------------------------
    def noise_pool_dir(self, backend_name: str) -> Path:
        """One pool per run and backend: bits of different devices (and extractors) never share a stream."""
        return self.path / NOISE_POOLS / backend_name

    @property
    def journal_path(self) -> Path:
        return self.path / JOURNAL

    @property
    def job_results_dir(self) -> Path:
        return self.path / JOB_RESULTS

    @property
    def budget_path(self) -> Path:
        return self.path / BUDGET


def _json_bytes(data: dict) -> bytes:
    return (json.dumps(data, indent=2, default=str) + "\n").encode()
