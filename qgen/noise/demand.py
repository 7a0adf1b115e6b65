"""How many quantum bits a sampling run draws, and the nominal shots that measure them — before
spending any of them.

How many noise tensors a run draws is the scheduler's answer (``Scheduler.noise_draws``); this
module only turns draws into Gaussians, bits and shots. The refill jobs that fetch the bits on a
backend that spends shots, and whether they fit the run's budget, are the planner's (qgen.planner).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from qgen.errors import QgenError
from qgen.noise.convert import BITS_PER_GAUSSIAN
from qgen.noise.bit_source import DEFAULT_MAX_SHOTS_PER_JOB

if TYPE_CHECKING:
    from qgen.diffusion.schedulers import Scheduler


@dataclass(frozen=True)
class NoiseBudget:
    n_samples: int
    channels: int
    size: int
    steps: int
    sampler: str
    eta: float
    draws_per_sample: int
    gaussians: int
    bits_per_gaussian: int
    bits: int                 # extracted bits the pool must hand out
    extraction_yield: float   # extracted bits per raw measured bit
    raw_bits: int
    qubits_per_shot: int
    shots: int
    max_shots_per_job: int
    jobs: int

    def summary(self) -> str:
        return (f"{self.n_samples} x {self.channels}x{self.size}x{self.size} samples, "
                f"{self.sampler} {self.steps} steps (eta={self.eta}): {self.draws_per_sample} noise "
                f"draw(s)/sample = {self.gaussians:,} Gaussians x {self.bits_per_gaussian} bits = "
                f"{self.bits:,} bits; at yield {self.extraction_yield:g}: {self.raw_bits:,} raw bits "
                f"= {self.shots:,} shots of {self.qubits_per_shot} qubits in {self.jobs} job(s) "
                f"of <= {self.max_shots_per_job:,} shots")

    def as_dict(self) -> dict:
        return asdict(self)


def plan_bits(n_samples: int, channels: int, scheduler: Scheduler, size: int = 28, *, qubits_per_shot: int = 127,
              max_shots_per_job: int = DEFAULT_MAX_SHOTS_PER_JOB, extraction_yield: float = 1.0,
              bits_per_gaussian: int = BITS_PER_GAUSSIAN) -> NoiseBudget:
    """Plan the quantum noise of ``n_samples`` images sampled with ``scheduler`` (timesteps set).

    ``extraction_yield`` is e.g. 0.125 for VN+Toeplitz(0.5).
    """
    for name, value in (("n_samples", n_samples), ("channels", channels), ("size", size),
                        ("qubits_per_shot", qubits_per_shot), ("max_shots_per_job", max_shots_per_job)):
        if value < 1:
            raise QgenError(f"{name} must be >= 1, got {value}")
    if not 0 < extraction_yield <= 1:
        raise QgenError(f"extraction_yield must be in (0, 1], got {extraction_yield}")
    draws = scheduler.noise_draws()
    steps, sampler, eta = scheduler.model_calls(), scheduler.name, float(scheduler.describe().get("eta", 0.0))
    gaussians = n_samples * channels * size * size * draws
    bits = gaussians * bits_per_gaussian
    raw_bits = math.ceil(bits / extraction_yield)
    shots = math.ceil(raw_bits / qubits_per_shot)
    return NoiseBudget(n_samples=n_samples, channels=channels, size=size, steps=steps,
                       sampler=sampler, eta=eta, draws_per_sample=draws, gaussians=gaussians,
                       bits_per_gaussian=bits_per_gaussian, bits=bits,
                       extraction_yield=extraction_yield, raw_bits=raw_bits,
                       qubits_per_shot=qubits_per_shot, shots=shots,
                       max_shots_per_job=max_shots_per_job, jobs=math.ceil(shots / max_shots_per_job))
