"""What the quick process exit saves: one qgen command with and without interpreter teardown.

Runs ``qgen experiment --smoke --dry-run`` (it imports torch, Qiskit, Aer and SciPy, and writes
nothing) alternately through the real entry point (``python -m qgen.cli``: main, then
qgen.cli.process_exit) and through ``main`` alone (Python's normal shutdown), and prints the medians.

    python benchmarks/bench_cli_exit.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMAND = ["experiment", "--smoke", "--dry-run"]
ENTRIES = {
    "quick exit (python -m qgen.cli)": [sys.executable, "-m", "qgen.cli"],
    "normal shutdown (main only)": [sys.executable, "-c", "import sys; from qgen.cli import main; main(sys.argv[1:])"],
}


def seconds(command: list[str], cwd: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([*command, *COMMAND], cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times: dict[str, list[float]] = {name: [] for name in ENTRIES}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.repeats):
            for name, command in ENTRIES.items():
                times[name].append(seconds(command, cwd, env))
    quick, normal = (statistics.median(times[name]) for name in ENTRIES)
    for name in ENTRIES:
        print(f"{name:<34} median {statistics.median(times[name]):5.2f} s  ({', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"`qgen {' '.join(COMMAND)}`: the quick exit saves {normal - quick:.2f} s per command ({normal / quick:.2f}x)")


if __name__ == "__main__":
    main()
