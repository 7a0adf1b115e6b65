"""The progress file ``<out>/state.json``: what each cell has done, how long it took, and why it failed.

The files in each cell folder stay authoritative (``metrics.json`` present = cell done; the run
folder's checkpoints = training progress); this file adds what the folders cannot tell: how many
times a cell was trained or resumed, the wall time spent, and errors. Written atomically after
every change, so an interrupt at any moment leaves a readable file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from qgen.fileio import write_json

STATE_FILE = "state.json"
# "running": submitted to a Ray worker (the driver sees no phases there)
CELL_STATUSES = ("pending", "running", "training", "sampling", "evaluating", "done", "failed", "interrupted")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class ExperimentState:
    path: Path
    data: dict = field(default_factory=dict)

    @classmethod
    def open(cls, out: Path) -> ExperimentState:
        path = Path(out) / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            # a missing file is a new experiment; an unreadable one is rebuilt from the cell folders
            data = {}
        data.setdefault("created", _now())
        data.setdefault("status", "created")
        data.setdefault("invocations", 0)
        data.setdefault("cells", {})
        return cls(path, data)

    def cell(self, cell_id: str) -> dict:
        return self.data["cells"].setdefault(cell_id, {
            "status": "pending", "trainings": 0, "train_wall_seconds": 0.0,
            "sample_seconds": None, "eval_seconds": None, "run_dir": None, "error": None,
        })

    def update_cell(self, cell_id: str, **fields) -> None:
        record = self.cell(cell_id)
        record.update(fields, updated=_now())
        self.save()

    def add_train_time(self, cell_id: str, seconds: float) -> None:
        record = self.cell(cell_id)
        record["train_wall_seconds"] = round(record["train_wall_seconds"] + seconds, 3)
        self.save()

    def set_status(self, status: str) -> None:
        self.data["status"] = status
        self.save()

    def begin_invocation(self) -> None:
        self.data["invocations"] += 1
        self.data["status"] = "running"
        self.save()

    def save(self) -> None:
        self.data["updated"] = _now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)
