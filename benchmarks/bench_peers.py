"""qgen's exact QNN layer against PennyLane on the same circuits: forward + backward, side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_peers.py [--quick] [--cases ring:12 full:16 ...]

Needs the optional extra ``pip install -e .[bench]`` (PennyLane 0.45 and lightning.qubit 0.45).

Circuit: qgen's ansatz (``qgen/circuits/ansatz.py``): RY angle encoding of the batch inputs, then
``--layers`` layers of RZ, RY on every qubit and the CNOT entangler; Z readouts on every qubit.
One step = forward of a batch (``--batch`` rows) + backward w.r.t. inputs and weights of
``sum(upstream * outputs)`` (a fixed random upstream gradient). Paths:

  qgen            - ``VJPTorchConnector(EstimatorQNN)`` on the exact estimator (automatic method),
                    backward as one vector-Jacobian product per row
  qgen-jacobian   - stock ``TorchConnector`` on the same QNN (full Jacobians, then contracted)
  pl-backprop     - PennyLane ``default.qubit``, ``diff_method="backprop"`` (torch)
  pl-adjoint      - ``lightning.qubit``, ``diff_method="adjoint"``
  pl-adjoint-vjp  - ``lightning.qubit``, ``diff_method="adjoint"``, ``device_vjp=True``

Before any time is printed, values and gradients of every path are checked against qgen's
float64 VJP (``--tolerance``, default 1e-10; qgen's connector paths are compared through the QNN
and the gradient in float64, since TorchConnector returns float32). Rounds are interleaved (every
path once per round), one thread per path (threadpoolctl, ``torch.set_num_threads(1)``,
``OMP_NUM_THREADS=1``); the median per path is reported with its ratio to lightning's
``device_vjp=True``. ``--quick``: 2 rounds, no ``qgen-jacobian`` and no ``pl-backprop`` at 16
qubits (those take minutes there).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before lightning/torch start their thread pools

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from qiskit_machine_learning.connectors import TorchConnector  # noqa: E402
from qiskit_machine_learning.neural_networks import EstimatorQNN  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from qgen.circuits import AnsatzSpec, build_ansatz, entangler_pairs  # noqa: E402
from qgen.quantum import ExactEstimatorGradient, VectorizedStatevectorEstimator  # noqa: E402
from qgen.quantum.connector import ExactVJP, VJPTorchConnector  # noqa: E402
from qgen.quantum.exact_estimator import choose_method  # noqa: E402

DEFAULT_CASES = ["ring:12", "full:12", "linear:12", "ring:16", "full:16", "linear:16"]
PATHS = ["qgen", "qgen-jacobian", "pl-backprop", "pl-adjoint", "pl-adjoint-vjp"]
REFERENCE = "pl-adjoint-vjp"


def make_qnn(spec: AnsatzSpec) -> EstimatorQNN:
    circuit = build_ansatz(spec)
    estimator = VectorizedStatevectorEstimator()
    return EstimatorQNN(circuit=circuit.circuit, estimator=estimator,
                        observables=list(circuit.observables),
                        input_params=list(circuit.input_params),
                        weight_params=list(circuit.weight_params),
                        gradient=ExactEstimatorGradient(estimator), input_gradients=True,
                        default_precision=0.0)


def pennylane_step(spec: AnsatzSpec, path: str):
    """(step(x, w, upstream) -> (values, input grad, weight grad)) for one PennyLane path."""
    import pennylane as qml

    n, pairs = spec.n_qubits, entangler_pairs(spec.n_qubits, spec.entanglement)
    if path == "pl-backprop":
        device, kwargs = qml.device("default.qubit", wires=n), {"diff_method": "backprop"}
    else:
        device = qml.device("lightning.qubit", wires=n, c_dtype=np.complex128)
        kwargs = {"diff_method": "adjoint", "device_vjp": path == "pl-adjoint-vjp"}

    @qml.qnode(device, interface="torch", **kwargs)
    def circuit(x, w):
        for q in range(n):
            qml.RY(x[:, q], wires=q)
        k = 0
        for _ in range(spec.layers):
            for q in range(n):
                qml.RZ(w[k], wires=q)
                k += 1
            for q in range(n):
                qml.RY(w[k], wires=q)
                k += 1
            for c, t in pairs:
                qml.CNOT(wires=[c, t])
        return [qml.expval(qml.PauliZ(q)) for q in range(n)]

    def step(x: np.ndarray, w: np.ndarray, upstream: np.ndarray):
        # PennyLane's torch interface returns lightning's results in torch's default dtype
        # (float32, which would round the cotangents too): float64 for the PennyLane paths.
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            xt = torch.tensor(x, requires_grad=True)
            wt = torch.tensor(w, requires_grad=True)
            out = torch.stack(list(circuit(xt, wt)), dim=1)  # (B, K)
            (out * torch.tensor(upstream)).sum().backward()
        finally:
            torch.set_default_dtype(default)
        return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()

    return step


def qgen_step(qnn: EstimatorQNN, w: np.ndarray, connector: type):
    model = connector(qnn, initial_weights=torch.tensor(w))

    def step(x: np.ndarray, _w: np.ndarray, upstream: np.ndarray):
        xt = torch.tensor(x, requires_grad=True)
        out = model(xt)
        out.backward(torch.tensor(upstream, dtype=out.dtype))
        return None  # timed only; values are checked in float64 through the QNN (check_qgen)

    return step


def check(name: str, got, ref, tolerance: float) -> float:
    worst = max(float(np.max(np.abs(np.asarray(g) - np.asarray(r)))) for g, r in zip(got, ref))
    if worst > tolerance:
        raise SystemExit(f"{name}: values/gradients differ from qgen's by {worst:.2e} "
                         f"(> {tolerance:.0e}); no timings reported")
    return worst


def run_case(entanglement: str, n: int, args) -> None:
    spec = AnsatzSpec(n, args.layers, entanglement)
    rng = np.random.default_rng(0)
    x = rng.uniform(-np.pi, np.pi, (args.batch, n))
    w = rng.uniform(-np.pi, np.pi, spec.num_weights)
    upstream = rng.normal(size=(args.batch, n))
    w = w.astype(np.float32).astype(np.float64)  # what TorchConnector holds (float32 weights)

    qnn = make_qnn(spec)
    values = qnn.forward(x, w)
    input_vjp, weight_vjp = ExactVJP.of(qnn, sparse=False).backward(x, w, upstream)
    reference = (values, input_vjp, weight_vjp)

    paths = [p for p in args.paths
             if not (args.quick and n >= 16 and p in ("qgen-jacobian", "pl-backprop"))]
    steps: dict[str, Callable] = {}
    agreement: dict[str, float] = {}
    for path in paths:
        if path == "qgen":
            steps[path] = qgen_step(qnn, w, VJPTorchConnector)
        elif path == "qgen-jacobian":
            steps[path] = qgen_step(qnn, w, TorchConnector)
            input_jac, weight_jac = qnn.backward(x, w)
            agreement[path] = check(path, (np.einsum("rk,rkp->rp", upstream, input_jac),
                                           np.einsum("rk,rkp->p", upstream, weight_jac)),
                                    reference[1:], args.tolerance)
        else:
            steps[path] = pennylane_step(spec, path)
            agreement[path] = check(path, steps[path](x, w, upstream), reference, args.tolerance)
    for path in paths:  # warm-up (compile caches, PennyLane's tape construction)
        steps[path](x[:2], w, upstream[:2])

    times: dict[str, list[float]] = {p: [] for p in paths}
    for _ in range(args.rounds):
        for path in paths:
            start = time.perf_counter()
            steps[path](x, w, upstream)
            times[path].append(time.perf_counter() - start)

    method = choose_method(qnn.circuit)[0]
    ref = statistics.median(times[REFERENCE]) if REFERENCE in times else None
    print(f"\n{entanglement} {n} qubits, {args.layers} layers, batch {args.batch} "
          f"(qgen method: {method}); agreement with qgen float64: "
          + ", ".join(f"{p} {d:.1e}" for p, d in agreement.items()), flush=True)
    for path in paths:
        median = statistics.median(times[path])
        ratio = f"{ref / median:7.2f}x faster than {REFERENCE}" if ref else ""
        print(f"  {path:<15} {median:9.3f} s  (rounds: {', '.join(f'{t:.3f}' for t in times[path])})"
              f"  {ratio}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES,
                    help="entangler:qubits, e.g. ring:12 full:16 linear:16")
    ap.add_argument("--paths", nargs="+", default=PATHS, choices=PATHS)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tolerance", type=float, default=1e-10)
    ap.add_argument("--quick", action="store_true",
                    help="2 rounds; skip qgen-jacobian and pl-backprop at 16 qubits")
    args = ap.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 2)
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        for case in args.cases:
            entanglement, n = case.split(":")
            run_case(entanglement, int(n), args)


if __name__ == "__main__":
    main()
