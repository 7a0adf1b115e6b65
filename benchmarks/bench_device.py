"""One DDPM training step (forward + backward + AdamW + EMA) on every available torch device.

For each device (cpu, and cuda / mps when present) and each model kind, prints the median seconds
per step, the ratio to the CPU, and the share of the step spent in the quantum layer (forward and
backward of ``QuantumMiddle``: the host round trip plus the circuit simulation), measured with
module hooks that synchronize the device. Runs as is on a GPU machine:

    python benchmarks/bench_device.py [--kinds plain classical quantum] [--qubits 8] [--batch 64]
        [--widths 32,64,64] [--devices cpu cuda] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from qgen.backends.registry import load_backend
from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.schedules import make_schedule
from qgen.models.build import build_model
from qgen.models.config import ModelConfig
from qgen.models.middles import QuantumMiddle
from qgen.noise.sources import ClassicalNoise
from qgen.torch_device import resolve_device, synchronize
from qgen.training.ema import EMA


class QuantumTimer:
    """Seconds spent inside QuantumMiddle (forward and backward), device synchronized at the edges."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.seconds = 0.0
        self.device = device
        self._t0 = 0.0
        for module in model.modules():
            if isinstance(module, QuantumMiddle):
                module.register_forward_pre_hook(lambda *_: self._start())
                module.register_forward_hook(lambda *_: self._stop())
                module.register_full_backward_pre_hook(lambda *_: self._start())
                module.register_full_backward_hook(lambda *_: self._stop())

    def _start(self) -> None:
        synchronize(self.device)
        self._t0 = time.perf_counter()

    def _stop(self) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._t0


def available_devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if torch.backends.mps.is_available():
        out.append("mps")
    return out


def time_step(kind: str, device_name: str, args) -> tuple[float, float, int]:
    """(median seconds per step, quantum-layer share, steps timed)."""
    device = resolve_device(device_name)
    widths = tuple(int(w) for w in args.widths.split(","))
    cfg = ModelConfig(kind=kind, widths=widths, qubits=args.qubits, layers=args.layers)
    backend = load_backend("statevector") if kind == "quantum" else None
    model = build_model(cfg, 1, 0, backend).to(device)
    timer = QuantumTimer(model, device)
    diffusion = GaussianDiffusion(make_schedule("linear", 1000)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ema = EMA(model, 0.999)
    gen, noise = torch.Generator().manual_seed(0), ClassicalNoise(0)
    x0 = (torch.rand(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    times, quantum = [], []
    start = time.perf_counter()
    for i in range(args.repeats + 2):  # two warm-up steps: allocator, cuDNN autotuning, circuit caches
        synchronize(device)
        timer.seconds = 0.0
        t0 = time.perf_counter()
        loss = diffusion.training_loss(model, x0, noise, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
            quantum.append(timer.seconds)
        if times and time.perf_counter() - start > args.box:
            break
    median = statistics.median(times)
    return median, statistics.median(quantum) / median, len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=["plain", "classical", "quantum"])
    ap.add_argument("--devices", nargs="+", default=None, help="default: every available device")
    ap.add_argument("--qubits", type=int, default=8)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--widths", default="32,64,64")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--box", type=float, default=60.0, help="seconds per (kind, device) before stopping early")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = args.devices or available_devices()
    print(f"torch {torch.__version__}, cuda {torch.version.cuda}, devices {devices}, threads {args.threads}, "
          f"batch {args.batch}, widths {args.widths}, {args.qubits} qubits x {args.layers} layers")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    print(f"{'kind':<10} {'device':<7} {'s/step':>9} {'vs cpu':>7} {'quantum share':>14} {'steps':>6}")
    for kind in args.kinds:
        cpu = None
        for device in devices:
            seconds, share, n = time_step(kind, device, args)
            cpu = seconds if device == "cpu" else cpu
            ratio = f"{cpu / seconds:.2f}x" if cpu else "-"
            q = f"{share:.0%}" if kind == "quantum" else "-"
            print(f"{kind:<10} {device:<7} {seconds:>9.4f} {ratio:>7} {q:>14} {n:>6}")


if __name__ == "__main__":
    main()
