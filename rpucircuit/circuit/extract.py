"""Extraction: simulator output -> typed results (transfer, update, noise, timing).

Two layers. The *pure* functions at the top take numpy arrays and return numbers (a
threshold crossing, a least-squares fit of the update response, the charge variance of a
noise spectrum behind a reset-and-integrate window, the decomposition of a transfer
error); they do no I/O and are unit tested on their own. The *analyses* below build
netlists, run ngspice through :mod:`rpucircuit.circuit.spice` and turn its vectors into the
frozen result dataclasses. Simulator vector names never leave this module.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rpucircuit.circuit import analytic as an
from rpucircuit.circuit import nodal, spice
from rpucircuit.circuit.analytic import NoiseBudget
from rpucircuit.circuit.netlist import (
    Capacitor,
    Direction,
    Element,
    Instance,
    Netlist,
    Noise,
    ReadAnalysis,
    Resistor,
    Tran,
    VSource,
    build_line,
    build_noise,
    build_read,
    build_update,
    quantize_inputs,
    read_times,
)
from rpucircuit.circuit.spice import RawResult
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.errors import ExtractionError

FloatArray = NDArray[np.float64]


# =========================================================================== pure functions


RELATIVE_ZERO = 1e-9
"""A computed quantity below this fraction of its data's scale counts as zero: float64
rounding leaves ~1e-16 of the scale (times a condition number) where the exact answer is 0."""


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
    # An exact zero is lost to rounding (lstsq returns ~1e-16 of the data for "none"): the
    # coincident response counts as absent when it explains less than RELATIVE_ZERO of the
    # largest change.
    if abs(a) * float(np.max(np.abs(nf))) <= RELATIVE_ZERO * float(np.max(np.abs(dg))):
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


def noise_time_grid(
    t_end_s: float, dt_coarse_s: float, dt_fine_s: float, t_fine_s: float
) -> FloatArray:
    """Sample times ``0 … t_end``: every ``dt_coarse`` up to ``t_end − t_fine``, then every
    ``dt_fine`` to ``t_end`` (a white source that must be broadband only near ``t_end``).

    ngspice looks a PWL value up by scanning its points from the start, so a source's cost
    per time step grows with its length; the fine tail keeps it short.
    """
    if not (0.0 < dt_fine_s <= dt_coarse_s and t_fine_s >= 0.0 and t_end_s > 0.0):
        raise ExtractionError(
            f"dt_coarse_s = {dt_coarse_s!r}, dt_fine_s = {dt_fine_s!r}, t_fine_s = {t_fine_s!r}: "
            "need 0 < dt_fine <= dt_coarse, t_fine >= 0, t_end > 0"
        )
    n_fine = min(math.ceil(t_fine_s / dt_fine_s), math.floor(t_end_s / dt_fine_s * (1 + 1e-12)))
    t_split = t_end_s - n_fine * dt_fine_s
    # A time within rounding of 0 (t_end a multiple of the fine step gives ±1e-25 s, not 0)
    # is 0: neither a first step of 1e-25 s nor a grid starting below 0.
    snap = RELATIVE_ZERO * dt_fine_s
    if t_split <= snap:
        fine: FloatArray = dt_fine_s * np.arange(n_fine + 1, dtype=np.float64)
        return fine
    n_coarse = math.ceil(t_split / dt_coarse_s * (1 - 1e-12))
    coarse = t_split - dt_coarse_s * np.arange(n_coarse, 0, -1, dtype=np.float64)
    coarse = coarse[coarse > snap]
    fine = t_split + dt_fine_s * np.arange(n_fine + 1, dtype=np.float64)
    out: FloatArray = np.concatenate([[0.0], coarse, fine])
    return out


def white_noise_on_grid(
    density_per_rthz: float, times_s: ArrayLike, *, rng: np.random.Generator
) -> FloatArray:
    """White noise of one-sided density ``density_per_rthz`` sampled at ``times_s`` (any
    increasing grid starting at 0) for a piecewise-linear source.

    Sample ``i`` has variance ``density²/(2·w_i)``, ``w_i`` the mean of its neighbouring
    steps (its trapezoid weight; one step at the ends), so the PWL waveform's integral
    over any span has variance ``density²·span/2`` as white noise does; on a uniform grid
    this is :func:`white_noise_samples`. The first value is exactly 0.
    """
    t = np.asarray(times_s, dtype=np.float64)
    if t.ndim != 1 or t.size < 2 or t[0] != 0.0 or np.any(np.diff(t) <= 0.0):
        raise ExtractionError("noise times must be an increasing 1-D grid from 0")
    d = np.diff(t)
    w = np.concatenate([[d[0]], 0.5 * (d[:-1] + d[1:]), [d[-1]]])
    values: FloatArray = rng.normal(0.0, 1.0, size=t.size) * (density_per_rthz / np.sqrt(2.0 * w))
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
    # No gain to fit when the unsaturated predictions are all (numerically) zero.
    scale = max(
        float(np.max(np.abs(ideal_q), initial=0.0)), float(np.max(np.abs(sim), initial=0.0))
    )
    size = float(np.max(np.abs(nodal[free]), initial=0.0))
    if size > RELATIVE_ZERO * scale:
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


# =========================================================================== analyses


def _job_name(text: str) -> str:
    """A run-folder name ngspice jobs accept, derived from a case name."""
    name = re.sub(r"[^a-z0-9_-]", "-", text.lower())[:64]
    return name if name[:1].isalpha() else f"j{name}"[:64]


def _run(netlist: Netlist, *, name: str, workdir: Path, timeout_s: float) -> RawResult:
    job = spice.SpiceJob.from_netlist(netlist, name=_job_name(name), timeout_s=timeout_s)
    return spice.run(job, workdir=workdir)


def _real(result: RawResult, vector: str) -> FloatArray:
    try:
        values = result.vector(vector)
    except KeyError as exc:
        raise ExtractionError(f"simulator output lacks {vector!r}") from exc
    return np.asarray(np.real(values), dtype=np.float64)


def with_device(cfg: CircuitConfig, **changes: Any) -> CircuitConfig:
    """``cfg`` with device fields changed."""
    return dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, **changes))


def with_periphery(cfg: CircuitConfig, **changes: Any) -> CircuitConfig:
    """``cfg`` with periphery fields changed."""
    return dataclasses.replace(cfg, periphery=dataclasses.replace(cfg.periphery, **changes))


def with_tile(cfg: CircuitConfig, **changes: Any) -> CircuitConfig:
    """``cfg`` with tile fields changed."""
    return dataclasses.replace(cfg, tile=dataclasses.replace(cfg.tile, **changes))


def without_line_resistance(cfg: CircuitConfig) -> CircuitConfig:
    """``cfg`` with zero resistance on every line (capacitances and drivers kept)."""
    t = cfg.tile
    return with_tile(
        cfg,
        row_line=dataclasses.replace(t.row_line, r_ohm_per_um=0.0),
        col_line=dataclasses.replace(t.col_line, r_ohm_per_um=0.0),
    )


def weights_to_conductances(cfg: CircuitConfig, w: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Pair conductances for weights ``w`` (weight units): ``G± = G_mean ± w·ΔG_unit/2``.

    ``|w| <= w_max`` keeps both devices within ``[G_off, G_on]``.
    """
    ww = np.asarray(w, dtype=np.float64)
    d = cfg.device
    if np.any(np.abs(ww) > d.w_max * (1 + 1e-12)):
        raise ExtractionError(f"weights must lie in ±w_max = ±{d.w_max:g}")
    half = 0.5 * ww * d.dg_unit_s
    return d.g_mean_s + half, d.g_mean_s - half


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TransferResult:
    """One read (forward or backward) of a tile in ngspice, against the ideal ``W·x``.

    Outputs are in weight units: ``y = Q/Q_unit`` with ``Q`` the charge the integrator
    collected (transient: ``−V_out·C_int``; operating point: ``I·t_meas``).
    """

    name: str
    direction: str
    """``forward`` (inputs on columns, outputs on rows) or ``backward``."""
    analysis: str
    """``tran`` (transient with integrators) or ``op`` (DC operating point)."""
    encoding: str
    read_iv: str
    g_pos_s: FloatArray
    """Conductances of array p (G⁺), ``(rows, cols)``."""
    g_neg_s: FloatArray
    """Conductances of array m (G⁻), ``(rows, cols)``."""
    x: FloatArray
    """Inputs as requested, in [-1, 1]."""
    x_applied: FloatArray
    """Inputs as the drivers apply them (quantized)."""
    dg_unit_s: float
    q_unit_c: float
    alpha_w: float
    """Output bound (weight units) of the integrator swing."""
    y_ideal_w: FloatArray
    """``W·x`` with the exact inputs."""
    y_ideal_quantized_w: FloatArray
    """``W·x`` with the applied inputs."""
    y_sim_w: FloatArray
    """ngspice's outputs."""
    y_nodal_w: FloatArray
    """Nodal solve of the same network with line resistance and the integrator's finite gain."""
    y_nodal_no_line_w: FloatArray
    """Nodal solve with zero line resistance (finite gain kept)."""
    t_s: FloatArray
    """Time points of the transient (empty for an operating point)."""
    v_out_v: FloatArray
    """Integrator outputs over time, ``(n_out, n_t)`` (empty for an operating point)."""
    errors: TransferErrors
    wall_s: float
    """ngspice wall time of the main run (s)."""

    @property
    def error_rms_fs(self) -> float:
        """rms of ``y_sim − y_ideal`` relative to the full scale α."""
        return float(np.sqrt(np.mean(self.errors.total_w**2)) / self.alpha_w)


def transfer_case(
    cfg: CircuitConfig,
    w: ArrayLike,
    x: ArrayLike,
    *,
    name: str,
    direction: Direction = "forward",
    analysis: ReadAnalysis = "tran",
    workdir: Path,
    timeout_s: float = 600.0,
) -> TransferResult:
    """Simulate one read of weights ``w`` (``rows × cols``, weight units) and inputs ``x``.

    Builds the tile with :func:`weights_to_conductances`, runs it in ngspice, and solves the
    same network with the nodal solver twice (with and without line resistance) for the
    error decomposition (:func:`decompose_transfer_error`). For a sinh read I-V the nodal
    references use the devices' small-signal conductances, so the nonlinearity shows up as
    gain (time encoding) or as residual (amplitude encoding).
    """
    g_pos, g_neg = weights_to_conductances(cfg, w)
    g_neg_arg = g_neg if cfg.tile.paired else None
    xx = np.asarray(x, dtype=np.float64)
    net = build_read(cfg, g_pos, g_neg_arg, xx, direction=direction, analysis=analysis)
    res = _run(net, name=f"read-{name}", workdir=workdir, timeout_s=timeout_s)
    q_unit = cfg.q_unit_c
    if analysis == "tran":
        v_out = np.array([_real(res, v) for v in net.role("outputs")])
        t = _real(res, "time")
        y_sim = -v_out[:, -1] * cfg.c_int_f / q_unit
    else:
        currents = np.array([_real(res, v)[0] for v in net.role("currents")])
        y_sim = currents * cfg.periphery.t_meas_s / q_unit
        v_out, t = np.zeros((0, 0)), np.zeros(0)
    w_eff = (g_pos - g_neg if cfg.tile.paired else g_pos) / cfg.device.dg_unit_s
    x_q = quantize_inputs(cfg, xx)
    mat = w_eff if direction == "forward" else w_eff.T
    gain = cfg.periphery.a0 / (1.0 + cfg.periphery.a0)
    finite = analysis == "tran"

    def nodal_y(c: CircuitConfig) -> FloatArray:
        r = nodal.read(c, g_pos, g_neg_arg, xx, direction=direction, finite_gain=finite)
        return np.asarray(r.q_c * (gain if finite else 1.0) / q_unit, dtype=np.float64)

    y_nodal = nodal_y(cfg)
    y_nodal0 = nodal_y(without_line_resistance(cfg))
    y_ideal = mat @ xx
    y_ideal_q = mat @ x_q
    alpha = cfg.alpha_effective
    errors = decompose_transfer_error(
        y_ideal_w=y_ideal,
        y_ideal_quantized_w=y_ideal_q,
        y_nodal_w=y_nodal,
        y_nodal_no_line_w=y_nodal0,
        y_sim_w=y_sim,
        alpha_w=alpha if analysis == "tran" else math.inf,
    )
    return TransferResult(
        name=name,
        direction=direction,
        analysis=analysis,
        encoding=cfg.periphery.encoding,
        read_iv=cfg.device.read_iv,
        g_pos_s=g_pos,
        g_neg_s=g_neg,
        x=xx,
        x_applied=x_q,
        dg_unit_s=cfg.device.dg_unit_s,
        q_unit_c=q_unit,
        alpha_w=alpha,
        y_ideal_w=y_ideal,
        y_ideal_quantized_w=y_ideal_q,
        y_sim_w=y_sim,
        y_nodal_w=y_nodal,
        y_nodal_no_line_w=y_nodal0,
        t_s=t,
        v_out_v=v_out,
        errors=errors,
        wall_s=res.wall_s,
    )


# --------------------------------------------------------------------------- update


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class UpdateResult:
    """Per-device conductance changes of one stochastic update cycle (one polarity)."""

    name: str
    response: str
    """``saturating``, ``linear`` or ``rectifying`` (from the model's k)."""
    polarity: int
    """+1 (up: rows +V_S/2, columns −V_S/2) or −1."""
    k_model: float
    up_down_ratio_model: float
    """The model's Δg_up/Δg_down."""
    dg_model_s: float
    """The model's Δg per coincident pulse for this polarity (S, signed)."""
    row_bits: NDArray[np.bool_]
    col_bits: NDArray[np.bool_]
    n_full: NDArray[np.int64]
    """Coincident (fully selected) pulses per device, ``(rows, cols)``."""
    n_half: NDArray[np.int64]
    """Half-selected pulses per device."""
    dg_s: FloatArray
    """Simulated conductance change per device (S), ``(rows, cols)``."""
    dg_min_s: float
    """Fitted Δg per coincident pulse (S, signed)."""
    k: float
    """Fitted nonlinearity factor k = Δg(V_S/2)/Δg(V_S)."""
    fit_rms_s: float
    half_only_ratio: FloatArray
    """For devices that saw only half-selected pulses: Δg/(n_half·Δg_min), each ≈ k."""
    wall_s: float

    @property
    def k_error(self) -> float:
        """Relative error of the extracted k against the model's k."""
        return abs(self.k / self.k_model - 1.0)


def update_case(
    cfg: CircuitConfig,
    *,
    name: str,
    polarity: Literal[1, -1],
    rng: np.random.Generator,
    p_bit: float = 0.3,
    workdir: Path,
    timeout_s: float = 600.0,
) -> UpdateResult:
    """Random row and column bit streams (probability ``p_bit``) on one array of ``cfg``.

    Devices start at ``G_mean`` (far from both bounds), so the response is the model's
    ``Δg·(n_full + k·n_half)``; the fit over all devices recovers Δg_min and k.
    """
    t, p = cfg.tile, cfg.periphery
    row_bits = rng.random((t.rows, p.bl)) < p_bit
    col_bits = rng.random((t.cols, p.bl)) < p_bit
    g0 = np.full((t.rows, t.cols), cfg.device.g_mean_s)
    net = build_update(cfg, g0, row_bits, col_bits, polarity=polarity)
    res = _run(net, name=f"upd-{name}", workdir=workdir, timeout_s=timeout_s)
    states = np.array([_real(res, v)[-1] for v in net.role("states")])
    dg = states.reshape(t.rows, t.cols) * 1e-9  # 1 V on the state capacitor = 1 nS
    rb, cb = row_bits.astype(np.int64), col_bits.astype(np.int64)
    n_full = rb @ cb.T
    n_half = rb.sum(axis=1)[:, None] + cb.sum(axis=1)[None, :] - 2 * n_full
    a, k, rms = fit_update_response(n_full, n_half, dg)
    only_half = (n_full == 0) & (n_half > 0)
    ratio = dg[only_half] / (n_half[only_half] * a)
    d = cfg.device
    return UpdateResult(
        name=name,
        response=d.response,
        polarity=int(polarity),
        k_model=d.k,
        up_down_ratio_model=d.up_down_ratio,
        dg_model_s=d.dg_up_s if polarity == 1 else -d.dg_down_s,
        row_bits=row_bits,
        col_bits=col_bits,
        n_full=n_full,
        n_half=n_half,
        dg_s=dg,
        dg_min_s=a,
        k=k,
        fit_rms_s=rms,
        half_only_ratio=np.asarray(ratio, dtype=np.float64),
        wall_s=res.wall_s,
    )


def up_down_ratio(up: UpdateResult, down: UpdateResult) -> float:
    """Extracted Δg_up/Δg_down per coincident pulse from an up and a down cycle."""
    if up.polarity != 1 or down.polarity != -1:
        raise ExtractionError(
            f"polarities {up.polarity:+d}, {down.polarity:+d}: "
            "need an up (+1) and a down (-1) cycle"
        )
    return up.dg_min_s / -down.dg_min_s


# --------------------------------------------------------------------------- noise


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


def _noise_line_g(cfg: CircuitConfig, n: int) -> tuple[FloatArray, FloatArray | None]:
    g = np.full(n, cfg.device.g_mean_s)
    return g, (g.copy() if cfg.tile.paired else None)


def _spectrum(
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
    g_pos, g_neg = _noise_line_g(cfg, n)
    net = build_noise(cfg, g_pos, g_neg, points_per_decade=20, f_stop_hz=f_stop_hz)
    res = _run(net, name=name, workdir=workdir, timeout_s=timeout_s)
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


def _reset_opamp_var_c2(
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
    g_pos, g_neg = _noise_line_g(cfg, n)
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
    res = _run(net, name="noise-reset", workdir=workdir, timeout_s=timeout_s)
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


def _flat_band_hz(cfg: CircuitConfig, g_tot_s: float, c_in_f: float) -> tuple[float, float]:
    """Band where the op-amp's referred current noise is its flat ``e_n²·G²`` (Hz): well
    above the finite-gain leak, well below ``G/(2π·(C_int + C_in))``."""
    c = cfg.c_int_f
    return (
        20.0 * g_tot_s / (2.0 * math.pi * c * (1.0 + cfg.periphery.a0)),
        0.05 * g_tot_s / (2.0 * math.pi * (c + c_in_f)),
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
    f, s_v, gain = _spectrum(
        cfg, n, name="noise", workdir=workdir, timeout_s=timeout_s, f_stop_hz=f_stop_hz
    )
    s_i = current_psd_from_integrator_output(f, s_v, cfg.c_int_f)
    q_unit = cfg.q_unit_c
    quiet = with_periphery(cfg, e_n_v_per_rthz=0.0)
    f0, s_v0, gain0 = _spectrum(
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
        f_flat_hz=_flat_band_hz(cfg, g_line, c_in),
    ) + _reset_opamp_var_c2(cfg, n, workdir=workdir, timeout_s=timeout_s, f_stop_hz=f_stop_hz)
    sigma = math.sqrt(var_dev + var_amp) / (q_unit * gain)
    window_w = math.sqrt(windowed_charge_variance_c2(f, s_i, p.t_meas_s)) / (q_unit * gain)
    budget = an.noise_budget(
        n_rows=n,
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
        c_in_f=c_in,
        gbw_hz=p.gbw_hz,
        r_reset_ohm=p.r_reset_ohm,
        a0=p.a0,
        n_arrays=cfg.tile.n_arrays,
        temperature_k=p.temperature_k,
    )
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
    res = _run(net, name="ktc", workdir=workdir, timeout_s=timeout_s)
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


MC_SOURCES: tuple[str, ...] = ("device", "opamp", "ktc")
"""Noise sources of the transient-noise Monte Carlo (all of them by default)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NoiseMonteCarloResult:
    """Transient-noise Monte Carlo of one output line against ``.noise`` of the same column.

    Each trial is the ``opamp_noise="source"`` variant of :func:`build_noise`: the reset
    switch is closed until ``t_open_s`` and holds the integrating capacitor at a sampled
    kT/C voltage ``v_reset_v`` (σ = √(kT/C_int)); the devices' thermal noise (series PWL
    sources of density ``√(4kT·R)``, step ``dt_s``) and the op-amp's input-referred noise
    (a PWL source of density e_n, step ``dt_amp_s``, on the non-inverting input) run from
    t = 0, their first value 0 V. The charge is read single-ended at the end of the
    window: ``q = −C_int·v(out)`` at ``t_open_s + t_meas``. All samples come from
    ``numpy.random.default_rng(seed)``, trial by trial, so the same seed repeats the same
    charges.

    The reference is ngspice's ``.noise`` of the same column (the ``rpu_integrator``
    variant, whose series resistor carries e_n) through the t_meas window, plus ngspice's
    ``.noise`` of the reset switch across C_int (kT/C). The window ``sin²(πfT)/(πf)²``
    counts the op-amp's broadband output noise (gain 1 + C_in/C_int) at both ends of the
    window; a single-ended read from a reset sees it once, so the op-amp's part is
    ``(window + low-frequency part)/2``, the low-frequency part being its flat current
    density ``e_n²·G²`` (read from the spectra) times T/2. The op-amp spectrum is weighted
    by ``sinc⁴(f·dt_amp)``, the spectrum of linearly interpolated white samples. Added to
    it is the op-amp's e_n frozen on the line capacitance when the switch opens (``.noise``
    of the summing node with the switch closed). This is the same single-ended read as
    :func:`rpucircuit.circuit.analytic.noise_budget` and :func:`noise_case`.
    """

    n_devices: int
    trials: int
    seed: int
    sources: str
    """Comma-separated noise sources injected (``device``, ``opamp``, ``ktc``)."""
    dt_s: float
    """Time step of the devices' noise samples (s)."""
    dt_amp_s: float
    """Time step of the op-amp's noise samples and the largest simulation step (s)."""
    t_open_s: float
    """When the reset switch opens and integration starts (s)."""
    q_c: FloatArray
    """Integrated charge of each trial over t_meas (C), ``−C_int·v(out0)`` at the end."""
    v_reset_v: FloatArray
    """The sampled kT/C capacitor voltage of each trial (V; zeros without ``ktc``)."""
    sigma_mc_w: float
    """Sample standard deviation of the trials (weight units)."""
    sigma_mc_stderr_w: float
    """Its standard error, ``σ/√(2(M−1))``."""
    sigma_noise_w: float
    """σ of the same column and sources from ``.noise`` (weight units)."""
    sigma_device_w: float
    """Devices' part of ``sigma_noise_w`` (0 when not injected)."""
    sigma_opamp_w: float
    """Op-amp's part of ``sigma_noise_w`` (0 when not injected)."""
    sigma_ktc_w: float
    """Reset kT/C part of ``sigma_noise_w``: ``.noise`` of the switch (0 when not injected)."""
    wall_s: float

    @property
    def z_score(self) -> float:
        """(MC − .noise)/standard error."""
        return (self.sigma_mc_w - self.sigma_noise_w) / self.sigma_mc_stderr_w


def _prefixed(el: Element, prefix: str) -> Element:
    def node(n: str) -> str:
        return n if n == "0" else f"{prefix}{n}"

    if isinstance(el, Resistor | Capacitor):
        return dataclasses.replace(el, name=f"{prefix}{el.name}", n1=node(el.n1), n2=node(el.n2))
    if isinstance(el, VSource):
        return dataclasses.replace(
            el, name=f"{prefix}{el.name}", np_=node(el.np_), nn=node(el.nn), ac=None
        )
    return dataclasses.replace(el, name=f"{prefix}{el.name}", nodes=tuple(map(node, el.nodes)))


def _pwl(times: ArrayLike, values: ArrayLike) -> tuple[float, ...]:
    pairs = np.stack([np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)])
    return tuple(float(v) for v in pairs.T.ravel())


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


def noise_monte_carlo(
    cfg: CircuitConfig,
    *,
    n_devices: int = 8,
    trials: int = 200,
    per_netlist: int = 25,
    steps: int = 100,
    dt_amp_s: float | None = None,
    sources: Sequence[str] = MC_SOURCES,
    seed: int,
    workdir: Path,
    timeout_s: float = 600.0,
) -> NoiseMonteCarloResult:
    """Repeatable transient-noise Monte Carlo (see :class:`NoiseMonteCarloResult`).

    ``trials`` independent copies of the line (``per_netlist`` per ngspice run); the
    devices' noise has ``steps`` samples per t_meas, the op-amp's one every ``dt_amp_s``
    (default ``1/(100·GBW)``, capped at the device step: the closed loop passes e_n up to
    ~GBW). ``sources`` picks what is injected (and referenced). ngspice's own ``trnoise``
    is not repeatable; these samples come from ``numpy.random.default_rng(seed)``.
    """
    if trials < 2 or per_netlist < 1 or steps < 10:
        raise ExtractionError(
            f"trials = {trials}, per_netlist = {per_netlist}, steps = {steps}: need trials >= 2, "
            "per_netlist >= 1, steps >= 10"
        )
    chosen = tuple(sources)
    bad = [s for s in chosen if s not in MC_SOURCES]
    if bad or not chosen or len(set(chosen)) != len(chosen):
        raise ExtractionError(
            f"sources = {chosen!r}: need distinct names out of {list(MC_SOURCES)}"
        )
    p = cfg.periphery
    t_meas, t_open = p.t_meas_s, p.t_reset_s
    t_end = t_open + t_meas
    dt = t_meas / steps
    dt_amp = min(dt, 1.0 / (100.0 * p.gbw_hz)) if dt_amp_s is None else float(dt_amp_s)
    if not (math.isfinite(dt_amp) and 0.0 < dt_amp <= dt):
        raise ExtractionError(f"dt_amp_s = {dt_amp_s!r}: need 0 < dt_amp_s <= t_meas/steps")
    use_dev, use_amp, use_ktc = (s in chosen for s in MC_SOURCES)
    g_pos, g_neg = _noise_line_g(cfg, n_devices)
    base = build_noise(cfg, g_pos, g_neg, opamp_noise="source")
    t_dev = np.arange(math.ceil(t_end / dt * (1 - 1e-12)) + 1) * dt
    t_amp = noise_time_grid(t_end, dt, dt_amp, min(200.0 * dt_amp, t_end))
    kt = an.BOLTZMANN_J_PER_K * p.temperature_k
    c_int = cfg.c_int_f
    rng = np.random.default_rng(seed)
    devices = [el for el in base.elements if isinstance(el, Resistor) and el.name.startswith("d_")]
    charges: list[float] = []
    resets: list[float] = []
    wall = 0.0
    batch = 0
    while len(charges) < trials:
        count = min(per_netlist, trials - len(charges))
        els: list[Element] = []
        outs: list[str] = []
        for c in range(count):
            pre = f"t{c}_"
            v0 = float(rng.normal(0.0, math.sqrt(kt / c_int))) if use_ktc else 0.0
            resets.append(v0)
            for el in base.elements:
                if isinstance(el, Instance):
                    params = dict(el.params)
                    params.update(treset=t_open, vreset=v0)
                    el = dataclasses.replace(el, params=tuple(params.items()))
                elif isinstance(el, VSource) and el.name == "en0":
                    if use_amp:
                        wave = white_noise_on_grid(p.e_n_v_per_rthz, t_amp, rng=rng)
                        el = dataclasses.replace(el, pwl=_pwl(t_amp, wave), comment="")
                elif use_dev and el in devices:
                    assert isinstance(el, Resistor)
                    series = f"{el.n2}_n"
                    wave = white_noise_samples(
                        math.sqrt(4 * kt * el.ohm), dt, t_dev.size - 1, rng=rng
                    )
                    els.append(_prefixed(dataclasses.replace(el, n2=series, comment=""), pre))
                    els.append(
                        _prefixed(
                            VSource(f"nz_{el.name}", series, el.n2, pwl=_pwl(t_dev, wave)), pre
                        )
                    )
                    continue
                els.append(_prefixed(el, pre))
            outs.append(f"v({pre}out0)")
        net = Netlist(
            title=f"rpucircuit transient noise, {count} copies of a {n_devices}-device line",
            libs=base.libs,
            elements=tuple(els),
            analyses=(Tran(step_s=dt_amp, stop_s=t_end, max_step_s=min(dt, 20.0 * dt_amp)),),
            vectors=tuple(outs),
        )
        res = _run(net, name=f"noise-mc{batch}", workdir=workdir, timeout_s=timeout_s)
        wall += res.wall_s
        t = _real(res, "time")
        for v in outs:
            charges.append(-float(np.interp(t_end, t, _real(res, v))) * c_int)
        batch += 1
    q = np.asarray(charges, dtype=np.float64)
    q_unit = cfg.q_unit_c
    var_dev = var_amp = var_ktc = 0.0
    if use_dev or use_amp:
        quiet = with_periphery(cfg, e_n_v_per_rthz=0.0)
        f0, s_v0, _ = _spectrum(
            quiet,
            n_devices,
            name="noise-mc-quiet",
            workdir=workdir,
            timeout_s=timeout_s,
            f_stop_hz=100e9,
        )
        s_i0 = current_psd_from_integrator_output(f0, s_v0, c_int)
        if use_dev:
            var_dev = windowed_charge_variance_c2(f0, s_i0, t_meas)
        if use_amp:
            f, s_v, _ = _spectrum(
                cfg,
                n_devices,
                name="noise-mc-ref",
                workdir=workdir,
                timeout_s=timeout_s,
                f_stop_hz=100e9,
            )
            if f.shape != f0.shape or not np.allclose(f, f0, rtol=1e-9):
                raise ExtractionError("the two noise sweeps have different frequency grids")
            g_tot = float(np.sum(g_pos) + (0.0 if g_neg is None else np.sum(g_neg)))
            c_in = cfg.tile.n_arrays * n_devices * cfg.tile.c_seg_row_f
            var_amp = opamp_noise_reference_c2(
                f,
                current_psd_from_integrator_output(f, s_v, c_int),
                s_i0,
                t_meas_s=t_meas,
                dt_amp_s=dt_amp,
                f_flat_hz=_flat_band_hz(cfg, g_tot, c_in),
            ) + _reset_opamp_var_c2(
                cfg, n_devices, workdir=workdir, timeout_s=timeout_s, f_stop_hz=100e9
            )
    if use_ktc:
        ktc = ktc_case(cfg, workdir=workdir, timeout_s=timeout_s)
        var_ktc = ktc.v2_sim * c_int**2
    sigma = float(np.std(q, ddof=1)) / q_unit
    return NoiseMonteCarloResult(
        n_devices=n_devices,
        trials=trials,
        seed=seed,
        sources=",".join(chosen),
        dt_s=dt,
        dt_amp_s=dt_amp,
        t_open_s=t_open,
        q_c=q,
        v_reset_v=np.asarray(resets, dtype=np.float64),
        sigma_mc_w=sigma,
        sigma_mc_stderr_w=sigma / math.sqrt(2.0 * (trials - 1)),
        sigma_noise_w=math.sqrt(var_dev + var_amp + var_ktc) / q_unit,
        sigma_device_w=math.sqrt(var_dev) / q_unit,
        sigma_opamp_w=math.sqrt(var_amp) / q_unit,
        sigma_ktc_w=math.sqrt(var_ktc) / q_unit,
        wall_s=wall,
    )


# --------------------------------------------------------------------------- timing


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TimingResult:
    """Line delay vs line length from ngspice step responses, against the formulas."""

    n_segments: NDArray[np.int64]
    t50_sim_s: FloatArray
    """Simulated 50 % delay at the far end of a bare line (no devices), from the input's
    50 % point (s)."""
    t50_loaded_sim_s: FloatArray
    """The same with a device of G_mean to ground at every cross point (50 % of the final
    value, which the IR drop lowers)."""
    t50_distributed_s: FloatArray
    """Bakoglu's distributed-line formula with the driver (s)."""
    elmore_s: FloatArray
    """Elmore delay of the ladder with the driver (s)."""
    pulse_width_s: float
    budget_fraction: float
    n_max_sim: int
    """Largest cross points per line whose simulated 50 % delay (fitted a·N² + b·N through
    the simulated sizes) is within the budget."""
    n_max_distributed: int
    """The same from the distributed formula."""
    n_max_elmore: int
    """The same from the Elmore delay (paper A's rule reproduced)."""
    settle_tau_s: float
    """Analytic closed-loop time constant of the integrator on the tile's output line."""
    settle_t_s: FloatArray
    """Integrator output of the settling run: time (s) from the end of the input pulses."""
    settle_v_v: FloatArray
    """Integrator output of the settling run (V)."""
    settle_sim_s: float
    """Simulated settling time: from the 50 % point of the input pulses' falling edge until
    the output stays within ``settle_tol`` of its final value (s)."""
    settle_analytic_s: float
    """``τ·ln(lag/tol)``: the output lags an ideal ramp by ``slope·τ`` and that lag decays
    with the closed-loop time constant τ (s)."""
    settle_tol: float
    """Settling tolerance, relative to the final output."""


def _largest_n(coeff_n2: float, coeff_n: float, budget: float) -> int:
    disc = coeff_n**2 + 4.0 * coeff_n2 * budget
    return math.floor((-coeff_n + math.sqrt(disc)) / (2.0 * coeff_n2))


def timing_case(
    cfg: CircuitConfig,
    sizes: Sequence[int],
    *,
    budget_fraction: float = 0.1,
    workdir: Path,
    timeout_s: float = 300.0,
) -> TimingResult:
    """Step responses of row lines of ``sizes`` segments (ngspice), bare and loaded."""
    sharp = with_periphery(cfg, t_rise_s=1e-13)  # a near-ideal step (0.1 ps)
    t = cfg.tile
    r_seg, c_seg, r_drv = t.r_seg_row_ohm, t.c_seg_row_f, t.r_driver_ohm
    t_in50 = sharp.periphery.t_rise_s / 2.0
    sims: list[float] = []
    loaded: list[float] = []
    for n in sizes:
        for load, out in ((False, sims), (True, loaded)):
            net = build_line(sharp, n=int(n), load_devices=load, points=2000)
            res = _run(net, name=f"line{n}", workdir=workdir, timeout_s=timeout_s)
            far = _real(res, net.role("ends")[1])
            out.append(first_crossing_s(_real(res, "time"), far, 0.5 * float(far[-1])) - t_in50)
    ns = np.asarray(sizes, dtype=np.int64)
    dist = np.array(
        [an.distributed_delay_50_s(n * r_seg, n * c_seg, r_driver_ohm=r_drv) for n in ns]
    )
    elm = np.array(
        [an.elmore_delay_s(n * r_seg, n * c_seg, r_driver_ohm=r_drv, n_segments=int(n)) for n in ns]
    )
    budget = budget_fraction * cfg.periphery.t_pulse_s
    sim = np.asarray(sims, dtype=np.float64)
    (a, b), *_ = np.linalg.lstsq(np.column_stack([ns**2, ns]).astype(float), sim, rcond=None)
    rc = r_seg * c_seg
    n_dist = _largest_n(an.SAKURAI_DISTRIBUTED_50 * rc, an.LN2 * r_drv * c_seg, budget)
    n_elm = _largest_n(0.5 * rc, (0.5 * rc + r_drv * c_seg), budget)
    c_in = t.n_arrays * t.cols * c_seg
    tau = an.integrator_settling_tau_s(cfg.periphery.gbw_hz, cfg.c_int_f, c_in)
    st, sv, s_sim, s_ana, tol = _settling(cfg, tau, workdir=workdir, timeout_s=timeout_s)
    return TimingResult(
        n_segments=ns,
        t50_sim_s=sim,
        t50_loaded_sim_s=np.asarray(loaded, dtype=np.float64),
        t50_distributed_s=dist,
        elmore_s=elm,
        pulse_width_s=cfg.periphery.t_pulse_s,
        budget_fraction=budget_fraction,
        n_max_sim=_largest_n(float(a), float(b), budget),
        n_max_distributed=n_dist,
        n_max_elmore=n_elm,
        settle_tau_s=tau,
        settle_t_s=st,
        settle_v_v=sv,
        settle_sim_s=s_sim,
        settle_analytic_s=s_ana,
        settle_tol=tol,
    )


def _settling(
    cfg: CircuitConfig, tau_s: float, *, workdir: Path, timeout_s: float, tol: float = 1e-3
) -> tuple[FloatArray, FloatArray, float, float, float]:
    """Transient of one output line of the tile (all ``cols`` devices, inputs at full
    width, output at half the bound) with a time step of τ/10; returns the waveform after
    the input pulses end, the simulated and the analytic settling time, and ``tol``."""
    one = with_tile(cfg, rows=1)
    p = one.periphery
    cols = one.tile.cols
    w = np.full((1, cols), min(one.device.w_max, 0.5 * one.alpha_effective / cols))
    g_pos, g_neg = weights_to_conductances(one, w)
    net = build_read(one, g_pos, g_neg if one.tile.paired else None, np.ones(cols))
    t0, t_end = read_times(one)
    fine = Tran(step_s=tau_s / 10.0, stop_s=t_end, max_step_s=tau_s / 10.0)
    net = dataclasses.replace(net, analyses=(fine,))
    res = _run(net, name="settle", workdir=workdir, timeout_s=timeout_s)
    t = _real(res, "time")
    v = _real(res, net.role("outputs")[0])
    t_edge = t0 + p.t_meas_s  # 50 % point of the falling edge
    final = float(v[-1])
    after = t >= t_edge
    outside = np.nonzero(after & (np.abs(v - final) > tol * abs(final)))[0]
    settled = float(t[outside[-1] + 1] - t_edge) if outside.size else 0.0
    slope = final / p.t_meas_s
    lag = abs(slope) * tau_s
    analytic = tau_s * math.log(lag / (tol * abs(final))) if lag > tol * abs(final) else 0.0
    return t[after] - t_edge, v[after], settled, analytic, tol
