"""The one list of samplers (``qgen sample --sampler``) and how to build one by name.

Kept apart from the scheduler classes because the few-step solvers (``dpm_solver``) subclass
``Scheduler``: a registry that imports every scheduler module cannot live in one of them.
"""

from __future__ import annotations

from qgen.diffusion.dpm_solver import DPMSolverScheduler, UniPCScheduler
from qgen.diffusion.schedulers import DDIMScheduler, DDPMScheduler, Scheduler
from qgen.diffusion.schedules import NoiseSchedule
from qgen.errors import QgenError

SCHEDULERS: dict[str, type[Scheduler]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpm": DPMSolverScheduler,      # DPM-Solver++(2M): ~DDIM-50 quality in 10 calls
    "unipc": UniPCScheduler,
}


def scheduler_class(name: str) -> type[Scheduler]:
    try:
        return SCHEDULERS[name]
    except KeyError:
        raise QgenError(f"unknown sampler {name!r}; choose one of {', '.join(SCHEDULERS)}") from None


def make_scheduler(name: str, schedule: NoiseSchedule, *, steps: int | None = None, **options) -> Scheduler:
    """A scheduler by name with its timesteps set; options it does not read (DDPM and eta) are ignored."""
    cls = scheduler_class(name)
    scheduler = cls(schedule, **{k: v for k, v in options.items() if k in cls.options})
    scheduler.set_timesteps(steps)
    return scheduler
