"""The records of an array-model file besides its RPUConfig, and their HDF5 tables.

A model file (:mod:`rpucircuit.model.modelfile`, layout in ``docs/model-file.md``) holds,
next to the tile's :class:`~rpucircuit.config.rpu.RPUConfig`:

- :class:`ModelParameter` rows (``parameters/``): every parameter calibration determined,
  with its sources, residual, tolerance and 95 % interval, and whether it was fitted or
  taken from the circuit config (calibration's ``FittedParameter`` converts with
  :func:`parameter_from`);
- :class:`ValidationCheck` rows (``validation/``): held-out checks, either a scalar figure
  (predicted against reference) or a case comparison (rms and max error of the calibrated
  model and of the uncalibrated preset against the simulator);
- :class:`IRDrop` (``ir_drop/forward``, ``ir_drop/backward``): a first-order IR-drop model
  per read direction;
- :class:`NoiseModel` (``out_noise/``): σ² = a + b·N + c·N², the output noise of a line
  of N devices;
- :class:`InputTransfer` (``input_transfer/forward``, ``/backward``): the DAC-to-line
  transfer curve of a read, stored for the tile to use once it models one;
- :class:`CharacterizationLink` (``characterization/``): the characterization file the
  model was calibrated from.

Every record validates itself when built (:class:`~rpucircuit.errors.ConfigError` naming
the field and value); the ``*_from_tree`` readers raise
:class:`~rpucircuit.errors.StoreError` for a malformed table, naming ``where``.
Model path only: numpy and configs, never the circuit path or calibration.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np

from rpucircuit.config.base import check_choice, check_finite, check_nonnegative
from rpucircuit.errors import ConfigError
from rpucircuit.model.irdrop import Direction, FloatArray, IRDropModel

Origin = Literal["fitted", "config"]
DIRECTIONS: tuple[Direction, Direction] = ("forward", "backward")
"""The two reads of a tile: forward ``y = W x``, backward ``z = Wᵀ δ``."""
SOURCE_SEPARATOR = "\n"
"""Separator of a parameter's source cases in the ``parameters/sources`` column (a case
path never holds one)."""
_HEX = frozenset("0123456789abcdef")


def _number(name: str, value: object) -> float:
    """A real number (NaN and inf allowed), as float; ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(f"{name} = {value!r}: must be a number")
    return float(value)


def _text(name: str, value: object, *, empty: bool = True) -> None:
    if not isinstance(value, str) or (not empty and not value.strip()):
        what = "text" if empty else "non-empty text"
        raise ConfigError(f"{name} = {value!r}: must be {what}")


def _nonnegative_or_nan(name: str, value: float) -> None:
    v = _number(name, value)
    if not math.isnan(v) and v < 0:
        raise ConfigError(f"{name} = {value!r}: must be >= 0 (or NaN: not given)")


class _NanEqual:
    """Equality and hash of a frozen record whose float fields may be NaN ("not given"):
    NaN equals NaN here, so a record read back from a file equals the one written."""

    __slots__ = ()

    def _key(self) -> tuple[Any, ...]:
        return tuple(
            "NaN" if isinstance(v, float) and math.isnan(v) else v
            for v in (getattr(self, f.name) for f in dataclasses.fields(self))  # type: ignore[arg-type]
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _NanEqual)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


# --------------------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class ModelParameter(_NanEqual):
    """One behavioral-model parameter as the file records it (calibration's
    ``FittedParameter``, field for field; :func:`parameter_from` converts)."""

    name: str
    """Parameter name (model-path vocabulary where one exists, e.g. ``k_half_select``)."""
    value: float
    """Best estimate, in ``unit`` (finite)."""
    unit: str
    """Unit of ``value`` and ``interval`` (``"w"`` weight units, ``"1"`` dimensionless,
    SI otherwise)."""
    sources: tuple[str, ...] = ()
    """Characterization cases the value came from (``transfer/fwd_random_8``, …)."""
    residual: float = math.nan
    """The fit's residual, in the measure ``tolerance`` is stated in (``note`` says which);
    NaN for a value taken from the config."""
    tolerance: float = math.nan
    """Largest residual the fit accepts (≥ 0); NaN for a config value."""
    interval: tuple[float, float]
    """95 % interval of ``value`` (low ≤ high, finite); ``(value, value)`` for a config
    value, which carries no estimate of its own uncertainty."""
    origin: Origin
    """``fitted`` (determined by the simulations) or ``config`` (taken from the circuit
    config, which the simulations cannot observe)."""
    note: str = ""
    """How it was fitted, what the residual measures, how it compares with the config."""

    def __post_init__(self) -> None:
        _text("parameter name", self.name, empty=False)
        where = f"parameters[{self.name}]"
        check_finite(f"{where}.value", _number(f"{where}.value", self.value))
        _text(f"{where}.unit", self.unit)
        if not isinstance(self.sources, tuple):
            raise ConfigError(f"{where}.sources = {self.sources!r}: must be a tuple of text")
        for s in self.sources:
            _text(f"{where}.sources", s, empty=False)
            if SOURCE_SEPARATOR in s:
                raise ConfigError(f"{where}.sources: {s!r} must not contain a line break")
        _number(f"{where}.residual", self.residual)
        _nonnegative_or_nan(f"{where}.tolerance", self.tolerance)
        if not isinstance(self.interval, tuple) or len(self.interval) != 2:
            raise ConfigError(f"{where}.interval = {self.interval!r}: must be (low, high)")
        lo, hi = (_number(f"{where}.interval", v) for v in self.interval)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise ConfigError(
                f"{where}.interval = {self.interval!r}: must be finite with low <= high"
            )
        check_choice(f"{where}.origin", self.origin, ("fitted", "config"))
        _text(f"{where}.note", self.note)


def parameter_from(record: object) -> ModelParameter:
    """A :class:`ModelParameter` from any record with the same fields (calibration's
    ``FittedParameter``: ``name``, ``value``, ``unit``, ``sources``, ``residual``,
    ``tolerance``, ``interval``, ``origin``, ``note``)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(ModelParameter):
        if not hasattr(record, field.name):
            raise ConfigError(f"{record!r} has no field {field.name!r} of a model parameter")
        values[field.name] = getattr(record, field.name)
    values["sources"] = tuple(values["sources"])
    values["interval"] = tuple(float(v) for v in values["interval"])
    return ModelParameter(**values)


# --------------------------------------------------------------------------- validation


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class ValidationCheck(_NanEqual):
    """One held-out check of a model.

    Either a **scalar figure** (``predicted`` against ``reference``; passes when
    |predicted − reference| ≤ tolerance) or a **case comparison** (``rms_error`` given: the
    model's read or update against the simulator on one held-out case, with the same
    figures for the uncalibrated preset; passes when rms_error ≤ tolerance). Figures not
    given are NaN.
    """

    name: str
    """What is compared, unique in the file, e.g. ``forward_read/fwd_random_64``."""
    tolerance: float
    """Largest accepted |predicted − reference|, or rms_error for a case comparison (≥ 0)."""
    predicted: float = math.nan
    """Scalar figure: the model's value (unit as ``unit`` or the name says)."""
    reference: float = math.nan
    """Scalar figure: the reference value (simulator, measurement), same unit."""
    case: str = ""
    """Case comparison: the characterization case it was checked on (``transfer/…``)."""
    quantity: str = ""
    """What the errors are of: ``forward_read`` and ``backward_read`` (behavioral read
    against ngspice), ``update`` (expected Δw against the simulated Δg), or other text."""
    unit: str = ""
    """Unit of the figures: ``% of alpha`` (reads: % of the output bound α), ``% of dw_min``
    (update), or an SI unit."""
    rms_error: float = math.nan
    """Case comparison: rms over the case's outputs of (calibrated model − simulator)."""
    max_error: float = math.nan
    """Case comparison: largest |calibrated model − simulator| (≥ rms_error)."""
    preset_rms_error: float = math.nan
    """The same rms for the uncalibrated preset the calibration started from."""
    preset_max_error: float = math.nan
    """The same largest error for the uncalibrated preset."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"validation check name = {self.name!r}: must be non-empty text")
        where = f"validation[{self.name}]"
        for field in ("predicted", "reference"):
            _number(f"{where}.{field}", getattr(self, field))
        check_nonnegative(f"{where}.tolerance", self.tolerance)
        for field in ("case", "quantity", "unit"):
            _text(f"{where}.{field}", getattr(self, field))
        for prefix in ("", "preset_"):
            rms, big = getattr(self, f"{prefix}rms_error"), getattr(self, f"{prefix}max_error")
            _nonnegative_or_nan(f"{where}.{prefix}rms_error", rms)
            _nonnegative_or_nan(f"{where}.{prefix}max_error", big)
            if rms > big:  # False when either is NaN
                raise ConfigError(
                    f"{where}: {prefix}rms_error {rms!r} exceeds {prefix}max_error {big!r} "
                    "(an rms is never above the largest error: columns swapped?)"
                )

    @property
    def is_case(self) -> bool:
        """Whether this is a case comparison (``rms_error`` given)."""
        return not math.isnan(self.rms_error)

    @property
    def passed(self) -> bool:
        """rms_error ≤ tolerance (case), |predicted − reference| ≤ tolerance (figure);
        False for a NaN figure."""
        if self.is_case:
            return self.rms_error <= self.tolerance
        return abs(self.predicted - self.reference) <= self.tolerance


# --------------------------------------------------------------------------- physics records


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class IRDrop:
    """First-order IR-drop model of each read (the lines driven and sensed differ)."""

    forward: IRDropModel
    """Forward read: inputs on the columns, outputs on the rows."""
    backward: IRDropModel
    """Backward read: inputs on the rows, outputs on the columns. Zero ratios = none."""

    def __post_init__(self) -> None:
        for d in DIRECTIONS:
            if not isinstance(getattr(self, d), IRDropModel):
                raise ConfigError(f"ir_drop.{d} = {getattr(self, d)!r}: must be an IRDropModel")

    @classmethod
    def both(cls, model: IRDropModel) -> IRDrop:
        """The same model for both reads (a schema-1 file's single ``ir_drop/``)."""
        return cls(forward=model, backward=model)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NoiseModel:
    """Output noise of a read as a function of the line length: ``σ² = a + b·N + c·N²``.

    N is the number of devices (weights, the bias column included) on one output line: the
    tile's ``in_size`` for the forward read, its ``out_size`` for the backward read.
    σ is in weight units times input units, the unit of ``IOConfig.out_noise``. ``c = 0``
    (the default, and what a file without ``out_noise/c`` means) is the straight line.
    """

    a: float
    """σ² at N = 0 (weight units²): kT/C and the integrator's own broadband noise."""
    b: float
    """σ² added per device on the line (weight units², ≥ 0): device thermal noise and the
    op-amp's broadband noise gain, which grow with the line."""
    c: float = 0.0
    """σ² per device² (weight units², ≥ 0): the op-amp's e_n driven through the line's
    conductance (``e_n·G``, G ∝ N) and its part frozen on the line capacitance (∝ N)."""

    def __post_init__(self) -> None:
        check_finite("out_noise.a", _number("out_noise.a", self.a))
        check_nonnegative("out_noise.b", _number("out_noise.b", self.b))
        check_nonnegative("out_noise.c", _number("out_noise.c", self.c))
        if self.a + self.b + self.c < 0:
            raise ConfigError(
                f"out_noise: a + b + c = {self.a + self.b + self.c!r} < 0: σ² would be "
                "negative for a line of one device"
            )

    def variance(self, n_devices: int) -> float:
        """σ² of a line of ``n_devices`` (≥ 1)."""
        if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 1:
            raise ConfigError(f"out_noise: n_devices = {n_devices!r}: must be an integer >= 1")
        n = float(n_devices)
        return self.a + self.b * n + self.c * n * n

    def sigma(self, n_devices: int) -> float:
        """σ of a line of ``n_devices`` (≥ 1)."""
        return math.sqrt(self.variance(n_devices))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class InputTransfer:
    """What a normalized input x ∈ [−1, 1] becomes on the lines of a read, ``f(x)``
    (normalized so that an ideal DAC gives f(x) = x). One of two forms:

    - ``odd_coefficients`` ``(c1, c3, c5, …)``: ``f(x) = c1·x + c3·x³ + c5·x⁵ + …``;
    - a table ``x`` (strictly increasing) → ``f``, linear in between, held constant beyond
      its ends.

    Training applies the odd polynomial (``IOConfig.input_transfer``,
    :meth:`~rpucircuit.model.modelfile.ArrayModel.with_transfer_curves`) and refuses a
    table.
    """

    odd_coefficients: tuple[float, ...] = ()
    """Coefficients of x, x³, x⁵, … (dimensionless), or empty for a table."""
    x: tuple[float, ...] = ()
    """Table inputs (normalized, strictly increasing), or empty for a polynomial."""
    f: tuple[float, ...] = ()
    """Table outputs f(x), same length as ``x``."""

    def __post_init__(self) -> None:
        for name in ("odd_coefficients", "x", "f"):
            values = getattr(self, name)
            if not isinstance(values, tuple):
                raise ConfigError(f"input transfer {name} = {values!r}: must be a tuple")
            for v in values:
                check_finite(f"input transfer {name}", _number(f"input transfer {name}", v))
        poly, table = bool(self.odd_coefficients), bool(self.x or self.f)
        if poly == table:
            raise ConfigError(
                "input transfer: give either odd_coefficients or a table x, f (exactly one)"
            )
        if table:
            if len(self.x) != len(self.f) or len(self.x) < 2:
                raise ConfigError(
                    f"input transfer table: x ({len(self.x)}) and f ({len(self.f)}) must have "
                    "the same length, at least 2"
                )
            if any(b <= a for a, b in zip(self.x, self.x[1:], strict=False)):
                raise ConfigError("input transfer table: x must be strictly increasing")

    def __call__(self, x: object) -> FloatArray:
        """f evaluated at ``x`` (array or scalar, float64)."""
        xs = np.asarray(x, dtype=np.float64)
        if self.odd_coefficients:
            out = np.zeros_like(xs)
            for k, c in enumerate(self.odd_coefficients):
                out += c * xs ** (2 * k + 1)
            return out
        return np.asarray(np.interp(xs, self.x, self.f), dtype=np.float64)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CharacterizationLink:
    """The characterization file (``rpucircuit characterize``) a model was calibrated from."""

    path: str
    """Its path as calibration was given it (not resolved)."""
    config_key: str
    """Its root ``config_key``: the circuit config it characterized."""
    sha256: str
    """sha256 of its bytes (64 lowercase hex digits)."""

    def __post_init__(self) -> None:
        _text("characterization.path", self.path, empty=False)
        _text("characterization.config_key", self.config_key, empty=False)
        if (
            not isinstance(self.sha256, str)
            or len(self.sha256) != 64
            or not set(self.sha256) <= _HEX
        ):
            raise ConfigError(
                f"characterization.sha256 = {self.sha256!r}: must be 64 lowercase hex digits"
            )


__all__ = [
    "DIRECTIONS",
    "CharacterizationLink",
    "IRDrop",
    "InputTransfer",
    "ModelParameter",
    "NoiseModel",
    "ValidationCheck",
    "parameter_from",
]
