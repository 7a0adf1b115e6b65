"""Circuit library for the quantum bottleneck (the code; transpiled output goes to ./circuits/).

``spec`` (what defines a circuit) imports no qiskit, so configs can validate against it cheaply;
the builders in ``ansatz`` are imported on first use (PEP 562), as they pull in qiskit.
"""

from qgen.circuits.spec import ENTANGLERS, READOUTS, AnsatzSpec, readout_count

_BUILDERS = ("QNNCircuit", "build_ansatz", "entangler_pairs", "trap_ansatz", "z_observables",
             "zz_observables", "readout_observables")

__all__ = ["ENTANGLERS", "READOUTS", "AnsatzSpec", "readout_count", *_BUILDERS]


def __getattr__(name: str):
    if name in _BUILDERS:
        from qgen.circuits import ansatz

        return getattr(ansatz, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
