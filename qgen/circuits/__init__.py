"""Circuit library for the quantum bottleneck (the code; transpiled output goes to ./circuits/).

``spec`` (what defines a circuit) imports no qiskit, so configs can validate against it cheaply;
the builders and readouts are imported on first use (PEP 562), as they pull in qiskit (~1 s).

Modules, from the bottom up: ``pauli_sum`` (observables as config text) and ``layers`` (qgen's
RZ·RY·CNOT layers) need no qiskit; ``spec`` uses both. ``readouts`` (observables as SparsePauliOp),
``qnn_circuit`` (what builders return), then the builders ``library`` and ``custom_circuit``, and
``ansatz.build_ansatz`` which picks one. ``custom`` (a user's circuit -> config fields) and
``choice`` (options -> config fields) sit on top.
"""

from qgen.circuits.spec import ENTANGLERS, READOUTS, AnsatzSpec, readout_count

#: the names ``qgen.circuits.<name>`` resolves lazily, and the module each lives in
_LAZY = {"QNNCircuit": "qnn_circuit", "build_ansatz": "ansatz", "entangler_pairs": "layers",
         "z_observables": "readouts", "zz_observables": "readouts", "readout_observables": "readouts"}

__all__ = ["ENTANGLERS", "READOUTS", "AnsatzSpec", "readout_count", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        from qgen.circuits import ansatz, layers, qnn_circuit, readouts

        modules = {"ansatz": ansatz, "layers": layers, "qnn_circuit": qnn_circuit, "readouts": readouts}
        return getattr(modules[_LAZY[name]], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
