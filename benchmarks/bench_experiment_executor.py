"""The smoke experiment sequentially and with N Ray workers: wall times, their ratio, same metrics.

Each run is the user's command (``qgen experiment --smoke``) in a fresh output folder, timed from
start to exit (imports, Ray start-up and the report included). The runs alternate (local, ray,
local, ...) so that a change in the machine's load hits both alike; the load average is printed
before and after. Every cell's metrics.json must agree between the executors (paths and timings
aside: ``qgen.metrics.metrics_json.result_values``).

    python benchmarks/bench_experiment_executor.py [--workers 2] [--rounds 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qgen.metrics.metrics_json import result_values

REPO = Path(__file__).resolve().parents[1]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def run(out: Path, extra: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds of the command, seconds of its cell phase: from "N cells in" to "cells finished now")."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "qgen.cli", "experiment", "--smoke", "--out", str(out), *extra],
                            env=env, cwd=out.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines, begin, end = [], None, None
    for line in proc.stderr:  # timestamped as they arrive: the CLI's progress lines mark the cell phase
        lines.append(line)
        if begin is None and " cells in " in line:
            begin = time.perf_counter()
        if "cells finished now" in line:
            end = time.perf_counter()
    proc.wait()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or begin is None or end is None:
        sys.exit(f"{' '.join(extra) or 'local'} failed:\n{''.join(lines)[-3000:]}")
    return seconds, end - begin


def metrics(out: Path) -> dict:
    return {p.parent.name: result_values(json.loads(p.read_text())) for p in sorted(out.glob("cells/*/metrics.json"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="alternating (local, ray) pairs")
    ap.add_argument("--keep", type=Path, default=None, help="write the experiments here (default: a temp folder)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="qgen-bench-executor-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "QGEN_THREADS": os.environ.get("QGEN_THREADS", "1"),
           "QGEN_CIRCUITS": str(root / "circuits"), "QGEN_RUNS": str(root / "runs")}
    print(f"before: {load_average()}")
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    phases: dict[str, list[float]] = {"local": [], "ray": []}
    reference = None
    for i in range(args.rounds):
        for name, extra in (("local", []), ("ray", ["--executor", "ray", "--workers", str(args.workers)])):
            out = root / f"{name}-{i}"
            wall, phase = run(out, extra, env)
            walls[name].append(wall)
            phases[name].append(phase)
            print(f"round {i + 1}: {name:<5} {wall:7.1f} s, cells {phase:7.1f} s  ({load_average()})", flush=True)
            values = metrics(out)
            reference = reference or values
            if values != reference:
                sys.exit(f"{out}: metrics differ from {root / 'local-0'}")
    local, ray = statistics.median(walls["local"]), statistics.median(walls["ray"])
    print(f"after: {load_average()}")
    cells_local, cells_ray = statistics.median(phases["local"]), statistics.median(phases["ray"])
    print(f"smoke experiment ({len(reference)} cells), medians of {args.rounds}: whole command local {local:.1f} s, "
          f"ray with {args.workers} workers {ray:.1f} s: {local / ray:.2f}x; cell phase (Ray start-up included) "
          f"{cells_local:.1f} s vs {cells_ray:.1f} s: {cells_local / cells_ray:.2f}x; metrics identical in every run")


if __name__ == "__main__":
    main()
