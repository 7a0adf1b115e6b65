"""Everything written to ``<out>/`` from the finished cells: summary.csv, tables, plots, grids, report.

Rebuilt from the cell folders on every invocation (also after --max-cells), so the outputs always
describe exactly the cells that are finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qgen.experiment.cells import CELL_METRICS, Cell
from qgen.experiment.config import ExperimentConfig
from qgen.experiment.figures import plot_metrics_vs_n, save_arm_grids
from qgen.experiment.report import claim_sizes, pair_datasets, report_markdown, tables_markdown, write_text
from qgen.experiment.arms import CLAIM_COMPARISON
from qgen.experiment.summary import collect_rows, write_summary_csv
from qgen.experiment.verdict import Verdict, decide


@dataclass(frozen=True)
class OutputFiles:
    summary: Path
    tables: Path
    report: Path
    plots: list[Path]
    grids: list[Path]
    verdict: Verdict


def _environments(out: Path, cells: list[Cell]) -> list[dict]:
    found = []
    for cell in cells:
        path = cell.directory(out) / CELL_METRICS
        if path.is_file():
            found.append(json.loads(path.read_text()).get("cell", {}).get("environment") or {})
    return found


def write_outputs(cfg: ExperimentConfig, cells: list[Cell], out: Path, *, failed: list[str],
                  preset: str | None) -> OutputFiles:
    out = Path(out)
    rows = collect_rows(out, cells)
    summary = out / "summary.csv"
    write_summary_csv(rows, summary)
    tables = out / "tables.md"
    write_text(tables, tables_markdown(cfg, rows))
    plots = [plot_metrics_vs_n(rows, d.label, cfg.arms, cfg.sizes, out / "plots" / f"{d.label}.png")
             for d in cfg.datasets if any(r["dataset"] == d.label for r in rows)]
    grids = save_arm_grids(out, rows, out / "grids")
    verdict = decide(rows, datasets=pair_datasets(cfg, *CLAIM_COMPARISON), sizes=claim_sizes(cfg),
                     margin=cfg.equivalence_margin)
    report = out / "report.md"
    write_text(report, report_markdown(cfg, rows, verdict, out=out, n_cells=len(cells), failed=failed,
                                       preset=preset, environments=_environments(out, cells)))
    return OutputFiles(summary, tables, report, plots, grids, verdict)
