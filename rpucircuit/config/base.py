"""Shared machinery for frozen, validated configs: checks, TOML in and out, stable keys.

Configs are ``@dataclass(frozen=True, kw_only=True, slots=True)`` classes that validate in
``__post_init__`` with the ``check_*`` helpers below, so a bad value fails when the config
is built, with a :class:`~rpucircuit.errors.ConfigError` naming the field, the value and
what is allowed. Nested configs are dataclass-typed fields.

A config's *key* is the sha256 of its canonical JSON (sorted keys, floats as repr) plus its
class name and :data:`SCHEMA_VERSION`. The key names cache entries, sweep jobs and goes into
every HDF5 file's provenance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from rpucircuit.errors import ConfigError

SCHEMA_VERSION = 1
"""Version of the config schema; part of every key, bumped when a field changes meaning."""

T = TypeVar("T")


# --------------------------------------------------------------------------- checks


def _describe(name: str, value: object) -> str:
    return f"{name} = {value!r}"


def check_finite(name: str, value: float) -> None:
    """Raise unless ``value`` is a finite real number (not bool, not NaN, not inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{_describe(name, value)}: must be a number")
    if not math.isfinite(value):
        raise ConfigError(f"{_describe(name, value)}: must be finite")


def check_positive(name: str, value: float) -> None:
    """Raise unless ``value`` is finite and > 0."""
    check_finite(name, value)
    if value <= 0:
        raise ConfigError(f"{_describe(name, value)}: must be > 0")


def check_nonnegative(name: str, value: float) -> None:
    """Raise unless ``value`` is finite and >= 0."""
    check_finite(name, value)
    if value < 0:
        raise ConfigError(f"{_describe(name, value)}: must be >= 0")


def check_range(
    name: str,
    value: float,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Raise unless ``lo <= value <= hi`` (or strict where ``lo_open``/``hi_open``)."""
    check_finite(name, value)
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if below or above:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ConfigError(f"{_describe(name, value)}: must lie in {left}{lo:g}, {hi:g}{right}")


def check_int(name: str, value: int, lo: int, hi: int | None = None) -> None:
    """Raise unless ``value`` is an int (not bool) with ``lo <= value`` (``<= hi`` if given)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_describe(name, value)}: must be an integer")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{_describe(name, value)}: must be an integer {allowed}")


def check_choice(name: str, value: object, choices: Iterable[object]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    options = tuple(choices)
    if value not in options:
        raise ConfigError(f"{_describe(name, value)}: must be one of {list(options)}")


# --------------------------------------------------------------------------- dict / TOML


def to_dict(cfg: object) -> dict[str, Any]:
    """Nested plain dict of a config dataclass (tuples become lists, ``None`` is dropped)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"expected a config dataclass instance, got {type(cfg).__name__}")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None:
            continue
        out[f.name] = _plain(value)
    return out


def _plain(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def _coerce(hint: Any, value: Any, path: str) -> Any:
    hint, _ = _strip_optional(hint)
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} = {value!r}: must be a table of {hint.__name__} fields")
        return from_dict(hint, value, path=path)
    if origin is typing.Literal:
        check_choice(path, value, typing.get_args(hint))
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} = {value!r}: must be a list")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} = {value!r}: must be a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} = {value!r}: must be an integer")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r}: must be true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} = {value!r}: must be a string")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], *, path: str = "") -> T:
    """Build config ``cls`` from a nested mapping, refusing unknown keys by their full path.

    Missing keys take the dataclass defaults; values are type-checked and ints widened to
    floats where the field is a float. The class's own ``__post_init__`` then validates.
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{cls!r} is not a config dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(
            f"unknown field(s) {', '.join(where + u for u in unknown)} for {cls.__name__}; "
            f"known fields: {', '.join(sorted(names))}"
        )
    kwargs = {
        key: _coerce(hints[key], value, f"{path}.{key}" if path else key)
        for key, value in data.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{path or cls.__name__}: {exc}") from exc


def to_toml(cfg: object) -> str:
    """Canonical TOML text of a config (round-trips through :func:`from_toml`)."""
    return tomli_w.dumps(to_dict(cfg))


def parse_toml(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """Parse TOML text; malformed input becomes a ConfigError naming the source and line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML in {source}: {exc}") from exc


def from_toml(cls: type[T], text: str, *, source: str = "<string>", table: str | None = None) -> T:
    """Build ``cls`` from TOML text, optionally from one top-level ``table`` of it."""
    data: Any = parse_toml(text, source=source)
    if table is not None:
        if table not in data:
            raise ConfigError(f"{source}: missing table [{table}]")
        data = data[table]
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: [{table}] must be a table")
    return from_dict(cls, data, path=table or "")


def read_toml_file(path: str | Path) -> dict[str, Any]:
    """Read and parse a TOML file; a missing or unreadable file is a ConfigError."""
    p = Path(path)
    try:
        if p.exists() and not p.is_file():  # a folder, a FIFO, /dev/zero: never read one
            kind = "a folder" if p.is_dir() else "not a regular file"
            raise ConfigError(f"cannot read config file {p}: {kind}")
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read config file {p}: not UTF-8 text (byte {exc.start})"
        ) from exc
    return parse_toml(text, source=str(p))


# --------------------------------------------------------------------------- keys


def canonical_json(cfg: object) -> str:
    """Canonical JSON of a config: sorted keys, no whitespace, class name and schema version."""
    payload = {"schema": SCHEMA_VERSION, "type": type(cfg).__name__, "data": to_dict(cfg)}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``path = "a.b.c"`` in a config table, creating
    tables on the way (the generic sweep override)."""
    parts = path.split(".")
    if not all(parts):
        raise ConfigError(f"override path {path!r}: empty component")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override path {path!r}: {part!r} is a value, not a table")
        node = child
    node[parts[-1]] = value


def config_key(cfg: object) -> str:
    """Stable sha256 hex key of a config (same values, same key, across runs and machines)."""
    return hashlib.sha256(canonical_json(cfg).encode("utf-8")).hexdigest()
