"""Array-model files: a tile's complete behavioral model in one HDF5 file (kind ``model``).

A model file is what a training run loads with ``model.file = "path.h5"``, and what
calibration (fitting the model to SPICE results) writes; ``rpucircuit model export PRESET``
writes one from a preset. It holds the tile's full :class:`~rpucircuit.config.RPUConfig`
(as TOML text), a description, where it came from (``source``) and, optionally, what makes
the model shape-dependent or calibrated (records in :mod:`rpucircuit.model.modelparts`): an
IR-drop model per read direction, an output-noise model σ² = a + b·N + c·N², input transfer
curves, the calibrated parameters with their intervals, a validation table, a fit report and the
characterization file it came from. :meth:`ArrayModel.tile_model` turns it into the
RPUConfig and attenuation maps of one tile shape. Layout (schema 2; schema-1 files are still
read), versioning and the loading rules: ``docs/model-file.md``.

Model path only: this module imports :mod:`rpucircuit.store` (HDF5) and configs, never the
circuit path or calibration.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from rpucircuit import store
from rpucircuit.config.base import check_choice, check_nonnegative, config_key, from_toml, to_toml
from rpucircuit.config.rpu import IOConfig, RPUConfig
from rpucircuit.config.training import PRESETS
from rpucircuit.errors import ConfigError, RpuError, StoreError, UnsupportedError
from rpucircuit.model import modeltables as tables
from rpucircuit.model.irdrop import Direction, FloatArray, IRDropModel
from rpucircuit.model.modelparts import (
    DIRECTIONS,
    CharacterizationLink,
    InputTransfer,
    IRDrop,
    ModelParameter,
    NoiseModel,
    ValidationCheck,
    parameter_from,
)

MODEL_KIND = "model"
"""HDF5 kind of an array-model file."""
MODEL_SCHEMA = 2
"""Layout version of a model file this rpucircuit writes; it reads versions 1 and 2."""

_REQUIRED = ("description", "source", "rpu_config_toml")
_TOP_LEVEL = {
    1: (*_REQUIRED, "ir_drop", "validation"),
    2: (
        *_REQUIRED,
        "ir_drop",
        "out_noise",
        "input_transfer",
        "parameters",
        "validation",
        "fit_report",
        "characterization",
    ),
}
"""Entries a file of each schema version may hold at its top level."""


@dataclasses.dataclass(frozen=True, slots=True)
class TileModel:
    """What one tile of shape (out_size, in_size) gets from a model file."""

    rpu: RPUConfig
    """The file's RPUConfig with each read's ``out_noise`` from the noise model (if any)."""
    forward_attenuation: FloatArray | None
    """Forward-read attenuation map (out_size, in_size), None without IR drop."""
    backward_attenuation: FloatArray | None
    """Backward-read attenuation map (out_size, in_size, tile orientation), None without IR
    drop; training gives it to the tile's backward read
    (:meth:`~rpucircuit.model.tile.AnalogTile.set_attenuation`)."""
    attenuation_lines: tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None = None
    """Both maps as line terms (forward rows, forward columns, backward rows, backward
    columns; :meth:`~rpucircuit.model.irdrop.IRDropModel.attenuation_lines`), None without
    IR drop: each map is 1 − (row term + column term) bit for bit, which lets the tile's
    updates compute map values instead of loading them (``set_attenuation(lines=...)``)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ArrayModel:
    """The contents of a model file."""

    rpu: RPUConfig
    """The tile's complete behavioral model (periphery, update, device)."""
    description: str
    """One line for people: what this model is."""
    source: str
    """Where it came from: ``preset gokmen_vlasov_2016``, ``calibrated from sim_data/…``."""
    ir_drop: IRDrop | None = None
    """Line-resistance model of each read, giving each tile's attenuation maps; None = no
    IR drop."""
    out_noise: NoiseModel | None = None
    """Output noise σ² = a + b·N + c·N²; when given it sets each tile's forward and backward
    ``out_noise`` from its own line length (:meth:`rpu_config_for`). None = the RPUConfig's
    ``out_noise`` for every shape."""
    forward_input_transfer: InputTransfer | None = None
    """Input transfer curve of the forward read; :meth:`tile_model` puts its odd
    coefficients into the tile's ``forward.input_transfer`` (a table is refused there)."""
    backward_input_transfer: InputTransfer | None = None
    """Input transfer curve of the backward read (as the forward one)."""
    parameters: tuple[ModelParameter, ...] = ()
    """Every parameter calibration determined (unique names); empty for an exported preset.
    A record of where the RPUConfig's, IR-drop and noise values came from: the model is
    built from those, not from this table."""
    validation: tuple[ValidationCheck, ...] = ()
    """Held-out checks (unique names; filled by calibration, empty for an exported preset)."""
    fit_report: str = ""
    """Calibration's report (Markdown); empty for an exported preset."""
    characterization: CharacterizationLink | None = None
    """The characterization file the model was calibrated from; None for a preset."""

    def __post_init__(self) -> None:
        if not isinstance(self.rpu, RPUConfig):
            raise ConfigError(f"rpu = {self.rpu!r}: must be an RPUConfig")
        for field in ("description", "source", "fit_report"):
            if not isinstance(getattr(self, field), str):
                raise ConfigError(f"{field} = {getattr(self, field)!r}: must be text")
        for field, cls in (
            ("ir_drop", IRDrop),
            ("out_noise", NoiseModel),
            ("forward_input_transfer", InputTransfer),
            ("backward_input_transfer", InputTransfer),
            ("characterization", CharacterizationLink),
        ):
            value = getattr(self, field)
            if value is not None and not isinstance(value, cls):
                raise ConfigError(f"{field} = {value!r}: must be an {cls.__name__} or None")
        for field, row_cls in (("parameters", ModelParameter), ("validation", ValidationCheck)):
            rows = getattr(self, field)
            if not isinstance(rows, tuple) or not all(isinstance(r, row_cls) for r in rows):
                raise ConfigError(f"{field}: must be a tuple of {row_cls.__name__}")
            names = [r.name for r in rows]
            if len(set(names)) != len(names):
                raise ConfigError(f"{field} names repeat: {names}")

    def attenuation(
        self, out_size: int, in_size: int, direction: Direction = "forward"
    ) -> FloatArray | None:
        """Attenuation map (out_size, in_size) of a tile's ``direction`` read, or None
        without IR drop (ConfigError, naming ``ir_drop/<direction>``, for a tile beyond the
        first-order model)."""
        if self.ir_drop is None:
            return None
        check_choice("direction", direction, DIRECTIONS)
        model: IRDropModel = getattr(self.ir_drop, direction)
        try:
            return model.attenuation(out_size, in_size, direction)
        except ConfigError as exc:
            raise ConfigError(f"ir_drop/{direction}: {exc}") from exc

    def rpu_config_for(self, out_size: int, in_size: int) -> RPUConfig:
        """The RPUConfig of a tile (out_size, in_size): with a noise model, the forward
        read's ``out_noise`` is σ(N = in_size) (a row carries in_size devices) and the
        backward read's σ(N = out_size); a perfect read (``is_perfect``) is left alone.
        Without a noise model: the file's RPUConfig as it is."""
        if self.out_noise is None:
            return self.rpu
        noise = self.out_noise
        fwd, bwd = self.rpu.forward, self.rpu.backward
        if not fwd.is_perfect:
            fwd = dataclasses.replace(fwd, out_noise=noise.sigma(in_size))
        if not bwd.is_perfect:
            bwd = dataclasses.replace(bwd, out_noise=noise.sigma(out_size))
        return dataclasses.replace(self.rpu, forward=fwd, backward=bwd)

    def with_transfer_curves(self, rpu: RPUConfig) -> RPUConfig:
        """``rpu`` with each read's ``input_transfer`` set from the file's curve of that
        direction (the file's curve wins over the RPUConfig's own; no curve: unchanged).

        Raises :class:`~rpucircuit.errors.UnsupportedError` for a table curve: the tile
        applies odd polynomials only (fit one, as calibration does)."""
        replaced: dict[str, IOConfig] = {"forward": rpu.forward, "backward": rpu.backward}
        changed = False
        for direction in DIRECTIONS:
            curve: InputTransfer | None = getattr(self, f"{direction}_input_transfer")
            if curve is None:
                continue
            if not curve.odd_coefficients:
                raise UnsupportedError(
                    f"input_transfer/{direction}: a table curve; the tile applies odd "
                    "polynomial curves only (store odd_coefficients, e.g. a least-squares "
                    "fit of the table)"
                )
            io: IOConfig = getattr(rpu, direction)
            try:
                replaced[direction] = dataclasses.replace(
                    io, input_transfer=tuple(float(c) for c in curve.odd_coefficients)
                )
            except ConfigError as exc:
                raise ConfigError(f"input_transfer/{direction}: {exc}") from exc
            changed = True
        if not changed:
            return rpu
        return dataclasses.replace(rpu, forward=replaced["forward"], backward=replaced["backward"])

    def tile_model(self, out_size: int, in_size: int, *, curves: bool = False) -> TileModel:
        """RPUConfig (per-shape noise, :meth:`rpu_config_for`) and both attenuation maps of
        a tile (out_size, in_size); ``curves``: with the file's input transfer curves in the
        RPUConfig too (:meth:`with_transfer_curves`, what training builds tiles from)."""
        rpu = self.rpu_config_for(out_size, in_size)
        return TileModel(
            rpu=self.with_transfer_curves(rpu) if curves else rpu,
            forward_attenuation=self.attenuation(out_size, in_size, "forward"),
            backward_attenuation=self.attenuation(out_size, in_size, "backward"),
            attenuation_lines=self.attenuation_lines(out_size, in_size),
        )

    def attenuation_lines(
        self, out_size: int, in_size: int
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None:
        """Both maps of :meth:`attenuation` as line terms (forward rows, forward columns,
        backward rows, backward columns), None without IR drop."""
        if self.ir_drop is None:
            return None
        terms: list[FloatArray] = []
        for direction in DIRECTIONS:
            model: IRDropModel = getattr(self.ir_drop, direction)
            try:
                terms.extend(model.attenuation_lines(out_size, in_size, direction))
            except ConfigError as exc:
                raise ConfigError(f"ir_drop/{direction}: {exc}") from exc
        rows_f, cols_f, rows_b, cols_b = terms
        return rows_f, cols_f, rows_b, cols_b


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
        """The model this export describes (one IR-drop model for both reads)."""
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
            rpu=factory(),
            description=description,
            source=f"preset {self.preset}",
            ir_drop=IRDrop.both(ir) if ir is not None else None,
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

    def rpu_config_for(self, out_size: int, in_size: int) -> RPUConfig:
        """:meth:`ArrayModel.rpu_config_for`."""
        return self.model.rpu_config_for(out_size, in_size)

    def tile_model(self, out_size: int, in_size: int, *, curves: bool = False) -> TileModel:
        """:meth:`ArrayModel.tile_model`, errors starting with the file's path."""
        try:
            return self.model.tile_model(out_size, in_size, curves=curves)
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: {exc}") from exc
        except UnsupportedError as exc:
            raise UnsupportedError(f"{self.path}: {exc}") from exc


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes (StoreError when it cannot be read)."""
    p = Path(path)
    h = hashlib.sha256()
    try:
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise StoreError(f"cannot read file {p}: {exc.strerror or exc}") from exc
    return h.hexdigest()


def _tree(model: ArrayModel) -> dict[str, Any]:
    tree: dict[str, Any] = {
        "description": model.description,
        "source": model.source,
        "rpu_config_toml": to_toml(model.rpu),
    }
    if model.ir_drop is not None:
        tree["ir_drop"] = tables.ir_drop_to_tree(model.ir_drop)
    if model.out_noise is not None:
        tree["out_noise"] = tables.noise_to_tree(model.out_noise)
    transfer = {
        d: tables.transfer_to_tree(t)
        for d, t in (
            ("forward", model.forward_input_transfer),
            ("backward", model.backward_input_transfer),
        )
        if t is not None
    }
    if transfer:
        tree["input_transfer"] = transfer
    if model.parameters:
        tree["parameters"] = tables.parameters_to_tree(model.parameters)
    if model.validation:
        tree["validation"] = tables.validation_to_tree(model.validation)
    if model.fit_report:
        tree["fit_report"] = model.fit_report
    if model.characterization is not None:
        tree["characterization"] = tables.link_to_tree(model.characterization)
    return tree


def save_model(
    path: str | Path, model: ArrayModel, *, origin: object, ngspice_version: str = ""
) -> Path:
    """Write ``model`` to ``path`` (atomic, schema :data:`MODEL_SCHEMA`). ``origin``: the
    config dataclass the model was made from (a :class:`PresetExport`, or calibration's
    config); its TOML and key are the file's root provenance. ``ngspice_version``: the
    simulator's version string when the model was calibrated from simulations.

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
        ngspice_version=ngspice_version,
    )
    return store.save(path, _tree(model), prov, reproducible=True)


def _text(tree: dict[str, Any], name: str, path: Path) -> str:
    if name not in tree:
        raise StoreError(f"{path}: model file has no {name!r} (not a complete model file)")
    value = tree[name]
    if not isinstance(value, str):
        raise StoreError(f"{path}: {name!r} must be text, found {type(value).__name__}")
    return value


_DAMAGED = (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError)
"""What h5py raises reading a damaged file (measured by overwriting 64-byte blocks of a real
model file: OSError, KeyError, UnicodeDecodeError, and AttributeError from a dataset whose
type it cannot read)."""


def _read(p: Path) -> tuple[dict[str, Any], store.Provenance]:
    """The file's tree and provenance; anything h5py raises on a damaged file becomes one
    StoreError line naming the file."""
    try:
        return store.load(p, kind=MODEL_KIND)
    except RpuError:
        raise
    except _DAMAGED as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(
            f"{p}: cannot read the model file (truncated or damaged?): {first}"
        ) from exc


def _rpu_config(tree: dict[str, Any], p: Path) -> RPUConfig:
    text = _text(tree, "rpu_config_toml", p)
    try:
        return from_toml(RPUConfig, text, source=f"{p}: rpu_config_toml")
    except ConfigError as exc:
        msg = str(exc)
        prefix = "" if msg.startswith(str(p)) else f"{p}: rpu_config_toml: "
        raise ConfigError(prefix + msg) from exc


def _transfers(tree: Any, p: Path) -> dict[str, InputTransfer]:
    if not isinstance(tree, dict) or not set(tree) <= set(DIRECTIONS):
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise StoreError(f"{p}: input_transfer may hold forward and backward only; found {found}")
    return {
        d: tables.transfer_from_tree(t, where=f"{p}: input_transfer/{d}") for d, t in tree.items()
    }


def _model(tree: dict[str, Any], p: Path, schema: int) -> ArrayModel:
    kwargs: dict[str, Any] = {
        "rpu": _rpu_config(tree, p),
        "description": _text(tree, "description", p),
        "source": _text(tree, "source", p),
    }
    if "ir_drop" in tree:
        kwargs["ir_drop"] = tables.ir_drop_from_tree(tree["ir_drop"], where=f"{p}: ir_drop")
    if "out_noise" in tree:
        kwargs["out_noise"] = tables.noise_from_tree(tree["out_noise"], file=str(p))
    for d, t in _transfers(tree.get("input_transfer", {}), p).items():
        kwargs[f"{d}_input_transfer"] = t
    if "parameters" in tree:
        kwargs["parameters"] = tables.parameters_from_tree(tree["parameters"], file=str(p))
    if "validation" in tree:
        kwargs["validation"] = tables.validation_from_tree(
            tree["validation"], file=str(p), schema=schema
        )
    if "fit_report" in tree:
        kwargs["fit_report"] = _text(tree, "fit_report", p)
    if "characterization" in tree:
        kwargs["characterization"] = tables.link_from_tree(tree["characterization"], file=str(p))
    try:
        return ArrayModel(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc


def load_model(path: str | Path) -> LoadedModel:
    """Read and validate a model file of schema 1 or 2.

    Raises :class:`~rpucircuit.errors.StoreError` for a missing, unreadable, truncated or
    foreign file (not HDF5, not rpucircuit's, another kind), a schema version this
    rpucircuit does not read, and a missing or malformed entry; and
    :class:`~rpucircuit.errors.ConfigError` for an RPUConfig, IR-drop, noise or transfer
    model, parameter or check that does not validate. Every message is one line starting
    with the path.
    """
    p = Path(path)
    tree, prov = _read(p)
    if prov.schema_version not in _TOP_LEVEL:
        newer = prov.schema_version > MODEL_SCHEMA
        raise StoreError(
            f"{p}: model schema version {prov.schema_version} is "
            + (
                f"newer than this rpucircuit reads (1 to {MODEL_SCHEMA}); upgrade rpucircuit "
                "or re-export the model"
                if newer
                else "not valid"
            )
        )
    unknown = sorted(set(tree) - set(_TOP_LEVEL[prov.schema_version]))
    if unknown:
        raise StoreError(
            f"{p}: unknown entries {', '.join(unknown)} in a schema-{prov.schema_version} "
            "model file"
        )
    model = _model(tree, p, prov.schema_version)
    return LoadedModel(model=model, path=p, sha256=file_sha256(p), provenance=prov)


def check_characterization(loaded: LoadedModel, path: str | Path | None = None) -> Path:
    """Check that the characterization file a model names (or ``path``, where it lies now)
    still has the recorded sha256; return its path. StoreError when the model names none,
    or the file is missing or differs."""
    link = loaded.model.characterization
    if link is None:
        raise StoreError(f"{loaded.path}: the model names no characterization file")
    p = Path(link.path if path is None else path)
    sha = file_sha256(p)
    if sha != link.sha256:
        raise StoreError(
            f"{loaded.path}: characterization file {p} has sha256 {sha[:16]}…, the model was "
            f"calibrated from {link.sha256[:16]}…"
        )
    return p


__all__ = [
    "MODEL_KIND",
    "MODEL_SCHEMA",
    "ArrayModel",
    "CharacterizationLink",
    "IRDrop",
    "InputTransfer",
    "LoadedModel",
    "ModelParameter",
    "NoiseModel",
    "PresetExport",
    "TileModel",
    "ValidationCheck",
    "check_characterization",
    "file_sha256",
    "load_model",
    "parameter_from",
    "save_model",
]
