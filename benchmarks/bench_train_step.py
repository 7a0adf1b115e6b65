"""Full DDPM training step (forward + backward + AdamW) of the U-Net per bottleneck, side by side.

Prints the median seconds per step and the ratio to the parameter-matched classical gate, for each
qubit count. Everything runs in one process, one after another, so machine noise hits all arms alike.

    python benchmarks/bench_train_step.py --qubits 8 16 --batch 64 --layers 3 [--entanglement ring]
    python benchmarks/bench_train_step.py --qubits 8 --batch 16 --bottleneck site patch --clock cpu \
        --arms classical statevector aer_simulator fake_fez

Arms: plain, classical, or a backend name; "statevector:mps" / "statevector:statevector" force
the exact estimator's method (plain "statevector" uses its automatic choice).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from qgen.backends.registry import backend_for, get_backend
from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.schedules import make_schedule
from qgen.models.build import build_model
from qgen.models.config import ModelConfig
from qgen.noise.sources import ClassicalNoise


def time_steps(model, batch: int, repeats: int, budget_s: float,
               clock=time.perf_counter) -> tuple[float, int]:
    diffusion = GaussianDiffusion(make_schedule("linear", 1000))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    noise = ClassicalNoise(0)
    x0 = torch.rand(batch, 1, 28, 28) * 2 - 1
    times = []
    start = time.perf_counter()
    for i in range(repeats + 1):  # the first step warms up caches (circuit compilation, allocator)
        t0 = clock()
        loss = diffusion.training_loss(model, x0, noise, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(clock() - t0)
        if time.perf_counter() - start > budget_s and times:
            break
    return statistics.median(times), len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qubits", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--entanglement", default="linear", choices=("linear", "ring", "full", "none"))
    ap.add_argument("--bottleneck", nargs="+", default=["channel_gate"],
                    help="designs to time (qgen.models.bottlenecks), each with every arm")
    ap.add_argument("--readout", default="z", choices=("z", "zz"))
    ap.add_argument("--skips", default="28,14", help="skip connections kept: 28,14 | 28 | 14 | none")
    ap.add_argument("--skip-channels", type=int, default=0, help="narrow each kept skip to K channels (0: full)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--box", type=float, default=120.0, help="seconds per arm before stopping early")
    ap.add_argument("--arms", nargs="+", default=["plain", "classical", "statevector", "aer_simulator"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process time of all threads (fairer than wall time on a loaded "
                         "machine, where the arms would get different shares of the cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads={args.threads}, batch={args.batch}, layers={args.layers}, "
          f"entanglement={args.entanglement}, readout={args.readout}, skips={args.skips}, "
          f"skip_channels={args.skip_channels}, widths=(32,64,64), "
          f"clock={args.clock}")
    skips = () if args.skips == "none" else tuple(int(v) for v in args.skips.split(","))
    for design, q in [(d, q) for d in args.bottleneck for q in args.qubits]:
        results = {}
        design_cfg = dict(qubits=q, layers=args.layers, entanglement=args.entanglement, bottleneck=design,
                          readout=args.readout, skips=skips, skip_channels=args.skip_channels)
        for arm in args.arms:
            if arm in ("plain", "classical"):
                model = build_model(ModelConfig(kind=arm, **design_cfg), 1, seed=0)
            else:
                # "statevector:mps" = the statevector backend with its method forced
                name, _, method = arm.partition(":")
                spec = get_backend(name)
                backend = backend_for(replace(spec, method=method) if method else spec)
                model = build_model(ModelConfig(kind="quantum", **design_cfg), 1, seed=0, backend=backend)
            clock = time.process_time if args.clock == "cpu" else time.perf_counter
            seconds, n = time_steps(model, args.batch, args.repeats, args.box, clock)
            results[arm] = seconds
            print(f"  {design} q={q:2d} {arm:<14} {seconds:8.3f} s/step (median of {n})", flush=True)
        ref = results.get("classical")
        if ref:
            ratios = ", ".join(f"{arm} {results[arm] / ref:.2f}x" for arm in results)
            print(f"{design} q={q}: ratio to the classical step: {ratios}")


if __name__ == "__main__":
    main()
