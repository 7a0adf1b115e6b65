"""A run's per-step loss log (CSV: step, loss, seconds): appended while training, cut back on resume."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qgen.fileio import atomic_write_text

LOSS_FIELDS = ("step", "loss", "seconds")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossLog:
    path: Path

    @staticmethod
    def header() -> bytes:
        return (",".join(LOSS_FIELDS) + "\n").encode()

    @contextmanager
    def appender(self) -> Iterator[Callable[[int, float, float], None]]:
        """``append(step, loss, seconds)``: one row per step, flushed at once (a kill loses no logged step)."""
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh)

            def append(step: int, loss: float, seconds: float) -> None:
                writer.writerow([step, f"{loss:.6f}", f"{seconds:.4f}"])
                fh.flush()

            yield append

    def truncate(self, step: int) -> list[int]:
        """Rebuild the log from the rows up to the checkpoint we resume from (later ones will be redone).

        Rows that do not parse (blank, garbled: a kill mid-line, a hand edit) are dropped, and one
        stderr line says which; returns their 1-based line numbers.
        """
        if not self.path.is_file():
            return []
        with open(self.path, newline="", errors="replace") as fh:
            lines = fh.read().splitlines()
        kept, damaged = [], []
        for number, line in enumerate(lines[1:], 2):
            row = _parse_row(line)
            if row is None:
                damaged.append(number)
            elif int(row[0]) <= step:
                kept.append(row)
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(LOSS_FIELDS)
        writer.writerows(kept)  # as they were written: nothing reformatted
        # atomic: a kill during the rewrite must not lose the rows we keep
        atomic_write_text(self.path, out.getvalue())
        if damaged:
            logger.warning(f"qgen: {self.path}: dropped {len(damaged)} damaged row(s) "
                           f"(line{'s' if len(damaged) > 1 else ''} {_ranges(damaged)}); kept {len(kept)} "
                           f"row(s) up to step {step}")
        return damaged

    def rows(self) -> list[dict]:
        with open(self.path) as fh:
            return list(csv.DictReader(fh))

    def total_seconds(self) -> float | None:
        """Sum of per-step compute seconds: the training cost without start-up, across resumes."""
        try:
            return round(sum(float(row["seconds"]) for row in self.rows()), 3)
        except (OSError, KeyError, ValueError):
            return None


def _parse_row(line: str) -> list[str] | None:
    """The fields of one CSV line if they are a (step, loss, seconds) row, else None."""
    try:
        fields = next(csv.reader([line]))
        step, loss, seconds = fields
        int(step), float(loss), float(seconds)
    except (ValueError, StopIteration, csv.Error):
        return None
    return fields


def _ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
