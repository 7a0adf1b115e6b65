"""Dataclasses <-> TOML, strictly: unknown keys and wrong types are errors that name the key.

Every configuration object in qgen is a (frozen) dataclass; this module is the one place that
knows how to read such objects from TOML tables and write them back.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from qgen.errors import QgenError
from qgen.fileio import atomic_write_bytes

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (a small subset of typing is enough here)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:  # Optional[X]: X's own message is the clearest
            return _coerce(value, real[0], where)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except QgenError as exc:
                errors.append(str(exc))
        names = " or ".join(_type_name(a) for a in args if a is not type(None))
        raise QgenError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise QgenError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item_tp = args[0] if args else Any
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise QgenError(f"{where}: expected a table, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise QgenError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise QgenError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise QgenError(f"{where}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise QgenError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise QgenError(f"{where}: expected a table, got {type(value).__name__}")
        return from_dict(tp, value, where)
    return value


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise QgenError(
            f"unknown key '{prefix}{unknown[0]}'; allowed keys: {', '.join(sorted(fields))}"
        )
    prefix = f"{where}." if where else ""
    required = [name for name, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise QgenError(f"missing required key '{prefix}{missing[0]}'")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{prefix}{name}")
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    """Dataclass -> TOML-serialisable dict (None dropped: TOML has no null)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise QgenError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise QgenError(f"{path} is a folder, not a TOML file") from None
    except UnicodeDecodeError:
        raise QgenError(f"{path} is not UTF-8 text (TOML files must be UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise QgenError(f"{path}: invalid TOML: {exc}") from None


def write_toml(path: Path, data: dict) -> None:
    atomic_write_bytes(path, tomli_w.dumps(data).encode())


def find_line(text: str, table: str, key: str | None = None) -> int | None:
    """1-based line of ``[table]`` (or of ``key`` inside it) in TOML source, for error messages."""
    lines = text.splitlines()
    header = f"[{table}]"
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith(header)), None)
    if start is None:
        return None
    if key is None:
        return start + 1
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if stripped.startswith("["):
            break
        if stripped.split("=", 1)[0].strip() == key:
            return i + 1
    return start + 1
