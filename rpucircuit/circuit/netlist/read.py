"""The read cycle: a forward or backward read of the whole tile, as a transient with
integrators or as a DC operating point with virtual grounds (topology in the package
docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.circuit.netlist.blocks import (
    Direction,
    FloatArray,
    ReadAnalysis,
    conductance_matrix,
    device_element,
    input_vector,
    integrator,
    read_times,
    refuse_over_budget,
    segment_note,
)
from rpucircuit.circuit.netlist.elements import (
    AnalysisRecord,
    Capacitor,
    Element,
    Instance,
    Netlist,
    Op,
    Resistor,
    Tran,
    VSource,
)
from rpucircuit.config.tile import CircuitConfig, quantize_inputs
from rpucircuit.errors import NetlistError, UnsupportedError


@dataclass(frozen=True, slots=True)
class _Sides:
    """Which lines carry the inputs and which the outputs in one read direction: their
    counts, node letters, kinds and per-segment R and C."""

    n_in: int
    n_out: int
    in_kind: str
    out_kind: str
    in_line: Literal["row", "col"]
    out_line: Literal["row", "col"]
    in_r_ohm: float
    out_r_ohm: float
    in_c_f: float
    out_c_f: float

    @classmethod
    def of(cls, cfg: CircuitConfig, direction: Direction) -> _Sides:
        t = cfg.tile
        if direction == "forward":  # inputs on the columns, outputs on the rows
            return cls(
                t.cols, t.rows, "c", "r", "col", "row",
                t.r_seg_col_ohm, t.r_seg_row_ohm, t.c_seg_col_f, t.c_seg_row_f,
            )  # fmt: skip
        return cls(
            t.rows, t.cols, "r", "c", "row", "col",
            t.r_seg_row_ohm, t.r_seg_col_ohm, t.c_seg_row_f, t.c_seg_col_f,
        )  # fmt: skip

    def in_node(self, a: str, k: int, pos: int) -> str:
        """Node of input line ``k`` of array ``a`` at its cross point ``pos``."""
        return f"{a}{self.in_kind}{k}_{self.out_kind}{pos}"

    def out_node(self, a: str, m: int, pos: int) -> str:
        """Node of output line ``m`` of array ``a`` at its cross point ``pos``."""
        return f"{a}{self.out_kind}{m}_{self.in_kind}{pos}"


Arrays = list[tuple[str, float, FloatArray]]
"""(array name, sign of its inputs, conductances) for array p and, when paired, m."""


def _arrays(cfg: CircuitConfig, g_pos: npt.ArrayLike, g_neg: npt.ArrayLike | None) -> Arrays:
    shape = (cfg.tile.rows, cfg.tile.cols)
    arrays: Arrays = [("p", 1.0, conductance_matrix(g_pos, shape, "g_pos"))]
    if cfg.tile.paired:
        if g_neg is None:
            raise NetlistError("g_neg = None: a paired tile needs the G- conductances")
        arrays.append(("m", -1.0, conductance_matrix(g_neg, shape, "g_neg")))
    elif g_neg is not None:
        raise NetlistError("g_neg given but tile.paired = false")
    return arrays


def _driver(cfg: CircuitConfig, name: str, node: str, k: int, xv: float, op: bool) -> Instance:
    """Input ``k``'s driver: its mean voltage for a DC point, else its pulse."""
    p, r_out = cfg.periphery, cfg.tile.r_driver_ohm
    if op:
        return Instance(
            name,
            (node,),
            "rpu_dc_driver",
            (("v", xv * p.v_read_v), ("rout", r_out)),
            comment=f"input {k}: x = {xv!r} -> mean voltage x*V_read",
        )
    if p.encoding == "time":
        amp, width = math.copysign(p.v_read_v, xv), abs(xv) * p.t_meas_s
    else:
        amp, width = xv * p.v_read_v, p.t_meas_s
    if width == 0.0 or amp == 0.0:
        amp, width = 0.0, p.t_meas_s
    t0, _ = read_times(cfg)
    return Instance(
        name,
        (node,),
        "rpu_pulse_driver",
        (
            ("v", amp),
            ("td", t0 - p.t_rise_s),
            ("tw", width),
            ("tr", p.t_rise_s),
            ("rout", r_out),
        ),
        comment=f"input {k}: x = {xv!r} ({p.encoding} encoding)",
    )


def _input_lines(
    cfg: CircuitConfig, s: _Sides, arrays: Arrays, xq: FloatArray, op: bool
) -> list[Element]:
    """Each array's input lines: driver, then one segment (and C) per cross point."""
    els: list[Element] = []
    for a, sign, _ in arrays:
        for k in range(s.n_in):
            prev = f"{a}{s.in_kind}{k}_d"
            els.append(_driver(cfg, f"drv_{a}{s.in_kind}{k}", prev, k, float(xq[k]) * sign, op))
            for pos in range(s.n_out):
                node = s.in_node(a, k, pos)
                note = segment_note(cfg, s.in_line, f"input line {k}") if pos == 0 else ""
                els.append(Resistor(f"s_{node}", prev, node, s.in_r_ohm, comment=note))
                if not op and s.in_c_f > 0:
                    els.append(Capacitor(f"g_{node}", node, "0", s.in_c_f))
                prev = node
    return els


def _output_lines_and_devices(
    cfg: CircuitConfig, s: _Sides, arrays: Arrays, op: bool
) -> list[Element]:
    """Each array's output lines (one segment and C per cross point, the last segment into
    the summing node), then its devices."""
    els: list[Element] = []
    for a, _, g in arrays:
        for m in range(s.n_out):
            for pos in range(s.n_in):
                node = s.out_node(a, m, pos)
                nxt = s.out_node(a, m, pos + 1) if pos + 1 < s.n_in else f"sum{m}"
                note = segment_note(cfg, s.out_line, f"output line {m}") if pos == 0 else ""
                els.append(Resistor(f"s_{node}", node, nxt, s.out_r_ohm, comment=note))
                if not op and s.out_c_f > 0:
                    els.append(Capacitor(f"g_{node}", node, "0", s.out_c_f))
        rows, cols = g.shape
        for i in range(rows):
            for j in range(cols):
                els.append(
                    device_element(cfg, f"d_{a}_{i}_{j}", f"{a}r{i}_c{j}", f"{a}c{j}_r{i}", g[i, j])
                )
    return els


def _readout(
    cfg: CircuitConfig, n_out: int, op: bool
) -> tuple[list[Element], str, tuple[str, ...], AnalysisRecord]:
    """The summing nodes' ends: integrators for a transient, 0 V sources for a DC point;
    with the saved vectors, their role and the analysis."""
    p = cfg.periphery
    if op:
        grounds: list[Element] = [
            VSource(f"sum{m}", f"sum{m}", "0", comment="virtual ground") for m in range(n_out)
        ]
        return grounds, "currents", tuple(f"i(vsum{m})" for m in range(n_out)), Op()
    ints: list[Element] = [
        integrator(cfg, f"int{m}", f"sum{m}", f"out{m}", treset=p.t_reset_s) for m in range(n_out)
    ]
    _, t_end = read_times(cfg)
    vectors = tuple(f"v(out{m})" for m in range(n_out))
    return ints, "outputs", vectors, Tran(step_s=p.t_step_s, stop_s=t_end)


def build_read(
    cfg: CircuitConfig,
    g_pos: npt.ArrayLike,
    g_neg: npt.ArrayLike | None,
    x: npt.ArrayLike,
    *,
    direction: Direction = "forward",
    analysis: ReadAnalysis = "tran",
    check_budget: bool = True,
) -> Netlist:
    """A forward or backward read of the whole tile.

    ``g_pos``/``g_neg``: device conductances (S) of arrays p and m, shape ``(rows, cols)``
    (``g_neg`` is None for an unpaired tile). ``x``: inputs in [-1, 1], one per input line
    (``cols`` forward, ``rows`` backward). ``analysis="tran"`` builds the transient with
    integrators (vectors ``v(out{k})``, role ``"outputs"``); ``"op"`` the DC operating point
    with 0 V sources at the summing nodes (vectors ``i(vsum{k})``, role ``"currents"``).
    """
    if direction not in ("forward", "backward"):
        raise NetlistError(f"direction = {direction!r}: must be 'forward' or 'backward'")
    if analysis not in ("tran", "op"):
        raise NetlistError(f"analysis = {analysis!r}: must be 'tran' or 'op'")
    if check_budget:
        refuse_over_budget(cfg, analysis)
    arrays = _arrays(cfg, g_pos, g_neg)
    sides = _Sides.of(cfg, direction)
    xq = quantize_inputs(cfg, input_vector(x, sides.n_in, "x"))
    op = analysis == "op"
    partial = np.any((np.abs(xq) > 0) & (np.abs(xq) < 1))
    time_encoded = cfg.periphery.encoding == "time"
    if op and cfg.device.read_iv == "sinh" and time_encoded and partial:
        raise UnsupportedError(
            "a DC operating point of time-encoded inputs with a sinh read I-V is not "
            "equivalent to the transient; use analysis='tran' or amplitude encoding"
        )
    ends, role, vectors, an = _readout(cfg, sides.n_out, op)
    els = _input_lines(cfg, sides, arrays, xq, op)
    els += _output_lines_and_devices(cfg, sides, arrays, op)
    return Netlist(
        title=f"rpucircuit {direction} read, {cfg.tile.rows}x{cfg.tile.cols} tile, {analysis}",
        libs=("rpu_drivers.lib", "rpu_integrator.lib", "rpu_devices.lib"),
        elements=(*els, *ends),
        analyses=(an,),
        vectors=vectors,
        layout=((role, vectors),),
    )
