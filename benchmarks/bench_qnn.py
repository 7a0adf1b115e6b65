"""Forward+backward of EstimatorQNN + TorchConnector: stock vs batched vs exact, side by side.

    python benchmarks/bench_qnn.py --qubits 8 16 --batch 64 --layers 3 --box 60

Paths:
  (a) stock   - Aer EstimatorV2 + ParamShiftEstimatorGradient (one PUB per shifted binding)
  (b) batched - Aer EstimatorV2 + BatchedParamShiftEstimatorGradient (one broadcast PUB)
  (c) adjoint - VectorizedStatevectorEstimator(method="statevector") + ExactEstimatorGradient
                (adjoint sweeps over 2^n amplitudes)
  (d) mps     - VectorizedStatevectorEstimator(method="mps") + ExactEstimatorGradient
                (untruncated MPS, reverse mode)
  (e) exact   - method="automatic", what the statevector backend uses (picks (c) or (d))

Every path first runs a 1-sample probe (warm-up). Paths (a) and (b) are time-boxed: the probe
estimates the per-sample cost; if the full
batch would exceed --box seconds, only a subset of the batch is timed and the time is
extrapolated linearly in the batch size (the output says so). All paths run at precision 0.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qgen.circuits import AnsatzSpec, QNNCircuit, build_ansatz
from qgen.quantum import (
    BatchedParamShiftEstimatorGradient,
    ExactEstimatorGradient,
    VectorizedStatevectorEstimator,
)
from qgen.quantum.exact_estimator import choose_method


@dataclass
class Timing:
    seconds: float  # for the full batch (measured or extrapolated)
    timed_batch: int  # rows actually run
    input_grad: np.ndarray  # on the timed rows
    weight_grad: np.ndarray
    seconds_note: str = ""  # says when the time is extrapolated from a subset


def make_qnn(circuit: QNNCircuit, path: str, dtype) -> EstimatorQNN:
    if path == "stock":
        estimator = AerEstimatorV2()
        gradient = ParamShiftEstimatorGradient(estimator)
    elif path == "batched":
        estimator = AerEstimatorV2()
        gradient = BatchedParamShiftEstimatorGradient(estimator, precision=0.0)
    else:
        method = {"adjoint": "statevector", "mps": "mps"}.get(path, "automatic")
        estimator = VectorizedStatevectorEstimator(dtype=dtype, method=method)
        gradient = ExactEstimatorGradient(estimator)
    return EstimatorQNN(
        circuit=circuit.circuit,
        estimator=estimator,
        observables=list(circuit.observables),
        input_params=list(circuit.input_params),
        weight_params=list(circuit.weight_params),
        gradient=gradient,
        input_gradients=True,
        default_precision=0.0,
    )


def forward_backward(qnn: EstimatorQNN, x: np.ndarray, weights: np.ndarray, upstream: np.ndarray):
    model = TorchConnector(qnn, initial_weights=torch.tensor(weights, dtype=torch.float64))
    inputs = torch.tensor(x, requires_grad=True)
    start = time.perf_counter()
    out = model(inputs)
    out.backward(torch.tensor(upstream, dtype=out.dtype))
    return time.perf_counter() - start, inputs.grad.numpy(), model.weight.grad.numpy()


def triple_seconds(qnn: EstimatorQNN, circuit: QNNCircuit) -> float:
    """Seconds for the gradient of ONE (circuit, observable, row) triple of a backward."""
    values = np.zeros(circuit.circuit.num_parameters)
    start = time.perf_counter()
    qnn.gradient.run([circuit.circuit], [circuit.observables[0]], [values]).result()
    return time.perf_counter() - start


def run_path(circuit, path, x, weights, upstream, box: float, dtype) -> Timing:
    qnn = make_qnn(circuit, path, dtype)
    batch = len(x)
    subset = batch
    note = ""
    if path in ("stock", "batched"):
        # A backward is batch x n_obs gradient triples; if even one sample would blow the box,
        # time the forward on the full batch and extrapolate the backward from one triple.
        per_triple = triple_seconds(qnn, circuit)
        n_triples = batch * len(circuit.observables)
        if per_triple * len(circuit.observables) > box:
            model = TorchConnector(qnn, initial_weights=torch.tensor(weights))
            start = time.perf_counter()
            model(torch.tensor(x))
            forward = time.perf_counter() - start
            note = (f"(forward timed on {batch} samples; backward extrapolated from 1 of "
                    f"{n_triples} gradient triples: {per_triple:.2f} s each)")
            empty = np.full(1, np.nan)
            return Timing(forward + per_triple * n_triples, 0, empty, empty, note)
    # A 1-sample probe: warms up compile caches (all paths) and sizes the time box.
    probe, _, _ = forward_backward(qnn, x[:1], weights, upstream[:1])
    if path in ("stock", "batched") and probe * batch > box:
        subset = max(1, min(batch, math.floor(box / probe)))
    seconds, gin, gw = forward_backward(qnn, x[:subset], weights, upstream[:subset])
    if subset < batch:
        note = f"(timed {subset}/{batch} samples, extrapolated x{batch / subset:.1f})"
        seconds *= batch / subset
    return Timing(seconds, subset, gin, gw, note)


def bench(n_qubits: int, batch: int, layers: int, box: float, dtype, paths) -> None:
    circuit = build_ansatz(AnsatzSpec(n_qubits, layers, "linear"))
    rng = np.random.default_rng(0)
    x = rng.uniform(-np.pi, np.pi, (batch, n_qubits))
    weights = rng.uniform(-np.pi, np.pi, len(circuit.weight_params))
    upstream = rng.normal(size=(batch, n_qubits))
    print(f"\n== {n_qubits} qubits, {layers} layers, batch {batch}, "
          f"{len(circuit.weight_params)} weights; automatic method: "
          f"{choose_method(circuit.circuit)[0]} ==")
    timings = {path: run_path(circuit, path, x, weights, upstream, box, dtype) for path in paths}
    exact = timings.get("exact")
    for path, t in timings.items():
        ratio = f"{t.seconds / exact.seconds:10.1f}x exact" if exact else ""
        print(f"  {path:8s} {t.seconds:10.3f} s  {ratio}  {t.seconds_note}")
    if exact is not None:
        for path, t in timings.items():
            if path == "exact" or t.timed_batch == 0:
                continue
            # Gradients are sums over the timed rows only: recompute exact on the same rows.
            rows = t.timed_batch
            _, gin, gw = forward_backward(make_qnn(circuit, "exact", dtype), x[:rows], weights,
                                          upstream[:rows])
            diff = max(np.abs(t.input_grad - gin).max(), np.abs(t.weight_grad - gw).max())
            print(f"  max |grad({path}) - grad(exact)| through TorchConnector (float32) over "
                  f"{rows} rows: {diff:.2e}")
        # The float64 Jacobians themselves, on a few rows (stock only at <= 8 qubits: too slow).
        rows = min(4, batch)
        reference = make_qnn(circuit, "exact", dtype).backward(x[:rows], weights)
        for path in timings:
            if path == "exact" or (path == "stock" and n_qubits > 8):
                continue
            jac = make_qnn(circuit, path, dtype).backward(x[:rows], weights)
            diff = max(np.abs(jac[0] - reference[0]).max(), np.abs(jac[1] - reference[1]).max())
            print(f"  max |jacobian({path}) - jacobian(exact)| (float64, {rows} rows): "
                  f"{diff:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qubits", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--box", type=float, default=60.0,
                        help="seconds allowed per time-boxed path before extrapolating")
    parser.add_argument("--paths", nargs="+", default=["stock", "batched", "adjoint", "mps", "exact"],
                        choices=["stock", "batched", "adjoint", "mps", "exact"])
    parser.add_argument("--complex64", action="store_true", help="exact path in complex64")
    args = parser.parse_args()
    dtype = np.complex64 if args.complex64 else np.complex128
    for n in args.qubits:
        bench(n, args.batch, args.layers, args.box, dtype, args.paths)


if __name__ == "__main__":
    main()
