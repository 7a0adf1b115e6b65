"""An experiment sequentially and with N Ray workers: wall times, their ratio, same metrics.

Each run is the user's command (``qgen experiment --smoke``, or ``--config FILE``) in a fresh output
folder, timed from start to exit (imports, Ray start-up and the report included). The runs
alternate (local, ray, local, ...) so that a change in the machine's load hits both alike; the load
average is printed before and after. Every cell's metrics.json must agree between the executors
(paths and timings aside: ``qgen.metrics.metrics_json.result_values``).

It also adds up the cells' own times (train + sample + evaluate, from the progress lines): in the
Ray run they include each worker's start (importing torch, Qiskit and qgen, first calls), which
the sequential run pays once. Their sum / N is the shortest the Ray cell phase can be.

    python benchmarks/bench_experiment_executor.py [--workers 2] [--rounds 1] [--config FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qgen.metrics.metrics_json import result_values

REPO = Path(__file__).resolve().parents[1]
CELL_LINE = re.compile(r"done: train ([\d.]+)s, sample ([\d.]+)s, evaluate ([\d.]+)s")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def run(out: Path, extra: list[str], env: dict) -> tuple[float, float, float]:
    """(wall seconds of the command, seconds of its cell phase: from "N cells in" to "cells finished now",
    the sum of the cells' own seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "qgen.cli", "experiment", "--out", str(out), *extra],
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
    cell_seconds = sum(sum(map(float, m.groups())) for m in map(CELL_LINE.search, lines) if m)
    return seconds, end - begin, cell_seconds


def metrics(out: Path) -> dict:
    return {p.parent.name: result_values(json.loads(p.read_text())) for p in sorted(out.glob("cells/*/metrics.json"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="alternating (local, ray) pairs")
    ap.add_argument("--config", type=Path, default=None, help="an experiment TOML (default: the smoke preset)")
    ap.add_argument("--keep", type=Path, default=None, help="write the experiments here (default: a temp folder)")
    args = ap.parse_args()
    grid = ["--config", str(args.config.resolve())] if args.config else ["--smoke"]
    root = args.keep or Path(tempfile.mkdtemp(prefix="qgen-bench-executor-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "QGEN_THREADS": os.environ.get("QGEN_THREADS", "1"),
           "QGEN_CIRCUITS": str(root / "circuits"), "QGEN_RUNS": str(root / "runs")}
    print(f"before: {load_average()}")
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    phases: dict[str, list[float]] = {"local": [], "ray": []}
    own: dict[str, list[float]] = {"local": [], "ray": []}
    reference = None
    for i in range(args.rounds):
        for name, extra in (("local", []), ("ray", ["--executor", "ray", "--workers", str(args.workers)])):
            out = root / f"{name}-{i}"
            wall, phase, cells = run(out, [*grid, *extra], env)
            walls[name].append(wall)
            phases[name].append(phase)
            own[name].append(cells)
            print(f"round {i + 1}: {name:<5} {wall:7.1f} s, cell phase {phase:7.1f} s, sum of cells {cells:7.1f} s  "
                  f"({load_average()})", flush=True)
            values = metrics(out)
            reference = reference or values
            if values != reference:
                sys.exit(f"{out}: metrics differ from {root / 'local-0'}")
    local, ray = statistics.median(walls["local"]), statistics.median(walls["ray"])
    print(f"after: {load_average()}")
    cells_local, cells_ray = statistics.median(phases["local"]), statistics.median(phases["ray"])
    own_local, own_ray = statistics.median(own["local"]), statistics.median(own["ray"])
    name = args.config.name if args.config else "smoke experiment"
    print(f"{name} ({len(reference)} cells), medians of {args.rounds}: whole command local {local:.1f} s, "
          f"ray with {args.workers} workers {ray:.1f} s: {local / ray:.2f}x; cell phase (Ray start-up included) "
          f"{cells_local:.1f} s vs {cells_ray:.1f} s: {cells_local / cells_ray:.2f}x; metrics identical in every run")
    serial = local - own_local  # what the sequential command spends outside its cells (start, report, exit)
    print(f"sum of the cells' own times: local {own_local:.1f} s, ray {own_ray:.1f} s (+{own_ray - own_local:.1f} s: "
          f"the workers' start); at best the ray command takes {serial:.1f} s + {own_ray:.1f} s / {args.workers} = "
          f"{serial + own_ray / args.workers:.1f} s, i.e. {local / (serial + own_ray / args.workers):.2f}x")


if __name__ == "__main__":
    main()
