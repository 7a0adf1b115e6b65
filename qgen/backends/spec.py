"""Backend specifications: the typed form of one ``[backends.NAME]`` table of backends.toml."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qgen.errors import QgenError
from qgen.tomlconfig import find_line, from_dict

KINDS = ("statevector", "aer", "fake", "ibm")
STATEVECTOR_METHODS = ("automatic", "statevector", "mps")  # qgen's exact estimator
EXECUTION_MODES = ("job", "batch", "session")


@dataclass(frozen=True)
class BackendSpec:
    name: str
    kind: str
    description: str = ""
    device: str | None = None
    noise: str = "ideal"
    optimization_level: int = 1
    seed_transpiler: int = 1234
    shots: int | None = None
    precision: float = 0.0
    method: str = "automatic"
    seed_simulator: int | None = None
    shot_budget: int | None = None
    max_pubs_per_job: int | None = None
    max_bindings_per_job: int | None = None
    execution_mode: str = "job"
    dynamical_decoupling: bool = False
    twirling: bool = False
    resilience_level: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise QgenError(f"backend {self.name!r}: unknown kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.execution_mode not in EXECUTION_MODES:
            raise QgenError(
                f"backend {self.name!r}: unknown execution_mode {self.execution_mode!r}; "
                f"choose one of {', '.join(EXECUTION_MODES)}"
            )
        if self.kind == "statevector" and self.method not in STATEVECTOR_METHODS:
            raise QgenError(
                f"backend {self.name!r}: method must be one of {', '.join(STATEVECTOR_METHODS)} "
                f"for kind 'statevector', got {self.method!r}"
            )
        if not 0 <= self.optimization_level <= 3:
            raise QgenError(f"backend {self.name!r}: optimization_level must be 0..3")
        if self.precision < 0:
            raise QgenError(f"backend {self.name!r}: precision must be >= 0")
        for key in ("shots", "shot_budget", "max_pubs_per_job", "max_bindings_per_job"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise QgenError(f"backend {self.name!r}: {key} must be >= 1")
        if self.kind in ("fake", "ibm") and not self.device:
            raise QgenError(f"backend {self.name!r}: kind {self.kind!r} needs a device name")


REPO_BACKENDS = Path(__file__).resolve().parents[2] / "backends.toml"


def default_backends_file() -> Path:
    """--backends, then $QGEN_BACKENDS, then ./backends.toml, then the one beside the qgen source."""
    env = os.environ.get("QGEN_BACKENDS")
    if env:
        return Path(env)
    cwd = Path.cwd() / "backends.toml"
    if cwd.is_file():
        return cwd
    return REPO_BACKENDS


def parse_backends(text: str, source: str = "backends.toml") -> dict[str, BackendSpec]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QgenError(f"{source}: invalid TOML: {exc}") from None
    extra = sorted(set(data) - {"backends"})
    if extra:
        raise QgenError(f"{source}: unknown top-level table {extra[0]!r} (only [backends.NAME] tables)")
    specs = {}
    for name, table in data.get("backends", {}).items():
        if not isinstance(table, dict):
            raise QgenError(f"{source}: backends.{name} must be a table")
        try:
            specs[name] = from_dict(BackendSpec, {"name": name, **table}, f"backends.{name}")
        except QgenError as exc:
            key = _key_in_message(str(exc), table)
            line = find_line(text, f"backends.{name}", key)
            where = f"{source}:{line}" if line else source
            raise QgenError(f"{where}: {exc}") from None
    return specs


def _key_in_message(message: str, table: dict) -> str | None:
    for key in table:
        if f".{key}'" in message or f".{key}:" in message or f"{key} must" in message:
            return key
    return None


def load_backends(path: Path | None = None) -> dict[str, BackendSpec]:
    path = Path(path) if path else default_backends_file()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise QgenError(f"backends file not found: {path} (pass --backends FILE or set QGEN_BACKENDS)") from None
    return parse_backends(text, str(path))


def get_backend(name: str, path: Path | None = None) -> BackendSpec:
    specs = load_backends(path)
    if name not in specs:
        raise QgenError(f"unknown backend {name!r}; known backends: {', '.join(specs)}")
    return specs[name]
