"""``qgen noise-report`` (CLI): fetch bits from a backend and test them, raw and after extraction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from qgen.backends.registry import load_backend
from qgen.errors import QgenError
from qgen.fileio import atomic_write_text, check_writable
from qgen.noise.convert import BITS_PER_GAUSSIAN, bits_to_gaussians
from qgen.noise.extract import default_extractors, extract, nominal_yield
from qgen.noise.report import format_report, noise_report
from qgen.noise.seeds import SeedChain
from qgen.noise.factory import bit_source_for


def run_noise_report(backend_name: str, backends_file: Path | None, *, gaussians: int, seed: int,
                     local: bool = False, json_out: Path | None = None) -> bool:
    """Print raw and extracted reports; True when the bits that qgen would use pass."""
    if json_out is not None:
        check_json_destination(Path(json_out))  # before the report: a minute of shots, then a failed write
    backend = load_backend(backend_name, backends_file, local=local)
    try:  # a Session/Batch the backend opens is closed on every way out
        return _report(backend, gaussians=gaussians, seed=seed, json_out=json_out)
    finally:
        backend.close()


def check_json_destination(path: Path) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise QgenError(f"--json {path}: the folder {folder} does not exist; create it or choose another path")
    check_writable(folder, f"the folder of --json {path}")


def _report(backend, *, gaussians: int, seed: int, json_out: Path | None) -> bool:
    source, needs_extraction = bit_source_for(backend)
    extractors = default_extractors(seed=seed)
    need_raw = math.ceil(1.2 * gaussians * BITS_PER_GAUSSIAN / nominal_yield(extractors))
    shots = source.shots_for_bits(need_raw)
    chain = SeedChain(seed)
    raw_parts = []
    while sum(p.size for p in raw_parts) < need_raw:
        batch = source.fetch(min(shots, source.max_shots_per_job), seed=chain.next() if source.seeded else None)
        raw_parts.append(batch.bits)
    import numpy as np

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
    click.echo(f"backend {backend.spec.name}: {reports['shots']} shots from {source.backend_name}")
    click.echo(format_report(reports["raw"], "raw bits"))
    click.echo(format_report(reports["extracted"], "after von Neumann + Toeplitz"))
    click.echo(f"qgen uses the {reports['qgen_uses']} bits for this backend")
    if json_out:
        atomic_write_text(json_out, json.dumps(reports, indent=2, default=str) + "\n")
    return bool(reports[reports["qgen_uses"]]["pass"])
