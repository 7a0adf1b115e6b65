#!/usr/bin/env bash
# Issue #15's GPU measurement in one device call, sized to fit its 15 minutes (about 6 min of work):
#   1. versions and the GPU seen;
#   2. benchmarks/bench_device.py: one training step per model kind on cpu and cuda, the ratio, and
#      the quantum layer's share of the step;
#   3. qgen train --device cuda, then qgen sample from that run on cuda and on cpu (a GPU-trained
#      run samples anywhere), then qgen evaluate on cuda;
#   4. tests/test_cuda.py, the tests that run CUDA kernels (skipped where there is no GPU; the device
#      plumbing tests, tests/test_torch_device.py, assume a CPU-only machine and are not run here).
# Prepare here with benchmarks/gpu/fetch_wheels.sh, then call the device tool with
#   command: bash benchmarks/gpu/check.sh     carry: [".whl"]     timeout_s: 540
# Everything is logged to $OUT/gpu_check.log (it comes back even if the call runs out of time).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/qgen-gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing the carried wheels failed" >&2; exit 1; }
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1 QGEN_RUNS="$WORK/runs" QGEN_CIRCUITS="$WORK/circuits" QGEN_DATA="$WORK/data"
DEVICE=${QGEN_CHECK_DEVICE:-cuda}

step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }
run() { "$@"; echo "-> exit $?"; }
{
    step versions
    run "$PY" -c "import torch, qiskit, qiskit_aer; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-');
print('qiskit', qiskit.__version__, 'aer', qiskit_aer.__version__)"
    step "bench_device (cpu with 1 thread and $DEVICE)"
    run timeout 300 "$PY" benchmarks/bench_device.py --repeats 10 --box 40
    step "qgen train --device $DEVICE"
    run timeout 120 "$PY" -m qgen.cli train --class 3 --n-train 32 --steps 200 --name gpu --device "$DEVICE" --no-progress --no-download
    step "qgen sample from the $DEVICE run, on $DEVICE and on cpu"
    run timeout 60 "$PY" -m qgen.cli sample --run gpu --sampler dpm --steps 10 --n 64 --device "$DEVICE" --no-progress
    run timeout 60 "$PY" -m qgen.cli sample --run gpu --sampler dpm --steps 10 --n 64 --device cpu --no-progress
    step "qgen evaluate --device $DEVICE"
    run timeout 90 "$PY" -m qgen.cli evaluate --run gpu --device "$DEVICE"
    step "tests/test_cuda.py"
    run timeout 180 env QGEN_TEST_GPU="$DEVICE" "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
} 2>&1 | tee "$OUT/gpu_check.log"
