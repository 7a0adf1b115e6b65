"""Writing metric dicts to disk so that a crash never leaves a half-written report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qgen.errors import QgenError
from qgen.fileio import atomic_write_text


def write_metrics_json(path: str | os.PathLike, metrics: dict[str, Any]) -> Path:
    """Atomically write ``metrics`` as strict JSON (no NaN/inf) to ``path``; returns the path."""
    path = Path(path)
    try:
        # Strict JSON: NaN/inf are not valid JSON and would break downstream readers.
        text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise QgenError(f"metrics are not JSON-serialisable ({exc}); convert arrays/NaN before writing") from exc
    return atomic_write_text(path, text)


# Where a metrics.json says *where* and *how long*, not *what*: file names carry timestamps and
# timings vary run to run. Everything else must agree between two runs of the same config.
BOOKKEEPING_KEYS = ("run", "run_dir", "samples_file")


def result_values(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` without its bookkeeping (paths, file names, ``*seconds`` timings), for comparing runs."""
    out = {}
    for key, value in metrics.items():
        if key in BOOKKEEPING_KEYS or key.endswith("seconds"):
            continue
        out[key] = result_values(value) if isinstance(value, dict) else value
    return out
