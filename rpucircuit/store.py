"""HDF5 storage: the only module that imports h5py.

Every file holds a tree of groups and datasets plus provenance attributes on its root:

============================  ==========================================================
attribute                     meaning
============================  ==========================================================
``rpucircuit_kind``           what the file is (``characterization``, ``model``, ...)
``schema_version``            version of that kind's layout (bumped on incompatible change)
``config_toml``               the full config the file came from, as TOML text
``config_key``                sha256 key of that config (:func:`rpucircuit.config.config_key`)
``package_version``           rpucircuit version that wrote it
``ngspice_version``           ngspice version string, or ``""`` when no simulator was used
``created_utc``               ISO-8601 creation time (UTC); ``$SOURCE_DATE_EPOCH`` when
                              set; empty in a reproducible file (see :func:`save`)
============================  ==========================================================

Other modules describe their data as nested dicts (``str`` -> numpy array, scalar, string
or dict) and call :func:`save` / :func:`load`; they never touch h5py. Files are written to
a temporary name and renamed (:func:`rpucircuit.fileio.atomic_path`).

The same tree and provenance give the same bytes: datasets are written without HDF5's
modification times (``track_times=False``) and groups keep no creation order, so the only
clock in a file is ``created_utc``, which a reproducible file leaves out.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rpucircuit import __version__
from rpucircuit.errors import ConfigError, StoreError
from rpucircuit.fileio import atomic_path

Tree = dict[str, Any]
"""A nested dict: keys are names, values are arrays, scalars, strings or sub-trees."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Provenance:
    """Where a file came from. Stored as attributes on the file's root group."""

    kind: str
    """What the file is: ``characterization``, ``model``, ``history``, ``sweep``, ..."""
    schema_version: int
    """Layout version of that kind."""
    config_toml: str
    """The full config the file was made from, as TOML text."""
    config_key: str
    """sha256 key of that config."""
    package_version: str = __version__
    """rpucircuit version that wrote the file."""
    ngspice_version: str = ""
    """ngspice version string, empty when no simulator was involved."""
    created_utc: str = ""
    """ISO-8601 creation time; filled in by :func:`save` when empty (and the file is not
    reproducible)."""


_ATTR_PREFIX = {"kind": "rpucircuit_kind"}


def _attr_name(field: str) -> str:
    return _ATTR_PREFIX.get(field, field)


def _write_tree(group: h5py.Group, tree: Mapping[str, Any], where: str) -> None:
    for name, value in tree.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise StoreError(f"invalid HDF5 name {name!r} under {where or '/'}")
        path = f"{where}/{name}"
        if isinstance(value, Mapping):
            _write_tree(group.create_group(name, track_order=False), value, path)
        elif isinstance(value, str):
            group.create_dataset(name, data=value, dtype=h5py.string_dtype(), track_times=False)
        else:
            arr = np.asarray(value)
            if arr.dtype.kind in "OUS":
                if arr.dtype.kind == "O":
                    raise StoreError(f"{path}: cannot store object arrays")
                arr = arr.astype(h5py.string_dtype())
                group.create_dataset(name, data=arr, track_times=False)
            elif arr.ndim == 0:
                group.create_dataset(name, data=arr, track_times=False)
            else:
                group.create_dataset(
                    name, data=arr, compression="gzip", compression_opts=4, track_times=False
                )


def _read_tree(group: h5py.Group) -> Tree:
    out: Tree = {}
    for name, item in group.items():
        if isinstance(item, h5py.Group):
            out[name] = _read_tree(item)
            continue
        if h5py.check_string_dtype(item.dtype) is not None:
            if item.shape == ():
                raw = item[()]
                out[name] = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            else:
                out[name] = item.asstr()[()]
        elif item.shape == ():
            out[name] = item[()].item()
        else:
            out[name] = item[()]
    return out


def source_date() -> str:
    """``$SOURCE_DATE_EPOCH`` (seconds since 1970, the reproducible-builds convention) as an
    ISO-8601 UTC time, or ``""`` when it is unset or empty."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return ""
    try:
        seconds = int(raw)
        if seconds < 0:
            raise ValueError
        when = _dt.datetime.fromtimestamp(seconds, _dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise ConfigError(
            f"SOURCE_DATE_EPOCH = {raw!r}: must be whole seconds since 1970-01-01 (>= 0); "
            "unset it to record the current time"
        ) from None
    return when.isoformat()


def save(
    path: str | Path,
    tree: Mapping[str, Any],
    provenance: Provenance,
    *,
    reproducible: bool = False,
) -> Path:
    """Write ``tree`` with ``provenance`` to ``path`` atomically; return the path.

    An empty ``created_utc`` is filled in with :func:`source_date` when that is set, else
    with the current time. With ``reproducible=True`` the current time is never used: the
    file is a pure function of ``tree`` and ``provenance`` (byte for byte, so its sha256
    identifies its contents), and ``created_utc`` stays empty unless given or set by
    ``$SOURCE_DATE_EPOCH``.
    """
    path = Path(path)
    prov = provenance
    if not prov.created_utc:
        when = source_date()
        if not when and not reproducible:
            when = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
        prov = dataclasses.replace(prov, created_utc=when)
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
            for field in dataclasses.fields(prov):
                f.attrs[_attr_name(field.name)] = getattr(prov, field.name)
            _write_tree(f, tree, "")
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc}") from exc
    return path


def read_provenance(path: str | Path) -> Provenance:
    """Read only the provenance attributes of an rpucircuit HDF5 file."""
    path = Path(path)
    with _open(path) as f:
        return _provenance(f, path)


def load(
    path: str | Path, *, kind: str | None = None, schema_version: int | None = None
) -> tuple[Tree, Provenance]:
    """Read a whole file back as ``(tree, provenance)``.

    ``kind`` and ``schema_version``, when given, must match the file's, or a
    :class:`StoreError` says what the file is instead.
    """
    path = Path(path)
    with _open(path) as f:
        prov = _provenance(f, path)
        if kind is not None and prov.kind != kind:
            raise StoreError(f"{path} holds a {prov.kind!r} file, expected {kind!r}")
        if schema_version is not None and prov.schema_version != schema_version:
            raise StoreError(
                f"{path} has {prov.kind} schema version {prov.schema_version}; "
                f"this rpucircuit reads version {schema_version}"
            )
        return _read_tree(f), prov


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise StoreError(f"no such file: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"{path} is not a readable HDF5 file: {exc}") from exc


def _provenance(f: h5py.File, path: Path) -> Provenance:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Provenance):
        attr = _attr_name(field.name)
        if attr not in f.attrs:
            raise StoreError(f"{path} is not an rpucircuit file (attribute {attr!r} missing)")
        raw = f.attrs[attr]
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        values[field.name] = int(raw) if field.name == "schema_version" else str(raw)
    return Provenance(**values)
