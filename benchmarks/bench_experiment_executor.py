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


def run(out: Path, extra: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "qgen.cli", "experiment", "--smoke", "--out", str(out), *extra],
                          env=env, cwd=out.parent, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(extra) or 'local'} failed:\n{done.stderr[-3000:]}")
    return seconds


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
    reference = None
    for i in range(args.rounds):
        for name, extra in (("local", []), ("ray", ["--executor", "ray", "--workers", str(args.workers)])):
            out = root / f"{name}-{i}"
            walls[name].append(run(out, extra, env))
            print(f"round {i + 1}: {name:<5} {walls[name][-1]:7.1f} s  ({load_average()})", flush=True)
            values = metrics(out)
            reference = reference or values
            if values != reference:
                sys.exit(f"{out}: metrics differ from {root / 'local-0'}")
    local, ray = statistics.median(walls["local"]), statistics.median(walls["ray"])
    print(f"after: {load_average()}")
    print(f"smoke experiment ({len(reference)} cells): local {local:.1f} s, ray with {args.workers} workers "
          f"{ray:.1f} s (medians of {args.rounds}): {local / ray:.2f}x; metrics identical in every run")


if __name__ == "__main__":
    main()
