"""Where a cell ran: library versions, CPU model, qgen commit -- recorded in each cell's metrics.json.

Each cell records its own (a Ray cluster or a later resume may run cells elsewhere); the report
lists the distinct environments of the finished cells.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "qiskit", "qiskit-aer", "qiskit-machine-learning", "numpy", "scipy")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def qgen_commit() -> str:
    """``git rev-parse HEAD`` of the qgen checkout, with ``+dirty`` for uncommitted changes to
    tracked files; "unknown" for an installed copy without its repository."""
    repo = Path(__file__).resolve().parents[2]  # this file is qgen/experiment/environment.py in the checkout
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def environment() -> dict:
    return {"python": platform.python_version(), **versions(), "cpu": cpu_model(),
            "platform": platform.platform(), "qgen_commit": qgen_commit()}
