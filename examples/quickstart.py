"""qgen from Python: train a tiny hybrid quantum-classical model, sample it, score it, share it.

    python examples/quickstart.py                  # ~1 CPU-minute: 30 steps on 16 MNIST "3"s
    tensorboard --logdir runs/                     # the run's loss, learning rate and sample grids

The sizes are tiny so that this finishes in about a minute (and runs in CI); the samples are blobs.
Drop the overrides in ``qgen.run_config`` for the measured recipe (1,500 steps, ~5 CPU-minutes on 64
images), which draws digits.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import qgen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--no-download", action="store_true", help="use the MNIST digits shipped offline")
    args = parser.parse_args()

    # 1. configure and train: a 4-qubit, 1-layer circuit in the bottleneck of a narrow U-Net
    cfg = qgen.run_config(name="quickstart", classes=(3,), n_train=16, download=not args.no_download,
                          qubits=4, layers=1, widths=(8, 8, 8), timesteps=100, steps=30, batch_size=8,
                          eval_every=0)
    run = qgen.train(cfg, runs_dir=args.runs_dir, report=print)

    # 2. sample with a 10-step solver (written into the run directory) and score against held-out images
    samples = qgen.sample(run, n=32, sampler="dpm", steps=10, seed=0)
    result = qgen.evaluate(run)
    print(f"{len(samples.images)} samples in {samples.png}; FLD {result.fld:.1f} ({result.reading})")

    # 3. share: a model folder (safetensors + config.json + circuit + model card) that loads without the run
    folder = qgen.export(run, args.models_dir / run.name)
    model = qgen.from_pretrained(folder)
    again = model.sample(32, sampler="dpm", steps=10, seed=0)
    assert torch.equal(again, samples.images), "the exported model must reproduce the run's samples"
    print(f"model folder {folder}: the same samples, bit for bit")


if __name__ == "__main__":
    main()
