"""Run directories under runs/: their layout and files (``RunDir``), the writers' lock, provenance.

    layout.py       RunDir: every file name of a run and how each file is read and written;
                    ModelFolder: the files of an exported model folder
    lock.py         the exclusive lock a writing command holds on a run
    loss_log.py     loss.csv rows: append, cut back on resume, total seconds
    checkpoints.py  atomic torch checkpoints
    provenance.py   versions, git commit and host for the manifest
"""

from qgen.rundir.layout import (CheckpointWriteError, ModelFolder, RunDir, SamplesFile, default_runs_root, timestamp,
                                write_samples)
from qgen.rundir.lock import LockHolder, RunInUseError
from qgen.rundir.loss_log import LossLog
from qgen.rundir.provenance import base_manifest, git_commit, package_versions

__all__ = [
    "CheckpointWriteError",
    "LockHolder",
    "LossLog",
    "ModelFolder",
    "RunDir",
    "RunInUseError",
    "SamplesFile",
    "base_manifest",
    "default_runs_root",
    "git_commit",
    "package_versions",
    "timestamp",
    "write_samples",
]
