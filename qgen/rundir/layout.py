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
    tensorboard/           TensorBoard event files (qgen.training.tensorboard; the CSVs stay the record)
    .qgen.lock             who is writing into the run now (see qgen.rundir.lock)

A model folder (``qgen export``, ``ModelFolder``) follows the Hugging Face convention:

    model.safetensors      the EMA weights (safetensors: tensors only, nothing to unpickle)
    config.json            everything needed to rebuild the model (qgen.pretrained.folder_config)
    README.md              the model card
    circuit/               the transpiled bottleneck circuit (QPY, OpenQASM 3, stats) for its backend

Every write is atomic (qgen.fileio), so a kill leaves each file old or new, never half.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import tomli_w

from qgen.errors import QgenError
from qgen.fileio import (atomic_write_bytes, check_writable, current_umask, read_json, remove_stale_temp_files,
                         write_json)
from qgen.rundir import checkpoints
from qgen.rundir.lock import LockHolder, hold_lock
from qgen.rundir.loss_log import LossLog
from qgen.rundir.quality_log import QualityLog
from qgen.tomlconfig import to_dict

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
TENSORBOARD = "tensorboard"
MODEL_WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
MODEL_CARD = "README.md"
MODEL_CIRCUIT = "circuit"
STAGING_SUFFIX = ".partial"  # a model folder being written (ModelFolder.writing)

logger = logging.getLogger(__name__)


class CheckpointWriteError(QgenError):
    """A checkpoint could not be written (disk full, read-only, ...). The write is atomic, so the
    previous checkpoint at ``path`` (if any) is untouched: the run can resume from it.

    Carries what marking the manifest needs: ``path``, ``errno`` (e.g. errno.ENOSPC), ``step``
    (the step that was being saved), ``previous_intact`` (a previous checkpoint exists and is whole).
    """

    def __init__(self, path: Path, step: int | None, exc: OSError) -> None:
        self.path = Path(path)
        self.errno = exc.errno
        self.step = step
        self.previous_intact = self.path.is_file()
        reason = exc.strerror or str(exc)
        at = f" at step {step}" if step is not None else ""
        if self.previous_intact:
            keep = f"the previous checkpoint {self.path.name} is intact; free space and resume from it"
        else:
            keep = "no earlier checkpoint exists; free space and start the run again"
        super().__init__(f"could not write checkpoint {self.path}{at}: {reason}; {keep}")

    def manifest_fields(self) -> dict:
        """What the manifest records about the failure: ``run.update_manifest(**exc.manifest_fields())``."""
        return {"status": "failed", "error": str(self), "failed_at_step": self.step}


def _mkdir_or_explain(path: Path, what: str) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, or one line naming the path and the reason."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise QgenError(f"cannot create {what} {path}: a file of that name (or above it) is in the way") from None
    except NotADirectoryError:
        raise QgenError(f"cannot create {what} {path}: part of the path is a file, not a folder") from None
    except OSError as exc:
        raise QgenError(f"cannot create {what} {path}: {exc.strerror or exc}"
                        f"{' (pass --runs-dir or set QGEN_RUNS)' if what == 'runs directory' else ''}") from None


def default_runs_root() -> Path:
    return Path(os.environ.get("QGEN_RUNS", "runs"))


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


#: Longest file name most filesystems allow (bytes), and what a run's folder name adds to --name:
#: "<timestamp>-" in front, and ".<folder>.partial" while it is created.
NAME_MAX = 255
NAME_OVERHEAD = len(timestamp()) + 1 + len("..partial")


def check_run_name(name: str) -> str:
    """A ``--name`` that can be one folder name: checked before any data is loaded, since the folder
    is made only after (a path, a newline or an over-long name failed there, or made odd folders)."""
    if not name:
        return name
    if "/" in name or "\\" in name or os.sep in name:
        raise QgenError(f"--name {name!r} is a path; a run name is one folder name (put runs elsewhere with "
                        "--runs-dir or $QGEN_RUNS)")
    if name in (".", "..") or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise QgenError(f"--name {name!r} holds control characters (a newline, a tab) or is '.'/'..'; "
                        "use letters, digits, '-', '_' or '.'")
    longest = NAME_MAX - NAME_OVERHEAD
    if len(name.encode()) > longest:
        raise QgenError(f"--name is {len(name.encode())} bytes long; a run folder's name allows at most "
                        f"{longest} for it")
    return name


#: The manifest entries qgen reads back, with their types (None is allowed for each).
MANIFEST_TYPES = {"status": str, "command": list, "samples": list, "circuits": list, "backend": dict,
                  "data_source": dict, "parameters": dict, "steps_done": int, "n_train_images": int,
                  "channels": int, "preview_note": str}


def check_manifest(path: Path, manifest: object) -> dict:
    """``manifest`` if it has the shape qgen writes, else one QgenError naming the file and entry."""
    if not isinstance(manifest, dict):
        raise QgenError(f"damaged file: {path} (it holds a JSON {type(manifest).__name__}, not an object)")
    for key, kind in MANIFEST_TYPES.items():
        value = manifest.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise QgenError(f"damaged file: {path} (entry {key!r} is a {type(value).__name__}, not a "
                            f"JSON {_JSON_NAMES[kind]})")
    return manifest


_JSON_NAMES = {str: "string", list: "array", dict: "object", int: "integer"}


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
        files = {LOSS_CSV: LossLog.header(),
                 CONFIG: tomli_w.dumps(to_dict(config)).encode(),
                 MANIFEST: _json_bytes(manifest)}
        root = Path(root)
        _mkdir_or_explain(root, "runs directory")
        final = root / name
        if final.exists():
            raise QgenError(f"run directory already exists: {final} (choose another --name)")
        staging = root / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir()
            for rel, data in files.items():
                (staging / rel).write_bytes(data)
            os.replace(staging, final)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise QgenError(f"cannot create run directory {final}: {exc.strerror or exc}"
                            " (pass --runs-dir or set QGEN_RUNS to a writable folder)") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(final)

    @classmethod
    def resolve(cls, run: str | os.PathLike, root: Path | None = None) -> RunDir:
        """A run given as a path, as a directory name under the runs root, or as the ``--name`` it was
        trained with (``<timestamp>-NAME``: the newest such run, said on stderr when several match).
        A RunDir is already found: it is handed back as it is."""
        if isinstance(run, RunDir):
            return run
        candidates = [Path(run)]
        if root is not None:
            candidates.append(Path(root) / run)
        for path in candidates:
            if cls.is_run(path):
                return cls(path)
        named = cls._runs_named(str(run), root)
        if named:
            if len(named) > 1:
                others = ", ".join(p.name for p in named[:-1])
                logger.warning(f"qgen: {len(named)} runs are named {str(run)!r}; using the newest, {named[-1]} "
                               f"(others: {others}; pass a directory to pick one)")
            return cls(named[-1])
        looked = " or ".join(str(p) for p in candidates)
        raise QgenError(f"no run found at {looked} (a run directory holds {CONFIG})")

    @classmethod
    def _runs_named(cls, name: str, root: Path | None) -> list[Path]:
        """Runs under ``root`` whose directory is ``<timestamp>-name``, oldest first (timestamps sort)."""
        if root is None or not name or os.sep in name or not Path(root).is_dir():
            return []
        return sorted(p for p in Path(root).glob(f"*-{name}")
                      if p.name[:15].replace("-", "").isdigit() and p.name[15:] == f"-{name}" and cls.is_run(p))

    @staticmethod
    def is_run(path: Path) -> bool:
        return (Path(path) / CONFIG).is_file()

    # -- writers' lock -------------------------------------------------------------------------
    @contextmanager
    def lock(self, command: str | None = None) -> Iterator[LockHolder]:
        """Hold the run exclusively (train, resume, sample, evaluate); raises RunInUseError at once."""
        with hold_lock(self.path / LOCK, self.path, command) as holder:
            # now nobody else writes here: temp files of writes that were killed are garbage
            remove_stale_temp_files(self.path)
            yield holder

    @contextmanager
    def writing(self, reads_manifest: bool = True) -> Iterator[LockHolder]:
        """What every command that writes into an existing run holds first: the lock, then proof
        that the folder takes new files and (``reads_manifest``) that manifest.json is readable --
        all before any work, so nothing fails only after the work is done, half-written."""
        with self.lock() as holder:
            check_writable(self.path, f"run {self.path}")
            if reads_manifest:
                self.manifest()
            yield holder

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    # -- config and manifest -------------------------------------------------------------------
    def config(self):
        # deferred: qgen.config imports torch (~3.5 s), and every command, qgen --version included,
        # imports this module at start-up
        from qgen.config import load_run_config

        return load_run_config(self.path / CONFIG)

    def save_config(self, cfg) -> None:
        from qgen.config import save_run_config  # deferred: see config()

        save_run_config(cfg, self.path / CONFIG)

    def manifest(self) -> dict:
        """manifest.json, checked to be what qgen wrote (a JSON object, each known entry of its type)."""
        path = self.path / MANIFEST
        return check_manifest(path, read_json(path))

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
        path = self.checkpoint_path(which)
        try:
            checkpoints.save_checkpoint(path, state)
        except OSError as exc:  # disk full, read-only: the atomic write left the previous one whole
            raise CheckpointWriteError(path, state.get("step"), exc) from None

    def never_checkpointed(self) -> QgenError:
        """The error for resuming a run that was stopped before its first checkpoint: nothing to resume
        from, so say how to start it again (the manifest keeps the command that started it)."""
        try:
            argv = self.manifest().get("command") or []
        except QgenError:
            argv = []
        every = ""
        try:
            every = f" (one is written every {self.config().train.checkpoint_every} steps)"
        except QgenError:
            pass
        restart = (f"; start it again with: {shlex.join(['qgen', *argv[1:]])}" if len(argv) > 1
                   else "; start a new run with qgen train")
        return QgenError(f"run {self.path} never saved a checkpoint{every}: it was stopped before the first "
                         f"one, so there is nothing to resume{restart}")

    def load_checkpoint(self, which: str) -> dict:
        return checkpoints.load_checkpoint(self.checkpoint_path(which))

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
        write_samples(file, **arrays)

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

    @property
    def tensorboard_dir(self) -> Path:
        """Where training writes its TensorBoard event files (``tensorboard --logdir runs/`` finds them)."""
        return self.path / TENSORBOARD


@dataclass(frozen=True)
class ModelFolder:
    """The files of an exported model folder (``qgen export``); the folder itself may not exist yet."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __str__(self) -> str:
        return str(self.path)

    @staticmethod
    def is_model_folder(path: str | os.PathLike) -> bool:
        """An exported model folder (its config.json), not a run directory (its config.toml)."""
        return (Path(path) / MODEL_CONFIG).is_file() and not RunDir.is_run(Path(path))

    @property
    def weights_path(self) -> Path:
        return self.path / MODEL_WEIGHTS

    @property
    def config_path(self) -> Path:
        return self.path / MODEL_CONFIG

    @property
    def card_path(self) -> Path:
        return self.path / MODEL_CARD

    @property
    def circuit_dir(self) -> Path:
        return self.path / MODEL_CIRCUIT

    @contextmanager
    def writing(self) -> Iterator[ModelFolder]:
        """Hold the destination and yield a fresh hidden staging sibling to write into first and
        then ``publish``: a failed export leaves nothing, and two exports to one destination never
        share a staging folder.

        The lock (``.<name>.lock`` beside the folder: inside, it would make the folder non-empty)
        refuses a second export at once; it is removed on the way out, so a model folder's parent
        holds no litter. Correctness does not rest on it: ``publish`` is one rename, which never
        replaces a non-empty folder. Stagings that killed exports left are removed under the lock."""
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QgenError(f"cannot create {parent}: {exc.strerror or exc}") from None
        lock_path = parent / f".{self.path.name}.lock"
        with hold_lock(lock_path, self.path, what="model folder"):
            try:
                for stale in parent.glob(f".{self.path.name}.*{STAGING_SUFFIX}"):
                    shutil.rmtree(stale, ignore_errors=True)
                staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=STAGING_SUFFIX, dir=parent))
                try:
                    staging.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; the folder is for sharing
                    yield ModelFolder(staging)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)  # published already, or abandoned
            finally:
                lock_path.unlink(missing_ok=True)

    def publish(self, staging: ModelFolder) -> None:
        """Rename ``staging`` into place: onto a missing or empty folder only (one atomic rename)."""
        try:
            staging.path.rename(self.path)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise self.exists_error() from exc
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise self.exists_error() from None
            raise

    def exists_error(self) -> QgenError:
        return QgenError(f"{self.path} already exists and is not an empty folder; choose another --out or "
                         "remove it")

    @staticmethod
    def new_samples_file(out_dir: Path, tag: str, backend_name: str) -> SamplesFile:
        """Sample files drawn from a model folder, named like a run's, in ``out_dir`` (the folder
        itself stays as it was shared)."""
        stem = f"{SAMPLES_PREFIX}{tag}-{backend_name}-{timestamp()}"
        return SamplesFile(Path(out_dir) / f"{stem}.npz", Path(out_dir) / f"{stem}.png")


def write_samples(file: SamplesFile, **arrays) -> None:
    """The sample set's arrays as one compressed .npz, written atomically."""
    import numpy as np  # deferred: at the top it would cost every command's start-up ~0.2 s (qgen --version)

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(file.npz, buf.getvalue())


def _json_bytes(data: dict) -> bytes:
    return (json.dumps(data, indent=2, default=str) + "\n").encode()
