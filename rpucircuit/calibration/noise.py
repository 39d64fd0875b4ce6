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
are not, are divided by the gain of their line (:func:`rpucircuit.calibration.read.gain_of`).
"""

from __future__ import annotations

import math

import numpy as np

from rpucircuit.calibration.base import (
    Z95,
    CalibrationError,
    FittedParameter,
    Tree,
    case_config,
    config_parameter,
    group,
    scalar,
)
from rpucircuit.calibration.read import gain_of

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


def _line_gain(node: Tree, n_devices: float, tau_sum_s: float) -> float:
    p = node["parameters"]
    g_mean = 0.5 * (scalar(p, "g_on_s") + scalar(p, "g_off_s"))
    arrays = 2.0 if scalar(p, "paired") else 1.0
    return gain_of(
        tau_sum_s,
        g_line_s=arrays * n_devices * g_mean,
        c_int_f=scalar(p, "c_int_f"),
        a0=scalar(p, "a0"),
    )


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
    scale = scalar(ktc, "c_int_f") / (scalar(p, "q_unit_c") * _line_gain(ktc, n_line, tau_sum_s))
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
    gain = _line_gain(node, scalar(p, "cols"), tau_sum_s)
    value = 2.0 * scalar(p, "alpha_w") / 2.0**bits / math.sqrt(12.0) / gain
    return config_parameter(
        "out_noise_adc",
        value,
        "w",
        ("noise/parameters",),
        note=f"{bits}-bit ADC over ±α: LSB/√12, divided by the read gain; no ADC is simulated",
    )


def fit_output_noise(tree: Tree, tau_sum_s: float) -> tuple[FittedParameter, ...]:
    """``out_noise_a``, ``out_noise_b`` (σ² = a + b·N, weight units²) and ``out_noise`` (σ at
    the config tile's N) from the ``.noise`` points, checked against the Monte Carlo.

    The interval of each point's σ² is ``2·NOISE_POINT_REL`` relative; ``a`` and ``b`` get
    theirs from the weighted least squares through the points. Residual: |z| of the Monte
    Carlo (:data:`MC_Z_TOL`).
    """
    noise = group(tree, "noise", parameter="out_noise", field=NOISE_FIELD)
    mc = group(tree, "noise_mc", parameter="out_noise", field=MC_FIELD)
    ktc = ktc_sigma(tree, tau_sum_s)
    n_big = scalar(noise, "n_devices")
    n_small = scalar(mc, "n_devices")
    gain_small = _line_gain(mc, n_small, tau_sum_s)
    points = {
        n_big: scalar(noise, "sigma_sim_w") ** 2 + ktc.value**2,
        n_small: (scalar(mc, "sigma_noise_w") / gain_small) ** 2,
    }
    if len(points) < 2:
        raise CalibrationError(
            "out_noise",
            f"the .noise line and the Monte Carlo line both have {int(n_big)} devices: need "
            f"two sizes (set {MC_FIELD.split(' / ')[1]} to another value)",
        )
    n = np.array(sorted(points))
    var = np.array([points[k] for k in n])
    sd = var * 2.0 * NOISE_POINT_REL / Z95  # σ² uncertainty = 2× that of σ
    design = np.column_stack([np.ones_like(n), n]) / sd[:, None]
    cov = np.linalg.inv(design.T @ design)
    coef = cov @ design.T @ (var / sd)
    a, b = float(coef[0]), float(coef[1])
    fit_small = math.sqrt(max(a + b * n_small, 0.0))
    sigma_mc = scalar(mc, "sigma_mc_w") / gain_small
    stderr = scalar(mc, "sigma_mc_stderr_w") / gain_small
    z = (sigma_mc - fit_small) / stderr
    if abs(z) > MC_Z_TOL:
        raise CalibrationError(
            "out_noise",
            f"Monte Carlo σ = {sigma_mc:.4g} ± {stderr:.2g} at N = {int(n_small)} disagrees "
            f"with the .noise line {fit_small:.4g} (z = {z:.2f}, |z| > {MC_Z_TOL:g})",
        )
    sources = ("noise", "ktc", "noise_mc")
    sizes = ", ".join(str(int(k)) for k in n)
    budget = noise.get("budget", {})
    ana = math.hypot(
        scalar(budget, "device_thermal_w") if "device_thermal_w" in budget else 0.0,
        scalar(budget, "opamp_w") if "opamp_w" in budget else 0.0,
    )
    common = (
        f"sizes N = {sizes} (.noise; the Monte Carlo checks N = {int(n_small)}: z = {z:.2f}); "
        f"a third size needs a list field of noise sizes in [campaign]; residual = |z|"
    )
    ha, hb = Z95 * math.sqrt(cov[0, 0]), Z95 * math.sqrt(cov[1, 1])
    n_cfg = scalar(noise["parameters"], "cols")
    sig = math.sqrt(a + b * n_cfg)
    var_sig = cov[0, 0] + 2 * n_cfg * cov[0, 1] + n_cfg**2 * cov[1, 1]
    hs = Z95 * math.sqrt(max(var_sig, 0.0)) / (2.0 * sig)
    return (
        FittedParameter(
            name="out_noise_a",
            value=a,
            unit="w^2",
            sources=sources,
            residual=abs(z),
            tolerance=MC_Z_TOL,
            interval=(a - ha, a + ha),
            origin="fitted",
            note="σ² at N = 0: kT/C and the op-amp's broadband output noise; " + common,
        ),
        FittedParameter(
            name="out_noise_b",
            value=b,
            unit="w^2",
            sources=sources,
            residual=abs(z),
            tolerance=MC_Z_TOL,
            interval=(b - hb, b + hb),
            origin="fitted",
            note=(
                "σ² per device per array on the line: devices' thermal noise and the "
                "op-amp's e_n·G (which grows as N², so the line is a chord between the "
                "sizes); " + common
            ),
        ),
        FittedParameter(
            name="out_noise",
            value=sig,
            unit="w",
            sources=sources,
            residual=abs(z),
            tolerance=MC_Z_TOL,
            interval=(sig - hs, sig + hs),
            origin="fitted",
            note=(
                f"σ at the config's N = {int(n_cfg)} (device, op-amp, kT/C; no ADC); the "
                f"analytic budget gives device + op-amp {ana:.4g} and kT/C "
                f"{scalar(budget, 'ktc_w') if 'ktc_w' in budget else math.nan:.4g}; the model "
                "path's out_noise is σ = 0.06 by default (paper A's acceptable value)"
            ),
        ),
    )


__all__ = ["KTC_TOL", "MC_Z_TOL", "NOISE_POINT_REL", "adc_sigma", "fit_output_noise", "ktc_sigma"]
