"""HDF5 trees of the model-file records of :mod:`rpucircuit.model.modelparts`.

Each ``*_to_tree`` gives the nested dict :func:`rpucircuit.store.save` writes; each
``*_from_tree`` reads one back and raises :class:`~rpucircuit.errors.StoreError` for a
malformed table or group and :class:`~rpucircuit.errors.ConfigError` for a row or model that
does not validate, either starting with the file's path. Tables are groups of equal-length
1-d columns, one row per record. Layout: ``docs/model-file.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from rpucircuit.errors import ConfigError, StoreError
from rpucircuit.model.irdrop import FloatArray
from rpucircuit.model.irdrop import from_tree as ir_from_tree
from rpucircuit.model.irdrop import to_tree as ir_to_tree
from rpucircuit.model.modelparts import (
    DIRECTIONS,
    SOURCE_SEPARATOR,
    CharacterizationLink,
    InputTransfer,
    IRDrop,
    ModelParameter,
    NoiseModel,
    ValidationCheck,
)

PARAMETER_TEXT = ("name", "unit", "sources", "origin", "note")
PARAMETER_FLOAT = ("value", "residual", "tolerance", "interval_low", "interval_high")
VALIDATION_TEXT_V1 = ("name",)
VALIDATION_FLOAT_V1 = ("predicted", "reference", "tolerance")
VALIDATION_TEXT = ("name", "case", "quantity", "unit")
VALIDATION_FLOAT = (
    "predicted",
    "reference",
    "tolerance",
    "rms_error",
    "max_error",
    "preset_rms_error",
    "preset_max_error",
)


def _text_column(values: Sequence[str]) -> Any:
    return np.array(list(values), dtype=np.str_)


def _float_column(values: Sequence[float]) -> FloatArray:
    return np.array(list(values), dtype=np.float64)


def _table(
    tree: Any, where: str, text: tuple[str, ...], floats: tuple[str, ...]
) -> tuple[int, dict[str, list[str]], dict[str, FloatArray]]:
    """Columns of a table group: exactly ``text`` + ``floats``, equal lengths, the text
    columns text and the float columns numbers (StoreError naming ``where`` otherwise)."""
    names = (*text, *floats)
    if not isinstance(tree, dict) or set(tree) != set(names):
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise StoreError(f"{where} must hold exactly {', '.join(names)}; found {found}")
    raw = {k: np.atleast_1d(np.asarray(tree[k])) for k in names}
    lengths = {k: v.shape for k, v in raw.items()}
    if len(set(lengths.values())) != 1 or raw[names[0]].ndim != 1:
        raise StoreError(f"{where} columns must be 1-d of equal length: {lengths}")
    texts: dict[str, list[str]] = {}
    for k in text:
        col = raw[k].tolist()
        if not all(isinstance(v, str) for v in col):
            raise StoreError(f"{where}: column {k} must be text, found {raw[k].dtype}")
        texts[k] = col
    nums: dict[str, FloatArray] = {}
    for k in floats:
        try:
            nums[k] = np.asarray(raw[k], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{where}: column {k}: {exc}") from exc
    return len(raw[names[0]]), texts, nums


def parameters_to_tree(params: Sequence[ModelParameter]) -> dict[str, Any]:
    """The ``parameters/`` table: one row per parameter."""
    return {
        "name": _text_column([p.name for p in params]),
        "value": _float_column([p.value for p in params]),
        "unit": _text_column([p.unit for p in params]),
        "sources": _text_column([SOURCE_SEPARATOR.join(p.sources) for p in params]),
        "residual": _float_column([p.residual for p in params]),
        "tolerance": _float_column([p.tolerance for p in params]),
        "interval_low": _float_column([p.interval[0] for p in params]),
        "interval_high": _float_column([p.interval[1] for p in params]),
        "origin": _text_column([p.origin for p in params]),
        "note": _text_column([p.note for p in params]),
    }


def parameters_from_tree(tree: Any, *, file: str) -> tuple[ModelParameter, ...]:
    """Read :func:`parameters_to_tree` back (ConfigError for a row that does not validate,
    StoreError for a malformed table; both start with ``file``)."""
    where = f"{file}: parameters"
    n, t, f = _table(tree, where, PARAMETER_TEXT, PARAMETER_FLOAT)
    out: list[ModelParameter] = []
    try:
        for i in range(n):
            sources = t["sources"][i]
            out.append(
                ModelParameter(
                    name=t["name"][i],
                    value=float(f["value"][i]),
                    unit=t["unit"][i],
                    sources=tuple(sources.split(SOURCE_SEPARATOR)) if sources else (),
                    residual=float(f["residual"][i]),
                    tolerance=float(f["tolerance"][i]),
                    interval=(float(f["interval_low"][i]), float(f["interval_high"][i])),
                    origin=t["origin"][i],  # type: ignore[arg-type]  # checked by the record
                    note=t["note"][i],
                )
            )
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    return tuple(out)


def validation_to_tree(checks: Sequence[ValidationCheck]) -> dict[str, Any]:
    """The ``validation/`` table (schema 2): one row per check, every column."""
    tree: dict[str, Any] = {}
    for k in VALIDATION_TEXT:
        tree[k] = _text_column([getattr(c, k) for c in checks])
    for k in VALIDATION_FLOAT:
        tree[k] = _float_column([getattr(c, k) for c in checks])
    return tree


def validation_from_tree(tree: Any, *, file: str, schema: int) -> tuple[ValidationCheck, ...]:
    """Read a ``validation/`` table: schema 1's four columns (name, predicted, reference,
    tolerance) or schema 2's eleven."""
    where = f"{file}: validation"
    text, floats = (
        (VALIDATION_TEXT_V1, VALIDATION_FLOAT_V1)
        if schema == 1
        else (VALIDATION_TEXT, VALIDATION_FLOAT)
    )
    n, t, f = _table(tree, where, text, floats)
    try:
        rows = []
        for i in range(n):
            row: dict[str, Any] = {k: t[k][i] for k in text}
            row.update({k: float(f[k][i]) for k in floats})
            rows.append(ValidationCheck(**row))
        return tuple(rows)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc


def ir_drop_to_tree(ir: IRDrop) -> dict[str, Any]:
    """``ir_drop/forward`` and ``ir_drop/backward``."""
    return {d: ir_to_tree(getattr(ir, d)) for d in DIRECTIONS}


def ir_drop_from_tree(tree: Any, *, where: str) -> IRDrop:
    """Per-direction groups, or a single flat model (schema 1's layout) for both reads."""
    if not isinstance(tree, dict):
        raise StoreError(f"{where} must be a group")
    if set(tree) & set(DIRECTIONS):
        if set(tree) != set(DIRECTIONS):
            raise StoreError(
                f"{where} must hold both forward and backward groups (or a single flat model "
                f"for both); found {sorted(tree)}"
            )
        models = {}
        for d in DIRECTIONS:
            if not isinstance(tree[d], dict):
                raise StoreError(f"{where}/{d} must be a group")
            models[d] = ir_from_tree(tree[d], where=f"{where}/{d}")
        return IRDrop(forward=models["forward"], backward=models["backward"])
    return IRDrop.both(ir_from_tree(tree, where=where))


def _scalars(tree: Any, where: str, names: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(tree, dict) or set(tree) != set(names):
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise StoreError(f"{where} must hold exactly {', '.join(names)}; found {found}")
    out = {}
    for k in names:
        v = tree[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise StoreError(f"{where}/{k} must be a number, found {v!r}")
        out[k] = float(v)
    return out


def noise_to_tree(noise: NoiseModel) -> dict[str, Any]:
    """``out_noise/a``, ``out_noise/b`` and, when not 0, ``out_noise/c`` (a straight-line
    model writes the same bytes as before ``c`` existed)."""
    tree = {"a": float(noise.a), "b": float(noise.b)}
    if noise.c != 0.0:
        tree["c"] = float(noise.c)
    return tree


def noise_from_tree(tree: Any, *, file: str) -> NoiseModel:
    """Read :func:`noise_to_tree` back (no ``c``: c = 0)."""
    where = f"{file}: out_noise"
    names = ("a", "b", "c") if isinstance(tree, dict) and "c" in tree else ("a", "b")
    values = _scalars(tree, where, names)
    try:
        return NoiseModel(**values)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc


def transfer_to_tree(transfer: InputTransfer) -> dict[str, Any]:
    """``odd_coefficients``, or ``x`` and ``f``: float64 arrays."""
    if transfer.odd_coefficients:
        return {"odd_coefficients": _float_column(transfer.odd_coefficients)}
    return {"x": _float_column(transfer.x), "f": _float_column(transfer.f)}


def transfer_from_tree(tree: Any, *, where: str) -> InputTransfer:
    """Read :func:`transfer_to_tree` back."""
    forms = ({"odd_coefficients"}, {"x", "f"})
    if not isinstance(tree, dict) or set(tree) not in forms:
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise StoreError(f"{where} must hold odd_coefficients, or x and f; found {found}")
    values: dict[str, tuple[float, ...]] = {}
    for k, v in tree.items():
        arr = np.atleast_1d(np.asarray(v))
        if arr.ndim != 1 or arr.dtype.kind not in "fiu":
            raise StoreError(f"{where}/{k} must be a 1-d array of numbers")
        values[k] = tuple(float(x) for x in arr)
    try:
        return InputTransfer(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def link_to_tree(link: CharacterizationLink) -> dict[str, Any]:
    """``characterization/path``, ``config_key``, ``sha256`` (text)."""
    return {f.name: getattr(link, f.name) for f in dataclasses.fields(link)}


def link_from_tree(tree: Any, *, file: str) -> CharacterizationLink:
    """Read :func:`link_to_tree` back."""
    where = f"{file}: characterization"
    names = tuple(f.name for f in dataclasses.fields(CharacterizationLink))
    if not isinstance(tree, dict) or set(tree) != set(names):
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise StoreError(f"{where} must hold exactly {', '.join(names)}; found {found}")
    if not all(isinstance(tree[k], str) for k in names):
        raise StoreError(f"{where}: {', '.join(names)} must be text")
    try:
        return CharacterizationLink(**{k: tree[k] for k in names})
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc


__all__ = [
    "ir_drop_from_tree",
    "ir_drop_to_tree",
    "link_from_tree",
    "link_to_tree",
    "noise_from_tree",
    "noise_to_tree",
    "parameters_from_tree",
    "parameters_to_tree",
    "transfer_from_tree",
    "transfer_to_tree",
    "validation_from_tree",
    "validation_to_tree",
]
