"""The one cost planner: what a command will submit on a backend that spends shots, how many shots,
how much QPU time, and whether that fits the run's shot budget — before anything is submitted.

``qgen train`` and ``qgen sample`` refuse a plan over budget before they start (``Plan.check``),
``qgen sample --dry-run`` prints the same plan, and benchmarks/hardware_route.py prices its settings
with ``sampling_jobs``. It counts the jobs qgen's code submits (journaled.py: one job per primitive
call, or per ``max_pubs_per_job`` PUBs; one PUB per circuit) with the executor's shot model
(qgen.backends.executor_cost), so a plan is what the run's ledger will be charged:

  * a forward of R rows: one job, one PUB of R bindings (all Z readouts from the same shots);
  * a backward of R rows: one job, one PUB of R x 2S bindings, S = the parameterized gates of the
    circuit the estimator runs (the parameter shift moves each one by +-pi/2; readouts add none);
  * a training step: one forward and one backward of the batch's rows;
  * sampling: every model call of every batch chunk is its own forward job (the next call's inputs
    depend on its result);
  * quantum noise: the entropy pool's refill jobs (qgen.noise.refill), for the bits the pool does not
    already hold for the request.

Rows, not images: a per-site design evaluates the circuit at every site of every image
(``ModelConfig.circuit_rows_per_image``). Each job is checked again against the ledger when it is
submitted (journaled.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from qgen.backends.executor_cost import JobPlan, PubCost, executor_jobs
from qgen.backends.ledger import ShotBudget, ShotLedger
from qgen.circuits import build_ansatz
from qgen.diffusion.pipeline import batch_sizes
from qgen.errors import QgenError
from qgen.noise.demand import NoiseBudget, plan_bits
from qgen.noise.factory import pool_dir, refill_shape_for, source_shape
from qgen.noise.refill import pool_state

if TYPE_CHECKING:
    from qgen.backends.base import QuantumBackend
    from qgen.backends.spec import BackendSpec
    from qgen.config import RunConfig
    from qgen.diffusion.schedulers import Scheduler
    from qgen.rundir import RunDir

#: ``JobPlan.usage_source`` of QPU time that IBM Quantum estimated (free ``dry_run`` jobs).
SERVICE_ESTIMATE = "IBM Quantum's usage estimate"
QUANTUM_NOISE = ("quantum", "mixed")


class SamplingRequest(Protocol):
    """What the planner reads of a sampling command's request (``qgen.sampling.SampleRequest``)."""

    n: int
    batch_size: int
    noise: str
    reuse_noise: bool
    shot_budget: int | None


# ------------------------------------------------------------------------- the quantum layer's jobs


def shifted_gates(circuit: Any) -> int:
    """Parameterized gate occurrences of ``circuit``: the shifts of one parameter-shift row."""
    return sum(1 for instruction in circuit.data
               if any(getattr(p, "parameters", None) for p in instruction.operation.params))


def forward_jobs(spec: BackendSpec, rows: int) -> JobPlan:
    return executor_jobs([PubCost(rows, spec.shots_per_binding)], spec)


def gradient_jobs(spec: BackendSpec, rows: int, shifts: int) -> JobPlan:
    return executor_jobs([PubCost(rows * 2 * shifts, spec.shots_per_binding)], spec)


def training_jobs(spec: BackendSpec, circuit: Any, rows: int, steps: int) -> JobPlan:
    """``steps`` training steps of ``rows`` circuit rows: each one forward and one backward."""
    return (forward_jobs(spec, rows) + gradient_jobs(spec, rows, shifted_gates(circuit))).times(steps)


def model_call_jobs(spec: BackendSpec, chunk_rows: Sequence[int], model_calls: int) -> JobPlan:
    """``model_calls`` denoising calls over batch chunks of ``chunk_rows`` rows: one forward job each."""
    per_call = forward_jobs(spec, chunk_rows[0])
    for rows in chunk_rows[1:]:
        per_call = per_call + forward_jobs(spec, rows)
    return per_call.times(model_calls)


def sampling_jobs(spec: BackendSpec, n: int, batch_size: int, model_calls: int, rows_per_image: int = 1) -> JobPlan:
    """The estimator jobs of sampling ``n`` images in batches of ``batch_size`` with ``model_calls``
    model calls per batch, ``rows_per_image`` circuit rows per image."""
    return model_call_jobs(spec, [size * rows_per_image for size in batch_sizes(n, batch_size)], model_calls)


def noise_jobs(spec: BackendSpec, job_shots: Sequence[int]) -> JobPlan:
    """The sampler jobs of the entropy pool's refills: one job of one binding per entry of ``job_shots``
    (the shots the pool asks for; the executor may run more, e.g. twirled)."""
    plan = JobPlan.none()
    for shots in job_shots:
        plan = plan + executor_jobs([PubCost(1, shots)], spec, "sampler")
    return plan


# ------------------------------------------------------------------------------------ command plans


@dataclass(frozen=True)
class Plan:
    """What one command will submit on one backend, and whether it fits the run's shot budget.

    ``estimator``/``noise`` are None where the command submits no such jobs (and both are None on
    a backend that spends no shots); ``bits`` is the quantum noise a sampling command draws, on any
    backend. ``budget`` is what the run's ledger leaves (None: nothing is submitted, nothing read).
    """

    backend: str
    budget: ShotBudget | None = None
    estimator: JobPlan | None = None
    noise: JobPlan | None = None
    bits: NoiseBudget | None = None
    steps: int | None = None        # training: the steps the estimator jobs cover
    service_estimates: int = 0      # free dry_run jobs asked of IBM Quantum for its QPU-time estimate

    @property
    def submits(self) -> bool:
        return self.estimator is not None or self.noise is not None

    @property
    def total(self) -> JobPlan:
        parts = [p for p in (self.estimator, self.noise) if p is not None]
        return sum(parts[1:], parts[0]) if parts else JobPlan.none()

    @property
    def fits(self) -> bool:
        return self.budget is None or self.budget.fits(self.total.executions)

    def check(self) -> None:
        """Refuse (one QgenError line) a plan that would pass the budget."""
        if self.fits:
            return
        if not self.steps:
            self.budget.check(self.total)
        shots, left = self.total.executions, self.budget.remaining
        raise QgenError(f"training plan needs {shots:,} shots ({shots // self.steps:,} per step x {self.steps} "
                        f"steps) but the shot budget of {self.backend} has {left:,} left (over by {shots - left:,}); "
                        "raise shot_budget in backends.toml or train fewer steps")

    def refusal(self) -> str | None:
        """What ``check`` would say, or None."""
        try:
            self.check()
        except QgenError as exc:
            return str(exc)
        return None

    def budget_line(self) -> str:
        """The --dry-run's total: shots, jobs, what the budget leaves and the verdict."""
        total = self.total
        left = "unlimited" if self.budget is None or self.budget.remaining is None else f"{self.budget.remaining:,}"
        verdict = "within budget" if self.fits else "OVER BUDGET: the real run would be refused"
        return (f"total: {total.executions:,} shots in {total.num_jobs:,} jobs; shot budget left on "
                f"{self.backend}: {left}; {verdict}")


def training_plan(cfg: RunConfig, backend: QuantumBackend, run: RunDir | None = None, steps_done: int = 0) -> Plan:
    """The estimator jobs of the training steps still to run (``cfg.train.steps - steps_done``), against
    what ``run``'s ledger leaves (a new run: the configured budget)."""
    spec = backend.spec
    steps = cfg.train.steps - steps_done
    if not backend.spends_shots or cfg.model.kind != "quantum" or steps <= 0:
        return Plan(spec.name)
    circuit = backend.planning_circuit(build_ansatz(cfg.model.ansatz))
    rows = cfg.train.batch_size * cfg.model.circuit_rows_per_image
    return Plan(spec.name, _budget(backend, run, spec.shot_budget),
                estimator=training_jobs(spec, circuit, rows, steps), steps=steps)


def sampling_plan(cfg: RunConfig, backend: QuantumBackend, run: RunDir, request: SamplingRequest,
                  scheduler: Scheduler, channels: int, resume_key: str | None = None, *,
                  service_estimate: bool = False) -> Plan:
    """What sampling ``request`` from ``run`` with ``scheduler`` (timesteps set) submits: the quantum
    layer's forward jobs, the noise pool's refills (``resume_key``: the request's reservation in the
    pool), and the quantum bits it draws. ``service_estimate``: ask IBM Quantum for the QPU time
    (free dry_run jobs; hardware with credentials), else the local usage model."""
    spec = backend.spec
    bits = _noise_bits(backend, request, channels, scheduler) if request.noise in QUANTUM_NOISE else None
    if not backend.spends_shots:
        return Plan(spec.name, bits=bits)
    estimator, estimates = None, 0
    if cfg.model.kind == "quantum":
        estimator = sampling_jobs(spec, request.n, request.batch_size, scheduler.model_calls(),
                                  cfg.model.circuit_rows_per_image)
        if service_estimate:
            estimator, estimates = _with_service_usage(backend, cfg, request, scheduler, estimator)
    noise = _refill_jobs(backend, run, request, bits, resume_key) if bits is not None else None
    limit = request.shot_budget if request.shot_budget is not None else spec.shot_budget
    budget = _budget(backend, run, limit) if estimator is not None or noise is not None else None
    return Plan(spec.name, budget, estimator=estimator, noise=noise, bits=bits, service_estimates=estimates)


def _budget(backend: QuantumBackend, run: RunDir | None, limit: int | None) -> ShotBudget:
    if run is None:
        return ShotBudget(limit)
    return ShotLedger(run, local=backend.local).budget(backend.spec.name, limit)


def _noise_bits(backend: QuantumBackend, request: SamplingRequest, channels: int, scheduler: Scheduler) -> NoiseBudget:
    """The quantum bits the request draws (an upper bound for mixed noise), shots at the nominal yield."""
    width, extraction_yield = source_shape(backend)
    return plan_bits(request.n, channels, scheduler, qubits_per_shot=width, extraction_yield=extraction_yield)


def _refill_jobs(backend: QuantumBackend, run: RunDir, request: SamplingRequest, bits: NoiseBudget,
                 resume_key: str | None) -> JobPlan:
    """The refill jobs the pool will submit (refill.py): the bits it holds for this request are used
    first, and the request's bits are fetched up front."""
    available, observed = pool_state(pool_dir(run, backend), resume_key, request.reuse_noise)
    return noise_jobs(backend.spec, refill_shape_for(backend, observed).plan(bits.bits - available))


def _with_service_usage(backend: QuantumBackend, cfg: RunConfig, request: SamplingRequest, scheduler: Scheduler,
                        job_plan: JobPlan) -> tuple[JobPlan, int]:
    """(``job_plan`` with the service's own QPU-time estimate where it offers one, the dry_run jobs
    asked): IBM hardware with credentials gets one free ``dry_run`` job per batch size; elsewhere the
    local model stays, saying why."""
    if backend.local:
        return replace(job_plan, usage_source="local model; the local service gives no usage estimate"), 0
    chunks = batch_sizes(request.n, request.batch_size)
    try:
        circuit = build_ansatz(cfg.model.ansatz)
        rows = cfg.model.circuit_rows_per_image  # bindings per image: one per site of a per-site design
        per_call = sum(backend.service_usage_estimate(circuit, size * rows) for size in chunks)
    except QgenError as exc:
        return replace(job_plan, usage_source=f"local model; no service estimate: {exc}"), 0
    estimated = replace(job_plan, estimated_seconds=per_call * scheduler.model_calls(), usage_source=SERVICE_ESTIMATE)
    return estimated, len(chunks)
