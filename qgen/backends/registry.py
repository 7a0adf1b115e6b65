"""Named backends: backends.toml -> BackendSpec -> the class of its kind -> a QuantumBackend.

``BACKEND_KINDS`` is the one table of kinds; a new kind is one class (see base.py) and one entry
here. ``load_backend(name)`` is how the rest of qgen gets a backend.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from qgen.backends.aer import AerBackend
from qgen.backends.base import QuantumBackend
from qgen.backends.devices import fake_backend_name
from qgen.backends.exact import ExactBackend
from qgen.backends.fake import FakeDeviceBackend
from qgen.backends.ibm import IBMBackend
from qgen.backends.spec import BackendSpec
from qgen.errors import QgenError
from qgen.tomlconfig import find_line, from_dict

BACKEND_KINDS: dict[str, type[QuantumBackend]] = {
    cls.kind: cls for cls in (ExactBackend, AerBackend, FakeDeviceBackend, IBMBackend)
}

REPO_BACKENDS = Path(__file__).resolve().parents[2] / "backends.toml"


def backend_class(spec: BackendSpec) -> type[QuantumBackend]:
    """The class that implements ``spec.kind``."""
    cls = BACKEND_KINDS.get(spec.kind)
    if cls is None:
        raise QgenError(f"backend {spec.name!r}: unknown kind {spec.kind!r}; choose one of {', '.join(BACKEND_KINDS)}")
    return cls


def check_spec(spec: BackendSpec) -> BackendSpec:
    """``spec`` with its kind's defaults filled in, if its kind exists and accepts it; else one clear error line."""
    cls = backend_class(spec)
    spec = cls.with_defaults(spec)
    cls.validate_spec(spec)
    return spec


def backend_for(spec: BackendSpec, local: bool = False) -> QuantumBackend:
    """The backend for ``spec``; ``local`` runs kind ibm on the device's fake snapshot."""
    return backend_class(spec)(spec, local=local)


def unusable_reason(spec: BackendSpec) -> str | None:
    """Why an entry that parsed cannot be used at all (kind fake naming a device qiskit-ibm-runtime has
    no fake of), for ``qgen backends``; None when it can. Not checked when the file is read: that would
    import every fake device for every command."""
    if spec.kind != "fake":
        return None
    if fake_backend_name(spec.device) is None:
        return f"no fake device {spec.device!r} in qiskit-ibm-runtime"
    return None


def load_backend(name: str, backends_file: Path | None = None, *, local: bool = False) -> QuantumBackend:
    """The backend named ``name`` in ``backends_file`` (default: see ``default_backends_file``)."""
    return backend_for(get_backend(name, backends_file), local=local)


# --------------------------------------------------------------------------------- backends.toml


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
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QgenError(f"{source}: invalid TOML: {exc}") from None
    extra = sorted(set(data) - {"backends"})
    if extra:
        raise QgenError(f"{source}: unknown top-level table {extra[0]!r} (only [backends.NAME] tables)")
    tables = data.get("backends", {})
    if not isinstance(tables, dict):
        # `backends = 5`, `backends = "x"` or `[[backends]]` (an array of tables)
        line = _line_of_key(text, "backends")
        where = f"{source}:{line}" if line else source
        raise QgenError(f"{where}: 'backends' must hold [backends.NAME] tables, got {_toml_kind(tables)}")
    if not tables:
        raise QgenError(f"{source} defines no backends; add a [backends.NAME] table with a kind "
                        f"(see {REPO_BACKENDS}) or pass --backends FILE")
    specs = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise QgenError(f"{source}: backends.{name} must be a table")
        try:
            specs[name] = check_spec(from_dict(BackendSpec, {"name": name, **table}, f"backends.{name}"))
        except QgenError as exc:
            key = _key_in_message(str(exc), table)
            line = find_line(text, f"backends.{name}", key)
            where = f"{source}:{line}" if line else source
            raise QgenError(f"{where}: {exc}") from None
    return specs


def _line_of_key(text: str, key: str) -> int | None:
    """1-based line where the top-level ``key`` is assigned or opened as ``[[key]]``."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith(f"[[{key}]]") or stripped.split("=", 1)[0].strip() == key:
            return number
    return None


def _toml_kind(value) -> str:
    if isinstance(value, list):
        return "an array ([[backends]] or a list)"
    return f"{type(value).__name__} {value!r}"


def _key_in_message(message: str, table: dict) -> str | None:
    for key in table:
        if f".{key}'" in message or f".{key}:" in message or f"{key} must" in message:
            return key
    return None


def load_backends(path: Path | None = None) -> dict[str, BackendSpec]:
    path = Path(path) if path else default_backends_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QgenError(f"backends file not found: {path} (pass --backends FILE or set QGEN_BACKENDS)") from None
    except IsADirectoryError:
        raise QgenError(f"backends file {path} is a folder, not a TOML file") from None
    except UnicodeDecodeError as exc:
        raise QgenError(f"{path} is not UTF-8 text (byte {exc.start}); TOML files must be UTF-8") from None
    return parse_backends(text, str(path))


def get_backend(name: str, path: Path | None = None) -> BackendSpec:
    specs = load_backends(path)
    if name not in specs:
        raise QgenError(f"unknown backend {name!r}; known backends: {', '.join(specs)}")
    return specs[name]
