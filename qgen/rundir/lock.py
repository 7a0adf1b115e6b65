"""An exclusive lock on a run directory: one writer at a time (train, resume, sample, evaluate).

Two writers would interleave loss rows, checkpoints and noise-pool cursors. The lock is an
``fcntl.flock`` on a file inside the run directory; the kernel drops it when its holder dies, so
a killed run never blocks the next command. The holder writes its pid, command, host and start
time into the file, for the refusal message. On filesystems without ``flock`` (some network
mounts) that record is the lock: a pid that is no longer alive is a stale lock and is taken over.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from qgen.errors import QgenError

# errors meaning "this filesystem cannot flock", as opposed to "someone holds the lock"
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_HOLDER_WRITE_GRACE_S = 1.0  # a holder that has just locked may not have written its record yet


@dataclass(frozen=True)
class LockHolder:
    pid: int
    command: str
    host: str
    since: str

    @classmethod
    def this_process(cls, command: str | None = None) -> LockHolder:
        return cls(pid=os.getpid(), command=command or this_command(), host=socket.gethostname(),
                   since=datetime.now().strftime("%Y-%m-%d %H:%M:%S"))

    def is_alive(self) -> bool:
        if self.host != socket.gethostname():
            return True  # cannot check another machine's processes: assume the lock is real
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by someone else
        return True


class RunInUseError(QgenError):
    """``what`` names the locked thing: a run, a model folder being exported, an experiment."""

    def __init__(self, run_path: Path, holder: LockHolder | None, what: str = "run"):
        self.holder = holder
        if holder is None:
            super().__init__(f"{what} {run_path} is in use by another process")
        else:
            super().__init__(f"{what} {run_path} is in use by pid {holder.pid} ({holder.command}) since "
                             f"{holder.since}")


def this_command() -> str:
    """This process's command line as the user typed it (``qgen ...`` for the CLI)."""
    argv = sys.argv or ["python"]
    first = Path(argv[0])
    if first.name == "qgen" or first.parts[-3:] == ("qgen", "cli", "__main__.py"):
        return shlex.join(["qgen", *argv[1:]])
    return shlex.join(argv)


@contextmanager
def hold_lock(lock_path: Path, run_path: Path, command: str | None = None, what: str = "run") -> Iterator[LockHolder]:
    """Hold the run's lock for the ``with`` block, or raise RunInUseError at once."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, run_path, what)
        holder = LockHolder.this_process(command)
        _write_holder(fd, holder)
        try:
            yield holder
        finally:
            os.ftruncate(fd, 0)  # released: an empty lock file names nobody
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def read_holder(lock_path: Path) -> LockHolder | None:
    """Who holds (or last held, if it died) the lock; None for an empty or unreadable file."""
    try:
        return _parse(Path(lock_path).read_bytes())
    except OSError:
        return None


def _acquire(fd: int, run_path: Path, what: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return  # the kernel says nobody holds it: whatever record a dead holder left is stale
    except BlockingIOError:
        raise RunInUseError(run_path, _wait_for_holder(fd), what) from None
    except OSError as exc:
        if exc.errno not in _NO_FLOCK:
            raise
    holder = _parse(os.pread(fd, 4096, 0))
    if holder is not None and holder.is_alive():
        raise RunInUseError(run_path, holder, what)


def _wait_for_holder(fd: int) -> LockHolder | None:
    deadline = time.monotonic() + _HOLDER_WRITE_GRACE_S
    while True:
        holder = _parse(os.pread(fd, 4096, 0))
        if holder is not None or time.monotonic() > deadline:
            return holder
        time.sleep(0.05)


def _write_holder(fd: int, holder: LockHolder) -> None:
    data = (json.dumps(asdict(holder)) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _parse(data: bytes) -> LockHolder | None:
    try:
        record = json.loads(data)
        return LockHolder(pid=int(record["pid"]), command=str(record["command"]), host=str(record["host"]),
                          since=str(record["since"]))
    except (ValueError, KeyError, TypeError):
        return None
