"""What defines the bottleneck circuit, without building it (no qiskit import: configs read this).

The defaults of every field are the original circuit (RY angle encoding, then RZ·RY layers with a
CNOT entangler, Z readouts), so a config written before a field existed rebuilds what it trained.
The other fields choose a Qiskit circuit-library ansatz (``family``), a feature map for the inputs,
explicit Pauli observables, or a user circuit carried as QPY (``qgen.circuits.custom``).
"""

from __future__ import annotations

from dataclasses import dataclass

from qgen.circuits.layers import ENTANGLERS
from qgen.circuits.pauli_sum import check_observable
from qgen.errors import QgenError

READOUTS = ("z", "zz")
# "qgen": the original RZ·RY layers; the others are qiskit.circuit.library's function forms;
# "custom": a user's parametrized circuit (QPY in ``qpy``, its input parameters named in ``inputs``)
FAMILIES = ("qgen", "real_amplitudes", "efficient_su2", "n_local", "pauli_two_design", "custom")
# "angle": one RY per qubit (the original); "reupload": that encoding again before every layer
FEATURE_MAPS = ("angle", "z_feature_map", "zz_feature_map", "reupload")
# what the library's ``entanglement`` argument accepts, plus qgen's names ("ring" = "circular",
# "none" = no entangling block at all)
LIBRARY_ENTANGLERS = ENTANGLERS + ("circular", "reverse_linear", "pairwise", "sca")


@dataclass(frozen=True)
class AnsatzSpec:
    n_qubits: int = 8
    layers: int = 3                        # the ansatz's reps
    entanglement: str = "linear"
    readout: str = "z"
    family: str = "qgen"
    feature_map: str = "angle"
    feature_reps: int = 1                  # reps of z_feature_map / zz_feature_map
    rotation_blocks: tuple[str, ...] = ()  # n_local only: gate names, e.g. ("rx", "ry")
    entanglement_blocks: tuple[str, ...] = ()  # n_local only, e.g. ("crz",)
    observables: tuple[str, ...] = ()      # Pauli sums ("ZZII", "0.5*XXII + 0.5*YYII"); () = ``readout``'s
    qpy: str = ""                          # custom: the circuit as base64 QPY
    inputs: tuple[str, ...] = ()           # custom: names of the parameters fed by the bottleneck

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise QgenError(f"unknown readout {self.readout!r}; choose one of {', '.join(READOUTS)}")
        if self.n_qubits < 1:
            raise QgenError(f"n_qubits must be >= 1, got {self.n_qubits}")
        if self.layers < 1:
            raise QgenError(f"layers must be >= 1, got {self.layers}")
        if self.family not in FAMILIES:
            raise QgenError(f"unknown ansatz {self.family!r}; choose one of {', '.join(FAMILIES)} "
                            "(or a QPY file with --circuit)")
        allowed = ENTANGLERS if self.family == "qgen" else LIBRARY_ENTANGLERS
        if self.entanglement not in allowed:
            raise QgenError(f"unknown entanglement {self.entanglement!r} for ansatz {self.family}; "
                            f"choose one of {', '.join(allowed)}")
        if self.feature_map not in FEATURE_MAPS:
            raise QgenError(f"unknown feature map {self.feature_map!r}; choose one of {', '.join(FEATURE_MAPS)}")
        if self.feature_reps < 1:
            raise QgenError(f"feature map reps must be >= 1, got {self.feature_reps}")
        if (self.rotation_blocks or self.entanglement_blocks) and self.family != "n_local":
            raise QgenError("rotation and entanglement blocks choose the gates of --ansatz n_local only")
        if self.family == "n_local" and not self.rotation_blocks:
            raise QgenError("--ansatz n_local needs its rotation blocks (e.g. --rotation-blocks rx,ry "
                            "--entanglement-blocks crz)")
        if self.feature_map == "reupload" and self.family == "pauli_two_design":
            raise QgenError("pauli_two_design is one fixed design: it takes the angle, z or zz feature map, "
                            "not reupload")
        if self.family == "custom":
            if not self.qpy or not self.inputs:
                raise QgenError("a custom circuit needs its QPY and the names of its input parameters")
        elif self.qpy or self.inputs:
            raise QgenError("a QPY circuit and its input parameters belong to ansatz 'custom' only")
        for obs in self.observables:
            check_observable(obs, self.n_qubits)

    @property
    def is_original(self) -> bool:
        """The original circuit (built exactly as before the library ansätze existed)."""
        return (self.family == "qgen" and self.feature_map == "angle" and not self.observables)

    @property
    def num_inputs(self) -> int:
        """Input angles per row: the shell's compression width n."""
        return len(self.inputs) if self.family == "custom" else self.n_qubits

    @property
    def num_weights(self) -> int:
        if self.family == "qgen":
            return 2 * self.n_qubits * self.layers
        # the library decides its own count: build the circuit (deferred, as it needs qiskit, which
        # this module and configs reading it do not import)
        from qgen.circuits.ansatz import build_ansatz

        return len(build_ansatz(self).weight_params)

    @property
    def num_readouts(self) -> int:
        """Readouts per row: the shell's expansion width k."""
        return len(self.observables) if self.observables else readout_count(self.n_qubits, self.readout)


def readout_count(n_qubits: int, readout: str) -> int:
    """How many numbers one circuit evaluation hands on: n <Z>, plus n - 1 neighbour <ZZ> for "zz"."""
    return n_qubits + (n_qubits - 1 if readout == "zz" else 0)
