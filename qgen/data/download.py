"""Network fetches that either leave a complete, verified file or nothing at all."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# Short, because offline machines must fall back or fail fast. It bounds each connect/read stall,
# not the whole transfer, so a large file on a slow but live link still completes.
DEFAULT_TIMEOUT_S = 10.0


def open_url(url: str, timeout: float) -> BinaryIO:
    """The single place that touches the network (tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "qgen"})
    return urllib.request.urlopen(request, timeout=timeout)


def download_file(url: str, dest: Path, *, verify: Callable[[Path], None] | None = None,
                  timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` atomically.

    The bytes go to a temporary file next to ``dest``; ``verify`` (which raises on bad content) runs on it;
    only then is it renamed over ``dest``. An interrupted or rejected download never leaves a file that
    a later run would mistake for the real one. Network failures raise ``OSError`` (``URLError`` included).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, open_url(url, timeout) as response:
                shutil.copyfileobj(response, out, length=1 << 20)
        except http.client.HTTPException as exc:  # e.g. IncompleteRead: a dropped connection, not an OSError
            raise OSError(f"transfer from {url} broke off: {exc!r}") from exc
        if verify is not None:
            verify(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks so large npz files do not need to fit in memory twice."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
