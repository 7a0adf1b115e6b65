"""What the quantum layer's calls cost on a backend that spends shots: the planner behind the
training budget check, ``qgen sample``'s check and ``--dry-run``.

It counts the jobs qgen's code submits (journaled.py: one job per primitive call, one PUB per
circuit) with the executor's shot model (budget.py), so the plan is what the ledger will be
charged:

  * a forward of R rows: one job, one PUB of R bindings (all Z readouts from the same shots);
  * a backward of R rows: one job, one PUB of R x 2S bindings, S = the parameterized gates of the
    circuit the estimator runs (the parameter shift moves each one by +-pi/2; readouts add none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qgen.backends.budget import JobPlan, PubCost, plan_for_spec


def shifted_gates(circuit: Any) -> int:
    """Parameterized gate occurrences of ``circuit``: the shifts of one parameter-shift row."""
    return sum(1 for instruction in circuit.data
               if any(getattr(p, "parameters", None) for p in instruction.operation.params))


def forward_plan(spec: Any, rows: int) -> JobPlan:
    return plan_for_spec([PubCost(rows, spec.shots_per_binding)], spec)


def gradient_plan(spec: Any, rows: int, shifts: int) -> JobPlan:
    return plan_for_spec([PubCost(rows * 2 * shifts, spec.shots_per_binding)], spec)


def training_plan(spec: Any, circuit: Any, batch_size: int, steps: int) -> JobPlan:
    """``steps`` training steps: each one forward and one backward of the batch."""
    return (forward_plan(spec, batch_size) + gradient_plan(spec, batch_size, shifted_gates(circuit))).times(steps)


def sampling_plan(spec: Any, chunks: Sequence[int], model_calls: int) -> JobPlan:
    """``model_calls`` denoising calls over every batch chunk: one forward job each."""
    per_call = forward_plan(spec, chunks[0])
    for size in chunks[1:]:
        per_call = per_call + forward_plan(spec, size)
    return per_call.times(model_calls)


def noise_plan(spec: Any, job_shots: Sequence[int]) -> JobPlan:
    """The sampler jobs of the entropy pool's refills: one job of one binding per entry of ``job_shots``
    (the shots the pool asks for; the executor may run more, e.g. twirled)."""
    plan = JobPlan(jobs=(), estimated_seconds=0.0)
    for shots in job_shots:
        plan = plan + plan_for_spec([PubCost(1, shots)], spec, "sampler")
    return plan
