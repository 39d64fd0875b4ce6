"""What every fit returns and raises, how it finds its cases, and the small statistics it
shares (linear least squares with a 95 % interval, inverse-variance combination).

A characterization tree is the nested dict :func:`rpucircuit.circuit.characterize.load`
returns (layout in ``docs/characterization-schema.md``). The fits read it and nothing else:
the circuit values they compare with come from each case's ``parameters`` group, which
records the circuit that case simulated.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from rpucircuit.errors import CalibrationError, MissingCaseError

FloatArray = npt.NDArray[np.float64]
Tree = Mapping[str, Any]
Origin = Literal["fitted", "config"]

CONFIDENCE = 0.95
"""Coverage of every interval a fit reports."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FittedParameter:
    """One behavioral-model parameter as calibration determined it."""

    name: str
    """Parameter name (model-path vocabulary where one exists, e.g. ``k_half_select``)."""
    value: float
    """Best estimate, in ``unit``."""
    unit: str
    """Unit of ``value`` and ``interval`` (``"w"`` weight units, ``"1"`` dimensionless,
    SI otherwise)."""
    sources: tuple[str, ...]
    """Tree paths of the cases the value came from (``transfer/fwd_random_8``, …)."""
    residual: float
    """The fit's residual, in the measure its tolerance is stated in (see ``note``); NaN
    for a value taken from the config."""
    tolerance: float
    """Largest residual the fit accepts (same measure); NaN for a config value."""
    interval: tuple[float, float]
    """95 % interval of ``value``; ``(value, value)`` for a config value, which carries no
    estimate of its own uncertainty."""
    origin: Origin
    """``fitted`` (determined by the simulations) or ``config`` (SPICE cannot observe it:
    taken from the circuit config the file records)."""
    note: str = ""
    """How it was fitted, what the residual measures, and how it compares with the config."""

    def __post_init__(self) -> None:
        if not self.name:
            raise CalibrationError("<unnamed>", "FittedParameter.name must not be empty")
        if self.origin not in ("fitted", "config"):
            raise CalibrationError(
                self.name, f"origin = {self.origin!r}: must be 'fitted' or 'config'"
            )
        lo, hi = self.interval
        if lo > hi:
            raise CalibrationError(self.name, f"interval {self.interval!r} has lo > hi")

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the 95 % interval."""
        lo, hi = self.interval
        return lo <= value <= hi


def config_parameter(
    name: str, value: float, unit: str, sources: Sequence[str], note: str
) -> FittedParameter:
    """A parameter the simulations cannot observe, taken from the recorded config."""
    return FittedParameter(
        name=name,
        value=float(value),
        unit=unit,
        sources=tuple(sources),
        residual=math.nan,
        tolerance=math.nan,
        interval=(float(value), float(value)),
        origin="config",
        note=note,
    )


# --------------------------------------------------------------------------- tree access


def group(tree: Tree, name: str, *, parameter: str, field: str) -> Tree:
    """Top-level group ``name`` (``noise``, ``ktc``, …) or :class:`MissingCaseError`."""
    value = tree.get(name)
    if not isinstance(value, Mapping):
        raise MissingCaseError(parameter, name, field)
    return value


def find_cases(
    tree: Tree, kind: str, pattern: str, *, parameter: str, case: str, field: str
) -> dict[str, Tree]:
    """Cases of ``tree[kind]`` whose name fully matches the regex ``pattern``, by name.

    Raises :class:`MissingCaseError` naming ``case`` (a readable form of the pattern, such
    as ``transfer/fwd_ir_stress_<N>``) and ``field`` when there is none.
    """
    cases = tree.get(kind)
    found: dict[str, Tree] = {}
    if isinstance(cases, Mapping):
        for name in sorted(cases):
            if re.fullmatch(pattern, name) and isinstance(cases[name], Mapping):
                found[name] = cases[name]
    if not found:
        raise MissingCaseError(parameter, case, field)
    return found


def scalar(case: Tree, key: str) -> float:
    """A scalar dataset of a case (``parameters/…`` paths allowed) as a float."""
    node: Any = case
    for part in key.split("/"):
        node = node[part]
    return float(np.asarray(node, dtype=np.float64))


def text(case: Tree, key: str) -> str:
    """A string dataset of a case."""
    value = case[key]
    if isinstance(value, bytes):
        return value.decode()
    return str(np.asarray(value).item() if isinstance(value, np.ndarray) else value)


def array(case: Tree, key: str) -> FloatArray:
    """A dataset of a case as a float array."""
    return np.asarray(case[key], dtype=np.float64)


def case_config(case: Tree) -> dict[str, Any]:
    """The whole circuit config a case recorded (``parameters/config_toml``) as tables."""
    return tomllib.loads(text(case["parameters"], "config_toml"))


# --------------------------------------------------------------------------- statistics


def t_quantile(dof: int) -> float:
    """Two-sided :data:`CONFIDENCE` quantile of Student's t with ``dof`` degrees of freedom
    (the normal quantile for ``dof`` ≤ 0 is never used: callers need dof ≥ 1)."""
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2.0, dof))


Z95 = float(stats.norm.ppf(0.5 + CONFIDENCE / 2.0))
"""Two-sided 95 % quantile of the standard normal (1.96)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class LinearFit:
    """Ordinary least squares ``b ≈ A·coef``."""

    coef: FloatArray
    """Fitted coefficients."""
    cov: FloatArray
    """Covariance of the coefficients (residual variance × (AᵀA)⁻¹); 0 without dof."""
    stderr: FloatArray
    """Standard error of each coefficient, √diag(cov)."""
    rms: float
    """rms of the residual ``b − A·coef``."""
    dof: int
    """Degrees of freedom, rows − columns."""

    def half_width(self, i: int) -> float:
        """Half-width of the 95 % interval of coefficient ``i`` (0 without dof)."""
        return t_quantile(self.dof) * float(self.stderr[i]) if self.dof > 0 else 0.0


def least_squares(design: FloatArray, b: FloatArray, *, parameter: str) -> LinearFit:
    """Least squares with standard errors; :class:`CalibrationError` naming ``parameter``
    when the columns of ``design`` are not independent (the data cannot separate them)."""
    a = np.asarray(design, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != y.size or a.shape[0] < a.shape[1]:
        raise CalibrationError(
            parameter, f"need at least {a.shape[1]} data points, got {y.size} (shape {a.shape})"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(y))):
        raise CalibrationError(parameter, "the data contain NaN or infinity")
    if np.linalg.matrix_rank(a) < a.shape[1]:
        raise CalibrationError(
            parameter, "the cases cannot separate the fitted terms (design matrix rank-deficient)"
        )
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - a @ coef
    dof = a.shape[0] - a.shape[1]
    rss = float(resid @ resid)
    cov = (rss / dof if dof > 0 else 0.0) * np.linalg.inv(a.T @ a)
    return LinearFit(
        coef=np.asarray(coef, dtype=np.float64),
        cov=np.asarray(cov, dtype=np.float64),
        stderr=np.sqrt(np.maximum(np.diag(cov), 0.0)),
        rms=math.sqrt(rss / y.size),
        dof=dof,
    )


def combine(values: Sequence[float], half_widths: Sequence[float]) -> tuple[float, float]:
    """Inverse-variance mean of independent estimates and its 95 % half-width.

    Each estimate's variance is taken as ``(half_width/1.96)²``; an estimate with half-width
    0 (exact) dominates. Returns ``(mean, half_width)``.
    """
    v = np.asarray(values, dtype=np.float64)
    h = np.asarray(half_widths, dtype=np.float64)
    if np.any(h <= 0.0):
        exact = v[h <= 0.0]
        return float(exact.mean()), 0.0
    w = 1.0 / (h / Z95) ** 2
    mean = float(np.sum(w * v) / np.sum(w))
    return mean, Z95 / math.sqrt(float(np.sum(w)))


__all__ = [
    "CONFIDENCE",
    "Z95",
    "CalibrationError",
    "FittedParameter",
    "LinearFit",
    "MissingCaseError",
    "array",
    "case_config",
    "combine",
    "config_parameter",
    "find_cases",
    "group",
    "least_squares",
    "scalar",
    "t_quantile",
    "text",
]
