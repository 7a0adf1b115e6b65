"""Aer's cost per parameter binding: one run of all bindings vs runs in pieces, and its threads.

qiskit-aer binds ``parameter_binds`` in time that grows faster than their number, and starts
OpenMP threads on every core; ``qgen.backends.aer_runs`` runs bindings in pieces of
``BINDINGS_PER_RUN`` on ``$QGEN_THREADS`` threads. This prints, side by side in one process, the
CPU milliseconds per binding of an 8-qubit, 3-layer circuit (the default bottleneck's) with
``save_expectation_value`` on 8 ⟨Z⟩ (the estimator's path) and of the same circuit's density matrix
(the fake device's path), for one run and for pieces, and with Aer's default threads vs one.

    python benchmarks/bench_aer_bindings.py
    python benchmarks/bench_aer_bindings.py --bindings 1000 4000 8000 --density-bindings 50 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from qiskit import transpile
from qiskit.circuit.library import real_amplitudes
from qiskit.quantum_info import Pauli
from qiskit_aer import AerSimulator

from qgen.backends import aer_runs


def per_binding_ms(simulator, circuit, n: int, pieces: bool) -> float:
    values = np.random.default_rng(0).random((n, circuit.num_parameters))
    start = time.process_time()
    if pieces:
        aer_runs.run_bindings(simulator, circuit, values)
    else:
        binds = [{p: values[:, i] for i, p in enumerate(circuit.parameters)}]
        simulator.run(circuit, parameter_binds=binds).result()
    return (time.process_time() - start) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qubits", type=int, default=8)
    ap.add_argument("--bindings", type=int, nargs="+", default=[1000, 4000, 8000])
    ap.add_argument("--density-bindings", type=int, nargs="+", default=[100])
    a = ap.parse_args()
    base = transpile(real_amplitudes(a.qubits, reps=3), AerSimulator())
    expval = base.copy()
    for q in range(a.qubits):
        expval.save_expectation_value(Pauli("I" * (a.qubits - 1 - q) + "Z" + "I" * q), qubits=range(a.qubits),
                                      label=f"z{q}")
    print(f"{a.qubits} qubits, 3 layers, {base.num_parameters} parameters; CPU ms per binding "
          f"(pieces of {aer_runs.BINDINGS_PER_RUN})")
    one_thread = AerSimulator(method="statevector", max_parallel_threads=1)
    for n in a.bindings:
        whole = per_binding_ms(one_thread, expval, n, pieces=False)
        cut = per_binding_ms(one_thread, expval, n, pieces=True)
        print(f"  statevector, {n:>6} bindings: one run {whole:6.3f}  pieces {cut:6.3f}  ratio {whole / cut:5.2f}x",
              flush=True)
    density = base.copy()
    density.save_probabilities(label="p")
    for n in a.density_bindings:
        default = per_binding_ms(AerSimulator(method="density_matrix"), density, n, pieces=True)
        single = per_binding_ms(AerSimulator(method="density_matrix", max_parallel_threads=1), density, n, pieces=True)
        print(f"  density matrix, {n:>4} bindings: Aer's threads {default:7.2f}  one thread {single:7.2f}  "
              f"ratio {default / single:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
