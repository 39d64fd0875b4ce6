"""The parasitics of a tile of a given shape: one record both paths build their reads from.

:class:`TileParasitics` holds the line-segment resistances of the row and column lines, the
driver output resistance, the mean device conductance and which end of each line is driven
or sensed. The circuit path's nodal solver (:mod:`rpucircuit.circuit.nodal`) builds its
network from it, and the model path's closed-form IR-drop map
(:mod:`rpucircuit.model.irdrop`) takes its ratios from it, so the two describe the same
tile by construction. It lives in the base layer because neither path may import the other.

Two constructors: :meth:`TileParasitics.from_circuit` (the circuit config's lines, driver and
devices; a ``CircuitConfig`` or anything shaped like one) and :meth:`TileParasitics.from_ratios`
(a model file's fitted ratios ``r_seg/R_mean`` and ``r_driver/R_mean``, which fix only the
ratios: the resistances come out in units of ``R_mean``, 1 Ω unless given).

Orientation. The tile is ``rows × cols``; the forward read drives the columns and senses the
rows, the backward read drives the rows and senses the columns. :meth:`TileParasitics.lines`
gives, for a read direction, the segment resistance of the input lines and of the output
lines.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol

from rpucircuit.config.base import check_choice, check_nonnegative, check_positive
from rpucircuit.errors import ConfigError

LineEnd = Literal["first", "last"]
Direction = Literal["forward", "backward"]


class _Tile(Protocol):
    @property
    def r_seg_row_ohm(self) -> float: ...
    @property
    def r_seg_col_ohm(self) -> float: ...
    @property
    def r_driver_ohm(self) -> float: ...


class _Device(Protocol):
    @property
    def g_mean_s(self) -> float: ...


class CircuitLike(Protocol):
    """What :meth:`TileParasitics.from_circuit` reads: a ``CircuitConfig``'s ``tile`` and
    ``device`` (typed structurally: the base layer does not import the circuit config)."""

    @property
    def tile(self) -> _Tile: ...
    @property
    def device(self) -> _Device: ...


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TileParasitics:
    """Line and driver resistances and the mean device conductance of a tile (any shape)."""

    r_seg_row_ohm: float
    """Resistance of one segment (one cross-point pitch) of a row line (Ω, ≥ 0)."""
    r_seg_col_ohm: float
    """Resistance of one segment of a column line (Ω, ≥ 0)."""
    r_driver_ohm: float = 0.0
    """Output resistance of each input line's driver (Ω, ≥ 0)."""
    g_mean_s: float
    """Mean device conductance ``1/R_mean`` (S, > 0): what the closed-form map assumes of
    every device, and the unit of the ratios."""
    drive_end: LineEnd = "first"
    """End of each input line its driver sits at (our netlists: index 0, ``first``)."""
    sense_end: LineEnd = "last"
    """End of each output line its integrator sits at (our netlists: past the last device)."""

    def __post_init__(self) -> None:
        for name in ("r_seg_row_ohm", "r_seg_col_ohm", "r_driver_ohm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} = {value!r}: must be a number")
            check_nonnegative(name, float(value))
        check_positive("g_mean_s", self.g_mean_s)
        check_choice("drive_end", self.drive_end, ("first", "last"))
        check_choice("sense_end", self.sense_end, ("first", "last"))

    @classmethod
    def from_circuit(cls, cfg: CircuitLike) -> TileParasitics:
        """The circuit config's row and column lines, driver and mean device conductance,
        with our netlists' geometry (drivers at index 0, integrators past the last device)."""
        t = cfg.tile
        return cls(
            r_seg_row_ohm=float(t.r_seg_row_ohm),
            r_seg_col_ohm=float(t.r_seg_col_ohm),
            r_driver_ohm=float(t.r_driver_ohm),
            g_mean_s=float(cfg.device.g_mean_s),
        )

    @classmethod
    def from_ratios(
        cls,
        segment_ratio: float,
        driver_ratio: float = 0.0,
        *,
        r_mean_ohm: float = 1.0,
        drive_end: LineEnd = "first",
        sense_end: LineEnd = "last",
    ) -> TileParasitics:
        """Fitted ratios ``ρ = r_seg/R_mean`` (both line kinds) and ``ρ_d = r_driver/R_mean``
        on devices of ``R_mean`` (default 1 Ω: the resistances are then the ratios)."""
        check_positive("r_mean_ohm", r_mean_ohm)
        for name, value in (("segment_ratio", segment_ratio), ("driver_ratio", driver_ratio)):
            check_nonnegative(name, value)
        return cls(
            r_seg_row_ohm=segment_ratio * r_mean_ohm,
            r_seg_col_ohm=segment_ratio * r_mean_ohm,
            r_driver_ohm=driver_ratio * r_mean_ohm,
            g_mean_s=1.0 / r_mean_ohm,
            drive_end=drive_end,
            sense_end=sense_end,
        )

    def lines(self, direction: Direction) -> tuple[float, float]:
        """``(r_seg of the input lines, r_seg of the output lines)`` (Ω) of a read: forward
        the columns are driven and the rows sensed, backward the other way round."""
        check_choice("direction", direction, ("forward", "backward"))
        if direction == "forward":
            return self.r_seg_col_ohm, self.r_seg_row_ohm
        return self.r_seg_row_ohm, self.r_seg_col_ohm

    def ratios(self, direction: Direction) -> tuple[float, float, float]:
        """``(ρ_in, ρ_out, ρ_d)``: the input lines', output lines' segment and the driver
        resistance over ``R_mean`` for a read in ``direction``."""
        r_in, r_out = self.lines(direction)
        g = self.g_mean_s
        return r_in * g, r_out * g, self.r_driver_ohm * g


__all__ = ["CircuitLike", "Direction", "LineEnd", "TileParasitics"]
