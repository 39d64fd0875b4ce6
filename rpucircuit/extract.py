"""Extraction: simulator output -> typed results (transfer, update, noise, timing).

Two layers. The *pure* functions at the top take numpy arrays and return numbers (a
threshold crossing, a least-squares fit of the update response, the charge variance of a
noise spectrum behind a reset-and-integrate window, the decomposition of a transfer
error); they do no I/O and are unit tested on their own. The *analyses* below build
netlists, run ngspice through :mod:`rpucircuit.spice` and turn its vectors into the
frozen result dataclasses. Simulator vector names never leave this module.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rpucircuit.errors import ExtractionError

FloatArray = NDArray[np.float64]


# =========================================================================== pure functions


def first_crossing_s(t_s: ArrayLike, v: ArrayLike, level: float) -> float:
    """First time a waveform crosses ``level`` upwards, linearly interpolated (s).

    Raises :class:`ExtractionError` when the waveform never reaches the level.
    """
    t = np.asarray(t_s, dtype=np.float64)
    y = np.asarray(v, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1 or t.size < 2:
        raise ExtractionError(f"waveform shapes {t.shape} and {y.shape}: need two equal 1-D arrays")
    above = np.nonzero(y >= level)[0]
    if above.size == 0:
        raise ExtractionError(f"waveform never reaches {level:g} (max {float(y.max()):g})")
    i = int(above[0])
    if i == 0:
        return float(t[0])
    t0, t1, y0, y1 = t[i - 1], t[i], y[i - 1], y[i]
    return float(t0 + (level - y0) * (t1 - t0) / (y1 - y0))


def fit_update_response(
    n_full: ArrayLike, n_half: ArrayLike, dg_s: ArrayLike
) -> tuple[float, float, float]:
    """Least-squares ``Δg = a·n_full + b·n_half`` over devices; returns ``(a, k, rms)``.

    ``n_full`` counts the coincident (fully selected, V_S) pulses each device saw,
    ``n_half`` the pulses on its row or its column alone (V_S/2). ``a`` is Δg per full
    pulse (S), ``k = b/a`` the nonlinearity factor, ``rms`` the fit residual (S).
    """
    nf = np.asarray(n_full, dtype=np.float64).ravel()
    nh = np.asarray(n_half, dtype=np.float64).ravel()
    dg = np.asarray(dg_s, dtype=np.float64).ravel()
    if not (nf.shape == nh.shape == dg.shape):
        raise ExtractionError(f"shapes differ: n_full {nf.shape}, n_half {nh.shape}, dg {dg.shape}")
    design = np.column_stack([nf, nh])
    if nf.size < 2 or np.linalg.matrix_rank(design) < 2:
        raise ExtractionError(
            "cannot separate full and half-selected response: need devices with different "
            "ratios of coincident to half-selected pulses"
        )
    coef, *_ = np.linalg.lstsq(design, dg, rcond=None)
    a, b = float(coef[0]), float(coef[1])
    if a == 0.0:
        raise ExtractionError("fitted Δg per coincident pulse is 0: no update was seen")
    rms = float(np.sqrt(np.mean((design @ coef - dg) ** 2)))
    return a, b / a, rms


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


def white_noise_samples(
    density_per_rthz: float, dt_s: float, n_steps: int, *, rng: np.random.Generator
) -> FloatArray:
    """Samples of white noise of one-sided density ``density_per_rthz`` every ``dt_s``.

    Returns ``n_steps + 1`` values for a piecewise-linear source at ``0, dt, ..., n·dt``;
    each is Gaussian with variance ``density²/(2·dt)`` (the noise band-limited to the
    Nyquist frequency ``1/(2dt)``), except the first, which is exactly 0 so the circuit
    starts at its operating point.
    """
    if dt_s <= 0 or n_steps < 1:
        raise ExtractionError(f"dt_s = {dt_s!r}, n_steps = {n_steps!r}: need dt > 0, n >= 1")
    values = rng.normal(0.0, density_per_rthz / math.sqrt(2.0 * dt_s), size=n_steps + 1)
    values[0] = 0.0
    return values


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TransferErrors:
    """Decomposition of the error of one set of outputs, all in weight units.

    ``total = sim − ideal`` splits into ``quantization`` (ideal output of the quantized
    inputs minus that of the exact inputs), ``gain`` (the fitted gain times the nodal solve
    without line resistance, minus the quantized ideal output: the integrator's finite
    gain and any overall scale error), ``ir_drop`` (the fitted gain times the nodal solve
    with line resistance minus the one without, position dependent), ``saturation`` (the
    clip at ±α applied to the linear prediction) and ``residual`` (what none of those
    explain: dynamics, op-amp bandwidth, the nonlinear read).
    """

    total_w: FloatArray
    quantization_w: FloatArray
    gain_w: FloatArray
    ir_drop_w: FloatArray
    saturation_w: FloatArray
    residual_w: FloatArray
    gain: float
    """Fitted slope of sim vs the linear prediction over unsaturated outputs (1 = no error)."""
    saturated: NDArray[np.bool_]
    """Outputs whose prediction exceeds the bound α."""


def decompose_transfer_error(
    *,
    y_ideal_w: ArrayLike,
    y_ideal_quantized_w: ArrayLike,
    y_nodal_w: ArrayLike,
    y_nodal_no_line_w: ArrayLike,
    y_sim_w: ArrayLike,
    alpha_w: float,
) -> TransferErrors:
    """Split ``y_sim − y_ideal`` into quantization, gain, IR drop, saturation and residual.

    The linear prediction is ``g·y_nodal`` (the nodal solve of the quantized inputs with
    line resistance, scaled by the fitted gain ``g``); its clip at ±α is the saturation
    term. The pieces add up to the total exactly.
    """
    ideal = np.asarray(y_ideal_w, dtype=np.float64)
    ideal_q = np.asarray(y_ideal_quantized_w, dtype=np.float64)
    nodal = np.asarray(y_nodal_w, dtype=np.float64)
    nodal0 = np.asarray(y_nodal_no_line_w, dtype=np.float64)
    sim = np.asarray(y_sim_w, dtype=np.float64)
    if not (ideal.shape == ideal_q.shape == nodal.shape == nodal0.shape == sim.shape):
        raise ExtractionError("transfer decomposition needs outputs of one shape")
    saturated = np.abs(nodal) >= alpha_w
    free = ~saturated
    if np.any(free) and float(np.dot(nodal[free], nodal[free])) > 0.0:
        gain = float(np.dot(nodal[free], sim[free]) / np.dot(nodal[free], nodal[free]))
    else:
        gain = 1.0
    linear = gain * nodal
    clipped = np.clip(linear, -alpha_w, alpha_w)
    quant = ideal_q - ideal
    gain_part = gain * nodal0 - ideal_q
    ir = gain * (nodal - nodal0)
    return TransferErrors(
        total_w=sim - ideal,
        quantization_w=quant,
        gain_w=gain_part,
        ir_drop_w=ir,
        saturation_w=clipped - linear,
        residual_w=sim - clipped,
        gain=gain,
        saturated=saturated,
    )
