"""Noisy fake-device bottleneck: simulating only the active qubits vs the whole device, side by side.

For FakeBrisbane (127 qubits) and an 8-qubit, 3-layer bottleneck with batch 64, prints
  * forward time with the device noise model reduced to the active qubits (what qgen does),
  * forward time with the full-device noise model on the device-wide ISA circuit (time-boxed),
  * one training backward (batched parameter shift) on the reduced model, and the primitive jobs
    it submitted.

    python benchmarks/bench_fake_device.py --qubits 8 --layers 3 --batch 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qgen.backends.qnn import QuantumBackend
from qgen.backends.spec import get_backend
from qgen.circuits import AnsatzSpec, build_ansatz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="fake_brisbane")
    ap.add_argument("--qubits", type=int, default=8)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--box", type=float, default=300.0, help="seconds allowed for the full-device forward")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    qc = build_ansatz(AnsatzSpec(args.qubits, args.layers, "linear"))
    backend = QuantumBackend(get_backend(args.backend))
    x = rng.uniform(-np.pi, np.pi, (args.batch, args.qubits))
    w = rng.uniform(-np.pi / 4, np.pi / 4, qc.circuit.num_parameters - args.qubits)

    t0 = time.perf_counter()
    qnn = backend.make_qnn(qc)
    setup = time.perf_counter() - t0
    qnn.forward(x[:1], w)  # warm-up
    t0 = time.perf_counter()
    reduced_out = qnn.forward(x, w)
    reduced = time.perf_counter() - t0
    jobs_before = qnn.gradient.jobs_submitted
    t0 = time.perf_counter()
    qnn.backward(x, w)
    backward = time.perf_counter() - t0
    jobs = qnn.gradient.jobs_submitted - jobs_before
    print(f"{args.backend}: {args.qubits} qubits, {args.layers} layers, batch {args.batch}")
    print(f"  reduced ({qnn.circuit.num_qubits} simulated qubits): setup {setup:.2f} s, forward {reduced:.3f} s, "
          f"backward {backward:.2f} s in {jobs} primitive job(s)")

    from qiskit_aer import AerSimulator
    from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

    prepared = backend.prepare(qc)
    full_sim = AerSimulator.from_backend(backend.device)
    estimator = AerEstimatorV2.from_backend(full_sim)
    params = np.concatenate([x, np.broadcast_to(w, (args.batch, len(w)))], axis=1)
    order = [*qc.input_params, *qc.weight_params]
    values = params[:, [order.index(p) for p in prepared.isa.parameters]]
    n_try = args.batch
    t0 = time.perf_counter()
    try:
        # probe with one binding: a full-device forward can take far longer than the box
        estimator.run([(prepared.isa, prepared.observables[0], values[:1])]).result()
        probe = time.perf_counter() - t0
        n_try = max(1, min(args.batch, int(args.box / max(probe * len(prepared.observables), 1e-9))))
        t0 = time.perf_counter()
        estimator.run([(prepared.isa, obs, values[:n_try]) for obs in prepared.observables]).result()
        full = (time.perf_counter() - t0) * args.batch / n_try
        note = "" if n_try == args.batch else f" (timed {n_try}/{args.batch} rows, extrapolated)"
        print(f"  full device ({prepared.isa.num_qubits} qubits, full noise model): forward {full:.2f} s{note}")
        print(f"  reduced is {full / reduced:.0f}x faster")
    except Exception as exc:  # e.g. Aer refusing the memory a 127-qubit simulation needs
        print(f"  full device ({prepared.isa.num_qubits} qubits): not runnable: {str(exc).splitlines()[0]}")
    print(f"  sanity: reduced <Z> range [{reduced_out.min():+.3f}, {reduced_out.max():+.3f}]")


if __name__ == "__main__":
    main()
