"""A run's in-training quality log (CSV): one row per evaluation, cut back on resume like the loss log.

Rows: step, validation FLD, copy fraction, the floor and memorizer baselines it is read against,
a one-word reading, the CPU seconds the evaluation took (so its cost is on record), and the CPU seconds
training had spent by then (so quality can be read against compute, across resumes).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from qgen.fileio import atomic_write_text

QUALITY_FIELDS = ("step", "fld", "copy_fraction", "floor", "memorizer", "reading", "seconds", "train_cpu_seconds")


@dataclass(frozen=True)
class QualityLog:
    path: Path

    def append(self, row: list) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(QUALITY_FIELDS)
            writer.writerow(row)

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as fh:
            return [r for r in csv.DictReader(fh) if _parses(r)]

    def truncate(self, step: int) -> None:
        """Drop evaluations after the checkpoint we resume from (they will be redone)."""
        if not self.path.is_file():
            return
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, QUALITY_FIELDS)
        writer.writeheader()
        writer.writerows(r for r in self.rows() if int(r["step"]) <= step)
        atomic_write_text(self.path, out.getvalue())


def _parses(row: dict) -> bool:
    try:
        int(row["step"])
        float(row["fld"])
        return True
    except (KeyError, TypeError, ValueError):
        return False  # a row torn by a kill mid-write: skipped, and dropped at the next truncate
