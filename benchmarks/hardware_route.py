"""The practical hardware route, measured: FLD and QPU usage vs shots per expectation value and sampler steps.

Takes a trained run (``--run``, trained exactly), samples ``--n`` images on a fake device *with shot
noise* (kind fake: device gate noise, readout error, multinomial shots; ``exact`` = the same device
noise with infinitely many shots; ``noiseless`` = the exact statevector backend, no device) for every
(shots, steps) of the grid with one few-step sampler,
scores each set with ``qgen evaluate``'s FLD (test part of the held-out images), and prices it with
qgen's planner (``qgen.planner.sampling_jobs``, the executor's shot model and the local usage model)
on the hardware twin (ibm_fez by default): every model call of every batch is one job with one PUB
of batch x rows-per-image bindings at ``shots`` shots (one PUB per step: all observables measured
together; a per-site design binds the circuit at every site: 49 rows per image for ``site``, 16 for
``patch``).

Resumable: rows already in the CSV are kept and skipped; the samples stay in the run directory.
Writes ``hardware_route.csv``, ``hardware_route.png`` and ``hardware_route.md`` under ``--out``.

    python benchmarks/hardware_route.py --run demo --n 64 --shots 256,1024,4096,exact --steps 5,10,20
    python benchmarks/hardware_route.py --run demo --n 8 --shots 256,exact --steps 5   # a quick check
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path

from qgen.backends.registry import get_backend
from qgen.diffusion.samplers import make_scheduler
from qgen.commands import EvaluateCommand, SampleCommand
from qgen.draw import SampleRequest
from qgen.evaluation import evaluate_run
from qgen.planner import sampling_jobs
from qgen.rundir import RunDir, default_runs_root
from qgen.sampling import sample

FIELDS = ["device", "sampler", "steps", "model_calls", "shots", "n", "fld", "floor", "floor_sd", "memorizer",
          "fld_over_exact", "fld_over_noiseless", "jobs", "executions", "qpu_minutes", "wall_seconds", "samples_file"]


def backends_toml(device: str, shots: list[str], seed: int) -> str:
    """One fake backend per shot count (and one exact) for ``device``."""
    out = ['[backends.statevector]\nkind = "statevector"\n'] if "noiseless" in shots else []
    for s in (s for s in shots if s != "noiseless"):
        out.append(f'[backends.{_name(device, s)}]\nkind = "fake"\ndevice = "ibm_{device}"\nmethod = "density_matrix"\n'
                   f'optimization_level = 2\nseed_transpiler = 1234\nseed_simulator = {seed}\n'
                   + ("" if s == "exact" else f"shots = {int(s)}\n"))
    return "\n".join(out)


def _name(device: str, shots: str) -> str:
    return f"fake_{device}_{'exact' if shots == 'exact' else 's' + shots}"


def usage(twin, req: SampleRequest, calls: int, shots: str, rows_per_image: int = 1) -> tuple[int, int, float]:
    """(jobs, executions, QPU minutes) of sampling ``req`` with ``calls`` model calls per batch on the
    hardware twin ``twin`` (its backends.toml spec: twirling, TREX, DD as configured) at ``shots`` per
    binding, by the planner that ``qgen sample`` checks budgets with (one job of one PUB per call and
    batch, counted with the executor's shot model)."""
    if shots in ("exact", "noiseless"):
        return 0, 0, float("nan")
    spec = replace(twin, shots=int(shots), precision=0.0)  # 0: no precision target, shots rule
    job_plan = sampling_jobs(spec, req.n, req.batch_size, calls, rows_per_image)
    return job_plan.num_jobs, job_plan.executions, job_plan.estimated_seconds / 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a trained run (name or path)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--shots", default="256,1024,4096,exact,noiseless",
                    help="shots per expectation value; exact: device noise, no shot noise; noiseless: no device")
    ap.add_argument("--steps", default="5,10,20")
    ap.add_argument("--sampler", default="dpm")
    ap.add_argument("--device", default="fez", help="fake device (short name): fez -> FakeFez")
    ap.add_argument("--seed", type=int, default=0, help="x_T seed, the same for every setting")
    ap.add_argument("--runs-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("docs/results/hardware"))
    args = ap.parse_args()

    shots = [s.strip() for s in args.shots.split(",")]
    steps = [int(s) for s in args.steps.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    backends = args.out / "backends.toml"
    backends.write_text(backends_toml(args.device, shots, seed=1234))
    csv_path = args.out / "hardware_route.csv"
    rows = _read(csv_path)
    run = RunDir.resolve(args.run, args.runs_dir or default_runs_root())
    schedule = run.config().diffusion.make_schedule()
    rows_per_image = run.config().model.circuit_rows_per_image
    twin = get_backend(f"ibm_{args.device}")  # the shipped backends.toml entry of the real device

    for k in steps:
        for s in shots:
            if any(r["steps"] == str(k) and r["shots"] == s and r["n"] == str(args.n) for r in rows):
                continue
            backend = "statevector" if s == "noiseless" else _name(args.device, s)
            req = SampleRequest(n=args.n, sampler=args.sampler, steps=k, seed=args.seed, backend=backend)
            calls = make_scheduler(args.sampler, schedule, steps=k).model_calls()
            t0 = time.perf_counter()
            out = sample(SampleCommand(req, run=run, runs_dir=args.runs_dir, backends_file=backends))
            wall = time.perf_counter() - t0
            metrics, _ = evaluate_run(EvaluateCommand(run, samples=out["npz"], runs_dir=args.runs_dir))
            base = metrics.get("baselines", {})
            jobs, executions, minutes = usage(twin, req, calls, s, rows_per_image)
            rows.append({"device": backend if s == "noiseless" else f"fake_{args.device}", "sampler": args.sampler,
                         "steps": k, "model_calls": calls,
                         "shots": s, "n": args.n, "fld": f"{metrics['fld']['value']:.3f}",
                         "floor": f"{base.get('floor', {}).get('mean', float('nan')):.3f}",
                         "floor_sd": f"{base.get('floor', {}).get('sd', float('nan')):.3f}",
                         "memorizer": f"{base.get('memorizer', {}).get('mean', float('nan')):.3f}",
                         "fld_over_exact": "", "fld_over_noiseless": "", "jobs": jobs, "executions": executions,
                         "qpu_minutes": f"{minutes:.2f}", "wall_seconds": f"{wall:.0f}",
                         "samples_file": out["npz"].name})
            _fill_ratios(rows)
            _write(csv_path, rows)  # after every setting: a kill loses at most the one in progress
            print(f"steps {k:>3} shots {s:>6}: FLD {float(rows[-1]['fld']):.2f}, ~{minutes:.1f} QPU-min, "
                  f"{wall:.0f} s wall", flush=True)
    _fill_ratios(rows)
    _write(csv_path, rows)
    _plot(rows, args.out / "hardware_route.png")
    _table(rows, args.out / "hardware_route.md")
    print(f"wrote {csv_path}, hardware_route.png and hardware_route.md in {args.out}")


def _fill_ratios(rows: list[dict]) -> None:
    """FLD relative to the device's infinite-shot setting and to the noiseless (exact statevector)
    sample with the same steps and n (the issue's 20 % target is against the noiseless one)."""
    for r in rows:
        for ref, column in (("exact", "fld_over_exact"), ("noiseless", "fld_over_noiseless")):
            e = next((e for e in rows if e["shots"] == ref and str(e["steps"]) == str(r["steps"])
                      and str(e["n"]) == str(r["n"])), None)
            r[column] = f"{float(r['fld']) / float(e['fld']):.3f}" if e else ""


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _write(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for k in sorted({int(r["steps"]) for r in rows}):
        mine = [r for r in rows if int(r["steps"]) == k]
        finite = sorted((int(r["shots"]), float(r["fld"]), float(r["qpu_minutes"])) for r in mine
                        if r["shots"] not in ("exact", "noiseless"))
        exact = [float(r["fld"]) for r in mine if r["shots"] == "exact"]
        noiseless = [float(r["fld"]) for r in mine if r["shots"] == "noiseless"]
        line = ax.plot([f[0] for f in finite], [f[1] for f in finite], "o-", label=f"{k} steps")[0]
        if exact:
            ax.axhline(exact[0], color=line.get_color(), ls="--", lw=1)
        if noiseless:
            ax.axhline(noiseless[0], color=line.get_color(), ls="-.", lw=1)
        bx.plot([f[2] for f in finite], [f[1] for f in finite], "o-", color=line.get_color(), label=f"{k} steps")
    floors = [float(r["floor"]) for r in rows if r["floor"] not in ("", "nan")]
    for a in (ax, bx):
        if floors:
            a.axhline(sum(floors) / len(floors), color="grey", ls=":", lw=1, label="real-data floor")
        a.set_ylabel("FLD (lower is better)")
        a.legend(fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("shots per expectation value (dashed: device, no shot noise; dash-dot: noiseless)")
    bx.set_xscale("log")
    bx.set_xlabel("estimated QPU minutes (qgen.planner) for the sample")
    n = rows[0]["n"] if rows else "?"
    fig.suptitle(f"{n} samples on {rows[0]['device'] if rows else '?'} with shot noise ({rows[0]['sampler'] if rows else ''})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(rows: list[dict], path: Path) -> None:
    lines = ["| steps | shots | FLD | FLD / device exact | FLD / noiseless | floor | jobs | shots spent | "
             "QPU min (est.) | wall s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = {"exact": 1, "noiseless": 2}
    for r in sorted(rows, key=lambda r: (int(r["steps"]), order.get(r["shots"], 0),
                                         int(r["shots"]) if r["shots"] not in order else 0)):
        lines.append(f"| {r['steps']} | {r['shots']} | {float(r['fld']):.2f} | {r['fld_over_exact'] or '-'} | "
                     f"{r.get('fld_over_noiseless') or '-'} | {float(r['floor']):.2f} | {r['jobs']} | "
                     f"{int(r['executions']):,} | {r['qpu_minutes'] if r['shots'] not in order else '-'} | "
                     f"{r['wall_seconds']} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
