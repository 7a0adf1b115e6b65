"""Run directories under runs/: created whole or not at all, resolved by name or path."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from qgen.errors import QgenError
from qgen.fileio import atomic_write_bytes

PACKAGES = ("qgen", "qiskit", "qiskit-machine-learning", "qiskit-aer", "qiskit-ibm-runtime",
            "torch", "torchvision", "numpy", "medmnist")


def default_runs_root() -> Path:
    return Path(os.environ.get("QGEN_RUNS", "runs"))


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def create_run_dir(root: Path, name: str, files: dict[str, bytes]) -> Path:
    """Create ``root/name`` containing ``files`` atomically (staged in a hidden folder, renamed).

    So a failure while writing the first files never leaves a half-made run directory behind.
    """
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
    return final


def resolve_run(run: str, root: Path | None = None) -> Path:
    """A run given as a path, or as a name under the runs root."""
    candidates = [Path(run)]
    if root is not None:
        candidates.append(root / run)
    for path in candidates:
        if (path / "config.toml").is_file():
            return path
    looked = " or ".join(str(p) for p in candidates)
    raise QgenError(f"no run found at {looked} (a run directory holds config.toml)")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return res.stdout.strip() if res.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def base_manifest() -> dict:
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise QgenError(f"missing file: {path}") from None


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def append_to_manifest(run_dir: Path, key: str, item: dict) -> dict:
    """Add ``item`` to the list ``manifest[key]`` (created if missing)."""
    manifest = read_json(run_dir / "manifest.json")
    manifest[key] = manifest.get(key, []) + [item]
    write_json(run_dir / "manifest.json", manifest)
    return manifest


def update_manifest(run_dir: Path, **fields) -> dict:
    manifest = read_json(run_dir / "manifest.json")
    manifest.update(fields)
    write_json(run_dir / "manifest.json", manifest)
    return manifest
