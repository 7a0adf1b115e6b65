"""What an invocation will do: which cells are done, partly trained or pending, and how long the rest takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qgen.experiment.cells import Cell, cell_is_done, checkpoint_step, find_run_dir
from qgen.experiment.config import ExperimentConfig
from qgen.experiment.estimate import estimate_cell, human_duration, measured_seconds_per_arm


@dataclass(frozen=True)
class CellPlan:
    cell: Cell
    status: str          # "done", "resume at step k", "pending"
    remaining_s: float   # estimated seconds still to spend on it


def plan_cells(cfg: ExperimentConfig, cells: list[Cell], out: Path, state_cells: dict[str, dict]) -> list[CellPlan]:
    measured = measured_seconds_per_arm(state_cells)
    plans = []
    for cell in cells:
        estimate = estimate_cell(cfg, cell)
        total = measured.get(cell.arm.name, estimate.total_s)
        if cell_is_done(out, cell):
            plans.append(CellPlan(cell, "done", 0.0))
            continue
        run_dir = find_run_dir(cell.directory(out))
        step = checkpoint_step(run_dir) if run_dir is not None else None
        if step:
            left = max(0.0, 1 - step / cfg.train.steps)
            train_share = estimate.train_s / estimate.total_s
            plans.append(CellPlan(cell, f"resume at step {step}", total * (1 - train_share * (1 - left))))
        else:
            plans.append(CellPlan(cell, "pending", total))
    return plans


def plan_lines(cfg: ExperimentConfig, plans: list[CellPlan], max_cells: int | None, parallel: int = 1) -> list[str]:
    todo = [p for p in plans if p.status != "done"]
    chosen = todo if max_cells is None else todo[:max_cells]
    lines = [f"{'cell':<40} {'status':<20} estimate"]
    lines += [f"{p.cell.id:<40} {p.status:<20} {human_duration(p.remaining_s) if p.status != 'done' else '-'}"
              for p in plans]
    per_arm: dict[str, float] = {}
    for p in chosen:
        per_arm[p.cell.arm.name] = per_arm.get(p.cell.arm.name, 0.0) + p.remaining_s
    lines.append("")
    lines.append(f"{len(plans)} cells: {len(plans) - len(todo)} done, {len(todo)} to run"
                 + (f" (this invocation: {len(chosen)}, --max-cells {max_cells})" if max_cells is not None else ""))
    if not per_arm:
        lines.append("nothing left to run")
        return lines
    total = sum(per_arm.values())
    lines.append("estimated time: " + ", ".join(f"{arm} {human_duration(s)}" for arm, s in per_arm.items())
                 + f"; total {human_duration(total)} CPU (one thread per cell; rough: 2-core CPU, QGEN_THREADS=1; "
                 "refined from measured cells on resume)")
    if parallel > 1:
        lines.append(f"with {parallel} cells at a time: about {human_duration(total / parallel)} of wall time")
    return lines
