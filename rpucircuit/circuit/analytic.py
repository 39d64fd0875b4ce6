"""Independent analytic references for a crossbar tile: line delay, integrator, noise, IR drop.

Plain floats and numpy arrays in and out, SI units in every name. Nothing here runs a
simulator or reads a config; the extraction and the tests compare ngspice results with
these formulas, and the campaign report quotes them next to the simulated numbers.

Conventions used throughout (the one place they are written down for the circuit side):

* A weight is the conductance difference of a pair of devices on two identical arrays.
  Full-scale weight ``w_max`` is one device at ``G_on`` and its partner at ``G_off``, so one
  weight unit is ``dG_unit = (G_on - G_off) / w_max``.
* A time-encoded input ``x = 1`` is a read pulse of amplitude ``v_read`` lasting all of
  ``t_meas``; the charge per weight unit is ``Q_unit = v_read * t_meas * dG_unit``.
* Both arrays of the pair end on the same integrator (the G⁻ array's inputs are driven
  with the opposite polarity, :mod:`rpucircuit.circuit.netlist`), so one op-amp, one ``C_int`` and
  one reset per output line see the conductance of both arrays' lines.
* Noise densities are one-sided (``S_i = 4kTG`` in A²/Hz, ``e_n`` in V/√Hz). A white
  current of one-sided density ``S`` integrated for ``T`` gives a charge variance ``S·T/2``.
* The read is single-ended, as the circuit does it: reset ``C_int`` (which leaves kT/C on
  it), integrate for ``t_meas``, read ``q = −C_int·v_out`` once at the end. Every noise
  term below (kT/C once, device thermal noise over the window, the op-amp's e_n through
  the line, its broadband output noise once and its part frozen on the line capacitance
  at the reset) is for that read; the transient-noise Monte Carlo reads the same way.
  A start-to-end (correlated double sampled) read would cancel kT/C but count the
  op-amp's broadband noise twice; it is not what the integrator does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

BOLTZMANN_J_PER_K = 1.380649e-23
"""Boltzmann constant (J/K), exact SI value."""

ROOM_TEMPERATURE_K = 300.0
"""Default temperature for thermal noise (K)."""

SAKURAI_DISTRIBUTED_50 = 0.377
"""50 % step-response delay of an open-ended distributed RC line, in units of R·C.

From the exact solution of the diffusion equation (Sakurai 1983; Bakoglu & Meindl 1985);
the Elmore delay of the same line is R·C/2, which overestimates the 50 % point because the
distributed response has a slow tail that the first moment counts.
"""

LN2 = math.log(2.0)
"""50 % delay of a lumped RC stage in units of its time constant."""

DelayDefinition = Literal["elmore", "distributed_50", "rc"]


# --------------------------------------------------------------------------- line delay


def line_rc_s(length_um: float, r_ohm_per_um: float, c_f_per_um: float) -> float:
    """Total R·C product of a line of ``length_um`` (s): ``r·c·L²``."""
    return r_ohm_per_um * c_f_per_um * length_um**2


def elmore_delay_s(
    r_line_ohm: float,
    c_line_f: float,
    *,
    r_driver_ohm: float = 0.0,
    c_load_f: float = 0.0,
    n_segments: int | None = None,
) -> float:
    """Elmore (first-moment) delay at the far end of an RC line (s).

    ``n_segments=None`` is the distributed line: ``R·C/2 + R_drv·(C + C_L) + R·C_L``.
    With ``n_segments = N`` it is the ladder that the netlists build (each segment a
    resistor ``R/N`` followed by a capacitor ``C/N`` to ground): the line term becomes
    ``R·C·(N + 1)/(2N)``.
    """
    if n_segments is None:
        line = r_line_ohm * c_line_f / 2.0
    else:
        if n_segments < 1:
            raise ValueError(f"n_segments = {n_segments}: must be >= 1")
        line = r_line_ohm * c_line_f * (n_segments + 1) / (2.0 * n_segments)
    return line + r_driver_ohm * (c_line_f + c_load_f) + r_line_ohm * c_load_f


def distributed_delay_50_s(
    r_line_ohm: float,
    c_line_f: float,
    *,
    r_driver_ohm: float = 0.0,
    c_load_f: float = 0.0,
) -> float:
    """50 % step delay at the far end of a distributed RC line with driver and load (s).

    Bakoglu & Meindl's fit to the exact response:
    ``0.377·R·C + 0.693·(R_drv·C + R_drv·C_L + R·C_L)``. Exact for the bare line
    (``0.377·R·C``) and for a lumped stage (``ln 2·R_drv·C``), within a few % in between.
    """
    return SAKURAI_DISTRIBUTED_50 * r_line_ohm * c_line_f + LN2 * (
        r_driver_ohm * c_line_f + r_driver_ohm * c_load_f + r_line_ohm * c_load_f
    )


_DELAY_COEFF: dict[str, float] = {
    "elmore": 0.5,
    "distributed_50": SAKURAI_DISTRIBUTED_50,
    "rc": 1.0,
}


def max_line_length_um(
    delay_budget_s: float,
    r_ohm_per_um: float,
    c_f_per_um: float,
    *,
    definition: DelayDefinition = "elmore",
) -> float:
    """Longest bare line (no driver) whose delay stays within ``delay_budget_s`` (µm).

    ``definition`` picks the delay: ``"elmore"`` (R·C/2), ``"distributed_50"``
    (0.377·R·C) or ``"rc"`` (the full R·C product). Solves ``coeff·r·c·L² = budget``.
    """
    if definition not in _DELAY_COEFF:
        raise ValueError(f"definition = {definition!r}: must be one of {list(_DELAY_COEFF)}")
    coeff = _DELAY_COEFF[definition]
    return math.sqrt(delay_budget_s / (coeff * r_ohm_per_um * c_f_per_um))


def max_array_size(
    pulse_width_s: float,
    pitch_um: float,
    r_ohm_per_um: float,
    c_f_per_um: float,
    *,
    budget_fraction: float = 0.1,
    definition: DelayDefinition = "elmore",
    power_of_two: bool = True,
) -> int:
    """Largest number of cross points per line whose line delay is within the budget.

    Paper A's rule: the line delay must stay below ``budget_fraction`` (10 %) of the update
    pulse width (1 ns). With 0.36 Ω/µm, 0.2 fF/µm and the Elmore delay R·C/2 the longest
    line is 1.667 mm, i.e. 4166 cross points at 400 nm pitch; the largest power of two is
    4096 (1.638 mm, the paper's "≈ 1.64 mm"). With the 50 % point of the distributed line
    (0.377·R·C) the longest line is 1.92 mm (4798 cross points), and with the full R·C only
    1.18 mm (2946), so 4096 × 4096 needs the Elmore (or 50 %) definition.
    """
    length = max_line_length_um(
        budget_fraction * pulse_width_s, r_ohm_per_um, c_f_per_um, definition=definition
    )
    n = math.floor(length / pitch_um)
    if power_of_two and n >= 1:
        n = 1 << (n.bit_length() - 1)
    return n


# --------------------------------------------------------------------------- integrator


def integrator_ideal_v(charge_c: ArrayLike, c_int_f: float) -> NDArray[np.float64]:
    """Output of an ideal inverting charge integrator: ``-Q / C_int`` (V)."""
    return -np.asarray(charge_c, dtype=np.float64) / c_int_f


def finite_gain_factor(a0: float) -> float:
    """Static gain error of an inverting integrator with open-loop gain ``A0``: ``A0/(1+A0)``.

    The virtual ground sits at ``-V_out/A0``, so the feedback capacitor sees
    ``(1 + 1/A0)·V_out`` and the output is the ideal one times ``A0/(1 + A0)``.
    """
    return a0 / (1.0 + a0)


def integrator_time_encoded_v(
    g_s: ArrayLike,
    v_v: ArrayLike,
    t_on_s: ArrayLike,
    *,
    t_meas_s: float,
    c_int_f: float,
    a0: float = math.inf,
) -> float:
    """Integrator output at ``t_meas_s`` for time-encoded inputs, with finite DC gain (V).

    Input ``j`` drives voltage ``v_v[j]`` through conductance ``g_s[j]`` into the virtual
    ground from ``t = 0`` to ``t_on_s[j]`` and 0 V afterwards (the driver still holds the
    line, so every device loads the node all the time). With a single-pole-free op-amp of
    DC gain ``A0`` the virtual ground obeys ``C·(1 + A0)·dv/dt = Σ G_j V_j(t) − G_tot·v``,
    a leaky integrator with ``τ = C·(1 + A0)/G_tot``; the exact solution for step inputs is

        ``V_out = -A0 · Σ_j (G_j V_j / G_tot) · (exp(-(T - t_j)/τ) - exp(-T/τ))``.

    ``a0 = inf`` gives the ideal ``-Σ G_j V_j t_j / C``.
    """
    g = np.asarray(g_s, dtype=np.float64)
    v = np.asarray(v_v, dtype=np.float64)
    t_on = np.minimum(np.asarray(t_on_s, dtype=np.float64), t_meas_s)
    if math.isinf(a0):
        return float(-np.sum(g * v * t_on) / c_int_f)
    g_tot = float(np.sum(g))
    tau = c_int_f * (1.0 + a0) / g_tot
    weights = np.exp(-(t_meas_s - t_on) / tau) - math.exp(-t_meas_s / tau)
    return float(-a0 * np.sum(g * v / g_tot * weights))


def gbw_gain_factor(g_total_s: float, c_int_f: float, gbw_hz: float) -> float:
    """Charge lost to the summing node of an integrator with a finite gain-bandwidth.

    With a single-pole op-amp (``A(s) ≈ 2π·GBW/s`` well above its pole) the summing node
    sits at ``V_n = −V_out·s/(2π·GBW)`` while the output ramps; for a constant drive
    ``I`` the ramp is ``I_net/C_int``, so ``V_n = I_net/(2π·GBW·C_int)`` is constant and the
    lines lose ``G_tot·V_n`` of their current. Solving ``I_net = I − G_tot·V_n`` gives the
    factor ``1/(1 + G_tot/(2π·GBW·C_int))`` on the integrated charge. Multiply by
    :func:`finite_gain_factor` for the whole static error of the integrator.
    """
    return 1.0 / (1.0 + g_total_s / (2.0 * math.pi * gbw_hz * c_int_f))


def line_signal_gain(g_line_s: float, c_int_f: float, gbw_hz: float, a0: float) -> float:
    """Fraction ``g`` of a line current's charge that reaches the output (finite A0, GBW).

    :func:`finite_gain_factor` times :func:`gbw_gain_factor`; ``gbw_hz = 0`` and
    ``a0 = inf`` each stand for an ideal op-amp (factor 1).
    """
    g = 1.0 if math.isinf(a0) else finite_gain_factor(a0)
    if gbw_hz > 0.0 and c_int_f > 0.0:
        g *= gbw_gain_factor(g_line_s, c_int_f, gbw_hz)
    return g


def integrator_settling_tau_s(gbw_hz: float, c_int_f: float, c_in_f: float) -> float:
    """Closed-loop time constant of an integrator with a single-pole op-amp (s).

    At high frequency the feedback factor is ``β = C_int/(C_int + C_in)`` (``C_in`` the
    line and device capacitance at the virtual ground), so the loop settles with
    ``τ = 1 / (2π·GBW·β)``.
    """
    beta = c_int_f / (c_int_f + c_in_f)
    return 1.0 / (2.0 * math.pi * gbw_hz * beta)


def c_int_for_bound_f(alpha_w: float, q_unit_c: float, v_swing_v: float) -> float:
    """Integrating capacitor that maps the output bound ``α`` onto the op-amp swing (F)."""
    return alpha_w * q_unit_c / v_swing_v


# --------------------------------------------------------------------------- devices, weights


def device_conductances_s(r_mean_ohm: float, on_off_ratio: float) -> tuple[float, float]:
    """``(G_on, G_off)`` whose arithmetic mean conductance is ``1/r_mean_ohm`` (S)."""
    g_mean = 1.0 / r_mean_ohm
    g_off = 2.0 * g_mean / (1.0 + on_off_ratio)
    return on_off_ratio * g_off, g_off


def charge_per_weight_unit_c(
    v_read_v: float, t_meas_s: float, g_on_s: float, g_off_s: float, w_max: float
) -> float:
    """Integrated charge for output ``y = 1`` in weight units (C): ``V·T·(G_on−G_off)/w_max``."""
    return v_read_v * t_meas_s * (g_on_s - g_off_s) / w_max


# --------------------------------------------------------------------------- noise


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NoiseBudget:
    """Noise of one output line over one integration, referred to weight units.

    Each term is a standard deviation of the output ``y`` (weight units) from one source;
    independent sources add in quadrature into :attr:`total_w`.
    """

    q_unit_c: float
    """Charge per weight unit (C)."""
    signal_gain: float
    """Fraction of a line current's charge that reaches the output (finite A0 and GBW;
    1 for an ideal op-amp); the terms below are in weight units of that signal."""
    device_thermal_w: float
    """Thermal noise of every device on the line, both arrays (4kT·ΣG, integrated)."""
    opamp_w: float
    """Op-amp input-referred voltage noise, single-ended read: through the line conductance,
    its broadband output noise once, and its part frozen on the line capacitance at reset."""
    ktc_w: float
    """kT/C of the integrator reset."""
    adc_w: float
    """ADC quantization, LSB/√12."""

    @property
    def total_w(self) -> float:
        """All sources in quadrature (weight units)."""
        return math.sqrt(self.device_thermal_w**2 + self.opamp_w**2 + self.ktc_w**2 + self.adc_w**2)


def device_thermal_charge_var_c2(
    g_line_total_s: float, t_meas_s: float, *, temperature_k: float = ROOM_TEMPERATURE_K
) -> float:
    """Charge variance from the thermal noise of conductance ``g_line_total_s`` over ``T`` (C²).

    One-sided current density ``4kT·G`` integrated for ``T``: ``2kT·G·T``.
    ``g_line_total_s`` is the sum over every device on the summing node (both arrays).
    """
    return 2.0 * BOLTZMANN_J_PER_K * temperature_k * g_line_total_s * t_meas_s


def opamp_charge_var_c2(
    e_n_v_per_rthz: float,
    g_line_s: float,
    t_meas_s: float,
    *,
    c_int_f: float = 0.0,
    c_in_f: float = 0.0,
    gbw_hz: float = 0.0,
    r_reset_ohm: float = 0.0,
    signal_gain: float = 1.0,
) -> float:
    """Charge variance from one op-amp's input-referred voltage noise in a single-ended read (C²).

    The read the circuit performs: the reset switch (on-resistance ``R_rst``) holds
    ``C_int`` until ``t0``, the line is integrated for ``T``, and the charge is read once,
    ``q = −C_int·v_out(t0 + T)`` (no sample at the start of the window). With ``β =
    C_int/(C_int + C_in)`` (``C_in`` the line capacitance on the summing node ``v_n``),
    charge conservation at the summing node gives

        ``v_out(t0+T) = v_reset + v_n(t0+T)/β − (C_in/C_int)·v_n(t0) + (G/C_int)·∫ v_n dt``,

    and the op-amp holds ``v_n`` at ``e_n``. Three independent parts (``T`` ≫ the loop's
    time constants, so ``v_n(t0)`` and ``v_n(t0+T)`` are uncorrelated):

    1. ``e_n`` drives ``e_n·G`` through the line's conductance over the window:
       ``e_n²·G²·T/2``.
    2. The broadband output noise at the read, gain ``1/β`` over the closed-loop noise
       bandwidth ``(π/2)·GBW·β``, counted once: ``C_int²·e_n²·(π/2)·GBW/β``. (A
       start-to-end read, and the window ``sin²(πfT)/(πf)²`` applied to a stationary
       ``.noise`` spectrum, count it twice; the single-ended read does not.)
    3. ``e_n`` frozen on ``C_in`` when the switch opens. While it is closed the op-amp is a
       follower; the charge left on the node is ``C_in·v_n`` low-passed by ``R_rst·C_int``,
       a second-order loop with noise bandwidth ``(π/2)·GBW/(1 + 2π·GBW·R_rst·C_int)``:
       ``C_in²·e_n²·(π/2)·GBW/(1 + 2π·GBW·R_rst·C_int)``. It matters on long lines
       (``C_in`` ≫ ``C_int``), where it can exceed part 2.

    Parts 2 and 3 are left out when ``gbw_hz`` or ``c_int_f`` is 0. The variance is
    referred to the line's charge, like the signal: the output sees the line's currents
    (and part 1) times ``signal_gain`` ``g`` (:func:`line_signal_gain`) but parts 2 and 3
    directly, so those are divided by ``g²``.
    """
    var = e_n_v_per_rthz**2 * g_line_s**2 * t_meas_s / 2.0
    if gbw_hz > 0.0 and c_int_f > 0.0:
        beta = c_int_f / (c_int_f + c_in_f)
        band = e_n_v_per_rthz**2 * (math.pi / 2.0) * gbw_hz
        out = c_int_f**2 * band / beta
        out += c_in_f**2 * band / (1.0 + 2.0 * math.pi * gbw_hz * r_reset_ohm * c_int_f)
        var += out / signal_gain**2
    return var


def ktc_charge_var_c2(c_int_f: float, *, temperature_k: float = ROOM_TEMPERATURE_K) -> float:
    """Charge variance left on ``C_int`` by its reset switch: ``kT·C`` (C²)."""
    return BOLTZMANN_J_PER_K * temperature_k * c_int_f


def adc_quantization_w(adc_bits: int, alpha_w: float) -> float:
    """Quantization noise of a ``B``-bit ADC spanning ``±α`` (weight units): ``2α/2^B/√12``."""
    return 2.0 * alpha_w / 2.0**adc_bits / math.sqrt(12.0)


def noise_budget(
    *,
    n_rows: int,
    g_on_s: float,
    g_off_s: float,
    w_max: float,
    v_read_v: float,
    t_meas_s: float,
    c_int_f: float,
    e_n_v_per_rthz: float,
    adc_bits: int,
    alpha_w: float,
    g_device_mean_s: float | None = None,
    c_in_f: float = 0.0,
    gbw_hz: float = 0.0,
    r_reset_ohm: float = 0.0,
    a0: float = math.inf,
    n_arrays: int = 2,
    temperature_k: float = ROOM_TEMPERATURE_K,
) -> NoiseBudget:
    """Noise budget of one output line that collects ``n_rows`` devices from each array.

    The ``n_arrays`` arrays (2 for a signed pair) end on one integrator, so the summing
    node sees ``G_line = n_arrays·n_rows·G_mean`` (``g_device_mean_s``, default the mean of
    ``G_on`` and ``G_off``). Device thermal noise and op-amp noise scale with that
    conductance; kT/C and ADC quantization are counted once. The op-amp term is the
    single-ended read of :func:`opamp_charge_var_c2` (``c_in_f``, ``gbw_hz`` and
    ``r_reset_ohm`` give its broadband and reset parts).

    Weight units are those of the signal as it reaches the output: a line current arrives
    there times ``g`` (:func:`line_signal_gain`, from ``a0`` and ``gbw_hz``), and so do
    the devices' noise and the op-amp's e_n·G part; kT/C (left on C_int), the op-amp's
    broadband and reset parts and the ADC act at the output itself, so in weight units
    they are larger by ``1/g``. ``g = 1`` with the defaults (ideal op-amp).
    """
    g_mean = 0.5 * (g_on_s + g_off_s) if g_device_mean_s is None else g_device_mean_s
    g_line = n_arrays * n_rows * g_mean
    gain = line_signal_gain(g_line, c_int_f, gbw_hz, a0)
    q_unit = charge_per_weight_unit_c(v_read_v, t_meas_s, g_on_s, g_off_s, w_max)
    var_dev = device_thermal_charge_var_c2(g_line, t_meas_s, temperature_k=temperature_k)
    var_amp = opamp_charge_var_c2(
        e_n_v_per_rthz,
        g_line,
        t_meas_s,
        c_int_f=c_int_f,
        c_in_f=c_in_f,
        gbw_hz=gbw_hz,
        r_reset_ohm=r_reset_ohm,
        signal_gain=gain,
    )
    var_ktc = ktc_charge_var_c2(c_int_f, temperature_k=temperature_k)
    return NoiseBudget(
        q_unit_c=q_unit,
        signal_gain=gain,
        device_thermal_w=math.sqrt(var_dev) / q_unit,
        opamp_w=math.sqrt(var_amp) / q_unit,
        ktc_w=math.sqrt(var_ktc) / (gain * q_unit),
        adc_w=adc_quantization_w(adc_bits, alpha_w) / gain,
    )


def acceptable_opamp_noise_v_per_rthz(
    *,
    sigma_total_w: float,
    n_rows: int,
    r_mean_ohm: float,
    on_off_ratio: float,
    w_max: float,
    v_read_v: float,
    t_meas_s: float,
    alpha_w: float,
    v_swing_v: float,
    adc_bits: int | None,
    c_in_f: float = 0.0,
    gbw_hz: float = 0.0,
    r_reset_ohm: float = 0.0,
    a0: float = math.inf,
    n_arrays: int = 2,
    temperature_k: float = ROOM_TEMPERATURE_K,
    include_ktc: bool = True,
) -> float:
    """Largest op-amp input-referred noise density that keeps the output noise at σ (V/√Hz).

    The device pair is fixed by the mean resistance (IR-drop budget) and the on/off ratio
    (:func:`device_conductances_s`); ``C_int`` maps the bound α onto the op-amp swing
    (:func:`c_int_for_bound_f`). The op-amp's charge variance is linear in ``e_n²``
    (:func:`opamp_charge_var_c2`, single-ended read), so the answer is what remains of
    ``(σ·Q_unit)²`` after device thermal noise, kT/C and ADC quantization, divided by that
    coefficient. Terms are referred through the line's signal gain as in
    :func:`noise_budget` (``a0``, ``gbw_hz``). Returns
    NaN where the other sources alone already exceed σ (no op-amp is quiet enough).
    ``adc_bits=None`` and ``include_ktc=False`` leave those two out (paper A's accounting
    splits σ between the devices' thermal noise and the op-amp only).
    """
    g_on, g_off = device_conductances_s(r_mean_ohm, on_off_ratio)
    q_unit = charge_per_weight_unit_c(v_read_v, t_meas_s, g_on, g_off, w_max)
    c_int = c_int_for_bound_f(alpha_w, q_unit, v_swing_v)
    g_line = n_arrays * n_rows / r_mean_ohm
    gain = line_signal_gain(g_line, c_int, gbw_hz, a0)
    var_other = device_thermal_charge_var_c2(g_line, t_meas_s, temperature_k=temperature_k)
    if include_ktc:
        var_other += ktc_charge_var_c2(c_int, temperature_k=temperature_k) / gain**2
    if adc_bits is not None:
        var_other += (adc_quantization_w(adc_bits, alpha_w) * q_unit / gain) ** 2
    remaining = (sigma_total_w * q_unit) ** 2 - var_other
    if remaining <= 0.0:
        return math.nan
    coeff = opamp_charge_var_c2(
        1.0,
        g_line,
        t_meas_s,
        c_int_f=c_int,
        c_in_f=c_in_f,
        gbw_hz=gbw_hz,
        r_reset_ohm=r_reset_ohm,
        signal_gain=gain,
    )
    return math.sqrt(remaining / coeff)


def min_on_off_ratio(
    *,
    e_n_v_per_rthz: float,
    r_max: float = 1e6,
    rel_tol: float = 1e-6,
    **kwargs: Any,
) -> float:
    """Smallest on/off ratio whose acceptable op-amp noise reaches ``e_n_v_per_rthz``.

    ``kwargs`` are those of :func:`acceptable_opamp_noise_v_per_rthz` except
    ``on_off_ratio``; ``e_n_v_per_rthz = 0`` gives the floor set by the other sources
    alone. The acceptable noise grows monotonically with the ratio (``Q_unit`` grows as
    ``(r − 1)/(r + 1)`` at a fixed mean conductance), so a bisection finds it. Returns NaN
    when even ``r_max`` does not suffice.
    """

    def ok(r: float) -> bool:
        e = acceptable_opamp_noise_v_per_rthz(on_off_ratio=r, **kwargs)
        return not math.isnan(e) and e >= e_n_v_per_rthz

    if not ok(r_max):
        return math.nan
    lo, hi = 1.0, r_max
    while hi - lo > rel_tol * hi:
        mid = math.sqrt(lo * hi) if hi / lo > 4.0 else 0.5 * (lo + hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------- IR drop


def device_resistance_for_ir_budget_ohm(
    n_devices: int, r_line_total_ohm: float, *, budget: float = 0.1
) -> float:
    """Mean device resistance that meets paper A's IR-drop rule ``N·R_line/R_dev = budget``.

    ``r_line_total_ohm`` is the resistance of the whole line (``r·L``). For 4096 devices on
    a 1.638 mm line at 0.36 Ω/µm (590 Ω) and a budget of 0.1 this gives 24.2 MΩ.
    """
    return n_devices * r_line_total_ohm / budget


def ir_drop_far_end_fraction(
    n_devices: int, r_segment_ohm: float, r_device_ohm: float, *, r_driver_ohm: float = 0.0
) -> float:
    """Relative voltage lost at the far end of a uniformly loaded line, to first order.

    A line driven at one end feeds ``N`` equal devices held at virtual ground; each segment
    ``k`` carries the current of the ``N − k + 1`` devices beyond it, so the far end sits
    ``(R_drv·N + R_seg·N(N+1)/2)/R_dev`` below the driven voltage (first order in
    ``R_seg/R_dev``). Paper A's ``N·R_line/R_dev = 0.1`` therefore means about 5 % at the
    far end.
    """
    n = n_devices
    return (r_driver_ohm * n + r_segment_ohm * n * (n + 1) / 2.0) / r_device_ohm
