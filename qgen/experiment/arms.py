"""The arms of the experiment: what differs between them, and nothing else.

Every arm shares the U-Net, optimizer, steps, batch, data subset and seeds of its cell; an arm
only picks the bottleneck's middle (quantum, classical twin, none), the backend that evaluates it,
where the diffusion noise comes from, and -- through a few typed fields, ``Arm.apply`` -- the model
and training fields that define a control: the circuit without entangling gates (``separable``)
and the circuit kept at its initial weights (``quantum_frozen``). That is what makes the
differences between arms *paired* comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from qgen.config import RunConfig


@dataclass(frozen=True)
class Arm:
    name: str
    model_kind: str          # ModelConfig.kind
    backend: str | None      # None: the experiment's exact backend (statevector)
    noise: str               # forward-process noise for training and sampling
    description: str
    # the model and training fields an arm may set on the base run (None / False: the base run's)
    entanglement: str | None = None   # ModelConfig.entanglement ("none": no entangling gates)
    freeze_circuit: bool = False      # TrainConfig.freeze = ("circuit",): circuit weights stay at init

    @property
    def gated(self) -> bool:
        """Whether the arm has a bottleneck block whose middle can be ablated (dependence ratios)."""
        return self.model_kind != "plain"

    def apply(self, run: RunConfig) -> RunConfig:
        """The base run with this arm's settings; everything else (widths, design, seeds) untouched."""
        model = replace(run.model, kind=self.model_kind,
                        **({"entanglement": self.entanglement} if self.entanglement is not None else {}))
        freeze = tuple(dict.fromkeys((*run.train.freeze, "circuit"))) if self.freeze_circuit else run.train.freeze
        return replace(run, backend=self.backend or run.backend, model=model,
                       train=replace(run.train, noise=self.noise, freeze=freeze))


ARMS: dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm("plain", "plain", None, "classical", "plain U-Net, no bottleneck block"),
        Arm("classical", "classical", None, "classical", "parameter-matched classical middle"),
        Arm("quantum", "quantum", None, "classical", "quantum circuit, exact statevector"),
        Arm("quantum_frozen", "quantum", None, "classical",
            "quantum circuit with its weights fixed at initialisation (random features, trained around)",
            freeze_circuit=True),
        Arm("separable", "quantum", None, "classical",
            "quantum circuit without entangling gates (entanglement = none)", entanglement="none"),
        Arm("quantum_noise", "quantum", None, "quantum",
            "quantum circuit + quantum-generated diffusion noise (training and sampling)"),
        # the noisy device is opt-in: density-matrix simulation of a fake IBM device is slow
        Arm("noisy_device", "quantum", "fake_brisbane", "classical", "quantum circuit on a noisy fake IBM device"),
    )
}

ARM_ORDER = tuple(ARMS)

# Which arm each comparison pits against which (a / b): the first one is the claim under test, the
# controls ask what the quantum arm's result is owed to. Fixed before any cell runs (PROTOCOL.md).
CLAIM_COMPARISON = ("quantum", "classical")
CONTROL_COMPARISONS = (
    ("quantum", "quantum_frozen"),   # does training the circuit matter (vs random features)?
    ("quantum", "separable"),        # does entanglement matter?
    ("quantum", "plain"),            # does the bottleneck block matter at all?
    ("quantum_noise", "quantum"),    # does quantum-generated noise change anything?
)
EXTRA_COMPARISONS = (*CONTROL_COMPARISONS, ("classical", "plain"), ("noisy_device", "quantum"))
