"""Pieces the tile builders share: array checks, the integrator and device elements, the
per-segment comment, the read timing and the SPICE budget check.

The budget lives here, on the path that makes netlists for ngspice, and not in the
config: a tile too large for ngspice is still a valid tile for the nodal solver.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.circuit.netlist.elements import Element, Instance, Resistor
from rpucircuit.config.tile import Analysis, CircuitConfig, SpiceCost, check_spice_budget
from rpucircuit.errors import ConfigError, NetlistError

FloatArray = npt.NDArray[np.float64]
Direction = Literal["forward", "backward"]
ReadAnalysis = Literal["tran", "op"]


def refuse_over_budget(cfg: CircuitConfig, analysis: Analysis) -> SpiceCost:
    """The estimated ngspice cost of ``analysis`` on ``cfg``'s tile, or NetlistError when it
    exceeds ``tile.spice_limit_s`` (the message gives the estimate and what to do)."""
    try:
        return check_spice_budget(cfg, analysis)
    except ConfigError as exc:
        raise NetlistError(str(exc)) from exc


def conductance_matrix(g: npt.ArrayLike, shape: tuple[int, int], what: str) -> FloatArray:
    """``g`` as a float array of ``shape`` with finite conductances > 0 (S)."""
    try:
        a = np.asarray(g, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetlistError(f"{what}: not a numeric array ({exc})") from exc
    if a.shape != shape:
        raise NetlistError(f"{what}: shape {a.shape} must be {shape}")
    if not np.all(np.isfinite(a)):
        raise NetlistError(f"{what}: contains non-finite values")
    if np.any(a <= 0):
        raise NetlistError(f"{what}: conductances must be > 0 (min {a.min()!r})")
    return a


def input_vector(x: npt.ArrayLike, n: int, what: str) -> FloatArray:
    """``x`` as a float array of ``n`` finite inputs in [-1, 1]."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetlistError(f"{what}: not a numeric array ({exc})") from exc
    if a.shape != (n,):
        raise NetlistError(f"{what}: shape {a.shape} must be ({n},)")
    if not np.all(np.isfinite(a)):
        raise NetlistError(f"{what}: contains non-finite values")
    if np.any(np.abs(a) > 1.0):
        raise NetlistError(f"{what}: inputs must lie in [-1, 1] (max |x| = {np.abs(a).max()!r})")
    return a


def read_times(cfg: CircuitConfig) -> tuple[float, float]:
    """(start of the input pulses, sampling time of the outputs) of a read transient (s)."""
    p = cfg.periphery
    t0 = p.t_reset_s + p.t_rise_s
    return t0, t0 + p.t_meas_s + p.t_rise_s + p.t_settle_s


def segment_note(cfg: CircuitConfig, kind: Literal["row", "col"], what: str) -> str:
    """Comment for the first segment of a line: how its R and C per segment are derived."""
    t = cfg.tile
    line = t.row_line if kind == "row" else t.col_line
    r = t.r_seg_row_ohm if kind == "row" else t.r_seg_col_ohm
    c = t.c_seg_row_f if kind == "row" else t.c_seg_col_f
    return (
        f"{what}: per segment R = {line.r_ohm_per_um!r} ohm/um x {t.pitch_um!r} um = {r!r} ohm, "
        f"C = {line.c_f_per_um!r} F/um x {t.pitch_um!r} um = {c!r} F"
    )


def integrator(cfg: CircuitConfig, name: str, inn: str, out: str, *, treset: float) -> Instance:
    """The op-amp integrator ``rpu_integrator`` from summing node ``inn`` to ``out``; its
    reset switch opens at ``treset`` (s)."""
    p = cfg.periphery
    return Instance(
        name,
        (inn, out),
        "rpu_integrator",
        (
            ("a0", p.a0),
            ("gbw", p.gbw_hz),
            ("vmax", p.v_out_max_v),
            ("cint", cfg.c_int_f),
            ("rnoise", max(p.r_noise_ohm, 1e-3)),
            ("rreset", p.r_reset_ohm),
            ("treset", treset),
        ),
        comment=(
            f"integrator {name}: C_int = {cfg.c_int_f!r} F, rnoise = e_n^2/(4kT) = "
            f"{p.r_noise_ohm!r} ohm"
        ),
    )


def device_element(
    cfg: CircuitConfig, name: str, n1: str, n2: str, g: float, *, linear: bool = False
) -> Element:
    """A read device of conductance ``g`` (S) between ``n1`` and ``n2``: a resistor, or the
    sinh I-V subcircuit when the config asks for it and ``linear`` is False."""
    g = float(g)
    if cfg.device.read_iv == "linear" or linear:
        return Resistor(name, n1, n2, 1.0 / g, comment=f"device g = {g!r} S")
    return Instance(
        name,
        (n1, n2),
        "rpu_read_sinh",
        (("g", g), ("v0", cfg.device.read_v0_v)),
        comment=f"device g = {g!r} S at 0 V (sinh read)",
    )
