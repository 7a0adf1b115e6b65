"""Wall time of one ``--local`` executor job on a fake IBM device (the runtime code path, simulated).

Builds the bottleneck circuit, transpiles it for the device as ``qgen sample --backend ibm_fez --local``
does, and times estimator jobs of ``--bindings`` parameter bindings at the backend's shots (ibm_fez in
backends.toml: precision 1/64 = 4096 shots per binding, twirling, dynamical decoupling, TREX). The
first job includes starting the simulator process; the later ones reuse it. ``--sampler`` also times a
quantum-noise sampler job (the entropy circuit on every device qubit) of ``--shots`` shots.

    python benchmarks/bench_local_job.py --backend ibm_fez --bindings 1 --repeats 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qgen.backends.registry import load_backend
from qgen.circuits import AnsatzSpec, build_ansatz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="ibm_fez")
    ap.add_argument("--qubits", type=int, default=8)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--bindings", type=int, default=1, help="parameter bindings per job (a sampling batch)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--pub-per-observable", action="store_true",
                    help="one PUB per observable (EstimatorQNN's default) instead of one PUB per circuit")
    ap.add_argument("--sampler", action="store_true", help="also time one quantum-noise sampler job")
    ap.add_argument("--shots", type=int, default=4096, help="shots of the sampler job")
    args = ap.parse_args()

    backend = load_backend(args.backend, local=True)
    qc = build_ansatz(AnsatzSpec(args.qubits, args.layers, "linear"))
    prepared = backend.prepare(qc)
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, (args.bindings, qc.circuit.num_parameters))
    estimator = backend.runtime.estimator()
    spec = backend.spec
    print(f"{args.backend} --local: {prepared.isa.num_qubits}-qubit ISA circuit, {args.qubits} qubits x "
          f"{args.layers} layers, {args.bindings} binding(s), {spec.shots_per_binding} shots each, "
          f"twirling={spec.twirling}, dd={spec.dynamical_decoupling}, resilience={spec.resilience_level}")
    for i in range(args.repeats):
        t0 = time.perf_counter()
        if args.pub_per_observable:
            pubs = [(prepared.isa, [obs], values) for obs in prepared.observables]
        else:  # observables x bindings in one PUB: measured together, one basis
            pubs = [(prepared.isa, [[obs] for obs in prepared.observables], values)]
        result = estimator.run(pubs, precision=spec.precision or None).result()
        seconds = time.perf_counter() - t0
        evs = np.stack([r.data.evs for r in result])
        print(f"  estimator job {i + 1} ({'cold: starts the simulator process' if i == 0 else 'warm'}): "
              f"{seconds:.1f} s; <Z> in [{evs.min():+.3f}, {evs.max():+.3f}]", flush=True)
    if args.sampler:
        from qgen.noise.circuits import hadamard_circuit

        # what the ibm kind's bit_sampling sends (without the journal, which needs a run directory)
        isa = backend.pass_manager().run(hadamard_circuit(backend.device.num_qubits))
        t0 = time.perf_counter()
        result = backend.runtime.sampler().run([isa], shots=args.shots).result()
        bits = getattr(result[0].data, isa.cregs[0].name)
        print(f"  sampler job: {bits.num_bits} qubits x {bits.num_shots} shots in {time.perf_counter() - t0:.1f} s")
    backend.runtime.close()


if __name__ == "__main__":
    main()
