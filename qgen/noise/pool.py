"""An on-disk pool of extracted quantum bits, so costly hardware shots are fetched once, in big jobs.

Layout of a pool directory:
* ``noise_pool.npz``  — ``bits`` (packed uint8) and ``n_bits``.
* ``noise_pool.json`` — provenance: source (backend, circuits as QASM 3), extractors, seed chain,
  every job (id, shots, seed, raw/extracted bit counts), and ``offset``: how many bits were handed out.

Rules, in order of importance:
1. A bit is handed out once. ``offset`` is saved before ``take`` returns, so a crash can waste bits
   but never replay them. Replaying from bit 0 happens only when the caller opens with ``reuse=True``.
   The one exception is a *reservation*: a command that opens the pool with a ``resume_key`` (e.g.
   ``qgen sample`` with its request) records where it started; if it is interrupted and the same
   request comes again, it starts there again — its bits produced nothing, and the same x_T lets its
   journaled hardware jobs be reused. A reservation ends when ``complete()`` is called, and any newer
   command (another key) closes older open reservations, so bits never pass to a different request.
2. The pool never falls back to pseudo-random numbers: when bits run out it refills from its quantum
   source within ``shot_budget``, or raises a ``QgenError`` with bits needed vs available.
3. Every write is atomic (temp file + ``os.replace``); the .npz is written before the .json that
   commits it, so a crash between the two leaves the old, consistent pool.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qgen.errors import QgenError
from qgen.fileio import atomic_write
from qgen.noise.extract import (
    Extractor,
    ToeplitzExtractor,
    VonNeumannExtractor,
    default_extractors,
    describe_extractors,
    extract,
    nominal_yield,
)
from qgen.noise.pool_files import read_pool_files
from qgen.noise.seeds import SeedChain
from qgen.noise.bit_source import QuantumBitSource
from qgen.noise.refill import RefillShape

BITS_FILE = "noise_pool.npz"
META_FILE = "noise_pool.json"
FORMAT = "qgen.noise_pool/1"
#: Smallest job a refill submits: per-job overhead (queueing on hardware) favours few big jobs.
DEFAULT_REFILL_SHOTS = 4096


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def extractor_from_description(desc: dict) -> Extractor:
    if desc["name"] == "von_neumann":
        return VonNeumannExtractor()
    if desc["name"] == "toeplitz":
        return ToeplitzExtractor(ratio=desc["ratio"], block_bits=desc["block_bits"], seed=desc["seed"])
    raise QgenError(f"noise pool names an unknown extractor {desc['name']!r}")



def _reserve(reservations: list[dict], key: str, offset: int) -> tuple[dict, int]:
    """(the reservation for ``key``, where to start): an open one with this key resumes at its start;
    otherwise older open ones are closed and a new one starts at the high-water ``offset``."""
    for entry in reversed(reservations):
        if entry["status"] == "open" and entry["key"] == key:
            entry["resumed"] = entry.get("resumed", 0) + 1
            return entry, int(entry["start"])
    for entry in reservations:
        if entry["status"] == "open":
            entry["status"] = "abandoned"  # its bits [start, offset) go to no one else either
    entry = {"key": key, "start": offset, "status": "open", "opened": _now(), "resumed": 0}
    reservations.append(entry)
    return entry, offset


def largest_output_block(extractors: Sequence[Extractor]) -> int:
    return max((getattr(e, "out_bits", 1) for e in extractors), default=1)


class EntropyPool:
    """Use ``EntropyPool.open(directory, ...)``; then ``take(n_bits)``."""

    def __init__(self, directory: Path, packed: np.ndarray, meta: dict,
                 source: QuantumBitSource | None, extractors: list[Extractor],
                 shot_budget: int | None, cursor: int, refill_shots: int) -> None:
        self.directory = directory
        self._packed = packed
        self.meta = meta
        self.source = source
        self.extractors = extractors
        self.shot_budget = shot_budget
        self.shots_this_session = 0
        self.cursor = cursor
        self.refill_shots = refill_shots
        self.reservation: dict | None = None
        self.label: str | None = None

    # ----------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, directory: str | Path, *, source: QuantumBitSource | None = None,
             extractors: Sequence[Extractor] | None = None, shot_budget: int | None = None,
             reuse: bool = False, seed: int | None = None,
             refill_shots: int = DEFAULT_REFILL_SHOTS, resume_key: str | None = None,
             label: str | None = None) -> EntropyPool:
        """Open (or create) the pool in ``directory``; continues at the recorded offset.

        ``shot_budget``: most shots this session may request for refills (None = unlimited).
        ``reuse``: start handing out from bit 0 again (replay a run); otherwise bits are never reused.
        ``seed``: root of the simulator seed chain and Toeplitz seed for a *new* pool.
        ``resume_key``: reserve the bits from here for this request (see rule 1): an open reservation
        with the same key is resumed from its start.
        ``label``: how provenance names the pool (a run's pool: its path inside the run directory, so
        what is recorded there stays true when the run is moved); default: ``directory``.
        """
        directory = Path(directory)
        meta_path = directory / META_FILE
        if meta_path.exists():
            packed, meta = read_pool_files(directory / BITS_FILE, meta_path, FORMAT)
            if extractors is None:
                extractors = [extractor_from_description(d) for d in meta["extractors"]]
        else:
            directory.mkdir(parents=True, exist_ok=True)
            chain = SeedChain(seed)
            extractors = list(default_extractors(seed=chain.root % 2**32)
                              if extractors is None else extractors)
            # pool_id names this pool's refill jobs in the run's job journal (see _fetch_job)
            meta = {"format": FORMAT, "created": _now(), "pool_id": uuid.uuid4().hex, "bits_total": 0, "offset": 0,
                    "shots_total": 0, "seed_chain": chain.state(),
                    "extractors": describe_extractors(extractors), "sources": [], "jobs": [],
                    "sessions": []}
            packed = np.zeros(0, dtype=np.uint8)
        if source is not None:
            described = source.describe()
            if described not in meta["sources"]:
                meta["sources"].append(described)
        if describe_extractors(extractors) != meta["extractors"]:
            if not meta["bits_total"]:  # nothing stored yet: the new extractors simply apply
                meta["extractors"] = describe_extractors(extractors)
            else:  # bits of different pedigree would be indistinguishable in one stream
                    raise QgenError(f"pool {directory} was filled with extractors {meta['extractors']}; "
                                "open it with the same extractors or start a new pool directory")
        cursor = 0 if reuse else meta["offset"]
        reservation = None
        if resume_key is not None and not reuse:
            reservation, cursor = _reserve(meta.setdefault("reservations", []), resume_key, cursor)
        meta["sessions"].append({"opened": _now(), "reuse": reuse, "start_offset": cursor,
                                 **({"resumed": reservation["resumed"]} if reservation else {})})
        pool = cls(directory, packed, meta, source, list(extractors), shot_budget, cursor,
                   refill_shots)
        pool.reservation = reservation
        pool.label = label
        pool._save_meta()
        return pool

    def complete(self) -> None:
        """The reserving command finished: its bits are spent for good (no later resume replays them)."""
        if self.reservation is not None:
            self.reservation["status"] = "done"
            self.reservation["end"] = self.cursor
            self.reservation = None
            self._save_meta()

    # ----------------------------------------------------------------------------- state
    @property
    def bits_total(self) -> int:
        return int(self.meta["bits_total"])

    @property
    def available(self) -> int:
        """Bits not yet handed out (from the current cursor)."""
        return self.bits_total - self.cursor

    @property
    def offset(self) -> int:
        """High-water mark: bits ever handed out from this pool."""
        return int(self.meta["offset"])

    def provenance(self) -> dict:
        m = self.meta
        return {"pool": self.label or str(self.directory), "backends": sorted({s["backend"] for s in m["sources"]}),
                "extractors": m["extractors"], "bits_total": m["bits_total"], "offset": m["offset"],
                "cursor": self.cursor, "shots_total": m["shots_total"],
                "job_ids": [j["job_id"] for j in m["jobs"]], "seeds": [j["seed"] for j in m["jobs"]]}

    # ----------------------------------------------------------------------------- drawing
    def take(self, n_bits: int) -> np.ndarray:
        """The next ``n_bits`` bits (uint8 0/1), refilling from the source if needed."""
        if n_bits < 0:
            raise QgenError(f"cannot take a negative number of bits ({n_bits})")
        if n_bits > self.available:
            self.refill(n_bits - self.available)
        start, stop = self.cursor, self.cursor + n_bits
        chunk = np.unpackbits(self._packed[start // 8: math.ceil(stop / 8)])
        bits = chunk[start % 8: start % 8 + n_bits]
        self.cursor = stop
        self.meta["offset"] = max(self.meta["offset"], stop)
        self._save_meta()  # before returning: a crash must not let these bits be handed out again
        return bits

    def refill(self, n_bits: int) -> None:
        """Fetch and extract at least ``n_bits`` more bits, in jobs of >= ``refill_shots`` shots."""
        if self.source is None:
            raise QgenError(
                f"noise pool {self.directory} is short of quantum bits: {n_bits + self.available} "
                f"needed, {self.available} available; open it with a quantum source to refill "
                "(or reuse=True to replay it)")
        shape = self.refill_shape()  # the same sizing as the plans (refill.py)
        produced = 0
        while produced < n_bits:
            needed_shots = shape.needed_shots(n_bits - produced)
            shots = shape.job_shots(n_bits - produced)
            if self.shot_budget is not None:
                left = self.shot_budget - self.shots_this_session
                if min(needed_shots, self.source.max_shots_per_job) > left:
                    raise QgenError(
                        f"noise pool {self.directory} needs {n_bits - produced} more bits "
                        f"(about {needed_shots} shots) but only {left} of the {self.shot_budget}-"
                        f"shot budget remain; raise the budget or request fewer samples")
                shots = min(shots, left)
            self._fetch_job(shots)
            produced_now = self.meta["jobs"][-1]["bits_out"]
            produced += produced_now
            if produced_now == 0:
                raise QgenError(f"the extractors produced no bits from {shots} shots; "
                                "the source looks constant — check the circuit and backend")

    def ensure(self, n_bits: int) -> None:
        """Refill now, if fewer than ``n_bits`` are available: a command that knows what it will draw
        fetches it in one refill (what its plan counted) rather than one refill per draw."""
        if n_bits > self.available:
            self.refill(n_bits - self.available)

    def refill_shape(self) -> RefillShape:
        return RefillShape(self.source.bits_per_shot, self._observed_yield(), self._largest_output_block(),
                           self.refill_shots, self.source.max_shots_per_job)

    def _largest_output_block(self) -> int:
        return largest_output_block(self.extractors)

    def _observed_yield(self) -> float:
        jobs = self.meta["jobs"]
        raw = sum(j["raw_bits"] for j in jobs)
        out = sum(j["bits_out"] for j in jobs)
        return out / raw if raw and out else nominal_yield(self.extractors)

    def _fetch_job(self, shots: int) -> None:
        chain = self.meta["seed_chain"]
        seed = None
        if self.source.seeded:
            seed = SeedChain.seed_at(int(chain["root"]), chain["next_index"])
            chain["next_index"] += 1
        # The job's request: this pool and the job's number in it. A kill before the job's bits are
        # committed below leaves the number unused, so the rerun asks for the same request and a journaled
        # (hardware) sampler hands back that job's bits instead of paying for a new job.
        request = f"noise-pool {self.meta.get('pool_id', self.meta['created'])} job {len(self.meta['jobs'])}"
        batch = self.source.fetch(shots, seed=seed, request=request)
        out = extract(batch.bits, self.extractors)
        self._append(out)
        self.shots_this_session += batch.shots
        self.meta["shots_total"] += batch.shots
        self.meta["jobs"].append({**batch.record(), "backend": self.source.backend_name,
                                  "circuit": self.source.circuit_name, "bits_out": int(out.size),
                                  "time": _now()})
        self._save_bits()
        self._save_meta()

    # ----------------------------------------------------------------------------- persistence
    def _append(self, bits: np.ndarray) -> None:
        n = self.bits_total
        tail = np.unpackbits(self._packed[n // 8:])[: n % 8] if n % 8 else np.zeros(0, np.uint8)
        self._packed = np.concatenate([self._packed[: n // 8], np.packbits(np.concatenate([tail, bits]).astype(np.uint8))])
        self.meta["bits_total"] = n + int(bits.size)

    def _save_bits(self) -> None:
        atomic_write(self.directory / BITS_FILE,
                      lambda f: np.savez(f, bits=self._packed, n_bits=self.bits_total))

    def _save_meta(self) -> None:
        self.meta["updated"] = _now()
        payload = json.dumps(self.meta, indent=1).encode()
        atomic_write(self.directory / META_FILE, lambda f: f.write(payload))
