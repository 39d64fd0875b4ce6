"""Array-model files: a tile's complete behavioral model in one HDF5 file (kind ``model``).

A model file is what a training run loads with ``model.file = "path.h5"``, and what
calibration (fitting the model to SPICE results, a later step) will write. Today
``rpucircuit model export PRESET`` writes one from a preset. It holds the tile's full
:class:`~rpucircuit.config.rpu.RPUConfig` (as TOML text), a description, where it came from
(``source``), optionally an IR-drop model (:class:`~rpucircuit.model.irdrop.IRDropModel`, physical
ratios that give the attenuation map of a tile of any shape) and optionally a table of
validation checks (held-out figures: predicted, reference, tolerance). Layout, versioning
and the loading rules: ``docs/model-file.md``.

Model path only: this module imports :mod:`rpucircuit.store` (HDF5) and configs, never the
circuit path.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit import store
from rpucircuit.config import rpu
from rpucircuit.config.base import check_choice, check_nonnegative, config_key, from_toml, to_toml
from rpucircuit.config.training import PRESETS
from rpucircuit.errors import ConfigError, StoreError
from rpucircuit.model.irdrop import MAX_ATTENUATION, FloatArray, IRDropModel, from_tree, to_tree

MODEL_KIND = "model"
"""HDF5 kind of an array-model file."""
MODEL_SCHEMA = 1
"""Layout version of a model file this rpucircuit writes and reads (older ones: none yet)."""

_TOP_LEVEL = ("description", "source", "rpu_config_toml", "ir_drop", "validation")
_VALIDATION_COLUMNS = ("name", "predicted", "reference", "tolerance")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ValidationCheck:
    """One held-out check of a model: a figure the model predicts next to its reference."""

    name: str
    """What is compared, e.g. ``forward_read_32x32_rms_error``."""
    predicted: float
    """The model's value (unit as the name says)."""
    reference: float
    """The reference value (simulator, measurement), same unit."""
    tolerance: float
    """Largest accepted |predicted − reference|, same unit (≥ 0)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"validation check name = {self.name!r}: must be non-empty text")
        for field in ("predicted", "reference"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"validation[{self.name}].{field} = {value!r}: must be a number")
        check_nonnegative(f"validation[{self.name}].tolerance", self.tolerance)

    @property
    def passed(self) -> bool:
        """Whether |predicted − reference| <= tolerance (False for a NaN figure)."""
        return abs(self.predicted - self.reference) <= self.tolerance


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ArrayModel:
    """The contents of a model file."""

    rpu: rpu.RPUConfig
    """The tile's complete behavioral model (periphery, update, device)."""
    description: str
    """One line for people: what this model is."""
    source: str
    """Where it came from: ``preset gokmen_vlasov_2016``, later ``calibrated from sim_data/…``."""
    ir_drop: IRDropModel | None = None
    """Line-resistance model giving each tile's read attenuation map; None = no IR drop."""
    validation: tuple[ValidationCheck, ...] = ()
    """Held-out checks (filled by calibration; empty for an exported preset)."""

    def __post_init__(self) -> None:
        if not isinstance(self.rpu, rpu.RPUConfig):
            raise ConfigError(f"rpu = {self.rpu!r}: must be an RPUConfig")
        for field in ("description", "source"):
            if not isinstance(getattr(self, field), str):
                raise ConfigError(f"{field} = {getattr(self, field)!r}: must be text")
        if self.ir_drop is not None and not isinstance(self.ir_drop, IRDropModel):
            raise ConfigError(f"ir_drop = {self.ir_drop!r}: must be an IRDropModel or None")
        names = [c.name for c in self.validation]
        if len(set(names)) != len(names):
            raise ConfigError(f"validation names repeat: {names}")

    def attenuation(self, out_size: int, in_size: int) -> FloatArray | None:
        """Forward-read attenuation map (out_size, in_size) of a tile, or None without IR drop."""
        if self.ir_drop is None:
            return None
        return self.ir_drop.attenuation(out_size, in_size, "forward")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PresetExport:
    """What ``rpucircuit model export`` made a file from (its provenance config)."""

    preset: str
    """Preset name (:data:`rpucircuit.config.training.PRESETS`)."""
    segment_ratio: float = 0.0
    """IR-drop segment ratio r_seg/R_mean written into the file; 0 = no IR-drop model."""
    driver_ratio: float = 0.0
    """IR-drop driver ratio r_driver/R_mean (only with a segment ratio > 0)."""

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, PRESETS)
        check_nonnegative("segment_ratio", self.segment_ratio)
        check_nonnegative("driver_ratio", self.driver_ratio)
        if self.driver_ratio > 0 and self.segment_ratio == 0:
            raise ConfigError(
                f"driver_ratio = {self.driver_ratio!r} needs segment_ratio > 0 "
                "(the IR-drop model is written only with a segment ratio)"
            )

    def build(self) -> ArrayModel:
        """The model this export describes."""
        ir = (
            IRDropModel(segment_ratio=self.segment_ratio, driver_ratio=self.driver_ratio)
            if self.segment_ratio > 0
            else None
        )
        factory = PRESETS[self.preset]
        first_line = (factory.__doc__ or self.preset).strip().splitlines()[0]
        description = first_line
        if ir is not None:
            description += (
                f" With first-order IR drop: segment ratio {ir.segment_ratio:g}, "
                f"driver ratio {ir.driver_ratio:g}."
            )
        return ArrayModel(
            rpu=factory(), description=description, source=f"preset {self.preset}", ir_drop=ir
        )


@dataclasses.dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model read from a file, with what identifies the file."""

    model: ArrayModel
    path: Path
    """The path it was read from (as given; relative paths are against the working folder)."""
    sha256: str
    """sha256 of the file's bytes."""
    provenance: store.Provenance
    """The file's provenance (what it was made from, when, by which version)."""

    def record(self) -> dict[str, str]:
        """What a training history or checkpoint stores about the model file."""
        return {
            "path": str(self.path),
            "resolved_path": str(self.path.resolve()),
            "sha256": self.sha256,
            "source": self.model.source,
        }


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes (StoreError when it cannot be read)."""
    p = Path(path)
    h = hashlib.sha256()
    try:
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise StoreError(f"cannot read model file {p}: {exc.strerror or exc}") from exc
    return h.hexdigest()


def _tree(model: ArrayModel) -> dict[str, Any]:
    tree: dict[str, Any] = {
        "description": model.description,
        "source": model.source,
        "rpu_config_toml": to_toml(model.rpu),
    }
    if model.ir_drop is not None:
        tree["ir_drop"] = to_tree(model.ir_drop)
    if model.validation:
        tree["validation"] = {
            "name": np.array([c.name for c in model.validation], dtype=np.str_),
            "predicted": np.array([c.predicted for c in model.validation], dtype=np.float64),
            "reference": np.array([c.reference for c in model.validation], dtype=np.float64),
            "tolerance": np.array([c.tolerance for c in model.validation], dtype=np.float64),
        }
    return tree


def save_model(path: str | Path, model: ArrayModel, *, origin: object) -> Path:
    """Write ``model`` to ``path`` (atomic). ``origin``: the config dataclass the model was
    made from (a :class:`PresetExport`, later calibration's config); its TOML and key are the
    file's provenance.

    The file is reproducible: the same model, origin and rpucircuit version give the same
    bytes, so its sha256 (which training records, pins with ``model.file_sha256`` and checks
    on ``--resume``, and which keys sweep jobs) changes only when the contents do. It holds
    no creation time unless ``$SOURCE_DATE_EPOCH`` is set.
    """
    prov = store.Provenance(
        kind=MODEL_KIND,
        schema_version=MODEL_SCHEMA,
        config_toml=to_toml(origin),
        config_key=config_key(origin),
    )
    return store.save(path, _tree(model), prov, reproducible=True)


def _text(tree: dict[str, Any], name: str, path: Path) -> str:
    if name not in tree:
        raise StoreError(f"{path}: model file has no {name!r} (not a complete model file)")
    value = tree[name]
    if not isinstance(value, str):
        raise StoreError(f"{path}: {name!r} must be text, found {type(value).__name__}")
    return value


def _validation(tree: Any, path: Path) -> tuple[ValidationCheck, ...]:
    if not isinstance(tree, dict) or set(tree) != set(_VALIDATION_COLUMNS):
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise StoreError(
            f"{path}: validation must hold exactly {', '.join(_VALIDATION_COLUMNS)}; found {found}"
        )
    cols = {k: np.atleast_1d(tree[k]) for k in _VALIDATION_COLUMNS}
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) != 1:
        raise StoreError(f"{path}: validation columns differ in length: {lengths}")
    try:
        return tuple(
            ValidationCheck(
                name=str(cols["name"][i]),
                predicted=float(cols["predicted"][i]),
                reference=float(cols["reference"][i]),
                tolerance=float(cols["tolerance"][i]),
            )
            for i in range(lengths["name"])
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except (TypeError, ValueError) as exc:  # a column that is not numeric
        raise StoreError(f"{path}: validation: {exc}") from exc


def load_model(path: str | Path) -> LoadedModel:
    """Read and validate a model file.

    Raises :class:`~rpucircuit.errors.StoreError` for a missing or unreadable file, another
    kind of file, a newer schema or a missing part, and
    :class:`~rpucircuit.errors.ConfigError` for an RPUConfig or IR-drop model that does not
    validate; every message starts with the path.
    """
    p = Path(path)
    tree, prov = store.load(p, kind=MODEL_KIND)
    if prov.schema_version > MODEL_SCHEMA:
        raise StoreError(
            f"{p}: model schema version {prov.schema_version} is newer than this rpucircuit "
            f"reads ({MODEL_SCHEMA}); upgrade rpucircuit or re-export the model"
        )
    if prov.schema_version < 1:
        raise StoreError(f"{p}: model schema version {prov.schema_version} is not valid")
    unknown = sorted(set(tree) - set(_TOP_LEVEL))
    if unknown:
        raise StoreError(f"{p}: unknown entries {', '.join(unknown)} in a model file")
    description = _text(tree, "description", p)
    source = _text(tree, "source", p)
    text = _text(tree, "rpu_config_toml", p)
    try:
        rpu_cfg = from_toml(rpu.RPUConfig, text, source=f"{p}: rpu_config_toml")
    except ConfigError as exc:
        msg = str(exc)
        prefix = "" if msg.startswith(str(p)) else f"{p}: rpu_config_toml: "
        raise ConfigError(prefix + msg) from exc
    ir: IRDropModel | None = None
    if "ir_drop" in tree:
        if not isinstance(tree["ir_drop"], dict):
            raise StoreError(f"{p}: ir_drop must be a group")
        ir = from_tree(tree["ir_drop"], where=f"{p}: ir_drop")
    validation = _validation(tree["validation"], p) if "validation" in tree else ()
    try:
        model = ArrayModel(
            rpu=rpu_cfg, description=description, source=source, ir_drop=ir, validation=validation
        )
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
    return LoadedModel(model=model, path=p, sha256=file_sha256(p), provenance=prov)


def describe(loaded: LoadedModel, shapes: tuple[tuple[int, int], ...] = ()) -> str:
    """Human-readable summary of a model file (``rpucircuit model show``). ``shapes``: tile
    shapes (out, in) whose largest IR-drop attenuation is listed."""
    m, prov = loaded.model, loaded.provenance
    lines = [
        f"model file   {loaded.path}",
        f"sha256       {loaded.sha256}",
        f"schema       {prov.kind} v{prov.schema_version}, written by rpucircuit "
        f"{prov.package_version} "
        + (f"at {prov.created_utc}" if prov.created_utc else "(reproducible: no creation time)"),
        f"source       {m.source}",
        f"description  {m.description}",
        f"origin key   {prov.config_key[:16]}",
    ]
    origin = prov.config_toml.strip().splitlines()
    if origin:
        lines.append("origin       " + "; ".join(origin))
    if m.ir_drop is None:
        lines.append("IR drop      none (attenuation map = 1)")
    else:
        ir = m.ir_drop
        lines.append(
            f"IR drop      segment ratio {ir.segment_ratio:g}, driver ratio {ir.driver_ratio:g}, "
            f"inputs driven at the {ir.drive_end} end, outputs sensed at the {ir.sense_end} end"
        )
        for out_size, in_size in shapes:
            a_max = ir.max_attenuation(out_size, in_size)
            note = (
                f" (beyond the first-order limit {MAX_ATTENUATION}: training refuses it)"
                if a_max > MAX_ATTENUATION
                else ""
            )
            lines.append(f"  tile {out_size} × {in_size}: largest attenuation {a_max:.3g}{note}")
    if m.validation:
        lines.append("validation   name: predicted / reference (tolerance) pass")
        for c in m.validation:
            ok = "yes" if c.passed else "NO"
            lines.append(
                f"  {c.name}: {c.predicted:.6g} / {c.reference:.6g} ({c.tolerance:.3g}) {ok}"
            )
    else:
        lines.append("validation   none")
    lines.append("RPUConfig (TOML):")
    lines.extend("  " + ln for ln in to_toml(m.rpu).rstrip().splitlines())
    return "\n".join(lines)


__all__ = [
    "MODEL_KIND",
    "MODEL_SCHEMA",
    "ArrayModel",
    "LoadedModel",
    "PresetExport",
    "ValidationCheck",
    "describe",
    "file_sha256",
    "load_model",
    "save_model",
]
