"""Atomic file writes (a temp file in the same folder, fsync, rename) and the JSON files read back.

Readers (and a resumed run after a kill) then see either the old file or the new one, never half
of one. Every file qgen writes that something later relies on goes through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from qgen.errors import QgenError


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(binary_file)`` on a temp file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600; a plain open() would make 0666 & ~umask: every file qgen writes gets that
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process umask (os.umask can only be read by setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(folder: str | os.PathLike, what: str) -> None:
    """Refuse at once a folder that cannot take new files (read-only, no permission, full), by
    creating and removing one: ``os.access`` cannot see a read-only mount or a full disk, and
    says yes to root everywhere."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".qgen-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise QgenError(f"cannot write into {what}: {exc.strerror or exc}; nothing was done") from None


#: How atomic_write names its temp files; a kill mid-write leaves one behind (see remove_stale_temp_files).
TEMP_GLOB = ".*.tmp"


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files that killed atomic writes left in ``folder`` (and below); only safe while
    nothing else writes there (the run lock). Returns what was removed."""
    removed = []
    for tmp in Path(folder).rglob(TEMP_GLOB):
        try:
            if tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone already, or not ours to delete: garbage that costs space, not correctness
            continue
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: dict) -> Path:
    return atomic_write_bytes(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file qgen wrote; missing or damaged is one clear line, not a traceback."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise QgenError(f"missing file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QgenError(f"damaged file: {path} ({exc})") from None
