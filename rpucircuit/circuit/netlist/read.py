"""The read cycle: a forward or backward read of the whole tile, as a transient with
integrators or as a DC operating point with virtual grounds (topology in the package
docstring)."""

from __future__ import annotations

import math
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
    tile = cfg.tile
    rows, cols = tile.rows, tile.cols
    if direction not in ("forward", "backward"):
        raise NetlistError(f"direction = {direction!r}: must be 'forward' or 'backward'")
    if analysis not in ("tran", "op"):
        raise NetlistError(f"analysis = {analysis!r}: must be 'tran' or 'op'")
    if check_budget:
        refuse_over_budget(cfg, analysis)
    gp = conductance_matrix(g_pos, (rows, cols), "g_pos")
    arrays: list[tuple[str, float, FloatArray]] = [("p", 1.0, gp)]
    if tile.paired:
        if g_neg is None:
            raise NetlistError("g_neg = None: a paired tile needs the G- conductances")
        arrays.append(("m", -1.0, conductance_matrix(g_neg, (rows, cols), "g_neg")))
    elif g_neg is not None:
        raise NetlistError("g_neg given but tile.paired = false")
    n_in, n_out = (cols, rows) if direction == "forward" else (rows, cols)
    xq = quantize_inputs(cfg, input_vector(x, n_in, "x"))
    p = cfg.periphery
    partial = np.any((np.abs(xq) > 0) & (np.abs(xq) < 1))
    if analysis == "op" and cfg.device.read_iv == "sinh" and p.encoding == "time" and partial:
        raise UnsupportedError(
            "a DC operating point of time-encoded inputs with a sinh read I-V is not "
            "equivalent to the transient; use analysis='tran' or amplitude encoding"
        )
    in_seg = tile.r_seg_col_ohm if direction == "forward" else tile.r_seg_row_ohm
    out_seg = tile.r_seg_row_ohm if direction == "forward" else tile.r_seg_col_ohm
    in_c = tile.c_seg_col_f if direction == "forward" else tile.c_seg_row_f
    out_c = tile.c_seg_row_f if direction == "forward" else tile.c_seg_col_f
    # Input line k has n_out cross points; output line m has n_in cross points.
    in_kind, out_kind = ("c", "r") if direction == "forward" else ("r", "c")
    in_line: Literal["row", "col"] = "col" if direction == "forward" else "row"
    out_line: Literal["row", "col"] = "row" if direction == "forward" else "col"
    t0, t_end = read_times(cfg)
    els: list[Element] = []

    def in_node(a: str, k: int, pos: int) -> str:
        return f"{a}{in_kind}{k}_{out_kind}{pos}"

    def out_node(a: str, m: int, pos: int) -> str:
        return f"{a}{out_kind}{m}_{in_kind}{pos}"

    for a, sign, _ in arrays:
        for k in range(n_in):
            xv = float(xq[k]) * sign
            drv = f"{a}{in_kind}{k}_d"
            if analysis == "op":
                v = xv * p.v_read_v
                els.append(
                    Instance(
                        f"drv_{a}{in_kind}{k}",
                        (drv,),
                        "rpu_dc_driver",
                        (("v", v), ("rout", tile.r_driver_ohm)),
                        comment=f"input {k}: x = {xv!r} -> mean voltage x*V_read",
                    )
                )
            else:
                if p.encoding == "time":
                    amp, width = math.copysign(p.v_read_v, xv), abs(xv) * p.t_meas_s
                else:
                    amp, width = xv * p.v_read_v, p.t_meas_s
                if width == 0.0 or amp == 0.0:
                    amp, width = 0.0, p.t_meas_s
                els.append(
                    Instance(
                        f"drv_{a}{in_kind}{k}",
                        (drv,),
                        "rpu_pulse_driver",
                        (
                            ("v", amp),
                            ("td", t0 - p.t_rise_s),
                            ("tw", width),
                            ("tr", p.t_rise_s),
                            ("rout", tile.r_driver_ohm),
                        ),
                        comment=f"input {k}: x = {xv!r} ({p.encoding} encoding)",
                    )
                )
            prev = drv
            for pos in range(n_out):
                node = in_node(a, k, pos)
                note = segment_note(cfg, in_line, f"input line {k}") if pos == 0 else ""
                els.append(Resistor(f"s_{node}", prev, node, in_seg, comment=note))
                if analysis == "tran" and in_c > 0:
                    els.append(Capacitor(f"g_{node}", node, "0", in_c))
                prev = node
    for a, _, g in arrays:
        for m in range(n_out):
            for pos in range(n_in):
                node = out_node(a, m, pos)
                nxt = out_node(a, m, pos + 1) if pos + 1 < n_in else f"sum{m}"
                note = segment_note(cfg, out_line, f"output line {m}") if pos == 0 else ""
                els.append(Resistor(f"s_{node}", node, nxt, out_seg, comment=note))
                if analysis == "tran" and out_c > 0:
                    els.append(Capacitor(f"g_{node}", node, "0", out_c))
        for i in range(rows):
            for j in range(cols):
                els.append(
                    device_element(cfg, f"d_{a}_{i}_{j}", f"{a}r{i}_c{j}", f"{a}c{j}_r{i}", g[i, j])
                )
    if analysis == "tran":
        for m in range(n_out):
            els.append(integrator(cfg, f"int{m}", f"sum{m}", f"out{m}", treset=p.t_reset_s))
        vectors = tuple(f"v(out{m})" for m in range(n_out))
        role = "outputs"
        analyses: tuple[AnalysisRecord, ...] = (Tran(step_s=p.t_step_s, stop_s=t_end),)
    else:
        for m in range(n_out):
            els.append(VSource(f"sum{m}", f"sum{m}", "0", comment="virtual ground"))
        vectors = tuple(f"i(vsum{m})" for m in range(n_out))
        role = "currents"
        analyses = (Op(),)
    return Netlist(
        title=f"rpucircuit {direction} read, {rows}x{cols} tile, {analysis}",
        libs=("rpu_drivers.lib", "rpu_integrator.lib", "rpu_devices.lib"),
        elements=tuple(els),
        analyses=analyses,
        vectors=vectors,
        layout=((role, vectors),),
    )
