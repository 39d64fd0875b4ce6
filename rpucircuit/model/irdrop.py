"""First-order IR-drop attenuation of a tile read, in closed form (model path, numpy only).

A read drives every input line from its driver end and collects every output line's charge
at its sense end (an integrator holding that end at virtual ground). Line segments have a
resistance ``r_seg``, so a device far from the driver sees less than the full input, and the
charge it sends into the output line has to push the line up on its way to the integrator.
For a tile whose devices all sit near the mean conductance ``g = 1/R_mean`` the read is, to
first order in ``ρ = r_seg/R_mean``, ``y_i = Σ_j W_ij·(1 − a_ij)·x_j`` with

    a_ij = ρ_d·N_in-line + ρ·D(p_in; N_in-line) + ρ·D(p_out; N_out-line),
    D(p; N) = Σ_{s=0..p} (N − s) = (p + 1)·N − p·(p + 1)/2,

where ``N_in-line`` is the number of devices on an input line, ``p_in`` the device's position
along its input line counted from the driven end (0 = next to the driver), ``N_out-line`` and
``p_out`` the same along its output line from the sensed end, and ``ρ_d = r_driver/R_mean``.

Why: the zeroth-order current of each device on input line j is ``g·x_j``; segment s of that
line (s = 0 between the driver and the first device) carries the currents of the N − s
devices beyond it, so the potential at position p has dropped by ``ρ·D(p; N)·x_j`` (plus the
driver's ``ρ_d·N·x_j``). On output line i the segment past position s (counted from the open
end) carries the currents of every device before it; the charge lost to the output line's
potentials, ``Σ_j g·w_ij``, is a sum over the same triangle of index pairs, and swapping the
order of summation (reciprocity of the resistive network) hands each input ``x_j`` the factor
``ρ·D(p_out; N)`` with ``p_out`` counted from the sense end. Both arrays of a signed pair see
the same map (they share the mean conductance), so the map multiplies the weight
``W = (G⁺ − G⁻)/ΔG_unit`` element by element.

Accuracy: the terms dropped are products of two first-order terms (the exact solution is a
Neumann series in ``ρ``), each of size at most ``a_max²`` with ``a_max = max a_ij``; the
tests check the map against the independent nodal solve of :mod:`rpucircuit.circuit.nodal` within
that bound. Conductances that differ from the mean change ``a`` in proportion (the map is
for the mean tile); the integrator is taken as ideal (virtual ground).

Geometry of our netlists (:mod:`rpucircuit.circuit.netlist`): forward, the inputs are the columns,
driven at the row-0 end, and the outputs the rows, sensed at the last-column end; backward,
the rows are driven at the column-0 end and the columns sensed past the last row. In both
directions that is ``drive_end = "first"`` and ``sense_end = "last"`` (the defaults).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.config.base import check_choice, check_int, check_nonnegative, check_range
from rpucircuit.config.parasitics import TileParasitics
from rpucircuit.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
LineEnd = Literal["first", "last"]
Direction = Literal["forward", "backward"]

MAX_ATTENUATION = 0.5
"""Largest first-order attenuation ``a_max`` a tile may have. The neglected second-order
terms are up to ``a_max²``; at ``a_max = 0.5`` that is half the first-order term itself, so
beyond it the closed form says nothing reliable (and at ``a_max ≥ 1`` it would flip signs)."""

MAX_RATIO = 1.0
"""Upper limit of ``segment_ratio`` and ``driver_ratio`` (a segment or driver as resistive as
a device). Real tiles are near 1e-8 (paper A: 0.144 Ω / 24 MΩ = 6e-9)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class IRDropModel:
    """Physical parameters of a tile's line resistance, valid for a tile of any shape."""

    segment_ratio: float
    """ρ = r_seg/R_mean: resistance of one line segment (one cross-point pitch) over the mean
    device resistance (dimensionless; both line kinds). Paper A: 0.36 Ω/µm × 0.4 µm / 24 MΩ
    = 6e-9 (its IR-drop budget N²·ρ ≈ 0.1 for N = 4096)."""
    driver_ratio: float = 0.0
    """ρ_d = r_driver/R_mean: line driver output resistance over the mean device resistance
    (dimensionless). Our circuit preset assumes 10 Ω / 24 MΩ ≈ 4.2e-7; 0 = ideal drivers."""
    drive_end: LineEnd = "first"
    """End of each input line its driver sits at: ``first`` = index 0 (our netlists: the
    row-0 end of a column forward, the column-0 end of a row backward), ``last``."""
    sense_end: LineEnd = "last"
    """End of each output line its integrator sits at: ``last`` (our netlists: past the last
    column forward, past the last row backward) or ``first``."""

    def __post_init__(self) -> None:
        check_range("segment_ratio", self.segment_ratio, 0.0, MAX_RATIO)
        check_range("driver_ratio", self.driver_ratio, 0.0, MAX_RATIO)
        check_choice("drive_end", self.drive_end, ("first", "last"))
        check_choice("sense_end", self.sense_end, ("first", "last"))

    def parasitics(self, r_mean_ohm: float = 1.0) -> TileParasitics:
        """The model as :class:`~rpucircuit.config.parasitics.TileParasitics` on devices of
        ``R_mean`` (both line kinds at ``segment_ratio·R_mean``)."""
        return TileParasitics.from_ratios(
            self.segment_ratio,
            self.driver_ratio,
            r_mean_ohm=r_mean_ohm,
            drive_end=self.drive_end,
            sense_end=self.sense_end,
        )

    def attenuation(
        self, out_size: int, in_size: int, direction: Direction = "forward"
    ) -> FloatArray:
        """The first-order attenuation map ``1 − a`` of a tile (out_size, in_size) read in
        ``direction`` (module doc), in tile orientation (rows = outputs of the forward read).

        Raises :class:`~rpucircuit.errors.ConfigError` when the largest attenuation exceeds
        :data:`MAX_ATTENUATION` (the first-order model does not hold for that shape).
        """
        return 1.0 - first_order_attenuation(self, out_size, in_size, direction)

    def attenuation_lines(
        self, out_size: int, in_size: int, direction: Direction = "forward"
    ) -> tuple[FloatArray, FloatArray]:
        """The map of :meth:`attenuation` as line terms (rows (out_size,), columns
        (in_size,)): the map is ``1 − (rows_i + cols_j)`` bit for bit, which is what
        :meth:`~rpucircuit.model.tile.AnalogTile.set_attenuation` takes as ``lines``.
        Raises as :meth:`attenuation` does."""
        return parasitic_lines(self.parasitics(), out_size, in_size, direction)

    def max_attenuation(
        self, out_size: int, in_size: int, direction: Direction = "forward"
    ) -> float:
        """``a_max`` of a tile of this shape (closed form, no map built)."""
        return max_attenuation(self.parasitics(), out_size, in_size, direction)


def max_attenuation(
    par: TileParasitics, out_size: int, in_size: int, direction: Direction = "forward"
) -> float:
    """``a_max`` of a tile of this shape with these parasitics (closed form, no map)."""
    rho_in, rho_out, rho_d = par.ratios(direction)
    n_in, n_out = (out_size, in_size) if direction == "forward" else (in_size, out_size)
    # the worst device is the farthest from both terminals: D grows with p
    return float(rho_d * n_in + rho_in * line_drop(n_in)[-1] + rho_out * line_drop(n_out)[-1])


def line_drop(n: int) -> FloatArray:
    """``D(p; n)`` for p = 0 … n − 1: the potential change, in units of ``ρ·g·x``, at
    position p (from the line's terminal) of a line of n devices each carrying ``g·x``."""
    p = np.arange(n, dtype=np.float64)
    out: FloatArray = (p + 1.0) * n - p * (p + 1.0) / 2.0
    return out


def _positions(n: int, terminal: LineEnd) -> FloatArray:
    d = line_drop(n)
    return d if terminal == "first" else d[::-1].copy()


def first_order_attenuation(
    model: IRDropModel, out_size: int, in_size: int, direction: Direction = "forward"
) -> FloatArray:
    """The map ``a`` (out_size, in_size) of the module doc (the fraction each weight loses)."""
    return parasitic_attenuation(model.parasitics(), out_size, in_size, direction)


def parasitic_attenuation(
    par: TileParasitics, out_size: int, in_size: int, direction: Direction = "forward"
) -> FloatArray:
    """The map ``a`` (out_size, in_size) of a tile with parasitics ``par``: the module doc's
    closed form with the input lines' ratio ``ρ_in`` and the output lines' ``ρ_out``
    (:meth:`TileParasitics.ratios`), ``a_ij = ρ_d·N_in + ρ_in·D(p_in) + ρ_out·D(p_out)``,
    computed as the sum of :func:`parasitic_lines`' row and column terms."""
    rows, cols = parasitic_lines(par, out_size, in_size, direction)
    a: FloatArray = rows[:, None] + cols[None, :]
    return a


def parasitic_lines(
    par: TileParasitics, out_size: int, in_size: int, direction: Direction = "forward"
) -> tuple[FloatArray, FloatArray]:
    """The map of :func:`parasitic_attenuation` as its two terms: ``a_ij = rows_i +
    cols_j`` (the sum of these, bit for bit), over the tile's rows (out_size,) and
    columns (in_size,). Raises :class:`~rpucircuit.errors.ConfigError` when the largest
    attenuation exceeds :data:`MAX_ATTENUATION`."""
    check_int("out_size", out_size, 1)
    check_int("in_size", in_size, 1)
    check_choice("direction", direction, ("forward", "backward"))
    n_rows, n_cols = out_size, in_size
    rho_in, rho_out, rho_d = par.ratios(direction)
    if direction == "forward":
        # input lines = columns (rows devices each, position = row index i),
        # output lines = rows (cols devices each, position = column index j)
        rows = rho_d * n_rows + rho_in * _positions(n_rows, par.drive_end)  # over i
        cols = rho_out * _positions(n_cols, par.sense_end)  # over j
    else:
        # input lines = rows (cols devices, position j), output lines = columns (rows, i)
        cols = rho_d * n_cols + rho_in * _positions(n_cols, par.drive_end)  # over j
        rows = rho_out * _positions(n_rows, par.sense_end)  # over i
    # the largest sum: rounding is monotone, so it is the sum of the largest terms
    a_max = float(rows.max() + cols.max())
    if not math.isfinite(a_max) or a_max > MAX_ATTENUATION:
        raise ConfigError(
            f"IR drop (segment_ratio = {rho_in!r}"
            + (f"/{rho_out!r}" if rho_out != rho_in else "")
            + f", driver_ratio = {rho_d!r}) on a {out_size} × {in_size} tile: largest "
            f"first-order attenuation {a_max:.3g} exceeds {MAX_ATTENUATION} (the first-order "
            "model does not hold); use a smaller ratio or smaller tiles"
        )
    return rows, cols


def weight_drop(par: TileParasitics, w: FloatArray, direction: Direction = "forward") -> FloatArray:
    """The first-order IR-drop term the mean map leaves out, for a signed pair whose devices
    are ``G± = G_mean ± w·ΔG_unit/2`` (the circuit path's mapping): ``B(W)`` in

        ``W_eff = W ∘ (1 − a) − B(W)``,

    ``B_ij = ρ_d·Σ_i' W_i'j + ρ_in·Σ_{k ≤ p_in} Σ_{i' beyond k} W_i'j
    + ρ_out·Σ_{k from p_out to the sense end} Σ_{j' upstream of k} W_ij'``
    (forward orientation; positions as in the module doc). Why: each array's line drop
    follows its own devices' currents, ``G±·x = G_mean·x ± (ΔG_unit/2)·w·x``; the mean parts
    give ``a``, and the pair's difference of the ``±`` parts is the same double cumulative
    sum of the line as the mean's, applied to W instead of 1 (the ``ΔG_unit`` cancels, so B
    needs no device values). It makes the first-order read exact for any weights at the cost
    of two cumulative sums per line direction; without it the error of the mean map on a
    tile of random weights is of the order of ``a`` itself (not ``a²``).
    ``w`` is (out_size, in_size) in tile orientation; so is the result."""
    ww = np.asarray(w, dtype=np.float64)
    if ww.ndim != 2:
        raise ConfigError(f"w: shape {ww.shape} must be (out_size, in_size)")
    check_choice("direction", direction, ("forward", "backward"))
    rho_in, rho_out, rho_d = par.ratios(direction)
    m = ww if direction == "forward" else ww.T  # (outputs, inputs) of the read
    if par.drive_end == "last":
        m = m[::-1, :]
    if par.sense_end == "first":
        m = m[:, ::-1]
    # input line j (axis 0), driven at index 0: segment k carries the devices at i >= k
    beyond = np.cumsum(m[::-1, :], axis=0)[::-1, :]
    drop_in = np.cumsum(beyond, axis=0)
    # output line i (axis 1), sensed past the last index: segment k carries j' <= k
    upstream = np.cumsum(m, axis=1)
    rise_out = np.cumsum(upstream[:, ::-1], axis=1)[:, ::-1]
    b = rho_in * drop_in + rho_out * rise_out + rho_d * beyond[0:1, :]
    if par.sense_end == "first":
        b = b[:, ::-1]
    if par.drive_end == "last":
        b = b[::-1, :]
    out: FloatArray = np.ascontiguousarray(b if direction == "forward" else b.T)
    return out


def effective_weights(
    par: TileParasitics, w: FloatArray, direction: Direction = "forward"
) -> FloatArray:
    """First-order weights of a read with IR drop, for any weights (not only the mean tile):
    ``W ∘ (1 − a) − B(W)`` (:func:`parasitic_attenuation`, :func:`weight_drop`)."""
    ww = np.asarray(w, dtype=np.float64)
    a = parasitic_attenuation(par, ww.shape[0], ww.shape[1], direction)
    out: FloatArray = ww * (1.0 - a) - weight_drop(par, ww, direction)
    return out


def to_tree(model: IRDropModel) -> dict[str, Any]:
    """The model as an HDF5 tree (plain values)."""
    return {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}


def from_tree(tree: dict[str, Any], *, where: str) -> IRDropModel:
    """Rebuild from :func:`to_tree` (ConfigError naming ``where`` and what is wrong)."""
    names = {f.name for f in dataclasses.fields(IRDropModel)}
    unknown = sorted(set(tree) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    if "segment_ratio" not in tree:
        raise ConfigError(f"{where}: segment_ratio missing")
    kwargs: dict[str, Any] = {}
    for name, value in tree.items():
        if name in ("drive_end", "sense_end"):
            kwargs[name] = str(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {name} = {value!r} must be a number")
            check_nonnegative(f"{where}.{name}", float(value))
            kwargs[name] = float(value)
    try:
        return IRDropModel(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


__all__ = [
    "MAX_ATTENUATION",
    "IRDropModel",
    "TileParasitics",
    "effective_weights",
    "first_order_attenuation",
    "from_tree",
    "line_drop",
    "max_attenuation",
    "parasitic_attenuation",
    "to_tree",
    "weight_drop",
]
