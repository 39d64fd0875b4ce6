"""Circuits of one line: the ``.noise`` of an output line with its integrator, and the step
response of a driven line (its RC delay)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.circuit.netlist.blocks import (
    FloatArray,
    conductance_matrix,
    device_element,
    integrator,
    segment_note,
)
from rpucircuit.circuit.netlist.elements import (
    Capacitor,
    Element,
    Instance,
    Netlist,
    Noise,
    Resistor,
    Tran,
    VSource,
    check_value,
)
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.errors import NetlistError


def _line_arrays(
    cfg: CircuitConfig, g_pos: npt.ArrayLike, g_neg: npt.ArrayLike | None
) -> list[tuple[str, FloatArray]]:
    """(array name, one line's conductances) for array p and, when paired, m."""
    try:
        gp = np.asarray(g_pos, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetlistError(f"g_pos: not a numeric array ({exc})") from exc
    if gp.ndim != 1 or gp.size < 1:
        raise NetlistError(f"g_pos: shape {gp.shape} must be (n,) with n >= 1")
    n = gp.size
    arrays = [("p", conductance_matrix(gp[None, :], (1, n), "g_pos")[0])]
    if cfg.tile.paired:
        if g_neg is None:
            raise NetlistError("g_neg = None: a paired tile needs the G- conductances")
        gn = conductance_matrix(np.asarray(g_neg, dtype=np.float64)[None, :], (1, n), "g_neg")[0]
        arrays.append(("m", gn))
    elif g_neg is not None:
        raise NetlistError("g_neg given but tile.paired = false")
    return arrays


def _noise_line(
    cfg: CircuitConfig, line: Literal["row", "col"], a: str, g: FloatArray
) -> list[Element]:
    """Output line 0 of array ``a``: per cross point its input line held at 0 V (the noise
    input ``vin0`` on array p's first), the device, one segment and C; the last segment
    ends at ``sum0``."""
    tile = cfg.tile
    r_out = tile.r_seg_row_ohm if line == "row" else tile.r_seg_col_ohm
    c_out = tile.c_seg_row_f if line == "row" else tile.c_seg_col_f
    r_in = tile.r_seg_col_ohm if line == "row" else tile.r_seg_row_ohm
    n = g.size
    els: list[Element] = []
    for j in range(n):
        src = "in0" if (a == "p" and j == 0) else f"in_{a}{j}"
        els.append(VSource(src, f"v{a}{j}", "0", ac=1.0 if src == "in0" else None, comment=""))
        els.append(
            Resistor(
                f"drv_{a}{j}",
                f"v{a}{j}",
                f"{a}c{j}_d",
                tile.r_driver_ohm + r_in,
                comment="driver resistance + one input-line segment",
            )
        )
        node = f"{a}r0_c{j}"
        els.append(device_element(cfg, f"d_{a}_{j}", node, f"{a}c{j}_d", float(g[j]), linear=True))
        nxt = f"{a}r0_c{j + 1}" if j + 1 < n else "sum0"
        note = segment_note(cfg, line, f"output line, array {a}") if j == 0 else ""
        els.append(Resistor(f"s_{node}", node, nxt, r_out, comment=note))
        if c_out > 0:
            els.append(Capacitor(f"g_{node}", node, "0", c_out))
    return els


def _integrator_with_noise_source(cfg: CircuitConfig) -> list[Element]:
    """``rpu_integrator_ext`` with its e_n as the explicit source ``ven0`` (the Monte Carlo's
    variant of the integrator)."""
    p = cfg.periphery
    return [
        VSource(
            "en0",
            "pin0",
            "0",
            comment=(
                f"op-amp input-referred noise source, density e_n = {p.e_n_v_per_rthz!r} "
                "V/rtHz (a PWL waveform in the Monte Carlo)"
            ),
        ),
        Instance(
            "int0",
            ("sum0", "out0", "pin0"),
            "rpu_integrator_ext",
            (
                ("a0", p.a0),
                ("gbw", p.gbw_hz),
                ("vmax", p.v_out_max_v),
                ("cint", cfg.c_int_f),
                ("rreset", p.r_reset_ohm),
                ("treset", 0.0),
                ("vreset", 0.0),
            ),
            comment=f"integrator int0: C_int = {cfg.c_int_f!r} F, e_n from source en0",
        ),
    ]


def build_noise(
    cfg: CircuitConfig,
    g_pos: npt.ArrayLike,
    g_neg: npt.ArrayLike | None,
    *,
    line: Literal["row", "col"] = "row",
    points_per_decade: int = 20,
    f_start_hz: float = 1e3,
    f_stop_hz: float = 10e9,
    opamp_noise: Literal["resistor", "source"] = "resistor",
) -> Netlist:
    """``.noise`` of one output line with its integrator (forward: a row, ``line="row"``).

    ``g_pos``/``g_neg``: the line's device conductances (S), one per cross point. Each
    device joins the output line node ``{a}r0_c{j}`` to its input line, which is held at 0 V
    through the driver resistance plus one segment (``{a}c{j}_d``). Devices are linear
    resistors (thermal noise 4kT·G; a sinh device's small-signal G), the op-amp's e_n is its
    series resistor, the integrator's reset switch is open. Output ``v(out0)``; the noise
    input source is ``vin0`` (input line 0 of array p, ``ac 1``). Plots ``noise1``
    (``frequency``, ``onoise_spectrum``, ``inoise_spectrum``, V/√Hz) and ``noise2``
    (``v(onoise_total)``, ``v(inoise_total)``).

    ``opamp_noise="source"`` is the variant for the transient-noise Monte Carlo: the
    integrator is ``rpu_integrator_ext`` (no noise resistor) and its non-inverting input
    ``pin0`` is driven by the explicit source ``ven0`` (``dc 0``, no noise of its own in
    ``.noise``) that the Monte Carlo gives a PWL waveform of density e_n; the instance also
    carries ``vreset`` (0 V), the capacitor voltage its reset switch holds.
    """
    if opamp_noise not in ("resistor", "source"):
        raise NetlistError(f"opamp_noise = {opamp_noise!r}: must be 'resistor' or 'source'")
    arrays = _line_arrays(cfg, g_pos, g_neg)
    if line not in ("row", "col"):
        raise NetlistError(f"line = {line!r}: must be 'row' or 'col'")
    n = arrays[0][1].size
    els = [el for a, g in arrays for el in _noise_line(cfg, line, a, g)]
    if opamp_noise == "resistor":
        els.append(integrator(cfg, "int0", "sum0", "out0", treset=0.0))
    else:
        els += _integrator_with_noise_source(cfg)
    return Netlist(
        title=f"rpucircuit noise of one {line} line, {n} cross points",
        libs=("rpu_integrator.lib",),
        elements=tuple(els),
        analyses=(Noise("out0", "in0", points_per_decade, f_start_hz, f_stop_hz),),
        vectors=(),
        layout=(("spectrum", ("onoise_spectrum", "inoise_spectrum")),),
    )


# --------------------------------------------------------------------------- line delay


def build_line(
    cfg: CircuitConfig,
    *,
    line: Literal["row", "col"] = "row",
    n: int | None = None,
    load_devices: bool = True,
    t_stop_s: float | None = None,
    t_rise_s: float | None = None,
    points: int = 1000,
) -> Netlist:
    """Step response of one line: a V_read step through the driver resistance into ``n``
    RC segments (default: the tile's length of that line), the far end open.

    With ``load_devices`` every cross point also has a device of G_mean to ground (the
    crossing lines are near ground). Nodes ``l0`` … ``l{n-1}`` (``l{n-1}`` is the far end);
    vectors ``v(l0)``, ``v(l{n-1})``, role ``"ends"``. The step is a linear ramp from
    t = 0 to ``t_rise_s`` (default: Elmore delay/100, so the line, not the ramp, sets the
    delay; measure delays from ``t_rise_s/2``). ``t_stop_s`` defaults to ramp + 10 × the
    Elmore delay ``R_drv·n·c + r·c·n(n+1)/2`` of the driven line.
    """
    tile = cfg.tile
    if n is None:
        n = tile.cols if line == "row" else tile.rows
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise NetlistError(f"n = {n!r}: must be an integer >= 1")
    if line not in ("row", "col"):
        raise NetlistError(f"line = {line!r}: must be 'row' or 'col'")
    r = tile.r_seg_row_ohm if line == "row" else tile.r_seg_col_ohm
    c = tile.c_seg_row_f if line == "row" else tile.c_seg_col_f
    if c <= 0:
        raise NetlistError(f"tile.{line}_line.c_f_per_um = 0: a delay needs line capacitance")
    if isinstance(points, bool) or not isinstance(points, int) or points < 10:
        raise NetlistError(f"points = {points!r}: must be an integer >= 10")
    p = cfg.periphery
    elmore = tile.r_driver_ohm * n * c + r * c * n * (n + 1) / 2.0
    rise = elmore / 100.0 if t_rise_s is None else check_value(t_rise_s, "t_rise_s")
    stop = 10.0 * elmore + rise if t_stop_s is None else check_value(t_stop_s, "t_stop_s")
    if not 0 < rise < stop:
        raise NetlistError(f"t_rise_s = {rise!r}, t_stop_s = {stop!r}: need 0 < rise < stop")
    els: list[Element] = [
        VSource(
            "step",
            "vs",
            "0",
            pwl=(0.0, 0.0, rise, p.v_read_v, stop, p.v_read_v),
            comment=f"V_read step, ramp {rise!r} s (Elmore delay {elmore!r} s)",
        ),
        Resistor("drv", "vs", "ld", tile.r_driver_ohm, comment="driver output resistance"),
    ]
    prev = "ld"
    for k in range(n):
        node = f"l{k}"
        note = segment_note(cfg, line, f"{line} line") if k == 0 else ""
        els.append(Resistor(f"s_{node}", prev, node, r, comment=note))
        els.append(Capacitor(f"g_{node}", node, "0", c))
        if load_devices:
            els.append(Resistor(f"d_{node}", node, "0", cfg.device.r_mean_ohm))
        prev = node
    ends = ("v(l0)", f"v(l{n - 1})")
    return Netlist(
        title=f"rpucircuit {line} line step response, {n} segments",
        libs=(),
        elements=tuple(els),
        analyses=(Tran(step_s=stop / points, stop_s=stop),),
        vectors=ends,
        layout=(("ends", ends),),
    )
