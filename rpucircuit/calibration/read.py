"""Read path: the integrator's gain per direction, the input transfer curve, the output
bound, and the DAC and ADC steps.

Gain. An op-amp integrator with open-loop gain ``A0`` and gain-bandwidth ``GBW`` keeps its
summing node near, not at, ground: in the nodal solver's first-order picture
(:func:`rpucircuit.circuit.nodal.integrator_conductance`) the node has a resistance
``R_sum = τ_sum/C_int`` to ground, ``τ_sum = 1/(2π·GBW) + t_meas/(2·(1 + A0))``, and the
read returns

    ``y = κ·y_q/(1 + G_line·τ_sum/C_int)``,  ``κ = A0/(1 + A0)``,

with ``y_q`` the ideal output of the quantized inputs and ``G_line`` the total conductance
on one summing node (both arrays). Each transient case gives its gain ``g`` (slope of
``y_sim`` on ``y_q`` less the lines' first-order IR drop, :mod:`rpucircuit.calibration.lines`)
and so ``τ_sum = (κ/g − 1)·C_int/G_line``, which does not depend on
the tile's size or on C_int; the gain of the config's own tile follows from it. One tile
size per direction cannot separate A0 from GBW, so ``κ`` is taken from the recorded A0 (its
share of the loss is ~1e-4 against ~1e-3 for GBW) and everything else is attributed to
``τ_sum``, reported with the op-amp GBW it implies.

Input transfer. With a sinh read I-V, ``I = G·V0·sinh(V/V0)``, amplitude encoding gives
``y = W·f(x)`` with ``f`` odd and monotone; ``f`` is fitted as an odd polynomial
``c1·x + c3·x³ + c5·x⁵`` to the amplitude case (the sinh model's Taylor coefficients are
``1``, ``(V_read/V0)²/6``, ``(V_read/V0)⁴/120``). Time encoding applies a fixed amplitude,
so it only scales the read: one gain, ``(V0/V_read)·sinh(V_read/V0)`` for the sinh device.
Both are divided by the read gain, so they describe the device alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from rpucircuit.calibration.base import (
    CalibrationError,
    FittedParameter,
    FloatArray,
    Tree,
    array,
    case_config,
    combine,
    config_parameter,
    find_cases,
    least_squares,
    scalar,
    t_quantile,
    text,
)
from rpucircuit.calibration.lines import case_drop, case_weights

GAIN_RESIDUAL_TOL = 1e-3
"""Largest rms of ``y_sim − g·y_q`` relative to the rms of ``y_q`` in one gain case. The
transient's own numerical error is ~3e-6 of the signal on the reference file; an
unexplained 0.1 % means something besides a gain is at work (IR drop, a nonlinear read),
while it is still 40 times below the ADC step (2α/512 ≈ 4 % of a typical |y| ≈ 1)."""

TRANSFER_RESIDUAL_TOL = 1e-3
"""Largest rms of the input-transfer fit relative to the rms of ``y_sim``: the degree-5
polynomial leaves ~3e-5 on a sinh device with V_read/V0 = 2 (its x⁷ term, 1.3e-2·x⁷, is
mostly absorbed by the lower coefficients); 1e-3 keeps the same margin to the ADC step as
the gain fit."""

BOUND_SPREAD_TOL = 1e-2
"""Largest relative spread (std/mean) of the saturated outputs' |y|: an op-amp that clips
holds every saturated output at the same swing; a spread beyond 1 % means the outputs are
still ramping (not saturated) or the clip is soft."""

TIME_GAIN_RESIDUAL_TOL = 5e-3
"""Largest relative rms of the time-encoded sinh read around a pure gain. Each pulse's two
edges (t_rise) sweep the device through the sinh's curve, a fixed charge per pulse that no
gain absorbs: of order t_rise/t_meas (6e-4 for the paper-A timing; the reference file
shows 8e-4); 5e-3 leaves a factor of six."""

SATURATION_SHORTFALL = 1e-2
"""An output counts as saturated when it falls short of its linear prediction by more
than this fraction (the gain fit leaves ~1e-5; a clipped output falls short by much more)."""

TRANSFER_DEGREE = 5
"""Degree of the odd polynomial fitted to the amplitude-encoded transfer curve."""

GAIN_CASES = {
    "forward": (r"fwd_random_\d+(x\d+)?", "transfer/fwd_random_<N>"),
    "backward": (r"bwd_random_\d+", "transfer/bwd_random_<N>"),
}
"""Transient cases with a linear device and the config's lines and C_int, per read
direction (``fwd_no_line_<N>`` is left out: its lines differ from the config's)."""

TRANSIENT_FIELD = "transient_size (every transient transfer case)"


def _weights(case: Tree) -> FloatArray:
    """``W`` in weight units, oriented so that ``y = W @ x_applied`` (rows = outputs)."""
    w = case_weights(case)
    return w if text(case, "direction") == "forward" else w.T


def line_conductance_s(case: Tree) -> float:
    """Mean total conductance on one summing node of a case (both arrays), S."""
    g = array(case, "g_pos_s")
    if scalar(case, "parameters/paired"):
        g = g + array(case, "g_neg_s")
    axis = 1 if text(case, "direction") == "forward" else 0
    return float(np.mean(g.sum(axis=axis)))


def _slope(case: Tree, parameter: str, reference: FloatArray | None = None) -> tuple[float, float]:
    """Gain ``g`` of ``y_sim`` on ``reference`` (default ``y_q``) and the relative rms
    residual."""
    y = array(case, "y_sim_w")
    yq = array(case, "y_ideal_quantized_w") if reference is None else reference
    size = float(yq @ yq)
    if size <= 0.0:
        raise CalibrationError(parameter, f"case {text(case, 'name')!r} has no signal (y_q = 0)")
    g = float(y @ yq) / size
    rel = float(np.sqrt(np.mean((y - g * yq) ** 2) / np.mean(yq**2)))
    return g, rel


def _kappa(case: Tree) -> float:
    a0 = scalar(case, "parameters/a0")
    return a0 / (1.0 + a0)


def config_tile(tree: Tree) -> Tree:
    """A case simulated on the config's own tile (the noise, kT/C, Monte Carlo and timing
    jobs all use it); its ``parameters`` describe that tile."""
    for name in ("noise", "ktc", "noise_mc", "timing"):
        node = tree.get(name)
        if isinstance(node, Mapping) and isinstance(node.get("parameters"), Mapping):
            return node
    raise CalibrationError(
        "config tile", "the file holds none of noise, ktc, noise_mc, timing (the config's tile)"
    )


def gain_of(tau_sum_s: float, *, g_line_s: float, c_int_f: float, a0: float) -> float:
    """Read gain ``κ/(1 + G_line·τ_sum/C_int)`` of a summing node (module doc)."""
    return a0 / (1.0 + a0) / (1.0 + g_line_s * tau_sum_s / c_int_f)


def _config_tau_s(case: Tree) -> float:
    p = case["parameters"]
    a0, gbw, t = scalar(p, "a0"), scalar(p, "gbw_hz"), scalar(p, "t_meas_s")
    return 1.0 / (2.0 * math.pi * gbw) + t / (2.0 * (1.0 + a0))


def _case_tau(
    case: Tree, parameter: str, r_seg_ohm: float, r_driver_ohm: float
) -> tuple[float, float, float]:
    """``(τ_sum, 95 % half-width, relative residual)`` of one gain case (module doc), its
    ideal output first lowered by the first-order IR drop of the given resistances."""
    ref = array(case, "y_ideal_quantized_w") - case_drop(case, r_seg_ohm, r_driver_ohm)
    g, rel = _slope(case, parameter, ref)
    fit = least_squares(ref[:, None], array(case, "y_sim_w"), parameter=parameter)
    kappa = _kappa(case)
    c_int = scalar(case, "parameters/c_int_f")
    g_line = line_conductance_s(case)
    # dτ/dg = −κ·C_int/(G_line·g²)
    half = fit.half_width(0) * kappa * c_int / (g_line * g**2)
    return (kappa / g - 1.0) * c_int / g_line, half, rel


def line_gain(node: Tree, n_line: int, tau_sum_s: float) -> float:
    """Read gain of lines of ``n_line`` devices per array on the tile of ``node`` (a case
    or group with ``parameters``)."""
    p = node["parameters"]
    g_mean = 0.5 * (scalar(p, "g_on_s") + scalar(p, "g_off_s"))
    arrays = 2.0 if scalar(p, "paired") else 1.0
    return gain_of(
        tau_sum_s,
        g_line_s=arrays * n_line * g_mean,
        c_int_f=scalar(p, "c_int_f"),
        a0=scalar(p, "a0"),
    )


def fit_read_gain(
    tree: Tree, direction: str, *, r_seg_ohm: float = 0.0, r_driver_ohm: float = 0.0
) -> tuple[FittedParameter, FittedParameter]:
    """Summing-node time constant ``τ_sum`` and the read gain of the config's tile for one
    direction (``forward`` or ``backward``), from that direction's linear transient cases.

    ``r_seg_ohm`` and ``r_driver_ohm`` (the config lines' resistances, fitted at DC by
    :func:`rpucircuit.calibration.ir_drop.dc_resistances`) take the IR drop out first: on
    paper A's tile the drivers alone lower an 8-device read by ~3e-6, which would otherwise
    move τ_sum by ~0.3 %.

    Residual: the largest relative rms of ``y_sim − g·y_q`` over the cases
    (:data:`GAIN_RESIDUAL_TOL`). Interval of τ_sum: each case's slope error (t quantile,
    outputs − 1 dof), combined by inverse variance.
    """
    pattern, label = GAIN_CASES[direction]
    name_tau = f"tau_sum_{direction}_s"
    cases = find_cases(
        tree, "transfer", pattern, parameter=name_tau, case=label, field=TRANSIENT_FIELD
    )
    cases = {k: c for k, c in cases.items() if text(c, "analysis") == "tran"}
    if not cases:
        raise CalibrationError(name_tau, f"no transient case among {label}")
    estimates = [_case_tau(c, name_tau, r_seg_ohm, r_driver_ohm) for c in cases.values()]
    worst = max(rel for _, _, rel in estimates)
    if worst > GAIN_RESIDUAL_TOL:
        raise CalibrationError(
            name_tau,
            f"gain fit leaves a relative rms of {worst:.3g} > {GAIN_RESIDUAL_TOL:g}: the read "
            "is not a pure gain in these cases",
        )
    tau, half = combine([t for t, _, _ in estimates], [h for _, h, _ in estimates])
    sources = tuple(f"transfer/{k}" for k in cases)
    first = next(iter(cases.values()))
    p = first["parameters"]
    a0, t_meas = scalar(p, "a0"), scalar(p, "t_meas_s")
    tau_cfg = _config_tau_s(first)
    gbw_implied = 1.0 / (2.0 * math.pi * (tau - t_meas / (2.0 * (1.0 + a0))))
    tau_par = FittedParameter(
        name=name_tau,
        value=tau,
        unit="s",
        sources=sources,
        residual=worst,
        tolerance=GAIN_RESIDUAL_TOL,
        interval=(tau - half, tau + half),
        origin="fitted",
        note=(
            f"summing-node time constant from the {direction} read gain (A0 = {a0:g} from "
            f"the config); config A0/GBW give {tau_cfg:.4g} s; implied GBW "
            f"{gbw_implied:.4g} Hz (config {scalar(p, 'gbw_hz'):.4g} Hz); residual = "
            "largest relative rms of y_sim − g·y_q"
        ),
    )
    node = config_tile(tree)
    n_line = int(scalar(node, "parameters/cols" if direction == "forward" else "parameters/rows"))

    def gain(t: float) -> float:
        return line_gain(node, n_line, t)

    value = gain(tau)
    gain_par = FittedParameter(
        name=f"read_gain_{direction}",
        value=value,
        unit="1",
        sources=sources,
        residual=worst,
        tolerance=GAIN_RESIDUAL_TOL,
        interval=(gain(tau + half), gain(tau - half)),
        origin="fitted",
        note=(
            f"gain of the config's {n_line}-device lines from {name_tau}; the config's "
            f"op-amp gives {gain(_config_tau_s(node)):.6f}"
        ),
    )
    return tau_par, gain_par


def case_read_gain(case: Tree, tau_sum_s: float) -> float:
    """Read gain of a transfer case's own tile for a fitted ``τ_sum``."""
    return gain_of(
        tau_sum_s,
        g_line_s=line_conductance_s(case),
        c_int_f=scalar(case, "parameters/c_int_f"),
        a0=scalar(case, "parameters/a0"),
    )


def fit_input_transfer(tree: Tree, tau_sum_s: float) -> tuple[FittedParameter, ...]:
    """The input transfer curve of the sinh device, divided by the read gain (module doc):
    :func:`fit_amplitude_transfer` and :func:`fit_time_gain`. ``tau_sum_s`` is the forward
    summing-node time constant (:func:`fit_read_gain`)."""
    return (*fit_amplitude_transfer(tree, tau_sum_s), fit_time_gain(tree, tau_sum_s))


def fit_amplitude_transfer(tree: Tree, tau_sum_s: float) -> tuple[FittedParameter, ...]:
    """``input_transfer_c1``, ``_c3``, ``_c5``: the odd polynomial ``f`` of amplitude
    encoding (``transfer/fwd_sinh_amplitude_<N>``), checked monotone on [0, 1]."""
    amp = find_cases(
        tree,
        "transfer",
        r"fwd_sinh_amplitude_\d+",
        parameter="input_transfer",
        case="transfer/fwd_sinh_amplitude_<N>",
        field=TRANSIENT_FIELD,
    )
    name, case = next(iter(amp.items()))
    g = case_read_gain(case, tau_sum_s)
    w, x, y = _weights(case), array(case, "x_applied"), array(case, "y_sim_w")
    powers = tuple(range(1, TRANSFER_DEGREE + 1, 2))
    design = np.column_stack([w @ x**k for k in powers]) * g
    fit = least_squares(design, y, parameter="input_transfer")
    rel = fit.rms / float(np.sqrt(np.mean(y**2)))
    if rel > TRANSFER_RESIDUAL_TOL:
        raise CalibrationError(
            "input_transfer",
            f"odd polynomial of degree {TRANSFER_DEGREE} leaves a relative rms of {rel:.3g} > "
            f"{TRANSFER_RESIDUAL_TOL:g} on {name}",
        )
    grid = np.linspace(0.0, 1.0, 201)
    slope = sum(c * k * grid ** (k - 1) for c, k in zip(fit.coef, powers, strict=True))
    if np.any(slope <= 0.0):
        raise CalibrationError("input_transfer", f"fitted f is not monotone on [0, 1] ({name})")
    p = case["parameters"]
    ratio = scalar(p, "v_read_v") / scalar(p, "read_v0_v")
    # Taylor coefficients of (V0/V_read)·sinh(x·V_read/V0): ratio^(k−1)/k!
    taylor = {k: ratio ** (k - 1) / math.factorial(k) for k in powers}
    out: list[FittedParameter] = []
    for i, k in enumerate(powers):
        c, h = float(fit.coef[i]), fit.half_width(i)
        out.append(
            FittedParameter(
                name=f"input_transfer_c{k}",
                value=c,
                unit="1",
                sources=(f"transfer/{name}",),
                residual=rel,
                tolerance=TRANSFER_RESIDUAL_TOL,
                interval=(c - h, c + h),
                origin="fitted",
                note=(
                    f"coefficient of x^{k} in f(x) (amplitude encoding, y = W·f(x)); the sinh "
                    f"model's Taylor coefficient is {taylor[k]:.4g} (higher orders fold into "
                    "the fitted ones); residual = relative rms of the fit"
                ),
            )
        )
    return tuple(out)


def fit_time_gain(tree: Tree, tau_sum_s: float) -> FittedParameter:
    """``input_gain_time``: time encoding only scales the read (``transfer/fwd_sinh_time_<N>``)."""
    time_cases = find_cases(
        tree,
        "transfer",
        r"fwd_sinh_time_\d+",
        parameter="input_gain_time",
        case="transfer/fwd_sinh_time_<N>",
        field=TRANSIENT_FIELD,
    )
    name, case = next(iter(time_cases.items()))
    slope_g, rel = _slope(case, "input_gain_time")
    if rel > TIME_GAIN_RESIDUAL_TOL:
        raise CalibrationError(
            "input_gain_time",
            f"time-encoded sinh read is not a pure gain: relative rms {rel:.3g} > "
            f"{TIME_GAIN_RESIDUAL_TOL:g} ({name})",
        )
    yq = array(case, "y_ideal_quantized_w")
    fit = least_squares(yq[:, None], array(case, "y_sim_w"), parameter="input_gain_time")
    g = case_read_gain(case, tau_sum_s)
    p = case["parameters"]
    ratio = scalar(p, "v_read_v") / scalar(p, "read_v0_v")
    value, half = slope_g / g, fit.half_width(0) / g
    return FittedParameter(
        name="input_gain_time",
        value=value,
        unit="1",
        sources=(f"transfer/{name}",),
        residual=rel,
        tolerance=TIME_GAIN_RESIDUAL_TOL,
        interval=(value - half, value + half),
        origin="fitted",
        note=(
            "time encoding: the sinh device only scales the read, f(x) = gain·x; the sinh "
            f"model gives (V0/V_read)·sinh(V_read/V0) = {math.sinh(ratio) / ratio:.5g}"
        ),
    )


def fit_output_bound(tree: Tree, tau_sum_s: float) -> FittedParameter:
    """Output bound α of the config's tile (weight units) from the saturating ramp case.

    The clipped outputs give the op-amp's swing ``V_sat = |y|·Q_unit/C_int`` of that case;
    the config's tile reaches ``α = V_sat·C_int/Q_unit`` with its own C_int and Q_unit.
    When no output of the case reached the bound, α is taken from the config (origin
    ``config``) and the note gives the lower bound the case does show.
    """
    cases = find_cases(
        tree,
        "transfer",
        r"fwd_ramp_saturating_\d+",
        parameter="out_bound",
        case="transfer/fwd_ramp_saturating_<N>",
        field=TRANSIENT_FIELD,
    )
    name, case = next(iter(cases.items()))
    cfg = config_tile(tree)["parameters"]
    scale = scalar(cfg, "c_int_f") / scalar(cfg, "q_unit_c")
    alpha_cfg = scalar(cfg, "alpha_w")
    y = array(case, "y_sim_w")
    linear = case_read_gain(case, tau_sum_s) * array(case, "y_ideal_quantized_w")
    volts = scalar(case, "q_unit_c") / scalar(case, "parameters/c_int_f")
    sat = np.abs(y) < (1.0 - SATURATION_SHORTFALL) * np.abs(linear)
    source = (f"transfer/{name}",)
    if not np.any(sat):
        reach = float(np.max(np.abs(y))) * volts * scale
        pc = case["parameters"]
        w_max = (scalar(pc, "g_on_s") - scalar(pc, "g_off_s")) / scalar(pc, "dg_unit_s")
        # all inputs 1 and a row of w_max: the outer rows reach n·w_max
        needed = math.floor(scalar(pc, "alpha_w") / w_max) + 1
        return config_parameter(
            "out_bound",
            alpha_cfg,
            "w",
            source,
            note=(
                f"not observed: no output of {name} reached the swing (its largest |y| "
                f"shows α ≥ {reach:.4g} for the config's tile); the ramp's outer rows reach "
                f"n·w_max = {int(scalar(pc, 'rows'))}·{w_max:g}, below the case's bound "
                f"{scalar(pc, 'alpha_w'):g}: [campaign] transient_size ≥ {needed} saturates them"
            ),
        )
    v_sat = np.abs(y[sat]) * volts
    mean = float(v_sat.mean())
    spread = float(v_sat.std(ddof=1) / mean) if v_sat.size > 1 else 0.0
    if spread > BOUND_SPREAD_TOL:
        raise CalibrationError(
            "out_bound",
            f"saturated outputs of {name} spread by {spread:.3g} > {BOUND_SPREAD_TOL:g} "
            "(relative std): no single swing",
        )
    alpha = mean * scale
    dof = v_sat.size - 1
    half = alpha * spread / math.sqrt(v_sat.size) * t_quantile(dof) if dof > 0 else 0.0
    return FittedParameter(
        name="out_bound",
        value=alpha,
        unit="w",
        sources=source,
        residual=spread,
        tolerance=BOUND_SPREAD_TOL,
        interval=(alpha - half, alpha + half),
        origin="fitted",
        note=(
            f"swing {mean:.6g} V from {int(sat.sum())} saturated outputs, scaled to the "
            f"config's C_int; config α = {alpha_cfg:.4g}; residual = relative spread of the "
            "saturated outputs"
        ),
    )


def periphery_steps(tree: Tree) -> tuple[FittedParameter, FittedParameter]:
    """DAC and ADC steps in the model's convention (a fraction of the full range
    ``2·bound``), from the config: the simulations apply the quantization in Python
    (``x_applied``) and have no ADC, so neither is observed.

    The drivers quantize ``|x|`` to ``1/input_steps``, a step of ``1/(2·input_steps)`` of
    the range [−1, 1]; a ``B``-bit ADC over ±α has the step ``2α/2^B``, ``1/2^B`` of its range.
    """
    node = config_tile(tree)
    steps = scalar(node, "parameters/input_steps")
    bits = int(case_config(node)["periphery"]["adc_bits"])
    where = ("parameters/input_steps", "parameters/config_toml [periphery] adc_bits")
    inp = config_parameter(
        "inp_res",
        1.0 / (2.0 * steps),
        "1",
        where[:1],
        note=f"driver step 1/{int(steps)} of |x| = 1/{int(2 * steps)} of the range [-1, 1]",
    )
    out = config_parameter(
        "out_res",
        1.0 / 2.0**bits,
        "1",
        where[1:],
        note=f"{bits}-bit ADC over ±α: step 2α/2^{bits}",
    )
    return inp, out


__all__ = [
    "BOUND_SPREAD_TOL",
    "GAIN_RESIDUAL_TOL",
    "TIME_GAIN_RESIDUAL_TOL",
    "TRANSFER_RESIDUAL_TOL",
    "case_read_gain",
    "config_tile",
    "fit_amplitude_transfer",
    "fit_input_transfer",
    "fit_output_bound",
    "fit_read_gain",
    "fit_time_gain",
    "gain_of",
    "line_conductance_s",
    "line_gain",
    "periphery_steps",
]
