"""FLD against the number of sampling steps, for every sampler, on one trained run.

On hardware each sampling step is one estimator job, so this table is the price list of quality:
it samples the run's EMA weights with DDIM, DPM-Solver++(2M) and UniPC at several step counts (and
DDPM through all T steps), all from the same x_T, and scores each set on the test part of the
held-out images, next to the real-data floor and the memorizer at the same sizes.

    python benchmarks/sampler_steps.py --run runs/<run> --n 256 --out docs/results/recipe/samplers.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from qgen.data import load_dataset
from qgen.diffusion.objectives import EpsModel
from qgen.diffusion.pipeline import batch_sizes, sample
from qgen.diffusion.samplers import make_scheduler
from qgen.evaluation import feature_net_for, heldout_for
from qgen.metrics.baselines import memorizer, real_floor
from qgen.metrics.feature_net import extract_features
from qgen.metrics.frechet import frechet_distance
from qgen.metrics.memorization import memorization_scores
from qgen.noise import ClassicalNoise
from qgen.rundir import RunDir, default_runs_root
from qgen.trained_model import load_trained_model

DEFAULT_GRID = ["ddim:5", "ddim:10", "ddim:20", "ddim:50", "dpm:5", "dpm:10", "dpm:20", "unipc:5", "unipc:10",
                "unipc:20", "ddpm:1000"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--weights", default="ema")
    p.add_argument("--grid", nargs="+", default=DEFAULT_GRID, help="sampler:steps entries")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(1)

    run = RunDir.resolve(a.run, default_runs_root())
    cfg, _, model, ckpt = load_trained_model(run, None, a.weights, None)
    schedule = cfg.diffusion.make_schedule()
    train = load_dataset(cfg.data)
    held = heldout_for(cfg.data, train)
    net = feature_net_for(cfg.data)
    ref = extract_features(net, held.test)
    train_f = extract_features(net, train.images)
    floor = real_floor(extract_features(net, held.validation), ref, a.n, seed=a.seed)
    mem = memorizer(train_f, ref, a.n, seed=a.seed)
    rows = []
    for entry in a.grid:
        name, steps = entry.split(":")
        scheduler = make_scheduler(name, schedule, steps=int(steps))
        eps_model = EpsModel(model, cfg.diffusion.objective(), scheduler.diffusion.alphas_cumprod)
        noise = ClassicalNoise(a.seed)  # the same x_T for every sampler
        t0 = time.process_time()
        images = torch.cat([sample(eps_model, scheduler, (size, *model.image_shape), noise)
                            for size in batch_sizes(a.n, 128)])
        seconds = time.process_time() - t0
        feats = extract_features(net, images)
        fld = frechet_distance(feats, ref)
        copy = memorization_scores(feats, train_f, ref, seed=a.seed)["fraction_flagged_as_copies"]
        rows.append((name, scheduler.model_calls(), fld, copy, seconds))
        print(f"{name:>6} {scheduler.model_calls():>5} calls  FLD {fld:7.2f}  copy {copy:.0%}  {seconds:.1f} CPU-s",
              flush=True)
    ddim50 = next((r[2] for r in rows if r[0] == "ddim" and r[1] == 50), None)
    lines = [f"# FLD vs sampling steps: `{run.path.name}` ({a.weights} weights, step {ckpt['step']})", "",
             f"Command: `python benchmarks/sampler_steps.py --run {a.run} --n {a.n}`", "",
             f"{a.n} samples per row from the same x_T, scored on the {len(held.test)} test images "
             f"(qgen LeNet features). Real-data floor {floor.mean:.2f} ± {floor.sd:.2f}, memorizer "
             f"{mem.mean:.2f} ± {mem.sd:.2f} at the same sizes. On hardware, model calls = estimator jobs.", "",
             "| sampler | model calls | FLD | FLD / DDIM-50 | copy fraction | CPU s |", "|---|---:|---:|---:|---:|---:|"]
    for name, calls, fld, copy, seconds in rows:
        ratio = f"{fld / ddim50:.2f}" if ddim50 else "-"
        lines.append(f"| {name} | {calls} | {fld:.2f} | {ratio} | {copy:.0%} | {seconds:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)


if __name__ == "__main__":
    main()
