"""Writing metric dicts to disk so that a crash never leaves a half-written report."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from qgen.errors import QgenError


def write_metrics_json(path: str | os.PathLike, metrics: dict[str, Any]) -> Path:
    """Atomically write ``metrics`` as strict JSON (no NaN/inf) to ``path``; returns the path."""
    path = Path(path)
    try:
        # Strict JSON: NaN/inf are not valid JSON and would break downstream readers.
        text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise QgenError(f"metrics are not JSON-serialisable ({exc}); convert arrays/NaN before writing") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as tmp_file:
            tmp_file.write(text)
            tmp_file.flush()
            os.fsync(tmp_file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
