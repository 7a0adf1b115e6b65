"""How the entropy pool sizes its refill jobs, shared by the pool and by the plans (``--dry-run``, the
budget check before sampling), so a plan is what the pool will submit.

A refill job asks for the missing bits plus 10 % headroom (extractor yield fluctuates, and one more
job costs more than spare bits), never fewer than two extractor output blocks (or it yields nothing),
never fewer than ``refill_shots`` (per-job overhead favours few big jobs) and never more than a job
may hold. The plan assumes each job extracts at the pool's observed yield (nominal before its first
job); one that falls short is followed by one more refill, which the run's ledger checks again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RefillShape:
    bits_per_shot: int        # raw bits one shot measures
    yield_per_raw: float      # extracted bits per raw bit
    largest_block: int        # the extractors' largest output block
    refill_shots: int         # smallest job
    max_shots_per_job: int

    def needed_shots(self, missing_bits: int) -> int:
        """Shots that measure ``missing_bits`` extracted bits with the headroom (before the job limits)."""
        missing = max(missing_bits, 2 * self.largest_block)
        return math.ceil(math.ceil(1.1 * missing / self.yield_per_raw) / self.bits_per_shot)

    def job_shots(self, missing_bits: int) -> int:
        """The shots of the next refill job when ``missing_bits`` are still missing."""
        return min(max(self.needed_shots(missing_bits), self.refill_shots), self.max_shots_per_job)

    def plan(self, missing_bits: int) -> list[int]:
        """The shots of each refill job that fetches ``missing_bits`` (none if none are missing)."""
        jobs: list[int] = []
        produced = 0
        while produced < missing_bits:
            shots = self.job_shots(missing_bits - produced)
            jobs.append(shots)
            produced += max(1, math.floor(shots * self.bits_per_shot * self.yield_per_raw))
        return jobs


def pool_state(directory: Path, resume_key: str | None = None, reuse: bool = False) -> tuple[int, float | None]:
    """(bits the pool in ``directory`` would hand this request before refilling, its observed yield or
    None), read without writing: what ``EntropyPool.open`` would find (see its reservations)."""
    meta_path = Path(directory) / "noise_pool.json"
    if not meta_path.is_file():
        return 0, None
    meta = json.loads(meta_path.read_text())
    cursor = 0 if reuse else int(meta.get("offset", 0))
    if resume_key is not None and not reuse:
        for entry in reversed(meta.get("reservations", [])):
            if entry.get("status") == "open" and entry.get("key") == resume_key:
                cursor = int(entry["start"])
                break
    raw = sum(job["raw_bits"] for job in meta.get("jobs", []))
    out = sum(job["bits_out"] for job in meta.get("jobs", []))
    return int(meta.get("bits_total", 0)) - cursor, (out / raw if raw and out else None)
