"""The update cycle: one array driven by stochastic bit streams (V/2 scheme)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.circuit.netlist.blocks import (
    FloatArray,
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


def device_rate_factors(
    cfg: CircuitConfig, shape: tuple[int, int], *, rng: np.random.Generator
) -> FloatArray:
    """Device-to-device factors on the update rate, ``max(0, 1 + dw_min_dtod·ξ)`` with ξ
    standard normal from ``rng`` (the model's draw, rpucircuit.config.rpu), ``shape`` =
    (rows, cols). With ``dw_min_dtod = 0`` all ones, and nothing is drawn."""
    spread = cfg.device.dw_min_dtod
    if spread == 0.0:
        return np.ones(shape)
    out: FloatArray = np.maximum(0.0, 1.0 + spread * rng.standard_normal(shape))
    return out


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


def _pulsed_line(
    cfg: CircuitConfig, kind: Literal["row", "col"], k: int, bits: npt.NDArray[np.bool_], amp: float
) -> list[Element]:
    """Line ``k`` of array p driven by its bit stream (pulses of ``amp`` V) at its index-0
    end: source, driver resistance, one segment (and C) per cross point, far end open."""
    t = cfg.tile
    letter, other, label = ("r", "c", "row") if kind == "row" else ("c", "r", "column")
    r_seg = t.r_seg_row_ohm if kind == "row" else t.r_seg_col_ohm
    c_seg = t.c_seg_row_f if kind == "row" else t.c_seg_col_f
    n = t.cols if kind == "row" else t.rows
    prev = f"p{letter}{k}_d"
    els: list[Element] = [
        VSource(
            f"{kind}{k}",
            f"v{letter}{k}",
            "0",
            pwl=_bit_pwl(cfg, bits, amp),
            comment=f"{label} {k} bits {''.join('1' if b else '0' for b in bits)}",
        ),
        Resistor(f"drv_{letter}{k}", f"v{letter}{k}", prev, t.r_driver_ohm),
    ]
    for pos in range(n):
        node = f"p{letter}{k}_{other}{pos}"
        note = segment_note(cfg, kind, f"{label} {k}") if pos == 0 else ""
        els.append(Resistor(f"s_{node}", prev, node, r_seg, comment=note))
        if c_seg > 0:
            els.append(Capacitor(f"g_{node}", node, "0", c_seg))
        prev = node
    return els


def _update_devices(cfg: CircuitConfig, g: FloatArray, factor: FloatArray | None) -> list[Element]:
    """One update subcircuit per device (row-major), its rate split into up and down and
    scaled by the device's ``factor`` (the device-to-device spread; None: all 1)."""
    dev = cfg.device
    rate = cfg.update_rate_scale
    r0up = rate * 2.0 * dev.up_down_ratio / (1.0 + dev.up_down_ratio)
    r0dn = rate * 2.0 / (1.0 + dev.up_down_ratio)
    sub = {"rectifying": "rpu_update_rect", "linear": "rpu_update_lin"}.get(
        dev.response, "rpu_update_sat"
    )
    shape = [] if dev.response == "linear" else [("v0", cfg.update_v0_v)]
    bounds = [("gon", dev.g_on_s), ("goff", dev.g_off_s), ("margin", dev.bound_margin)]
    note = f"{dev.response}: k = {dev.k!r}, dg per pulse = {dev.dg_pulse_s!r} S"
    rows, cols = g.shape

    def rates(i: int, j: int) -> tuple[tuple[str, float], ...]:
        if factor is None:
            return (("r0up", r0up), ("r0dn", r0dn))
        f = float(factor[i, j])
        return (("r0up", r0up * f), ("r0dn", r0dn * f))

    def comment(i: int, j: int) -> str:
        spread = "" if factor is None else f", rate x {float(factor[i, j])!r} (device spread)"
        return f"device ({i},{j}) {note}{spread}"

    return [
        Instance(
            f"u_{i}_{j}",
            (f"pr{i}_c{j}", f"pc{j}_r{i}", f"s{i}_{j}"),
            sub,
            (("g0", float(g[i, j])), *rates(i, j), *shape, *bounds),
            comment=comment(i, j),
        )
        for i in range(rows)
        for j in range(cols)
    ]


def build_update(
    cfg: CircuitConfig,
    g0: npt.ArrayLike,
    row_bits: npt.ArrayLike,
    col_bits: npt.ArrayLike,
    *,
    polarity: Literal[1, -1] = 1,
    rate_factor: npt.ArrayLike | None = None,
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
    ``v(s{i}_{j})`` in row-major order, role ``"states"``. ``rate_factor``: ``(rows, cols)``
    factors >= 0 on each device's update rate (the device-to-device spread, drawn by the
    caller: :func:`device_rate_factors`); None leaves every
    device at the config's mean rate (and the netlist as it was without the argument).
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
    factor = None
    if rate_factor is not None:
        factor = np.asarray(rate_factor, dtype=np.float64)
        if factor.shape != (rows, cols):
            raise NetlistError(f"rate_factor: shape {factor.shape} must be {(rows, cols)}")
        if not np.all(np.isfinite(factor)) or np.any(factor < 0):
            raise NetlistError("rate_factor: factors must be finite and >= 0")
    p = cfg.periphery
    rb = _as_bits(row_bits, (rows, p.bl), "row_bits")
    cb = _as_bits(col_bits, (cols, p.bl), "col_bits")
    half = polarity * p.v_s_v / 2.0
    els = [el for i in range(rows) for el in _pulsed_line(cfg, "row", i, rb[i], half)]
    els += [el for j in range(cols) for el in _pulsed_line(cfg, "col", j, cb[j], -half)]
    devices = _update_devices(cfg, g, factor)
    states = tuple(f"v(s{i}_{j})" for i in range(rows) for j in range(cols))
    _, t_end = update_slot_times(cfg)
    step = p.t_rise_s / 5.0
    return Netlist(
        title=f"rpucircuit update cycle, {rows}x{cols} array, polarity {polarity:+d}",
        libs=("rpu_devices.lib",),
        elements=(*els, *devices),
        analyses=(Tran(step_s=step, stop_s=t_end, uic=True),),
        vectors=states,
        options=(("reltol", 1e-6), ("vntol", 1e-9)),
        layout=(("states", states),),
    )
