"""Output noise of a read: ``σ² = a + b·N`` over the devices per array on an output line,
kT/C of the integrator reset, and the ADC's quantization.

What the file holds. ``/noise`` is ngspice's ``.noise`` of one output line of the config's
tile (``N`` = its columns) for the single-ended read, without kT/C; ``/ktc`` is ``.noise``
of the reset switch across C_int; ``/noise_mc`` is a transient-noise Monte Carlo of a line
of ``noise_mc_devices`` devices with all three sources, beside the ``.noise`` reference of
the same line split by source. So the ``.noise`` values exist at two sizes (the config's
columns and ``noise_mc_devices``; 32 and 4 in the quick campaign, 32 and 8 in the default
one), and the Monte Carlo checks the smaller one independently. No campaign field gives a
third size today: ``noise_mc_devices`` is one number and ``.noise`` runs on the config's tile;
a list field (noise sizes) would let the straight line be tested rather than drawn.

Model. Device thermal noise adds ``2kT·G·T`` per device (linear in N); kT/C and the op-amp's
broadband output noise do not depend on N; the op-amp's ``e_n·G`` part and its charge frozen
on the line capacitance grow as N². ``a + b·N`` through two sizes is exact at those sizes and
is what the behavioral model's per-read σ needs for tiles between them; the note says how
far the N² part moves it. Every σ here is in weight units of the signal as it reaches the
output (divided by the read gain, as ``/noise/sigma_sim_w`` is); the Monte Carlo's σ, which
are not, are divided by the gain of their line (:func:`rpucircuit.calibration.read.line_gain`).
"""

from __future__ import annotations

import math

import numpy as np

from rpucircuit.calibration.base import (
    Z95,
    CalibrationError,
    FittedParameter,
    FloatArray,
    Tree,
    case_config,
    config_parameter,
    group,
    scalar,
)
from rpucircuit.calibration.read import line_gain

NOISE_POINT_REL = 0.02
"""Relative 95 % uncertainty of one ``.noise`` σ: the spectrum is integrated on a finite
frequency grid; on the reference file ``.noise`` and the analytic budget agree to 0.5 % and
ngspice's kT/C to 0.1 %. 2 % covers that with margin."""

MC_Z_TOL = 3.0
"""Largest |z| of the Monte Carlo's σ against the fitted line at its size (z in units of
the Monte Carlo's standard error): beyond 3 the two disagree with probability < 0.3 %."""

KTC_TOL = 0.02
"""Largest relative difference of ngspice's kT/C from the analytic kT/C_int: the switch's
RC spectrum integrates to kT/C exactly; 2 % allows the finite frequency grid (reference:
1e-3)."""

NOISE_FIELD = "noise (always run; rerun `rpucircuit characterize`)"
MC_FIELD = "noise_mc_trials / noise_mc_devices"


def ktc_sigma(tree: Tree, tau_sum_s: float) -> FittedParameter:
    """σ of kT/C of the reset, in weight units of the config tile's read, from ``/ktc``."""
    ktc = group(tree, "ktc", parameter="out_noise_ktc", field=NOISE_FIELD)
    v2, v2_ref = scalar(ktc, "v2_sim"), scalar(ktc, "v2_analytic")
    rel = abs(v2 / v2_ref - 1.0)
    if rel > KTC_TOL:
        raise CalibrationError(
            "out_noise_ktc", f"ngspice kT/C differs from kT/C_int by {rel:.3g} > {KTC_TOL:g}"
        )
    p = ktc["parameters"]
    n_line = scalar(p, "cols")
    scale = scalar(ktc, "c_int_f") / (
        scalar(p, "q_unit_c") * line_gain(ktc, int(n_line), tau_sum_s)
    )
    value = math.sqrt(v2) * scale
    half = value * NOISE_POINT_REL
    return FittedParameter(
        name="out_noise_ktc",
        value=value,
        unit="w",
        sources=("ktc",),
        residual=rel,
        tolerance=KTC_TOL,
        interval=(value - half, value + half),
        origin="fitted",
        note=(
            f"√(v2_sim)·C_int/(Q_unit·gain); analytic kT/C gives {math.sqrt(v2_ref) * scale:.4g}; "
            "residual = relative difference of v2_sim from kT/C_int"
        ),
    )


def adc_sigma(tree: Tree, tau_sum_s: float) -> FittedParameter:
    """ADC quantization σ (weight units): ``2α/2^B/√12`` over the read gain (config)."""
    node = group(tree, "noise", parameter="out_noise_adc", field=NOISE_FIELD)
    p = node["parameters"]
    bits = int(case_config(node)["periphery"]["adc_bits"])
    gain = line_gain(node, int(scalar(p, "cols")), tau_sum_s)
    value = 2.0 * scalar(p, "alpha_w") / 2.0**bits / math.sqrt(12.0) / gain
    return config_parameter(
        "out_noise_adc",
        value,
        "w",
        ("noise/parameters",),
        note=f"{bits}-bit ADC over ±α: LSB/√12, divided by the read gain; no ADC is simulated",
    )


def noise_points(tree: Tree, tau_sum_s: float) -> dict[int, float]:
    """σ² (weight units², device + op-amp + kT/C) by devices per array on the line, from
    the ``.noise`` values: ``/noise`` with ``/ktc``, and the Monte Carlo's reference."""
    noise = group(tree, "noise", parameter="out_noise", field=NOISE_FIELD)
    mc = group(tree, "noise_mc", parameter="out_noise", field=MC_FIELD)
    ktc = ktc_sigma(tree, tau_sum_s)
    n_big, n_small = int(scalar(noise, "n_devices")), int(scalar(mc, "n_devices"))
    if n_big == n_small:
        raise CalibrationError(
            "out_noise",
            f"the .noise line and the Monte Carlo line both have {n_big} devices: need two "
            "sizes (set noise_mc_devices to another value)",
        )
    sigma_small = scalar(mc, "sigma_noise_w") / line_gain(mc, n_small, tau_sum_s)
    return {
        n_small: sigma_small**2,
        n_big: scalar(noise, "sigma_sim_w") ** 2 + ktc.value**2,
    }


def fit_noise_line(points: dict[int, float]) -> tuple[float, float, FloatArray]:
    """``(a, b, cov)`` of ``σ² = a + b·N`` through the points, weighted by their
    uncertainty (:data:`NOISE_POINT_REL` on σ, twice that on σ²)."""
    n = np.array(sorted(points), dtype=np.float64)
    var = np.array([points[int(k)] for k in n])
    sd = var * 2.0 * NOISE_POINT_REL / Z95
    design = np.column_stack([np.ones_like(n), n]) / sd[:, None]
    cov = np.linalg.inv(design.T @ design)
    coef = cov @ design.T @ (var / sd)
    return float(coef[0]), float(coef[1]), np.asarray(cov, dtype=np.float64)


def monte_carlo_z(tree: Tree, tau_sum_s: float, a: float, b: float) -> float:
    """z of the Monte Carlo's σ against the line at its size; :class:`CalibrationError`
    beyond :data:`MC_Z_TOL`."""
    mc = group(tree, "noise_mc", parameter="out_noise", field=MC_FIELD)
    n = int(scalar(mc, "n_devices"))
    gain = line_gain(mc, n, tau_sum_s)
    line = math.sqrt(max(a + b * n, 0.0))
    sigma, stderr = scalar(mc, "sigma_mc_w") / gain, scalar(mc, "sigma_mc_stderr_w") / gain
    z = (sigma - line) / stderr
    if abs(z) > MC_Z_TOL:
        raise CalibrationError(
            "out_noise",
            f"Monte Carlo σ = {sigma:.4g} ± {stderr:.2g} at N = {n} disagrees with the .noise "
            f"line {line:.4g} (z = {z:.2f}, |z| > {MC_Z_TOL:g})",
        )
    return z


def fit_output_noise(tree: Tree, tau_sum_s: float) -> tuple[FittedParameter, ...]:
    """``out_noise_a``, ``out_noise_b`` (σ² = a + b·N, weight units²) and ``out_noise`` (σ at
    the config tile's N) from the ``.noise`` points, checked against the Monte Carlo.

    Intervals from the weighted least squares through the points (:func:`fit_noise_line`);
    residual: |z| of the Monte Carlo (:data:`MC_Z_TOL`).
    """
    points = noise_points(tree, tau_sum_s)
    a, b, cov = fit_noise_line(points)
    z = monte_carlo_z(tree, tau_sum_s, a, b)
    noise = group(tree, "noise", parameter="out_noise", field=NOISE_FIELD)
    budget = noise["budget"]
    sizes = ", ".join(str(k) for k in sorted(points))
    common = (
        f"sizes N = {sizes} (.noise; the Monte Carlo checks N = {min(points)}: z = {z:.2f}); "
        "a third size needs a list field of noise sizes in [campaign]; residual = |z|"
    )
    ha, hb = Z95 * math.sqrt(cov[0, 0]), Z95 * math.sqrt(cov[1, 1])
    n_cfg = scalar(noise["parameters"], "cols")
    sig = math.sqrt(a + b * n_cfg)
    var_sig = cov[0, 0] + 2 * n_cfg * cov[0, 1] + n_cfg**2 * cov[1, 1]
    hs = Z95 * math.sqrt(max(var_sig, 0.0)) / (2.0 * sig)
    analytic = math.hypot(scalar(budget, "device_thermal_w"), scalar(budget, "opamp_w"))

    def par(name: str, value: float, half: float, unit: str, note: str) -> FittedParameter:
        return FittedParameter(
            name=name,
            value=value,
            unit=unit,
            sources=("noise", "ktc", "noise_mc"),
            residual=abs(z),
            tolerance=MC_Z_TOL,
            interval=(value - half, value + half),
            origin="fitted",
            note=note,
        )

    return (
        par(
            "out_noise_a",
            a,
            ha,
            "w^2",
            "σ² at N = 0: kT/C and the op-amp's broadband output noise; " + common,
        ),
        par(
            "out_noise_b",
            b,
            hb,
            "w^2",
            "σ² per device per array on the line: devices' "
            "thermal noise and the op-amp's e_n·G (which grows as N², so the line is a chord "
            "between the sizes); " + common,
        ),
        par(
            "out_noise",
            sig,
            hs,
            "w",
            f"σ at the config's N = {int(n_cfg)} (device, op-amp, "
            f"kT/C; no ADC); the analytic budget gives device + op-amp {analytic:.4g} and kT/C "
            f"{scalar(budget, 'ktc_w'):.4g}; the model path's out_noise is σ = 0.06 by "
            "default (paper A's acceptable value)",
        ),
    )


__all__ = [
    "KTC_TOL",
    "MC_Z_TOL",
    "NOISE_POINT_REL",
    "adc_sigma",
    "fit_noise_line",
    "fit_output_noise",
    "ktc_sigma",
    "monte_carlo_z",
    "noise_points",
]
