"""Wall-time estimate for ``--dry-run``: a rough cost model, replaced by measurements once cells finish.

The constants were measured on the 2-core development machine with QGEN_THREADS=1 (shared with
other jobs, so they are on the pessimistic side):
  * a classical training step costs ~15 ms overhead + ~25 ms per 16 images at widths (16, 32, 32),
    scaling with the squared widths;
  * the exact quantum gate adds ~30 ms per call overhead + ~0.06 ms per image per circuit parameter
    (inputs + 2*qubits*layers weights: exact gradients over the batch), i.e. ~70 ms per step at
    8 qubits, 2 layers, batch 16 (measured 106 ms vs 37 ms for the classical gate);
  * quantum-generated noise adds ~15 µs per Gaussian value drawn (Aer sampling + conversion);
  * DDIM sampling costs ~1.5 ms per image per step; evaluation ~5 s per cell.
The noisy-device arm is a guess (density-matrix simulation with shots, ~50x the exact gate).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from qgen.experiment.cells import Cell
from qgen.experiment.config import ExperimentConfig

REFERENCE_WIDTH_COST = 16**2 + 32**2 + 32**2
STEP_OVERHEAD_S = 0.015
STEP_PER_16_IMAGES_S = 0.025
QUANTUM_CALL_S = 0.03
QUANTUM_PER_IMAGE_PARAMETER_S = 0.00006
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


def model_step_seconds(cfg: ExperimentConfig, arm_name: str, model_kind: str, noise: str) -> float:
    m, batch = cfg.model, cfg.train.batch_size
    width_cost = sum(w * w for w in m.widths) / REFERENCE_WIDTH_COST
    step = STEP_OVERHEAD_S + STEP_PER_16_IMAGES_S * batch / 16 * width_cost
    if model_kind == "quantum":
        quantum = QUANTUM_CALL_S + QUANTUM_PER_IMAGE_PARAMETER_S * batch * (m.qubits + 2 * m.qubits * m.layers)
        step += quantum * (NOISY_DEVICE_FACTOR if arm_name == "noisy_device" else 1.0)
    if noise == "quantum":
        step += QUANTUM_NOISE_PER_VALUE_S * batch * PIXELS
    return step


def train_seconds(cfg: ExperimentConfig, cell: Cell) -> float:
    """The training part of the estimate: pure arithmetic (no torch), cheap enough to order a queue by."""
    return model_step_seconds(cfg, cell.arm.name, cell.arm.model_kind, cell.arm.noise) * cfg.train.steps


def estimate_cell(cfg: ExperimentConfig, cell: Cell) -> CellEstimate:
    s = cfg.sampling
    steps = s.make_scheduler(cfg.diffusion.make_schedule()).model_calls()  # the scheduler's count (DDPM: T)
    sample = SAMPLE_PER_IMAGE_STEP_S * s.n * steps
    if cell.arm.model_kind == "quantum":
        # forward passes only (no gradients): one call per batch per step, a third of the per-image cost
        params = cfg.model.qubits + 2 * cfg.model.qubits * cfg.model.layers
        calls = -(-s.n // s.batch_size) * steps
        quantum = QUANTUM_CALL_S * calls + QUANTUM_PER_IMAGE_PARAMETER_S / 3 * params * s.n * steps
        sample += quantum * (NOISY_DEVICE_FACTOR if cell.arm.name == "noisy_device" else 1.0)
    if cell.arm.noise == "quantum":
        sample += QUANTUM_NOISE_PER_VALUE_S * s.n * PIXELS
    return CellEstimate(train_seconds(cfg, cell), sample, EVALUATION_S)


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
