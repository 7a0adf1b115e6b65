# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # qgen in one notebook
#
# A hybrid quantum-classical diffusion model for 28×28 digits: a small U-Net denoiser whose 7×7
# bottleneck runs a variational circuit (a Qiskit `EstimatorQNN` in a `TorchConnector`). This notebook
#
# 1. trains on 64 real MNIST "3"s with a circuit from Qiskit's circuit library,
# 2. looks at the samples and the in-training quality curve (`quality.png`),
# 3. measures how much the images depend on the circuit,
# 4. inspects the circuit as `ibm_fez` would receive it,
# 5. prices a hardware sample with a dry run (nothing is submitted), and
# 6. exports the model as a folder and loads it back.
#
# It runs top to bottom on a laptop CPU in a few minutes. CI runs it with `QGEN_TUTORIAL_TINY=1`
# (a handful of steps, to check that every cell works); the numbers then mean nothing. The real-size
# run is the README's demo, from a shell:
#
# ```bash
# qgen train --class 3 --n-train 64 --name demo       # 1,500 steps, ~5 CPU-minutes
# qgen sample --run demo --sampler dpm --steps 10 --n 128
# qgen evaluate --run demo
# ```
#
# Store this file as it is (jupytext percent format, no outputs); `jupytext --to notebook
# examples/tutorial.py` makes an `.ipynb` of it.

# %%
import os
import subprocess
import sys
from pathlib import Path

import torch

import qgen

torch.set_num_threads(1)  # what the CLI uses: samples are bit-identical at equal thread counts
TINY = os.environ.get("QGEN_TUTORIAL_TINY") == "1"
STEPS = 4 if TINY else 400
WIDTHS = (8, 8, 8) if TINY else (32, 64, 64)
N_SAMPLES = 16 if TINY else 128
print(f"qgen {qgen.__version__}: {'tiny CI sizes' if TINY else 'laptop sizes'}, {STEPS} training steps")

# %% [markdown]
# ## 1. Train on 64 digits with a circuit-library ansatz
#
# `qgen.run_config` takes every `qgen train` option as a keyword and fills in the measured recipe for
# the rest. The circuit here: a `zz_feature_map` encodes the bottleneck's 4 angles, then
# `real_amplitudes` with 2 repetitions and a ring (circular) entangler; the readouts are ⟨Z⟩ on each
# qubit. `model="classical"` would give the parameter-matched classical control (exactly as many
# weights as the circuit), `circuit=` a `QuantumCircuit` of your own.

# %%
cfg = qgen.run_config(
    name="tutorial", classes=(3,), n_train=64, steps=STEPS, widths=WIDTHS, qubits=4,
    ansatz="real_amplitudes", reps=2, entanglement="ring", feature_map="zz_feature_map",
    eval_every=STEPS if TINY else 100, eval_samples=16 if TINY else 96, download=not TINY,
    timesteps=100 if TINY else None)
run = qgen.train(cfg)
print(run)
print((run / "config.toml").read_text().split("[diffusion]")[0])

# %% [markdown]
# ## 2. Samples and quality
#
# `samples.png` is a DDIM grid of the EMA weights written at the end of training; `quality.png` plots
# the validation FLD at each in-training evaluation against the real-data floor and the memorizer
# baseline (a model that replays its 64 training images). A fresh sample set with the few-step
# DPM-Solver++:

# %%
from IPython.display import Image, display

display(Image(filename=str(run / "samples.png")))
if (run / "quality.png").is_file():
    display(Image(filename=str(run / "quality.png")))
samples = qgen.sample(run, n=N_SAMPLES, sampler="dpm", steps=10)
print(samples.images.shape, samples.npz.name)

# %% [markdown]
# ## 3. How much do the images depend on the circuit?
#
# `qgen.evaluate` scores the samples against held-out test images (FLD in a small classifier's
# features, with the floor and memorizer baselines); `ablate=True` also redraws them with the
# circuit's readouts replaced (by their batch mean: *removal*; shuffled between images: *content*)
# and reports FLD(ablated) / FLD(as trained). Ratios near 1 mean the images do not need the circuit.
# With the default `channel_gate` design the features pass around the circuit (only re-weighted), and
# the laptop-size run here measured ratios of 1.00: the U-Net routes around it. `bottleneck="site"`
# (with `skips=()`) leaves the decoder nothing at 7 px but the circuit's readouts.

# %%
ev = qgen.evaluate(run, ablate=True, heldout=64 if TINY else 1000)
print(f"FLD {ev.fld:.2f}")
for mode in ("removal_mean", "content_mean"):
    block = ev.dependence.get(mode) or {}
    print(mode, "ratio", block.get("ratio"))

# %% [markdown]
# ## 4. The circuit `ibm_fez` would receive
#
# Every backend transpiles the logical circuit once (Heron's `cz`, `rz`, `sx`, `x`, a layout on its
# heavy-hex lattice) and maps the observables with that layout. `local=True` uses the fake `ibm_fez`
# of qiskit-ibm-runtime: no account is needed, nothing is sent.

# %%
from qgen.circuits import build_ansatz

logical = build_ansatz(cfg.model.ansatz)
fez = qgen.load_backend("ibm_fez", local=True)
isa = fez.planning_circuit(logical)
print("logical:", logical.circuit.num_qubits, "qubits, depth", logical.circuit.depth(), dict(logical.circuit.count_ops()))
print("ibm_fez:", isa.num_qubits, "qubits, depth", isa.depth(), dict(isa.count_ops()))
print(logical.circuit.draw(fold=100))

# %% [markdown]
# ## 5. Price a hardware sample before spending anything
#
# On hardware each model call of the sampler is an estimator job. `--dry-run` lists the jobs, their
# shots and QPU time, and the shot budget left; it submits nothing (`--local`: no account needed).

# %%
res = subprocess.run([sys.executable, "-m", "qgen.cli", "sample", "--run", str(run), "--backend", "ibm_fez",
                      "--local", "--sampler", "dpm", "--steps", "10", "--n", "16", "--dry-run"],
                     capture_output=True, text=True)
print(res.stdout or res.stderr)

# %% [markdown]
# ## 6. Export a model folder and load it back
#
# The folder holds `model.safetensors`, `config.json` (everything needed to rebuild the model,
# including the circuit), `circuit/` (the transpiled circuit as QPY and OpenQASM 3, and the logical
# circuit as `logical.qpy`) and a model card. Loading reads JSON and safetensors only. With the same
# options it draws exactly the images the run draws.

# %%
import shutil

folder = Path(os.environ.get("QGEN_RUNS", "runs")).parent / "models" / "tutorial"
shutil.rmtree(folder, ignore_errors=True)
folder = qgen.export(run, folder)
print(sorted(p.name for p in folder.iterdir()))
model = qgen.from_pretrained(folder)
again = model.sample(N_SAMPLES, sampler="dpm", steps=10)
print("same images as the run:", torch.equal(again, samples.images))
assert torch.equal(again, samples.images)
