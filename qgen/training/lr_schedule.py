"""Learning-rate schedules as pure functions of the step: linear warm-up, then constant or cosine decay.

A function of the step (not a stateful torch scheduler) makes a resumed run bit-identical to an
uninterrupted one without saving scheduler state: the rate at step k is always the same number.
"""

from __future__ import annotations

import math

from qgen.errors import QgenError

LR_SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, total_steps: int, *, warmup: int = 0, schedule: str = "constant",
              final_fraction: float = 0.0) -> float:
    """Multiplier of the peak learning rate for optimizer step ``step`` (0-based)."""
    if schedule not in LR_SCHEDULES:
        raise QgenError(f"unknown lr schedule {schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
