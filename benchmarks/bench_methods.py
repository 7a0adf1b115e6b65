"""Which exact method is faster, and does ``method="automatic"`` pick it? Side by side per circuit.

    python benchmarks/bench_methods.py

For each ansatz (qubits, layers, entangler): forward + backward through TorchConnector(EstimatorQNN),
batch 64, on the statevector method (adjoint Jacobian) and on the MPS method (reverse pass), with
the automatic choice and the MPS bond dimension. Best of 2 runs after a warm-up. The backward is
the one training uses (``VJPTorchConnector``: one vector-Jacobian product per row);
``--connector jacobian`` times stock TorchConnector's full Jacobians instead.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench_qnn import forward_backward, make_qnn
from qgen.circuits import AnsatzSpec, build_ansatz
from qgen.quantum.connector import VJPTorchConnector
from qgen.quantum.exact_estimator import choose_method

CASES = [(8, 3, "linear"), (9, 3, "linear"), (10, 3, "linear"), (12, 3, "linear"), (16, 3, "linear"),
         (10, 3, "ring"), (12, 3, "ring"), (14, 3, "ring"), (16, 2, "ring")]


def vjp_forward_backward(qnn, x, weights, upstream, clock=time.perf_counter):
    model = VJPTorchConnector(qnn, initial_weights=torch.tensor(weights, dtype=torch.float64))
    inputs = torch.tensor(x, requires_grad=True)
    start = clock()
    out = model(inputs)
    out.backward(torch.tensor(upstream, dtype=out.dtype))
    return (clock() - start,)


def best_seconds(circuit, path: str, x, w, up, connector: str = "vjp",
                 clock=time.perf_counter) -> float:
    qnn = make_qnn(circuit, path, np.complex128)
    if connector == "vjp":
        def step(*args):
            return vjp_forward_backward(*args, clock=clock)
    else:
        step = forward_backward
    step(qnn, x[:2], w, up[:2])
    return min(step(qnn, x, w, up)[0] for _ in range(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--connector", choices=("vjp", "jacobian"), default="vjp")
    ap.add_argument("--cases", nargs="+", help="qubits:layers:entangler, e.g. 12:3:ring")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process time (VJP connector only); fairer on a loaded machine")
    args = ap.parse_args()
    cases = ([(int(n), int(layers), e) for n, layers, e in (c.split(":") for c in args.cases)]
             if args.cases else CASES)
    torch.set_num_threads(1)
    print(f"{'qubits':>6} {'layers':>6} {'entangler':<9} {'bond':>5} {'adjoint s':>10} {'mps s':>8} "
          f"{'faster':<12} automatic")
    for n, layers, entanglement in cases:
        circuit = build_ansatz(AnsatzSpec(n, layers, entanglement))
        rng = np.random.default_rng(0)
        x = rng.uniform(-np.pi, np.pi, (args.batch, n))
        w = rng.uniform(-np.pi, np.pi, len(circuit.weight_params))
        up = rng.normal(size=(args.batch, n))
        bond = choose_method(circuit.circuit, "mps", max_bond=1 << 20)[1].max_bond
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        adjoint = best_seconds(circuit, "adjoint", x, w, up, args.connector, clock)
        mps = best_seconds(circuit, "mps", x, w, up, args.connector, clock)
        faster = "statevector" if adjoint < mps else "mps"
        auto = choose_method(circuit.circuit)[0]
        print(f"{n:>6} {layers:>6} {entanglement:<9} {bond:>5} {adjoint:>10.3f} {mps:>8.3f} {faster:<12} "
              f"{auto}{'' if auto == faster else '  (not the faster one: ' + f'{max(adjoint, mps) / min(adjoint, mps):.2f}x)'}",
              flush=True)


if __name__ == "__main__":
    main()
