"""Rows of the specification sheet, each with its derivation written out with the numbers.

:class:`Design` holds every number, computed once by
:func:`rpucircuit.design.specs.derive_specs`; the functions here only word and format them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rpucircuit.config.tile import CircuitConfig, SpecInputs
from rpucircuit.design.specs_sheet import (
    DELAY_COEFF,
    DELAY_FORMULA,
    Basis,
    SpecRow,
    eng,
    fmt,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Line:
    """The line that limits the array (the one with the larger r·c)."""

    name: str
    """``row`` or ``column``."""
    r_ohm_per_um: float
    """Its resistance per length (Ω/µm)."""
    c_f_per_um: float
    """Its capacitance per length (F/µm)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Design:
    """Every number of the sheet, computed once (SI)."""

    line: Line
    budget_s: float
    l_max_um: float
    n: int
    length_um: float
    delay_s: float
    c_line_f: float
    r_line_ohm: float
    r_mean_ohm: float
    q_unit_c: float
    c_int_f: float
    sigma_w: float
    sigma_basis: Basis
    bits: int
    c_in_f: float
    e_acc: float
    e_thermal: float
    r_min: float
    e_lim: float
    r_min_basis: Basis
    r_min_paper_budget: float
    t_forward_s: float
    t_update_s: float
    n_adc: int
    p_array_w: float
    p_int_w: float
    p_adc_w: float
    a_array_m2: float
    a_int_m2: float
    a_adc_m2: float
    ops_per_s: float
    updates_per_s: float

    @property
    def p_analog_w(self) -> float:
        """Array pair, integrators and ADCs (W)."""
        return self.p_array_w + self.p_int_w + self.p_adc_w


def _row(
    key: str,
    quantity: str,
    value: float,
    unit: str,
    scale: float,
    derivation: str,
    basis: Basis,
    note: str,
) -> SpecRow:
    return SpecRow(
        key=key,
        quantity=quantity,
        value=value,
        unit=unit,
        scale=scale,
        derivation=derivation,
        basis=basis,
        note=note,
    )


def _geometry_rows(cfg: CircuitConfig, inp: SpecInputs, d: Design) -> list[SpecRow]:
    p, ln = cfg.periphery, d.line
    rc = f"r = {fmt(ln.r_ohm_per_um)} Ω/µm, c = {fmt(ln.c_f_per_um * 1e15)} fF/µm ({ln.name} line)"
    rule = DELAY_FORMULA[inp.delay_rule]
    return [
        _row(
            "line_delay",
            "line delay of a full line",
            d.delay_s,
            "ns",
            1e-9,
            f"{rule} with R = r·L = {eng(d.r_line_ohm, 'Ω')}, C = c·L = "
            f"{eng(d.c_line_f, 'F')}; budget "
            f"{fmt(inp.rc_budget_fraction)} × t_pulse {eng(p.t_pulse_s, 's')} = "
            f"{eng(d.budget_s, 's')}",
            "derived",
            "paper A gives the budget; ours is the delay of the power-of-two line, inside it",
        ),
        _row(
            "line_length",
            "line length of the largest array",
            d.length_um * 1e-6,
            "mm",
            1e-3,
            f"L_max = √(budget/({fmt(DELAY_COEFF[inp.delay_rule])}·r·c)) = "
            f"{fmt(d.l_max_um)} µm with {rc}; "
            f"L = N·pitch = {d.n} × {fmt(cfg.tile.pitch_um)} µm",
            "derived",
            "paper A rounds N·pitch to 1.64 mm",
        ),
        _row(
            "array_size",
            "largest array (N × N)",
            float(d.n),
            "lines",
            1.0,
            f"N = largest power of 2 ≤ L_max/pitch = {fmt(d.l_max_um / cfg.tile.pitch_um)}",
            "derived",
            "same rule as paper A",
        ),
        _row(
            "r_mean",
            "mean device resistance",
            d.r_mean_ohm,
            "MΩ",
            1e6,
            f"N·R_line/b = {d.n} × {eng(d.r_line_ohm, 'Ω')} / {fmt(inp.ir_drop_budget)}",
            "derived",
            "paper A rounds to 24 MΩ",
        ),
    ]


def _integrator_rows(cfg: CircuitConfig, d: Design) -> list[SpecRow]:
    p, dev = cfg.periphery, cfg.device
    return [
        _row(
            "t_meas",
            "integration time t_meas",
            p.t_meas_s,
            "ns",
            1e-9,
            f"periphery.t_meas_s; {p.input_steps} input steps of {eng(p.t_step_s, 's')}",
            "input",
            "an input (paper A's value is the preset)",
        ),
        _row(
            "alpha",
            "output bound α",
            p.alpha,
            "weight units",
            1.0,
            "periphery.alpha",
            "input",
            "an input (paper A's value is the preset)",
        ),
        _row(
            "c_int",
            "integrating capacitor C_int",
            d.c_int_f,
            "fF",
            1e-15,
            f"α·Q_unit/V_swing = {fmt(p.alpha)} × {eng(d.q_unit_c, 'C')} / "
            f"{fmt(p.v_out_max_v)} V; Q_unit = V_read·t_meas·(G_on−G_off)/w_max at on/off "
            f"{fmt(dev.on_off_ratio)}, w_max {fmt(dev.w_max)}",
            "derived",
            "paper A derives C_int the same way; no value of it is stored here",
        ),
    ]


_NO_OPAMP = (
    "none: the devices' thermal noise, kT/C and the ADC alone exceed σ even at infinite "
    "on/off; raise σ, t_meas or R_mean"
)


def _noise_rows(cfg: CircuitConfig, inp: SpecInputs, d: Design) -> list[SpecRow]:
    p, dev = cfg.periphery, cfg.device
    sigma_how = (
        "specs.sigma_w (paper A's training result)"
        if d.sigma_basis == "input"
        else "trained: explore's result (file under 'explore results')"
    )
    e_note = f"the config's op-amp (e_n = {eng(p.e_n_v_per_rthz, 'V/√Hz')}) is " + (
        "within it" if d.e_acc >= p.e_n_v_per_rthz else "noisier than this: it fails σ"
    )
    if math.isnan(d.e_acc):
        e_note = _NO_OPAMP
    if d.r_min_basis == "explore":
        r_derivation = "trained: explore's result (file under 'explore results')"
        r_note = "measured by training; paper A chose ≈ 8 from its noise curve"
    else:
        r_derivation = (
            f"knee: e_acc(r) = {fmt(inp.on_off_knee_fraction)} × e_acc(∞) = "
            f"{fmt(inp.on_off_knee_fraction)} × {eng(d.e_lim, 'V/√Hz')}"
        )
        r_note = (
            "paper A reads ≈ 8 off its noise-vs-on/off curve; we take its knee and also count "
            "kT/C, the ADC and the op-amp's finite GBW and line capacitance (paper A's budget "
            f"alone, devices and op-amp only, puts the knee at {fmt(d.r_min_paper_budget, 3)})"
        )
    if math.isnan(d.r_min):
        r_note = f"no on/off ratio suffices: {_NO_OPAMP}"
    elif dev.on_off_ratio < d.r_min:
        r_note += f"; the config's device ({fmt(dev.on_off_ratio)}) is below it"
    return [
        _row(
            "sigma",
            "acceptable output noise σ",
            d.sigma_w,
            "weight units",
            1.0,
            sigma_how,
            d.sigma_basis,
            "paper A's value" if d.sigma_basis == "input" else "measured by training",
        ),
        _row(
            "e_thermal",
            "devices' thermal noise at the op-amp input",
            d.e_thermal,
            "nV/√Hz",
            1e-9,
            f"√(4kT/G_line), G_line = {cfg.tile.n_arrays}·N/R_mean = "
            f"{eng(cfg.tile.n_arrays * d.n / d.r_mean_ohm, 'S')}",
            "derived",
            "what the op-amp noise is compared with",
        ),
        _row(
            "e_acceptable",
            f"acceptable op-amp noise at on/off {fmt(dev.on_off_ratio)}",
            d.e_acc,
            "nV/√Hz",
            1e-9,
            f"σ·Q_unit less device thermal, kT/C and {d.bits}-bit ADC noise, over the op-amp's "
            f"charge coefficient (GBW {eng(p.gbw_hz, 'Hz')}, C_in {eng(d.c_in_f, 'F')})",
            "analytic",
            e_note,
        ),
        _row(
            "on_off",
            "minimum on/off ratio",
            d.r_min,
            "",
            1.0,
            r_derivation,
            d.r_min_basis,
            r_note,
        ),
        _row(
            "adc_bits",
            "ADC resolution",
            float(d.bits),
            "bits",
            1.0,
            f"⌈log2(2α/({fmt(inp.adc_lsb_per_sigma)}·σ))⌉ = ⌈log2({fmt(2 * p.alpha)}/"
            f"{fmt(inp.adc_lsb_per_sigma * d.sigma_w)})⌉",
            "derived",
            "one step per σ over ±α, as paper A's 9 bits",
        ),
    ]


def _cycle_rows(cfg: CircuitConfig, d: Design) -> list[SpecRow]:
    p = cfg.periphery
    return [
        _row(
            "t_forward",
            "forward (backward) cycle",
            d.t_forward_s,
            "ns",
            1e-9,
            f"t_reset + t_meas + t_settle = {eng(p.t_reset_s, 's')} + {eng(p.t_meas_s, 's')}"
            f" + {eng(p.t_settle_s, 's')}",
            "derived",
            "paper A counts t_meas alone; we add the integrator reset and the settling "
            "before the ADC samples",
        ),
        _row(
            "t_update",
            "update cycle",
            d.t_update_s,
            "ns",
            1e-9,
            f"BL·t_pulse = {p.bl} × {eng(p.t_pulse_s, 's')}",
            "derived",
            "same as paper A (one polarity)",
        ),
    ]


def _power_rows(cfg: CircuitConfig, inp: SpecInputs, d: Design) -> list[SpecRow]:
    p, na = cfg.periphery, cfg.tile.n_arrays
    rate = 1.0 / d.t_forward_s
    total = d.p_analog_w + inp.digital_power_w
    return [
        _row(
            "p_array",
            "power: array pair (read)",
            d.p_array_w,
            "W",
            1.0,
            f"{na}·N²·V_read²/R_mean × duty {fmt(inp.mean_input_duty)} × t_meas/t_cycle = "
            f"{na} × {d.n}² × {fmt(p.v_read_v)}² V² / {eng(d.r_mean_ohm, 'Ω')} × "
            f"{fmt(inp.mean_input_duty * p.t_meas_s / d.t_forward_s)}",
            "derived",
            "no published value stored; set by the assumed mean input duty",
        ),
        _row(
            "p_integrators",
            "power: integrators",
            d.p_int_w,
            "W",
            1.0,
            f"N·P_opamp = {d.n} × {eng(inp.opamp_power_w, 'W')}",
            "derived",
            "no published value; op-amp power is an assumed input",
        ),
        _row(
            "p_adc",
            "power: ADCs",
            d.p_adc_w,
            "W",
            1.0,
            f"N conversions per cycle × E_conv/t_cycle = {d.n} × "
            f"{eng(inp.adc_energy_per_conversion_j, 'J')} × {eng(rate, 'S/s')}",
            "derived",
            "paper A runs the ADCs at 1/t_meas; our cycle adds reset and settling",
        ),
        _row(
            "p_digital",
            "power: digital logic of the tile",
            inp.digital_power_w,
            "W",
            1.0,
            "specs.digital_power_w",
            "input",
            "an assumed input",
        ),
        _row(
            "p_total",
            "power: tile total",
            total,
            "W",
            1.0,
            f"{fmt(d.p_array_w)} + {fmt(d.p_int_w)} + {fmt(d.p_adc_w)} + "
            f"{fmt(inp.digital_power_w)} W",
            "derived",
            "sum of the rows above",
        ),
    ]


def _area_rows(cfg: CircuitConfig, inp: SpecInputs, d: Design) -> list[SpecRow]:
    na = cfg.tile.n_arrays
    total = d.a_array_m2 + d.a_int_m2 + d.a_adc_m2
    return [
        _row(
            "a_array",
            "area: array pair",
            d.a_array_m2,
            "mm²",
            1e-6,
            f"{na}·N²·pitch² = {na} × {d.n}² × ({fmt(cfg.tile.pitch_um)} µm)²",
            "derived",
            "no published value stored",
        ),
        _row(
            "a_integrators",
            "area: integrators",
            d.a_int_m2,
            "mm²",
            1e-6,
            f"N·(A_opamp + C_int/density) = {d.n} × ({fmt(inp.opamp_area_um2)} + "
            f"{fmt(d.c_int_f / inp.cap_density_f_per_um2)}) µm²",
            "derived",
            "no published value; op-amp area and capacitor density are assumed inputs",
        ),
        _row(
            "a_adc",
            "area: ADCs",
            d.a_adc_m2,
            "mm²",
            1e-6,
            f"⌈N/lines_per_adc⌉·A_adc = {d.n_adc} × {fmt(inp.adc_area_um2)} µm²",
            "derived",
            "paper A rounds 4096 × 0.0256 mm² to 104 mm²",
        ),
        _row(
            "a_total",
            "area: tile total",
            total,
            "mm²",
            1e-6,
            f"{fmt(d.a_array_m2 * 1e6)} + {fmt(d.a_int_m2 * 1e6)} + {fmt(d.a_adc_m2 * 1e6)} mm²",
            "derived",
            "sum of the rows above; the ADCs dominate, as paper A notes",
        ),
    ]


def _throughput_rows(inp: SpecInputs, d: Design) -> list[SpecRow]:
    total = d.p_analog_w + inp.digital_power_w
    return [
        _row(
            "throughput",
            "throughput, forward or backward",
            d.ops_per_s,
            "TOps/s",
            1e12,
            f"{inp.ops_per_weight}·N²/t_cycle = {inp.ops_per_weight} × {d.n}² / "
            f"{eng(d.t_forward_s, 's')}",
            "derived",
            "no published value stored",
        ),
        _row(
            "update_rate",
            "update rate",
            d.updates_per_s,
            "TUpdates/s",
            1e12,
            f"N²/t_update = {d.n}² / {eng(d.t_update_s, 's')}",
            "derived",
            "no published value stored",
        ),
        _row(
            "eff_analog",
            "energy efficiency: array, integrators, ADCs",
            d.ops_per_s / d.p_analog_w,
            "GOps/s/W",
            1e9,
            f"{eng(d.ops_per_s, 'Ops/s')} / {fmt(d.p_analog_w)} W",
            "derived",
            "the analog tile alone, without the digital logic",
        ),
        _row(
            "eff_system",
            "energy efficiency: tile with its digital logic",
            d.ops_per_s / total,
            "GOps/s/W",
            1e9,
            f"{eng(d.ops_per_s, 'Ops/s')} / {fmt(total)} W",
            "derived",
            "paper A's figure is its design point with a digital core per tile; our digital "
            f"power is an assumed input ({fmt(inp.digital_power_w)} W)",
        ),
    ]


def all_rows(cfg: CircuitConfig, inputs: SpecInputs, d: Design) -> tuple[SpecRow, ...]:
    """Every row of the sheet, in display order."""
    return (
        *_geometry_rows(cfg, inputs, d),
        *_integrator_rows(cfg, d),
        *_noise_rows(cfg, inputs, d),
        *_cycle_rows(cfg, d),
        *_power_rows(cfg, inputs, d),
        *_area_rows(cfg, inputs, d),
        *_throughput_rows(inputs, d),
    )
