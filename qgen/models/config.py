"""Model configuration."""

from __future__ import annotations

from dataclasses import dataclass

from qgen.circuits.spec import READOUTS, AnsatzSpec
from qgen.errors import QgenError
from qgen.models.bottlenecks import DESIGNS

MODEL_KINDS = ("quantum", "classical", "plain")
BOTTLENECKS = ("channel_gate", "site", "patch", "film")  # qgen.models.bottlenecks
SKIP_LEVELS = (28, 14)

# The design a new run gets (qgen train, qgen.run_config) when none is given; chosen by measurement,
# docs/results/bottleneck/: a per-site map that replaces the 7x7 features, with only the 14-px skip
# kept (the 28-px skip let the decoder rebuild each image around the map: content ratio 1.4 with it,
# 1.9 without, at better validation FLD). Old config.toml files keep the dataclass defaults below.
NEW_RUN_MODEL = dict(bottleneck="site", readout="z", skips=(14,))


@dataclass(frozen=True)
class ModelConfig:
    """The dataclass defaults are the original model's (channel gate, both skips), so a config.toml
    written before a key existed rebuilds the model it trained; a new run gets ``NEW_RUN_MODEL``."""

    kind: str = "quantum"             # quantum middle | parameter-matched classical middle | no bottleneck block
    widths: tuple[int, ...] = (32, 64, 64)   # channels at 28, 14 and 7 pixels
    time_dim: int = 128
    groups: int = 8                   # GroupNorm groups
    qubits: int = 8
    layers: int = 3
    entanglement: str = "linear"      # "none": the separable control (no entangling gates)
    bottleneck: str = "channel_gate"  # where the middle sits (qgen.models.bottlenecks)
    readout: str = "z"                # "zz": the neighbour ZZ correlators as well (2n - 1 readouts)
    skips: tuple[int, ...] = SKIP_LEVELS  # the U-Net's skip connections (pixel levels) that are kept
    # Weaker skips, so that more of each image has to pass through the bottleneck:
    skip_channels: int = 0            # 0: a kept skip as wide as its level; k: through a 1x1 conv to k channels
    skip_drop: float = 0.0            # per training image, the kept skips are zeroed with this probability
    # The circuit beyond the original (qgen.circuits.spec.AnsatzSpec; defaults: the original circuit):
    # a circuit-library ansatz with ``layers`` as its reps, a feature map, explicit observables, or a
    # user circuit carried as base64 QPY with the names of its input parameters.
    ansatz_family: str = "qgen"
    feature_map: str = "angle"
    feature_reps: int = 1
    rotation_blocks: tuple[str, ...] = ()
    entanglement_blocks: tuple[str, ...] = ()
    observables: tuple[str, ...] = ()
    circuit_qpy: str = ""
    circuit_inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise QgenError(f"unknown model {self.kind!r}; choose one of {', '.join(MODEL_KINDS)}")
        if self.bottleneck not in BOTTLENECKS:
            raise QgenError(f"unknown bottleneck {self.bottleneck!r}; choose one of {', '.join(BOTTLENECKS)}")
        if self.readout not in READOUTS:
            raise QgenError(f"unknown readout {self.readout!r}; choose one of {', '.join(READOUTS)}")
        # the circuit spec's own wording (qgen.circuits.spec), said here for every kind of middle
        if self.qubits < 1:
            raise QgenError(f"n_qubits must be >= 1, got {self.qubits}")
        if self.layers < 1:
            raise QgenError(f"layers must be >= 1, got {self.layers}")
        self.ansatz  # validates the circuit's fields (entanglement, family, feature map, observables)
        object.__setattr__(self, "skips", tuple(sorted(set(self.skips), reverse=True)))
        if any(level not in SKIP_LEVELS for level in self.skips):
            raise QgenError(f"skips are pixel levels among {', '.join(map(str, SKIP_LEVELS))}, got "
                            f"{list(self.skips)}")
        if self.skip_channels < 0 or self.skip_channels % self.groups:
            # the decoder block normalizes the joined channels in groups of `groups`
            raise QgenError(f"skip_channels must be 0 (full width) or a positive multiple of groups={self.groups}, "
                            f"got {self.skip_channels}")
        if not 0.0 <= self.skip_drop < 1.0:
            raise QgenError(f"skip_drop is a probability in [0, 1), got {self.skip_drop}")
        if (self.skip_channels or self.skip_drop) and not self.skips:
            raise QgenError("skip_channels and skip_drop act on kept skip connections, and skips is none")
        if len(self.widths) != 3:
            raise QgenError(f"widths needs 3 entries (28, 14, 7 px levels), got {list(self.widths)}")
        for w in self.widths:
            if w < 1 or w % self.groups:
                raise QgenError(f"each width must be a positive multiple of groups={self.groups}, got {w}")

    @property
    def circuit_rows_per_image(self) -> int:
        """Circuit evaluations (estimator bindings) per image and model call: 1 for a global design,
        49 for ``site``, 16 for ``patch``; 0 without a middle circuit."""
        if self.kind != "quantum":
            return 0
        return DESIGNS[self.bottleneck].sites()

    @property
    def readouts(self) -> int:
        """Numbers the middle hands on per row (k)."""
        return self.ansatz.num_readouts

    @property
    def inputs(self) -> int:
        """Angles the shell hands the middle per row (n): the circuit's input parameters."""
        return self.ansatz.num_inputs

    @property
    def circuit_weights(self) -> int:
        """Trainable parameters of the circuit (W), which the classical twin matches."""
        return self.ansatz.num_weights

    @property
    def ansatz(self):
        """The bottleneck circuit's ``AnsatzSpec`` (qubits, layers, entanglement, readout, and the
        library / custom fields)."""
        return AnsatzSpec(self.qubits, self.layers, self.entanglement, self.readout, family=self.ansatz_family,
                          feature_map=self.feature_map, feature_reps=self.feature_reps,
                          rotation_blocks=self.rotation_blocks, entanglement_blocks=self.entanglement_blocks,
                          observables=self.observables, qpy=self.circuit_qpy, inputs=self.circuit_inputs)
