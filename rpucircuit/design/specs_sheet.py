"""The specification sheet's records: rows, paper A's published values, number formatting.

:mod:`rpucircuit.design.specs` derives the numbers, :mod:`rpucircuit.design.specs_rows`
turns them into rows, :mod:`rpucircuit.design.specs_render` writes markdown and HTML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rpucircuit.circuit.analytic import SAKURAI_DISTRIBUTED_50
from rpucircuit.config.tile import SpecInputs

Basis = Literal["derived", "input", "analytic", "explore"]

WITHIN_FACTOR = 2.0
"""A row agrees with paper A when ours/paper lies in [1/2, 2] (the sheet's acceptance)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PaperValue:
    """A value published in paper A, in SI units, and where it is stated."""

    value: float
    """The value (SI, the unit of the row it stands beside)."""
    source: str
    """Where paper A states it."""


_CIRCUIT = "paper A, section 'RPU device and system specifications'"
PAPER_A: Mapping[str, PaperValue] = {
    "line_delay": PaperValue(value=0.1e-9, source=f"{_CIRCUIT}: RC delay ≤ 10 % of 1 ns"),
    "line_length": PaperValue(value=1.64e-3, source=f"{_CIRCUIT}: longest line ≈ 1.64 mm"),
    "array_size": PaperValue(value=4096, source=f"{_CIRCUIT}: 4096 × 4096 devices"),
    "r_mean": PaperValue(value=24e6, source=f"{_CIRCUIT}: average device resistance 24 MΩ"),
    "t_meas": PaperValue(value=80e-9, source=f"{_CIRCUIT}: t_meas = 80 ns"),
    "t_forward": PaperValue(value=80e-9, source=f"{_CIRCUIT}: forward cycle of 80 ns"),
    "alpha": PaperValue(value=12.0, source=f"{_CIRCUIT}: output bound |y| ≤ 12"),
    "sigma": PaperValue(
        value=0.06, source="paper A, training results: output noise σ = 0.06 acceptable"
    ),
    "on_off": PaperValue(value=8.0, source=f"{_CIRCUIT}: on/off ratio ≈ 8 chosen"),
    "adc_bits": PaperValue(value=9.0, source=f"{_CIRCUIT}: 9-bit ADCs"),
    "t_update": PaperValue(value=10e-9, source=f"{_CIRCUIT}: BL = 10 pulses of 1 ns"),
    "p_adc": PaperValue(value=1.0, source=f"{_CIRCUIT}: 4096 SAR ADCs, total power 1 W"),
    "a_adc": PaperValue(value=104e-6, source=f"{_CIRCUIT}: 4096 SAR ADCs, total area 104 mm²"),
    "eff_system": PaperValue(
        value=84_000e9, source="paper A, abstract and system section: 84,000 GOps/s/W"
    ),
}
"""Paper A's values, one per row key; a row without an entry has no published value."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ExploreResults:
    """What ``explore noise`` and ``explore onoff`` found (either may be missing)."""

    sigma_w: float | None = None
    """Acceptable output noise (weight units), or None."""
    sigma_source: str = ""
    """The file σ came from."""
    min_on_off_ratio: float | None = None
    """Smallest on/off ratio that trains acceptably, or None."""
    on_off_source: str = ""
    """The file (and grid point) the on/off ratio came from."""

    @property
    def source(self) -> str:
        """Where each value came from, in words."""
        parts = []
        if self.sigma_w is not None:
            parts.append(f"σ from {self.sigma_source}")
        if self.min_on_off_ratio is not None:
            parts.append(f"on/off ratio from {self.on_off_source}")
        return "; ".join(parts)


@dataclass(frozen=True, kw_only=True, slots=True)
class SpecRow:
    """One line of the sheet: a quantity, our value, how it was obtained, paper A's value."""

    key: str
    """Stable name (the key of :data:`PAPER_A`)."""
    quantity: str
    """What it is, in words."""
    value: float
    """Our value (SI)."""
    unit: str
    """Display unit."""
    scale: float
    """SI value of one display unit (display = value/scale)."""
    derivation: str
    """Formula with the numbers put in."""
    basis: Basis
    """``derived`` from the config, an ``input``, the ``analytic`` budget, or ``explore``."""
    note: str
    """Why ours differs from paper A (or why there is nothing to compare)."""

    @property
    def paper(self) -> PaperValue | None:
        """Paper A's value of this row, if it publishes one."""
        return PAPER_A.get(self.key)

    @property
    def ratio(self) -> float | None:
        """Ours over paper A's, or None without a paper value."""
        p = self.paper
        return None if p is None else self.value / p.value

    @property
    def within(self) -> bool | None:
        """Whether ours lies within a factor 2 of paper A's (None without a paper value)."""
        r = self.ratio
        return None if r is None else 1.0 / WITHIN_FACTOR <= r <= WITHIN_FACTOR


@dataclass(frozen=True, kw_only=True, slots=True)
class SpecSheet:
    """The whole sheet: rows in order, and what it was derived from."""

    rows: tuple[SpecRow, ...]
    """Rows in display order."""
    config_source: str
    """The circuit config file, or paper A's preset."""
    explore: ExploreResults | None
    """The explore results used, if any."""
    inputs: SpecInputs
    """The figures of merit taken as given."""

    def row(self, key: str) -> SpecRow:
        """The row named ``key``."""
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)


# --------------------------------------------------------------------------- formatting


_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"))
_SMALL = ((1e-6, "µ"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f"), (1e-18, "a"))


def eng(value: float, unit: str, digits: int = 4) -> str:
    """``value`` with an SI prefix on ``unit`` and ``digits`` significant digits."""
    if not math.isfinite(value) or value == 0.0:
        return f"{value:g} {unit}".strip()
    mag = abs(value)
    for scale, prefix in (*_PREFIXES, *_SMALL):
        if mag >= scale * 0.9995:
            return f"{value / scale:.{digits}g} {prefix}{unit}".strip()
    return f"{value:.{digits}g} {unit}".strip()


def fmt(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, no unit."""
    return f"{value:.{digits}g}"


DELAY_COEFF: Mapping[str, float] = {
    "elmore": 0.5,
    "distributed_50": SAKURAI_DISTRIBUTED_50,
    "rc": 1.0,
}
"""Line delay over R·C for each :attr:`SpecInputs.delay_rule` (the coefficients of
:func:`rpucircuit.circuit.analytic.max_line_length_um`)."""

DELAY_FORMULA: Mapping[str, str] = {"elmore": "½·R·C", "distributed_50": "0.377·R·C", "rc": "R·C"}
"""The delay of each rule, as the sheet prints it."""
