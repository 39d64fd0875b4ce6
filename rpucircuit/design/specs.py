"""The RPU tile's specification sheet, derived from a circuit config (``rpucircuit specs``).

Paper A (Gokmen & Vlasov 2016) sizes its tile in a chain, and the sheet follows it:

1. **Largest array.** A line of length ``L`` has the Elmore delay ``½·r·c·L²``; allowed
   ``f_RC`` (10 %) of the update pulse ``t_pulse`` (1 ns), ``L_max = √(f_RC·t_pulse/(½·r·c))``
   and the array is the largest power of two ``N ≤ L_max/pitch``
   (:func:`rpucircuit.circuit.analytic.max_array_size`). The worse of row and column
   line sets it.
2. **Mean device resistance.** The IR-drop budget ``N·R_line/R_dev = b`` (0.1) on a full
   line of resistance ``R_line = r·N·pitch`` gives ``R_dev = N·R_line/b``.
3. **Integrator.** ``C_int = α·Q_unit/V_swing`` maps the output bound α onto the op-amp
   swing, with ``Q_unit = V_read·t_meas·ΔG_unit`` at the derived ``R_dev`` and the
   config's on/off ratio (:mod:`rpucircuit.config.tile` defines the weight scale).
4. **Noise.** With the acceptable output noise σ (from ``explore noise`` when given, else
   the input, paper A's 0.06) the op-amp may add what the devices' thermal noise, kT/C
   and the ADC leave (:func:`~rpucircuit.circuit.analytic.acceptable_opamp_noise_v_per_rthz`).
   That allowance grows with the on/off ratio and saturates; the minimum on/off ratio
   (from ``explore onoff`` when given, else "analytic") is where it reaches a set fraction
   (½) of its infinite-on/off limit: the knee past which a larger ratio buys little.
5. **ADC.** The step ``2α/2^B`` no larger than ``k·σ`` (k = 1): ``B = ⌈log2(2α/(k·σ))⌉``.
6. **Cycles.** A forward (or backward) cycle is reset + ``t_meas`` + settling; an update
   cycle is ``BL·t_pulse``.
7. **Power and area** of the array pair (read power ``n·N²·V²·G_mean`` times the mean
   input duty and the fraction of the cycle spent integrating), the ``N`` integrators
   (op-amp power; op-amp area plus ``C_int`` at the capacitor density), the ADCs (energy
   per conversion, one conversion per line and cycle), and the digital logic of the tile.
8. **Throughput and efficiency**: ``ops_per_weight·N²`` operations per forward cycle, over
   the analog tile's power and over the tile with its digital logic.

Every figure of merit that is an input comes from :class:`~rpucircuit.config.tile.SpecInputs`
with its source; paper A's published values are stored once, in :data:`PAPER_A`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from rpucircuit.circuit import analytic
from rpucircuit.config.tile import CircuitConfig, LineConfig, SpecInputs
from rpucircuit.design.specs_rows import Design, Line, all_rows
from rpucircuit.design.specs_sheet import (
    DELAY_COEFF,
    PAPER_A,
    WITHIN_FACTOR,
    Basis,
    ExploreResults,
    PaperValue,
    SpecRow,
    SpecSheet,
    eng,
    fmt,
)
from rpucircuit.errors import ConfigError

ON_OFF_LIMIT = 1e6
"""On/off ratio that stands for "infinite" when the noise allowance's limit is computed."""

# --------------------------------------------------------------------------- derivation


def _limiting_line(cfg: CircuitConfig) -> Line:
    lines: tuple[tuple[str, LineConfig], ...] = (
        ("row", cfg.tile.row_line),
        ("column", cfg.tile.col_line),
    )
    name, line = max(lines, key=lambda nl: nl[1].r_ohm_per_um * nl[1].c_f_per_um)
    if line.r_ohm_per_um * line.c_f_per_um <= 0.0:
        raise ConfigError(
            "tile.row_line and tile.col_line: r_ohm_per_um·c_f_per_um is 0 on both lines, so "
            "no delay limits the array; give a line resistance and capacitance"
        )
    return Line(name=name, r_ohm_per_um=line.r_ohm_per_um, c_f_per_um=line.c_f_per_um)


def _noise_kwargs(
    cfg: CircuitConfig, n: int, r_mean: float, sigma: float, bits: int, c_in: float
) -> dict[str, Any]:
    p = cfg.periphery
    return {
        "sigma_total_w": sigma,
        "n_rows": n,
        "r_mean_ohm": r_mean,
        "w_max": cfg.device.w_max,
        "v_read_v": p.v_read_v,
        "t_meas_s": p.t_meas_s,
        "alpha_w": p.alpha,
        "v_swing_v": p.v_out_max_v,
        "adc_bits": bits,
        "c_in_f": c_in,
        "gbw_hz": p.gbw_hz,
        "r_reset_ohm": p.r_reset_ohm,
        "a0": p.a0,
        "n_arrays": cfg.tile.n_arrays,
        "temperature_k": p.temperature_k,
    }


def knee_on_off_ratio(kwargs: Mapping[str, Any], fraction: float) -> tuple[float, float]:
    """``(r_min, e_lim)``: the on/off ratio where the acceptable op-amp noise reaches
    ``fraction`` of its limit ``e_lim`` at on/off :data:`ON_OFF_LIMIT` (NaN, NaN when no
    op-amp is quiet enough even then). ``kwargs`` are those of
    :func:`~rpucircuit.circuit.analytic.acceptable_opamp_noise_v_per_rthz` without the
    ratio."""
    e_lim = analytic.acceptable_opamp_noise_v_per_rthz(on_off_ratio=ON_OFF_LIMIT, **kwargs)
    if math.isnan(e_lim):
        return math.nan, math.nan
    r_min = analytic.min_on_off_ratio(e_n_v_per_rthz=fraction * e_lim, r_max=ON_OFF_LIMIT, **kwargs)
    return r_min, e_lim


MAX_ADC_BITS = 32
"""Most ADC bits the sheet accepts: beyond, the inputs that set the step are unphysical."""

MAX_DEVICE_OHM = 1e15
"""Largest mean device resistance the sheet accepts (1 PΩ): beyond, the read current is
below a single electron per integration window and the noise budget loses its meaning."""


def adc_bits_for(alpha_w: float, sigma_w: float, lsb_per_sigma: float) -> int:
    """Fewest ADC bits whose step ``2α/2^B`` is at most ``lsb_per_sigma·σ``."""
    # The 1e-12 keeps an exact power of two (2α/σ = 512) from rounding up to the next bit.
    return max(1, math.ceil(math.log2(2.0 * alpha_w / (lsb_per_sigma * sigma_w)) - 1e-12))


def _sized_array(cfg: CircuitConfig, inp: SpecInputs) -> tuple[Line, float, float, int]:
    """``(limiting line, delay budget (s), L_max (µm), N)``; refuses fewer than 2 lines."""
    p = cfg.periphery
    line = _limiting_line(cfg)
    budget = inp.rc_budget_fraction * p.t_pulse_s
    l_max = analytic.max_line_length_um(
        budget, line.r_ohm_per_um, line.c_f_per_um, definition=inp.delay_rule
    )
    n = analytic.max_array_size(
        p.t_pulse_s,
        cfg.tile.pitch_um,
        line.r_ohm_per_um,
        line.c_f_per_um,
        budget_fraction=inp.rc_budget_fraction,
        definition=inp.delay_rule,
    )
    if n < 2:
        raise ConfigError(
            f"tile.pitch_um = {cfg.tile.pitch_um!r}: the longest line the delay budget allows "
            f"({l_max:.3g} µm) holds fewer than 2 cross points; shorten the pitch, lower the "
            "line R·C or widen specs.rc_budget_fraction"
        )
    return line, budget, l_max, n


class _Noise(NamedTuple):
    sigma: float
    sigma_basis: Basis
    bits: int
    e_acc: float
    e_thermal: float
    r_min: float
    e_lim: float
    r_min_basis: Basis
    r_knee_paper: float


def _noise(
    cfg: CircuitConfig,
    inp: SpecInputs,
    explore: ExploreResults | None,
    *,
    n: int,
    r_mean: float,
    c_in: float,
) -> _Noise:
    """σ, ADC bits, acceptable op-amp noise and the minimum on/off ratio (explore's values
    where given)."""
    p = cfg.periphery
    sigma_x = None if explore is None else explore.sigma_w
    sigma = inp.sigma_w if sigma_x is None else sigma_x
    bits = adc_bits_for(p.alpha, sigma, inp.adc_lsb_per_sigma)
    if bits > MAX_ADC_BITS:
        raise ConfigError(
            f"specs.adc_lsb_per_sigma = {inp.adc_lsb_per_sigma!r} with σ = {sigma!r}: asks for "
            f"a {bits}-bit ADC (more than {MAX_ADC_BITS}); raise adc_lsb_per_sigma or σ"
        )
    kw = _noise_kwargs(cfg, n, r_mean, sigma, bits, c_in)
    e_acc = analytic.acceptable_opamp_noise_v_per_rthz(on_off_ratio=cfg.device.on_off_ratio, **kw)
    g_line = cfg.tile.n_arrays * n / r_mean
    e_thermal = math.sqrt(4.0 * analytic.BOLTZMANN_J_PER_K * p.temperature_k / g_line)
    r_knee, e_lim = knee_on_off_ratio(kw, inp.on_off_knee_fraction)
    # Paper A's accounting: devices and an ideal op-amp only (no kT/C, ADC, GBW, C_in).
    paper_kw = {**kw, "adc_bits": None, "c_in_f": 0.0, "gbw_hz": 0.0, "a0": math.inf}
    paper_kw["include_ktc"] = False
    r_knee_paper, _ = knee_on_off_ratio(paper_kw, inp.on_off_knee_fraction)
    r_x = None if explore is None else explore.min_on_off_ratio
    return _Noise(
        sigma=sigma,
        sigma_basis="input" if sigma_x is None else "explore",
        bits=bits,
        e_acc=e_acc,
        e_thermal=e_thermal,
        r_min=r_knee if r_x is None else r_x,
        e_lim=e_lim,
        r_min_basis="analytic" if r_x is None else "explore",
        r_knee_paper=r_knee_paper,
    )


def _design(cfg: CircuitConfig, inp: SpecInputs, explore: ExploreResults | None) -> Design:
    tile, dev, p = cfg.tile, cfg.device, cfg.periphery
    line, budget, l_max, n = _sized_array(cfg, inp)
    length = n * tile.pitch_um
    r_line = line.r_ohm_per_um * length
    c_line = line.c_f_per_um * length
    r_mean = analytic.device_resistance_for_ir_budget_ohm(n, r_line, budget=inp.ir_drop_budget)
    if not r_mean <= MAX_DEVICE_OHM:
        raise ConfigError(
            f"specs.ir_drop_budget = {inp.ir_drop_budget!r}: gives a mean device resistance "
            f"of {r_mean:.3g} Ω, beyond any device ({MAX_DEVICE_OHM:.0e} Ω); raise the budget"
        )
    g_on, g_off = analytic.device_conductances_s(r_mean, dev.on_off_ratio)
    q_unit = analytic.charge_per_weight_unit_c(p.v_read_v, p.t_meas_s, g_on, g_off, dev.w_max)
    c_int = analytic.c_int_for_bound_f(p.alpha, q_unit, p.v_out_max_v)
    c_in = tile.n_arrays * c_line  # both arrays' lines end on the one integrator
    noise = _noise(cfg, inp, explore, n=n, r_mean=r_mean, c_in=c_in)
    t_fwd = p.t_reset_s + p.t_meas_s + p.t_settle_s
    n_adc = math.ceil(n / inp.lines_per_adc)
    duty = inp.mean_input_duty * p.t_meas_s / t_fwd
    pitch_m = tile.pitch_um * 1e-6
    return Design(
        line=line,
        budget_s=budget,
        l_max_um=l_max,
        n=n,
        length_um=length,
        delay_s=DELAY_COEFF[inp.delay_rule] * r_line * c_line,
        c_line_f=c_line,
        r_line_ohm=r_line,
        r_mean_ohm=r_mean,
        q_unit_c=q_unit,
        c_int_f=c_int,
        sigma_w=noise.sigma,
        sigma_basis=noise.sigma_basis,
        bits=noise.bits,
        c_in_f=c_in,
        e_acc=noise.e_acc,
        e_thermal=noise.e_thermal,
        r_min=noise.r_min,
        e_lim=noise.e_lim,
        r_min_basis=noise.r_min_basis,
        r_min_paper_budget=noise.r_knee_paper,
        t_forward_s=t_fwd,
        t_update_s=p.bl * p.t_pulse_s,
        n_adc=n_adc,
        p_array_w=tile.n_arrays * n * n * p.v_read_v**2 / r_mean * duty,
        p_int_w=n * inp.opamp_power_w,
        p_adc_w=n * inp.adc_energy_per_conversion_j / t_fwd,
        a_array_m2=tile.n_arrays * n * n * pitch_m**2,
        a_int_m2=n * (inp.opamp_area_um2 + c_int / inp.cap_density_f_per_um2) * 1e-12,
        a_adc_m2=n_adc * inp.adc_area_um2 * 1e-12,
        ops_per_s=inp.ops_per_weight * n * n / t_fwd,
        updates_per_s=n * n / (p.bl * p.t_pulse_s),
    )


def derive_specs(
    cfg: CircuitConfig,
    inputs: SpecInputs,
    *,
    explore: ExploreResults | None = None,
    config_source: str = "paper A's preset (gokmen_vlasov_2016)",
) -> SpecSheet:
    """The specification sheet of the largest tile that ``cfg``'s technology allows.

    ``cfg``'s own rows × cols (the simulated size) play no part: the sheet sizes the
    array from the lines. ``explore``'s σ and minimum on/off ratio replace the input σ
    and the analytic knee where given.
    """
    rows = all_rows(cfg, inputs, _design(cfg, inputs, explore))
    return SpecSheet(rows=rows, config_source=config_source, explore=explore, inputs=inputs)


__all__ = [
    "PAPER_A",
    "WITHIN_FACTOR",
    "Basis",
    "ExploreResults",
    "PaperValue",
    "SpecRow",
    "SpecSheet",
    "adc_bits_for",
    "derive_specs",
    "eng",
    "fmt",
    "knee_on_off_ratio",
]
