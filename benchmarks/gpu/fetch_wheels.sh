#!/usr/bin/env bash
# Here (pip reaches the package registry; the device machine reaches nothing): download, into .whl/,
# the packages qgen needs that the device image (Python 3.12, its own torch) lacks, and keep .whl/
# out of git. Then benchmarks/gpu/check.sh runs there with carry [".whl"]. About 33 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PY=${PYTHON:-.venv/bin/python}
# qgen's own pins where they matter (pyproject.toml); the rest of its dependencies (scipy,
# matplotlib, tensorboard, safetensors, huggingface_hub, click, tqdm, threadpoolctl) are in the image;
# not carried: Ray (~70 MB, the executor is measured here), qiskit-ibm-runtime and medmnist (not used)
PACKAGES=("qiskit==2.6.*" "qiskit-aer==0.18.*" "qiskit-machine-learning==0.9.1" rustworkx stevedore dill
          "diffusers==0.42.*" tomli-w mlxtend pylatexenc)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${PACKAGES[@]}"
du -sh .whl
