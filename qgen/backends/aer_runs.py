"""How qgen runs Aer: the thread rule, and many parameter bindings in pieces.

Two measured properties of qiskit-aer 0.18 on this project's 2-core machine (8-qubit, 3-layer
circuit; ``python benchmarks/bench_aer_bindings.py``):

* **threads** — Aer starts OpenMP threads on every core by default. Next to torch or another cell
  they spin-wait: an 8-qubit density-matrix binding took 190 ms of CPU with the default threads
  and 21 ms with one. Aer gets the same ``$QGEN_THREADS`` as torch (``qgen.threads``).
* **bindings** — one ``run`` with ``parameter_binds`` costs more than linearly in their number
  (0.28 ms a binding at 1,000, 0.49 ms at 8,000); up to ~2,000 it is linear. A per-site design's
  gradient sends ~88,000 bindings per training step (784 rows x 112 shifted circuits), which took
  357 s in one run. Every Aer run here therefore goes in pieces of at most ``BINDINGS_PER_RUN``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qgen.threads import configured_threads

#: Bindings per Aer run: inside Aer's linear range, large enough that its per-run cost (~3 ms) is
#: noise.
BINDINGS_PER_RUN = 1000


def thread_options() -> dict[str, int]:
    """Aer backend options that apply qgen's thread rule."""
    return {"max_parallel_threads": configured_threads()}


def run_bindings(simulator: Any, circuit: Any, values: np.ndarray, **run_options: Any) -> list[dict]:
    """The result data of ``circuit`` for every row of ``values`` (bindings in the circuit's
    parameter order), run in pieces of ``BINDINGS_PER_RUN``; a circuit without parameters runs once."""
    if not circuit.num_parameters:
        return [simulator.run(circuit, **run_options).result().data(0)]
    data: list[dict] = []
    for start in range(0, len(values), BINDINGS_PER_RUN):
        piece = values[start:start + BINDINGS_PER_RUN]
        binds = [{p: piece[:, i] for i, p in enumerate(circuit.parameters)}]
        result = simulator.run(circuit, parameter_binds=binds, **run_options).result()
        data.extend(result.data(b) for b in range(len(piece)))
    return data
