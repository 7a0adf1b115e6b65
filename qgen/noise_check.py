"""``qgen noise-report``: fetch bits from a backend and test them, raw and after extraction."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qgen.backends.registry import load_backend
from qgen.commands import NoiseReportCommand
from qgen.errors import QgenError
from qgen.fileio import atomic_write_text, check_writable
from qgen.noise.convert import BITS_PER_GAUSSIAN, bits_to_gaussians
from qgen.noise.extract import default_extractors, extract, nominal_yield
from qgen.noise.factory import bit_source_for
from qgen.noise.report import format_report, noise_report
from qgen.noise.seeds import SeedChain


@dataclass(frozen=True)
class NoiseReport:
    """The statistical checks of the raw and the extracted bits (``reports``, as the JSON file has
    them), the report as text (``lines``), and whether the bits qgen would use pass (``passed``)."""

    reports: dict
    lines: list[str]

    @property
    def passed(self) -> bool:
        return bool(self.reports[self.reports["qgen_uses"]]["pass"])


def check_noise(command: NoiseReportCommand) -> NoiseReport:
    """The report of ``command.backend``'s bits; written to ``command.json_out`` too when given."""
    if command.json_out is not None:
        check_json_destination(command.json_out)  # before the report: a minute of shots, then a failed write
    backend = load_backend(command.backend, command.backends_file, local=command.local)
    try:  # a Session/Batch the backend opens is closed on every way out
        report = _report(backend, gaussians=command.gaussians, seed=command.seed)
    finally:
        backend.close()
    if command.json_out is not None:
        atomic_write_text(command.json_out, json.dumps(report.reports, indent=2, default=str) + "\n")
    return report


def check_json_destination(path: Path) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise QgenError(f"--json {path}: the folder {folder} does not exist; create it or choose another path")
    check_writable(folder, f"the folder of --json {path}")


def _report(backend, *, gaussians: int, seed: int) -> NoiseReport:
    source, needs_extraction = bit_source_for(backend)
    extractors = default_extractors(seed=seed)
    need_raw = math.ceil(1.2 * gaussians * BITS_PER_GAUSSIAN / nominal_yield(extractors))
    shots = source.shots_for_bits(need_raw)
    chain = SeedChain(seed)
    raw_parts = []
    while sum(p.size for p in raw_parts) < need_raw:
        batch = source.fetch(min(shots, source.max_shots_per_job), seed=chain.next() if source.seeded else None)
        raw_parts.append(batch.bits)
    raw = np.concatenate(raw_parts)
    extracted = extract(raw, extractors)
    reports = {
        "backend": backend.spec.name,
        "source": source.backend_name,
        "shots": int(raw.size // source.bits_per_shot),
        "raw": noise_report(bits=raw, samples=bits_to_gaussians(raw[: gaussians * BITS_PER_GAUSSIAN])),
        "extracted": noise_report(bits=extracted,
                                  samples=bits_to_gaussians(extracted[: gaussians * BITS_PER_GAUSSIAN])),
        "qgen_uses": "extracted" if needs_extraction else "raw",
    }
    lines = [f"backend {backend.spec.name}: {reports['shots']} shots from {source.backend_name}",
             format_report(reports["raw"], "raw bits"),
             format_report(reports["extracted"], "after von Neumann + Toeplitz"),
             f"qgen uses the {reports['qgen_uses']} bits for this backend"]
    return NoiseReport(reports, lines)
