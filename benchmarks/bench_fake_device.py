"""Noisy fake-device bottleneck: simulating only the active qubits vs the whole device, side by side.

For FakeBrisbane (127 qubits) and an 8-qubit, 3-layer bottleneck with a training batch, prints
  * forward time with the device noise model reduced to the active qubits (what qgen does),
  * forward time with the full-device noise model on the device-wide ISA circuit (time-boxed),
  * one training backward (batched parameter shift) on the reduced model, and the primitive jobs
    it submitted.

    python benchmarks/bench_fake_device.py --qubits 8 --layers 3 --batch 16
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np

from qgen.backends.registry import load_backend
from qgen.circuits import AnsatzSpec, build_ansatz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="fake_brisbane")
    ap.add_argument("--qubits", type=int, default=8)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16, help="the training batch size (qgen's default is 16)")
    ap.add_argument("--box", type=float, default=120.0, help="seconds allowed for one full-device binding")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    qc = build_ansatz(AnsatzSpec(args.qubits, args.layers, "linear"))
    backend = load_backend(args.backend)
    x = rng.uniform(-np.pi, np.pi, (args.batch, args.qubits))
    w = rng.uniform(-np.pi / 4, np.pi / 4, qc.circuit.num_parameters - args.qubits)

    t0 = time.perf_counter()
    qnn = backend.make_qnn(qc)
    setup = time.perf_counter() - t0
    qnn.forward(x[:1], w)  # warm-up
    t0 = time.perf_counter()
    reduced_out = qnn.forward(x, w)
    reduced = time.perf_counter() - t0
    print(f"{args.backend}: {args.qubits} qubits, {args.layers} layers, batch {args.batch}")
    print(f"  reduced ({qnn.circuit.num_qubits} simulated qubits): setup {setup:.2f} s, forward {reduced:.3f} s",
          flush=True)
    jobs_before = qnn.gradient.jobs_submitted
    t0 = time.perf_counter()
    qnn.backward(x, w)
    backward = time.perf_counter() - t0
    jobs = qnn.gradient.jobs_submitted - jobs_before
    print(f"  reduced: backward (batched parameter shift) {backward:.2f} s in {jobs} primitive job(s)", flush=True)

    # The full-device simulation runs in a child process: one Aer call cannot be interrupted from
    # Python, and on 127 qubits a single binding may take longer than the box.
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_full_device_forward, args=(args.backend, args.qubits, args.layers, x[:1], w, queue))
    t0 = time.perf_counter()
    child.start()
    child.join(args.box)
    if child.is_alive():
        child.terminate()
        child.join()
        print(f"  full device (127-qubit ISA circuit, full noise model): one binding did not finish in "
              f"{args.box:.0f} s; the batch of {args.batch} would take > {args.box * args.batch:.0f} s "
              f"(> {args.box * args.batch / reduced:.0f}x the reduced forward)")
    else:
        outcome = queue.get()
        if isinstance(outcome, str):
            print(f"  full device: not runnable: {outcome}")
        else:
            full = outcome * args.batch
            print(f"  full device (full noise model): {outcome:.2f} s per binding -> forward {full:.1f} s "
                  f"for batch {args.batch} (extrapolated), {full / reduced:.0f}x the reduced forward")
    print(f"  sanity: reduced <Z> range [{reduced_out.min():+.3f}, {reduced_out.max():+.3f}]")


def _full_device_forward(backend_name, qubits, layers, x, w, queue) -> None:
    """Time one binding of every readout on the device-wide ISA circuit with the full noise model."""
    from qiskit_aer import AerSimulator
    from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

    qc = build_ansatz(AnsatzSpec(qubits, layers, "linear"))
    backend = load_backend(backend_name)
    prepared = backend.prepare(qc)
    estimator = AerEstimatorV2.from_backend(AerSimulator.from_backend(backend.device))
    params = np.concatenate([x, w[None, :]], axis=1)
    order = [*qc.input_params, *qc.weight_params]
    values = params[:, [order.index(p) for p in prepared.isa.parameters]]
    try:
        t0 = time.perf_counter()
        estimator.run([(prepared.isa, obs, values) for obs in prepared.observables]).result()
        queue.put(time.perf_counter() - t0)
    except Exception as exc:  # e.g. Aer refusing the memory a 127-qubit simulation needs
        queue.put(str(exc).splitlines()[0])


if __name__ == "__main__":
    main()
