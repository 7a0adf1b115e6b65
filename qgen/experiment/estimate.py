"""Wall-time estimate for ``--dry-run``: a rough cost model, replaced by measurements once cells finish.

The constants were measured on the 2-core development machine with QGEN_THREADS=1 (shared with
other jobs, so they are on the pessimistic side):
  * a classical training step costs ~15 ms overhead + ~25 ms per 16 images at widths (16, 32, 32),
    scaling with the squared widths;
  * the exact circuit adds ~5 ms per call + ~1.4 us per circuit row per circuit parameter (inputs +
    2*qubits*layers weights: forward and adjoint gradients over the rows): measured 57 ms for the
    784 rows of a ``site`` step (49 sites x 16 images, 8 qubits, 3 layers; forward 19 ms, backward
    38 ms), against 91 ms for the whole classical step (``benchmarks/bench_train_step.py``). A
    per-site design binds the circuit at every site: ``ModelConfig.circuit_rows_per_image`` rows per
    image (49 for ``site``, 16 for ``patch``). (The constants before 2026-12 were measured at 16 rows,
    where a call's overhead dominated, and overestimated a ``site`` cell ~20x.)
  * quantum-generated noise adds ~15 µs per Gaussian value drawn (Aer sampling + conversion);
  * sampling costs ~1.5 ms per image per model call at widths (16, 32, 32) (scaling like training),
    plus the circuit's forward pass (a third of its per-row training cost);
  * in-training validation samples ``eval_samples`` images every ``eval_every`` steps;
  * the dependence ratios redraw the samples once as trained and once per ablation (3 draws for a
    global design, whose content ablations are its removal ones; 5 for a per-site design);
  * evaluation (feature net cached) ~5 s per cell.
The noisy-device arm is a guess (density-matrix simulation with shots, ~50x the exact circuit).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from qgen.experiment.cells import Cell, run_config
from qgen.experiment.config import ExperimentConfig
from qgen.models.bottlenecks import DESIGNS
from qgen.models.config import ModelConfig

REFERENCE_WIDTH_COST = 16**2 + 32**2 + 32**2
STEP_OVERHEAD_S = 0.015
STEP_PER_16_IMAGES_S = 0.025
QUANTUM_CALL_S = 0.005
QUANTUM_PER_ROW_PARAMETER_S = 1.4e-6
QUANTUM_NOISE_PER_VALUE_S = 15e-6
NOISY_DEVICE_FACTOR = 50.0
SAMPLE_PER_IMAGE_STEP_S = 0.0015
EVALUATION_S = 5.0
PIXELS = 28 * 28


@dataclass(frozen=True)
class CellEstimate:
    train_s: float
    sample_s: float
    eval_s: float

    @property
    def total_s(self) -> float:
        return self.train_s + self.sample_s + self.eval_s


def _width_cost(model: ModelConfig) -> float:
    return sum(w * w for w in model.widths) / REFERENCE_WIDTH_COST


def _circuit_parameters(model: ModelConfig) -> int:
    return model.qubits + 2 * model.qubits * model.layers


def _device_factor(cell: Cell) -> float:
    return NOISY_DEVICE_FACTOR if cell.arm.name == "noisy_device" else 1.0


def model_step_seconds(cfg: ExperimentConfig, cell: Cell) -> float:
    """One training step of the cell's model (its arm's design: rows per image, qubits, layers)."""
    model, batch = run_config(cfg, cell).model, cfg.train.batch_size
    step = STEP_OVERHEAD_S + STEP_PER_16_IMAGES_S * batch / 16 * _width_cost(model)
    if model.kind == "quantum":
        rows = batch * model.circuit_rows_per_image
        step += (QUANTUM_CALL_S + QUANTUM_PER_ROW_PARAMETER_S * rows * _circuit_parameters(model)) * _device_factor(cell)
    if cell.arm.noise == "quantum":
        step += QUANTUM_NOISE_PER_VALUE_S * batch * PIXELS
    return step


def sampling_seconds(cfg: ExperimentConfig, cell: Cell, n: int, model_calls: int, batch_size: int,
                     exact: bool = False) -> float:
    """``n`` images with ``model_calls`` network evaluations each, in batches of ``batch_size``
    (``exact``: on the exact backend whatever the arm's)."""
    model = run_config(cfg, cell).model
    seconds = SAMPLE_PER_IMAGE_STEP_S * _width_cost(model) * n * model_calls
    if model.kind == "quantum":
        # forward passes only (no gradients): one call per batch per step, a third of the per-row cost
        calls = -(-n // batch_size) * model_calls
        rows = n * model.circuit_rows_per_image * model_calls
        seconds += (QUANTUM_CALL_S * calls + QUANTUM_PER_ROW_PARAMETER_S / 3 * _circuit_parameters(model) * rows) \
            * (1.0 if exact else _device_factor(cell))
    return seconds


def train_seconds(cfg: ExperimentConfig, cell: Cell) -> float:
    """The training part of the estimate, in-training validation included: pure arithmetic (no
    torch), cheap enough to order a queue by."""
    tc = cfg.train
    seconds = model_step_seconds(cfg, cell) * tc.steps
    if tc.eval_every:
        evaluations = tc.steps // tc.eval_every
        seconds += evaluations * sampling_seconds(cfg, cell, tc.eval_samples, tc.eval_steps, cfg.sampling.batch_size)
    return seconds


def estimate_cell(cfg: ExperimentConfig, cell: Cell) -> CellEstimate:
    s = cfg.sampling
    calls = s.make_scheduler(cfg.diffusion.make_schedule()).model_calls()  # the scheduler's count (DDPM: T)
    sample = sampling_seconds(cfg, cell, s.n, calls, s.batch_size)
    if cell.arm.noise == "quantum":
        sample += QUANTUM_NOISE_PER_VALUE_S * s.n * PIXELS
    evaluate = EVALUATION_S
    if cfg.dependence and cell.arm.gated:
        # redrawn on the exact backend with classical noise: as trained + each distinct ablation
        draws = 3 if DESIGNS[cfg.model.bottleneck].sites() == 1 else 5
        evaluate += draws * sampling_seconds(cfg, cell, s.n, calls, s.batch_size, exact=True)
    return CellEstimate(train_seconds(cfg, cell), sample, evaluate)


def measured_seconds_per_arm(state_cells: dict[str, dict]) -> dict[str, float]:
    """Mean measured (train + sample + evaluate) seconds of finished cells, per arm."""
    totals: dict[str, list[float]] = defaultdict(list)
    for cell_id, record in state_cells.items():
        if record.get("status") == "done" and record.get("trainings") == 1:  # resumed cells under-count
            arm = cell_id.split("_")[1:-2]
            total = record["train_wall_seconds"] + (record.get("sample_seconds") or 0) + (record.get("eval_seconds") or 0)
            totals["_".join(arm)].append(total)
    return {arm: sum(v) / len(v) for arm, v in totals.items() if v}


def human_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
