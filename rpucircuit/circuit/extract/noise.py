"""Noise: ``.noise`` of one output line and of the reset switch, referred to weight units.

The pure functions refer an integrator's output spectrum to a current
(:func:`current_psd_from_integrator_output`), put it through the reset-and-integrate
window (:func:`windowed_charge_variance_c2`) and count the op-amp's part for a single-ended
read (:func:`opamp_noise_reference_c2`). :func:`noise_case` compares the line with the
analytic budget; :func:`ktc_case` checks kT/C. The spectra helpers here are also the
reference of the transient-noise Monte Carlo (:mod:`.noise_mc`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from rpucircuit.circuit import analytic as an
from rpucircuit.circuit.analytic import NoiseBudget
from rpucircuit.circuit.extract.common import FloatArray, run_netlist, with_periphery
from rpucircuit.circuit.netlist import (
    Capacitor,
    Instance,
    Netlist,
    Noise,
    Resistor,
    VSource,
    build_noise,
)
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.errors import ExtractionError


def current_psd_from_integrator_output(
    f_hz: ArrayLike, s_out_v2_per_hz: ArrayLike, c_int_f: float
) -> FloatArray:
    """Refer an integrator's output noise PSD back to an input current PSD (A²/Hz).

    The signal path of the integrator is ``V_out = -I/(j·2πf·C_int)``, so the same
    referral for the noise is ``S_i = S_v·(2πf·C_int)²``.
    """
    f = np.asarray(f_hz, dtype=np.float64)
    s = np.asarray(s_out_v2_per_hz, dtype=np.float64)
    return s * (2.0 * math.pi * f * c_int_f) ** 2


def windowed_charge_variance_c2(
    f_hz: ArrayLike, s_i_a2_per_hz: ArrayLike, t_meas_s: float, *, points_per_window: int = 64
) -> float:
    """Charge variance of a current noise integrated over a window of ``t_meas_s`` (C²).

    Integrating a current for ``T`` is a filter with ``|H(f)|² = sin²(πfT)/(πf)²``; for a
    one-sided current PSD ``S_i(f)`` the charge variance is ``∫ S_i(f)·|H(f)|² df``. The
    spectrum (given on any increasing grid, e.g. ngspice's log sweep) is interpolated in
    log-log on a fine linear grid up to 20/T; beyond that the oscillating window is
    replaced by its average ``1/(2π²f²)``; below the first point the spectrum is taken
    flat. For a white ``S`` this returns ``S·T/2``.
    """
    f = np.asarray(f_hz, dtype=np.float64)
    s = np.asarray(s_i_a2_per_hz, dtype=np.float64)
    if f.ndim != 1 or f.shape != s.shape or f.size < 2 or np.any(np.diff(f) <= 0):
        raise ExtractionError("noise spectrum needs an increasing 1-D frequency grid")
    if np.any(s < 0) or np.any(f <= 0):
        raise ExtractionError("noise spectrum needs positive frequencies and a PSD >= 0")
    log_f, log_s = np.log(f), np.log(np.maximum(s, 1e-300))

    def psd(x: FloatArray) -> FloatArray:
        out: FloatArray = np.exp(np.interp(np.log(np.maximum(x, f[0])), log_f, log_s))
        return out

    f_split = min(20.0 / t_meas_s, float(f[-1]))
    n = max(int(points_per_window * f_split * t_meas_s), 256)
    grid = np.linspace(0.0, f_split, n + 1)
    window = t_meas_s**2 * np.sinc(grid * t_meas_s) ** 2
    var = float(np.trapezoid(psd(grid) * window, grid))
    if f[-1] > f_split:
        hi = np.geomspace(f_split, f[-1], 2000)
        var += float(np.trapezoid(psd(hi) / (2.0 * math.pi**2 * hi**2), hi))
    return var


def opamp_noise_reference_c2(
    f_hz: ArrayLike,
    s_i_full_a2_per_hz: ArrayLike,
    s_i_quiet_a2_per_hz: ArrayLike,
    *,
    t_meas_s: float,
    dt_amp_s: float,
    f_flat_hz: tuple[float, float],
) -> float:
    """Charge variance of the op-amp's e_n in a single-ended read after a reset (C²).

    ``s_i_full`` and ``s_i_quiet`` are the referred current spectra of the same line with
    and without e_n; their difference is the op-amp's part. It is weighted by
    ``sinc⁴(f·dt_amp)`` (linearly interpolated white samples every ``dt_amp``) and put
    through the window; the window counts the broadband output noise twice (both ends),
    the read once, so the result is ``(window + S_flat·T/2)/2`` with ``S_flat`` the
    median op-amp current density in ``f_flat_hz`` (where it is ``e_n²·G²``). The part
    of e_n frozen on the line capacitance at the reset is not in a stationary spectrum;
    :func:`noise_case` and :func:`noise_monte_carlo` add it from a ``.noise`` of the reset
    phase. ``dt_amp_s = 0`` leaves the sinc⁴ weighting out (a continuous e_n).
    """
    f = np.asarray(f_hz, dtype=np.float64)
    full = np.asarray(s_i_full_a2_per_hz, dtype=np.float64)
    quiet = np.asarray(s_i_quiet_a2_per_hz, dtype=np.float64)
    if full.shape != f.shape or quiet.shape != f.shape:
        raise ExtractionError(
            f"spectra shapes {full.shape}, {quiet.shape} differ from the frequency grid {f.shape}"
        )
    amp = np.maximum(full - quiet, 0.0)
    window = windowed_charge_variance_c2(f, amp * np.sinc(f * dt_amp_s) ** 4, t_meas_s)
    lo, hi = f_flat_hz
    flat = (f >= lo) & (f <= hi)
    if not np.any(flat):
        raise ExtractionError(
            f"no frequency point between {lo:.3g} Hz and {hi:.3g} Hz where the op-amp's "
            "current noise is flat: start the sweep lower"
        )
    s_flat = float(np.median(amp[flat]))
    return 0.5 * (window + s_flat * t_meas_s / 2.0)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NoiseResult:
    """``.noise`` of one output line, referred to the integrated output in weight units."""

    n_devices: int
    """Devices per array on the line."""
    f_hz: FloatArray
    onoise_v2_per_hz: FloatArray
    """Integrator output noise PSD from ngspice (V²/Hz)."""
    s_i_a2_per_hz: FloatArray
    """The same referred to a current into the summing node (A²/Hz)."""
    signal_gain: float
    """Fraction of a line current that reaches C_int (from the same ``.noise`` run); the
    output noise is referred to weight units through it, like the signal."""
    sigma_sim_w: float
    """σ of the single-ended read (reset, integrate t_meas, read once) from ngspice's
    spectra (weight units): the devices through the window ``sin²(πfT)/(πf)²``, the op-amp
    by :func:`opamp_noise_reference_c2` (its broadband part once) plus its part frozen on
    the line capacitance at the reset (``.noise`` of the summing node with the switch
    closed). kT/C and the ADC are not in it (see ``budget``)."""
    sigma_sim_no_opamp_w: float
    """The same with the op-amp's e_n set to 0 (device thermal noise alone)."""
    sigma_window_w: float
    """The whole spectrum through the window: what a start-to-end read of a stationary
    integrator would see (op-amp broadband noise at both ends), for comparison."""
    budget: NoiseBudget
    """Analytic budget of the same line (device thermal, op-amp, kT/C, ADC)."""
    g_line_s: float
    """Total device conductance on the summing node (both arrays)."""
    c_in_f: float
    """Line capacitance on the summing node (F)."""

    @property
    def sigma_analytic_w(self) -> float:
        """Device thermal and op-amp noise of the analytic budget (what ``sigma_sim_w`` counts)."""
        b = self.budget
        return math.sqrt(b.device_thermal_w**2 + b.opamp_w**2)


def noise_line_g(cfg: CircuitConfig, n: int) -> tuple[FloatArray, FloatArray | None]:
    g = np.full(n, cfg.device.g_mean_s)
    return g, (g.copy() if cfg.tile.paired else None)


def line_spectrum(
    cfg: CircuitConfig, n: int, *, name: str, workdir: Path, timeout_s: float, f_stop_hz: float
) -> tuple[FloatArray, FloatArray, float]:
    """Output noise PSD of one line (V²/Hz) and the line's low-frequency charge gain.

    The gain comes from the same run: ``onoise/inoise`` is the transfer from the input
    source (driving device p0) to the output; in the band where the integrator integrates
    (well above its finite-gain leak, well below its closed-loop bandwidth) it is
    ``g·G_0/(2πf·C_int)``, with ``g`` the fraction of a line current that reaches C_int
    (finite A0, and the GBW-limited virtual ground's ``1/(2π·GBW·C_int)`` in parallel with
    the line). Signal and noise currents both see ``g``, so the noise is referred to
    weight units through it.
    """
    g_pos, g_neg = noise_line_g(cfg, n)
    net = build_noise(cfg, g_pos, g_neg, points_per_decade=20, f_stop_hz=f_stop_hz)
    res = run_netlist(net, name=name, workdir=workdir, timeout_s=timeout_s)
    try:
        plot = res.plot("noise spectral")
        f = np.asarray(np.real(plot["frequency"]), dtype=np.float64)
        onoise = np.asarray(np.real(plot["onoise_spectrum"]), dtype=np.float64)
        inoise = np.asarray(np.real(plot["inoise_spectrum"]), dtype=np.float64)
    except KeyError as exc:
        raise ExtractionError(f"noise output incomplete: {exc}") from exc
    t, p = cfg.tile, cfg.periphery
    c = cfg.c_int_f
    g_tot = float(np.sum(g_pos) + (0.0 if g_neg is None else np.sum(g_neg)))
    c_in = t.n_arrays * n * t.c_seg_row_f
    f_lo = 20.0 * g_tot / (2.0 * math.pi * c * (1.0 + p.a0))
    f_hi = 0.05 * p.gbw_hz * c / (c + c_in)
    band = (f >= f_lo) & (f <= f_hi) & (inoise > 0)
    if not np.any(band):
        raise ExtractionError(
            f"no integrating band between {f_lo:.3g} Hz and {f_hi:.3g} Hz in the noise sweep"
        )
    g0 = 1.0 / (1.0 / float(g_pos[0]) + t.r_driver_ohm + t.r_seg_col_ohm)
    gains = onoise[band] / inoise[band] * 2.0 * math.pi * f[band] * c / g0
    return f, onoise**2, float(np.median(gains))


def reset_opamp_var_c2(
    cfg: CircuitConfig, n: int, *, workdir: Path, timeout_s: float, f_stop_hz: float
) -> float:
    """The op-amp's e_n frozen on the line capacitance when the reset opens (C²), from ngspice.

    ``.noise`` of the summing node ``v_n`` with the reset switch closed (the integrator a
    follower through ``R_rst ‖ C_int``): charge conservation leaves ``C_in·v_n`` low-passed
    by ``R_rst·C_int`` on the node when the switch opens (part 3 of
    :func:`rpucircuit.circuit.analytic.opamp_charge_var_c2`), so the variance is
    ``C_in²·∫ S_vn(f)/(1 + (2πf·R_rst·C_int)²) df`` with ``C_in`` the line capacitance.
    The devices' own noise is in ``S_vn`` too but the closed loop holds the node against
    it (≪ 1 % here).
    """
    g_pos, g_neg = noise_line_g(cfg, n)
    net = build_noise(cfg, g_pos, g_neg, points_per_decade=20, f_stop_hz=f_stop_hz)
    elements = tuple(
        dataclasses.replace(
            el, params=tuple((k, 1.0 if k == "treset" else v) for k, v in el.params)
        )
        if isinstance(el, Instance)
        else el
        for el in net.elements
    )
    old = net.analyses[0]
    assert isinstance(old, Noise)
    net = dataclasses.replace(
        net, elements=elements, analyses=(dataclasses.replace(old, output="sum0"),)
    )
    res = run_netlist(net, name="noise-reset", workdir=workdir, timeout_s=timeout_s)
    try:
        plot = res.plot("noise spectral")
        f = np.asarray(np.real(plot["frequency"]), dtype=np.float64)
        s_vn = np.asarray(np.real(plot["onoise_spectrum"]), dtype=np.float64) ** 2
    except KeyError as exc:
        raise ExtractionError(f"noise output incomplete: {exc}") from exc
    p = cfg.periphery
    c_in = cfg.tile.n_arrays * n * cfg.tile.c_seg_row_f
    lowpass = 1.0 / (1.0 + (2.0 * math.pi * f * p.r_reset_ohm * cfg.c_int_f) ** 2)
    return c_in**2 * float(np.trapezoid(s_vn * lowpass, f))


def flat_band_hz(cfg: CircuitConfig, g_tot_s: float, c_in_f: float) -> tuple[float, float]:
    """Band where the op-amp's referred current noise is its flat ``e_n²·G²`` (Hz): well
    above the finite-gain leak, well below ``G/(2π·(C_int + C_in))``."""
    c = cfg.c_int_f
    return (
        20.0 * g_tot_s / (2.0 * math.pi * c * (1.0 + cfg.periphery.a0)),
        0.05 * g_tot_s / (2.0 * math.pi * (c + c_in_f)),
    )


def config_noise_budget(
    cfg: CircuitConfig, n_devices: int, *, c_in_f: float | None = None
) -> NoiseBudget:
    """:func:`~rpucircuit.circuit.analytic.noise_budget` of a line of ``n_devices`` per
    array in circuit ``cfg`` (its device, periphery and tile), the budget every ``.noise``
    comparison uses. ``c_in_f``: the line capacitance on the summing node (default: both
    arrays' row segments, ``n_arrays·n·c_seg_row``; a backward read's column line has its
    own)."""
    d, p, t = cfg.device, cfg.periphery, cfg.tile
    return an.noise_budget(
        n_rows=n_devices,
        g_on_s=d.g_on_s,
        g_off_s=d.g_off_s,
        w_max=d.w_max,
        v_read_v=p.v_read_v,
        t_meas_s=p.t_meas_s,
        c_int_f=cfg.c_int_f,
        e_n_v_per_rthz=p.e_n_v_per_rthz,
        adc_bits=p.adc_bits,
        alpha_w=cfg.alpha_effective,
        g_device_mean_s=d.g_mean_s,
        c_in_f=t.n_arrays * n_devices * t.c_seg_row_f if c_in_f is None else c_in_f,
        gbw_hz=p.gbw_hz,
        r_reset_ohm=p.r_reset_ohm,
        a0=p.a0,
        n_arrays=t.n_arrays,
        temperature_k=p.temperature_k,
    )


def noise_case(
    cfg: CircuitConfig,
    *,
    n_devices: int | None = None,
    workdir: Path,
    timeout_s: float = 600.0,
    f_stop_hz: float = 100e9,
) -> NoiseResult:
    """``.noise`` of one forward output line (``n_devices`` per array, default the tile's
    ``cols``) at ``G_mean``, integrated over ``t_meas``, vs the analytic budget."""
    n = cfg.tile.cols if n_devices is None else n_devices
    p = cfg.periphery
    f, s_v, gain = line_spectrum(
        cfg, n, name="noise", workdir=workdir, timeout_s=timeout_s, f_stop_hz=f_stop_hz
    )
    s_i = current_psd_from_integrator_output(f, s_v, cfg.c_int_f)
    q_unit = cfg.q_unit_c
    quiet = with_periphery(cfg, e_n_v_per_rthz=0.0)
    f0, s_v0, gain0 = line_spectrum(
        quiet, n, name="noise-quiet", workdir=workdir, timeout_s=timeout_s, f_stop_hz=f_stop_hz
    )
    if f.shape != f0.shape or not np.allclose(f, f0, rtol=1e-9):
        raise ExtractionError("the two noise sweeps have different frequency grids")
    s_i0 = current_psd_from_integrator_output(f0, s_v0, cfg.c_int_f)
    var_dev = windowed_charge_variance_c2(f0, s_i0, p.t_meas_s)
    sigma0 = math.sqrt(var_dev) / (q_unit * gain0)
    d = cfg.device
    c_in = cfg.tile.n_arrays * n * cfg.tile.c_seg_row_f
    g_line = cfg.tile.n_arrays * n * d.g_mean_s
    # Single-ended read: devices through the window, the op-amp's broadband part once
    # (not at both window ends) and its part frozen on C_in at the reset.
    var_amp = opamp_noise_reference_c2(
        f,
        s_i,
        s_i0,
        t_meas_s=p.t_meas_s,
        dt_amp_s=0.0,
        f_flat_hz=flat_band_hz(cfg, g_line, c_in),
    ) + reset_opamp_var_c2(cfg, n, workdir=workdir, timeout_s=timeout_s, f_stop_hz=f_stop_hz)
    sigma = math.sqrt(var_dev + var_amp) / (q_unit * gain)
    window_w = math.sqrt(windowed_charge_variance_c2(f, s_i, p.t_meas_s)) / (q_unit * gain)
    budget = config_noise_budget(cfg, n, c_in_f=c_in)
    return NoiseResult(
        n_devices=n,
        f_hz=f,
        onoise_v2_per_hz=s_v,
        s_i_a2_per_hz=s_i,
        signal_gain=gain,
        sigma_sim_w=sigma,
        sigma_sim_no_opamp_w=sigma0,
        sigma_window_w=window_w,
        budget=budget,
        g_line_s=g_line,
        c_in_f=c_in,
    )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class KtcResult:
    """kT/C of the reset: ``.noise`` of the reset switch resistance across C_int."""

    c_int_f: float
    r_reset_ohm: float
    f_hz: FloatArray
    s_v2_per_hz: FloatArray
    v2_sim: float
    """Integrated noise voltage² on the capacitor from ngspice's spectrum (V²)."""
    v2_analytic: float
    """kT/C (V²)."""


def ktc_case(cfg: CircuitConfig, *, workdir: Path, timeout_s: float = 120.0) -> KtcResult:
    """``.noise`` of the reset switch (``r_reset_ohm``, noisy) across ``C_int``, integrated
    over all frequencies: the variance left on C_int when the switch opens is kT/C."""
    p = cfg.periphery
    c = cfg.c_int_f
    corner = 1.0 / (2.0 * math.pi * p.r_reset_ohm * c)
    f_start, f_stop = corner * 1e-6, corner * 1e5
    net = Netlist(
        title="rpucircuit reset switch kT/C check",
        libs=(),
        elements=(
            VSource("in0", "vin", "0", ac=1.0, comment="noise input reference (no noise)"),
            Resistor("sw", "vin", "top", p.r_reset_ohm, comment="reset switch on-resistance"),
            Capacitor("int", "top", "0", c, comment="C_int"),
        ),
        analyses=(Noise("top", "in0", 40, f_start, f_stop),),
        vectors=(),
    )
    res = run_netlist(net, name="ktc", workdir=workdir, timeout_s=timeout_s)
    plot = res.plot("noise spectral")
    f = np.asarray(np.real(plot["frequency"]), dtype=np.float64)
    s = np.asarray(np.real(plot["onoise_spectrum"]), dtype=np.float64) ** 2
    v2 = float(np.trapezoid(s, f))
    kt = an.BOLTZMANN_J_PER_K * p.temperature_k
    return KtcResult(
        c_int_f=c,
        r_reset_ohm=p.r_reset_ohm,
        f_hz=f,
        s_v2_per_hz=s,
        v2_sim=v2,
        v2_analytic=kt / c,
    )
