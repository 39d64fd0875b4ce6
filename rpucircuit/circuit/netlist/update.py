"""The update cycle: one array driven by stochastic bit streams (V/2 scheme)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.circuit.netlist.blocks import (
    conductance_matrix,
    refuse_over_budget,
    segment_note,
)
from rpucircuit.circuit.netlist.elements import (
    Capacitor,
    Element,
    Instance,
    Netlist,
    Resistor,
    Tran,
    VSource,
)
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.errors import NetlistError


def _as_bits(bits: npt.ArrayLike, shape: tuple[int, int], what: str) -> npt.NDArray[np.bool_]:
    a = np.asarray(bits)
    if a.shape != shape:
        raise NetlistError(f"{what}: shape {a.shape} must be {shape}")
    if a.dtype != np.bool_ and not (
        np.issubdtype(a.dtype, np.integer) and np.all((a == 0) | (a == 1))
    ):
        raise NetlistError(f"{what}: must hold booleans (or 0/1 integers)")
    return a.astype(np.bool_)


def update_slot_times(cfg: CircuitConfig) -> tuple[float, float]:
    """(start of bit slot 0, end of the update transient) in s; slot b starts at
    ``t_first + b·t_pulse``."""
    p = cfg.periphery
    return p.t_pulse_s, (p.bl + 2) * p.t_pulse_s


def _bit_pwl(cfg: CircuitConfig, bits: npt.NDArray[np.bool_], amp: float) -> tuple[float, ...]:
    """PWL of a bit stream: runs of set bits become one trapezoid whose 50 % points sit on
    the slot edges (area amp·t_pulse per bit)."""
    p = cfg.periphery
    t_first, t_end = update_slot_times(cfg)
    half = p.t_rise_s / 2.0
    pts: list[float] = [0.0, 0.0]
    b = 0
    n = len(bits)
    while b < n:
        if not bits[b]:
            b += 1
            continue
        e = b
        while e + 1 < n and bits[e + 1]:
            e += 1
        t_on = t_first + b * p.t_pulse_s
        t_off = t_first + (e + 1) * p.t_pulse_s
        pts += [t_on - half, 0.0, t_on + half, amp, t_off - half, amp, t_off + half, 0.0]
        b = e + 1
    pts += [t_end, 0.0]
    return tuple(pts)


def build_update(
    cfg: CircuitConfig,
    g0: npt.ArrayLike,
    row_bits: npt.ArrayLike,
    col_bits: npt.ArrayLike,
    *,
    polarity: Literal[1, -1] = 1,
    check_budget: bool = True,
) -> Netlist:
    """One stochastic update cycle of one array (V/2 scheme).

    ``g0``: initial conductances (S), ``(rows, cols)``. ``row_bits``: ``(rows, BL)`` and
    ``col_bits``: ``(cols, BL)`` booleans, one slot of ``t_pulse`` each. Rows pulse to
    ``+polarity·V_S/2``, columns to ``−polarity·V_S/2``, so a coincidence puts
    ``polarity·V_S`` across the device (up for +1) and a half-selected device sees
    ``polarity·V_S/2``. A signed update is two cycles, one per polarity. Drivers sit at the
    index-0 end of every line (rows: column 0; columns: row 0); the far ends are open.
    Device (i, j)'s conductance change is ``1e-9·v(s{i}_{j})`` S (1 V = 1 nS); vectors
    ``v(s{i}_{j})`` in row-major order, role ``"states"``.
    """
    tile = cfg.tile
    rows, cols = tile.rows, tile.cols
    if polarity not in (1, -1):
        raise NetlistError(f"polarity = {polarity!r}: must be 1 or -1")
    if check_budget:
        refuse_over_budget(cfg, "update")
    g = conductance_matrix(g0, (rows, cols), "g0")
    dev = cfg.device
    if np.any(g < dev.g_off_s) or np.any(g > dev.g_on_s):
        raise NetlistError(
            f"g0: conductances must lie in [g_off, g_on] = [{dev.g_off_s!r}, {dev.g_on_s!r}] S"
        )
    p = cfg.periphery
    rb = _as_bits(row_bits, (rows, p.bl), "row_bits")
    cb = _as_bits(col_bits, (cols, p.bl), "col_bits")
    half = polarity * p.v_s_v / 2.0
    els: list[Element] = []
    for i in range(rows):
        drv = f"pr{i}_d"
        els.append(
            VSource(
                f"row{i}",
                f"vr{i}",
                "0",
                pwl=_bit_pwl(cfg, rb[i], half),
                comment=f"row {i} bits {''.join('1' if b else '0' for b in rb[i])}",
            )
        )
        els.append(Resistor(f"drv_r{i}", f"vr{i}", drv, tile.r_driver_ohm))
        prev = drv
        for j in range(cols):
            node = f"pr{i}_c{j}"
            note = segment_note(cfg, "row", f"row {i}") if j == 0 else ""
            els.append(Resistor(f"s_{node}", prev, node, tile.r_seg_row_ohm, comment=note))
            if tile.c_seg_row_f > 0:
                els.append(Capacitor(f"g_{node}", node, "0", tile.c_seg_row_f))
            prev = node
    for j in range(cols):
        drv = f"pc{j}_d"
        els.append(
            VSource(
                f"col{j}",
                f"vc{j}",
                "0",
                pwl=_bit_pwl(cfg, cb[j], -half),
                comment=f"column {j} bits {''.join('1' if b else '0' for b in cb[j])}",
            )
        )
        els.append(Resistor(f"drv_c{j}", f"vc{j}", drv, tile.r_driver_ohm))
        prev = drv
        for i in range(rows):
            node = f"pc{j}_r{i}"
            note = segment_note(cfg, "col", f"column {j}") if i == 0 else ""
            els.append(Resistor(f"s_{node}", prev, node, tile.r_seg_col_ohm, comment=note))
            if tile.c_seg_col_f > 0:
                els.append(Capacitor(f"g_{node}", node, "0", tile.c_seg_col_f))
            prev = node
    rate = cfg.update_rate_scale
    r0up = rate * 2.0 * dev.up_down_ratio / (1.0 + dev.up_down_ratio)
    r0dn = rate * 2.0 / (1.0 + dev.up_down_ratio)
    sub = {"rectifying": "rpu_update_rect", "linear": "rpu_update_lin"}.get(
        dev.response, "rpu_update_sat"
    )
    states: list[str] = []
    for i in range(rows):
        for j in range(cols):
            params: list[tuple[str, float]] = [
                ("g0", float(g[i, j])),
                ("r0up", r0up),
                ("r0dn", r0dn),
            ]
            if dev.response != "linear":
                params.append(("v0", cfg.update_v0_v))
            params += [("gon", dev.g_on_s), ("goff", dev.g_off_s), ("margin", dev.bound_margin)]
            els.append(
                Instance(
                    f"u_{i}_{j}",
                    (f"pr{i}_c{j}", f"pc{j}_r{i}", f"s{i}_{j}"),
                    sub,
                    tuple(params),
                    comment=(
                        f"device ({i},{j}) {dev.response}: k = {dev.k!r}, "
                        f"dg per pulse = {dev.dg_pulse_s!r} S"
                    ),
                )
            )
            states.append(f"v(s{i}_{j})")
    _, t_end = update_slot_times(cfg)
    step = p.t_rise_s / 5.0
    return Netlist(
        title=f"rpucircuit update cycle, {rows}x{cols} array, polarity {polarity:+d}",
        libs=("rpu_devices.lib",),
        elements=tuple(els),
        analyses=(Tran(step_s=step, stop_s=t_end, uic=True),),
        vectors=tuple(states),
        options=(("reltol", 1e-6), ("vntol", 1e-9)),
        layout=(("states", tuple(states)),),
    )
