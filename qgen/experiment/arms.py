"""The arms of the experiment: what differs between them, and nothing else.

Every arm shares the U-Net, optimizer, steps, batch, data subset and seeds of its cell; an arm
only picks the bottleneck gate, the backend that evaluates it and where the diffusion noise comes
from. That is what makes the quantum-vs-classical differences *paired* comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    name: str
    model_kind: str          # ModelConfig.kind
    backend: str | None      # None: the experiment's exact backend (statevector)
    noise: str               # forward-process noise for training and sampling
    description: str


ARMS: dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm("plain", "plain", None, "classical", "plain U-Net, no bottleneck gate"),
        Arm("classical", "classical", None, "classical", "parameter-matched classical gate"),
        Arm("quantum", "quantum", None, "classical", "quantum gate, exact statevector"),
        Arm("quantum_noise", "quantum", None, "quantum",
            "quantum gate + quantum-generated diffusion noise (training and sampling)"),
        # the noisy device is opt-in: density-matrix simulation of a fake IBM device is slow
        Arm("noisy_device", "quantum", "fake_brisbane", "classical", "quantum gate on a noisy fake IBM device"),
    )
}

ARM_ORDER = tuple(ARMS)

# Which arm each comparison pits against which; the first one is the claim under test.
CLAIM_COMPARISON = ("quantum", "classical")
EXTRA_COMPARISONS = (("quantum_noise", "quantum"), ("classical", "plain"), ("noisy_device", "quantum"))
