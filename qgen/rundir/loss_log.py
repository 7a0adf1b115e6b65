"""A run's per-step loss log (CSV: step, loss, seconds): appended while training, cut back on resume."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qgen.fileio import atomic_write_text

LOSS_FIELDS = ("step", "loss", "seconds")


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

    def truncate(self, step: int) -> None:
        """Drop loss rows logged after the checkpoint we resume from (they will be redone)."""
        if not self.path.is_file():
            return
        with open(self.path) as fh:
            rows = list(csv.reader(fh))
        if not rows:
            return
        header, body = rows[0], rows[1:]
        kept = [r for r in body if int(r[0]) <= step]
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(kept)
        # atomic: a kill during the rewrite must not lose the rows we keep
        atomic_write_text(self.path, out.getvalue())

    def rows(self) -> list[dict]:
        with open(self.path) as fh:
            return list(csv.DictReader(fh))

    def total_seconds(self) -> float | None:
        """Sum of per-step compute seconds: the training cost without start-up, across resumes."""
        try:
            return round(sum(float(row["seconds"]) for row in self.rows()), 3)
        except (OSError, KeyError, ValueError):
            return None
