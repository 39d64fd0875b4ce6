"""Output noise of a read: ``σ² = a + b·N`` over the devices per array on an output line,
kT/C of the integrator reset, and the ADC's quantization.

What the file holds. ``/noise_lines/noise_<N>`` is ngspice's ``.noise`` of one output line
of ``N`` devices per array (one per campaign ``noise_sizes`` entry, plus the Monte Carlo's
``noise_mc_devices``) for the single-ended read, without kT/C; ``/ktc`` is ``.noise`` of the
reset switch across C_int; ``/noise_mc`` is a transient-noise Monte Carlo of a line of
``noise_mc_devices`` devices with all three sources, an independent check of one size;
``/noise`` is the config tile's line (its analytic budget is quoted in the notes).

Model. Device thermal noise adds ``2kT·G·T`` per device (linear in N); kT/C and the op-amp's
broadband output noise do not depend on N; the op-amp's ``e_n·G`` part and its charge frozen
on the line capacitance grow as N² (the op-amp's noise gain is affine in the line's
conductance and capacitance, both ∝ N). So ``σ² = a₂ + b₂·N + c₂·N²`` describes every
size (on the quick reference it passes through its four points to 1e-4 of their
uncertainty), and it is what ``out_noise`` at the config's N uses. The behavioral model
takes the straight line ``a + b·N``; it is fitted to the quadratic over the sizes the
networks use, :data:`NETWORK_SIZES` (devices per output line of paper A's and B's arrays,
both directions: 10 … 785, rounded out to 8 … 1024), with every size weighted alike
(relative error of σ² on a geometric grid). Beyond the largest simulated size the
quadratic is extrapolated, which the N² physics supports and the note states. The
straight line's largest error of σ over that range is the residual of ``out_noise_a`` and
``out_noise_b`` (:data:`LINEAR_NOISE_TOL`). Every σ here is in weight units of the signal
as it reaches the output (divided by the read gain, as ``sigma_sim_w`` is); the Monte
Carlo's σ, which are not, are divided by the gain of their line
(:func:`rpucircuit.calibration.read.line_gain`).
"""

from __future__ import annotations

import dataclasses
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
    find_cases,
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

LINEAR_NOISE_TOL = 0.006
"""Largest |σ_line − σ| (weight units) of the straight line σ² = a + b·N over
:data:`NETWORK_SIZES`: a tenth of paper A's acceptable σ = 0.06, the level where an error
of the model's per-read σ starts to matter next to the noise a network tolerates (the
reference's line misses by 0.0034 w, 10 % of σ, at N = 1024, where the N² part shows)."""

POINT_Z_TOL = 3.0
"""Largest |misfit| of a ``.noise`` point from the quadratic in units of its standard
deviation (:data:`NOISE_POINT_REL`): beyond 3 the quadratic does not describe the sizes."""

NETWORK_SIZES = (8, 1024)
"""Devices per output line the line σ² = a + b·N must serve: paper A's and B's arrays read
forward (26 … 785 columns) and backward (10 … 256 rows), rounded out to powers of two."""

GRID_POINTS = 64
"""Sizes of the geometric grid the line is fitted on (enough that the worst error on the
grid is the worst over the range to well under 1 %)."""

MIN_SIZES = 3
"""Fewest ``.noise`` sizes the quadratic needs."""

NOISE_FIELD = "noise (always run; rerun `rpucircuit characterize`)"
SIZES_FIELD = "noise_sizes"
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


def _ktc_sigma_at(case: Tree, ktc: Tree, n_line: int, tau_sum_s: float) -> float:
    """kT/C of the reset in weight units of ``case``'s line: the charge ``√(kT·C)`` from
    ngspice's ``v2_sim`` on ``/ktc``'s C_int, rescaled to the case's C_int, over its
    Q_unit and read gain."""
    p = case["parameters"]
    c_ktc, c_case = scalar(ktc, "c_int_f"), scalar(p, "c_int_f")
    q = math.sqrt(scalar(ktc, "v2_sim") * c_ktc * c_case)
    return q / (scalar(p, "q_unit_c") * line_gain(case, n_line, tau_sum_s))


def _noise_lines(tree: Tree) -> dict[str, Tree]:
    """The ``/noise_lines/noise_<N>`` cases; :class:`MissingCaseError` names the campaign
    field when there are none."""
    return find_cases(
        tree,
        "noise_lines",
        r"noise_\d+",
        parameter="out_noise",
        case="noise_lines/noise_<N>",
        field=SIZES_FIELD,
    )


def noise_points(tree: Tree, tau_sum_s: float) -> dict[int, float]:
    """σ² (weight units², device + op-amp + kT/C) by devices per array on the line, from
    ``/noise_lines`` and ``/ktc``; :class:`MissingCaseError` without lines,
    :class:`CalibrationError` with fewer than :data:`MIN_SIZES` sizes."""
    lines = _noise_lines(tree)
    ktc_sigma(tree, tau_sum_s)  # checks /ktc against kT/C_int
    ktc = group(tree, "ktc", parameter="out_noise_ktc", field=NOISE_FIELD)
    points: dict[int, float] = {}
    for case in lines.values():
        n = int(scalar(case, "n_devices"))
        points[n] = scalar(case, "sigma_sim_w") ** 2 + _ktc_sigma_at(case, ktc, n, tau_sum_s) ** 2
    if len(points) < MIN_SIZES:
        raise CalibrationError(
            "out_noise",
            f"noise_lines has {len(points)} sizes ({sorted(points)}): σ² = a + b·N + c·N² needs "
            f"at least {MIN_SIZES} (campaign field {SIZES_FIELD})",
        )
    return points


def opamp_variances(tree: Tree) -> dict[int, float]:
    """The op-amp's part of each ``.noise`` line's σ² (weight units²), by size:
    ``sigma_sim_w² − sigma_sim_no_opamp_w²`` (its growth with N is what curves σ²)."""
    lines = _noise_lines(tree)
    return {
        int(scalar(c, "n_devices")): scalar(c, "sigma_sim_w") ** 2
        - scalar(c, "sigma_sim_no_opamp_w") ** 2
        for c in lines.values()
    }


def _poly_design(n: FloatArray, degree: int) -> FloatArray:
    return np.column_stack([n**k for k in range(degree + 1)])


def fit_noise_poly(points: dict[int, float], degree: int = 2) -> tuple[FloatArray, FloatArray]:
    """``(coef, cov)`` of ``σ² = Σ_k coef[k]·N^k`` through the points, weighted by their
    uncertainty (:data:`NOISE_POINT_REL` on σ, twice that on σ²)."""
    n = np.array(sorted(points), dtype=np.float64)
    var = np.array([points[int(k)] for k in n])
    sd = var * 2.0 * NOISE_POINT_REL / Z95
    design = _poly_design(n, degree) / sd[:, None]
    cov = np.linalg.inv(design.T @ design)
    coef = cov @ design.T @ (var / sd)
    return np.asarray(coef, dtype=np.float64), np.asarray(cov, dtype=np.float64)


def point_z(points: dict[int, float], coef: FloatArray) -> float:
    """Largest |misfit| of a point from the curve in units of its standard deviation."""
    n = np.array(sorted(points), dtype=np.float64)
    var = np.array([points[int(k)] for k in n])
    sd = var * 2.0 * NOISE_POINT_REL / Z95
    return float(np.max(np.abs(var - _poly_design(n, coef.size - 1) @ coef) / sd))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class LinearNoise:
    """The straight line ``σ² = a + b·N`` fitted to a curve over a range of N."""

    a: float
    b: float
    cov: FloatArray
    """Covariance of (a, b), propagated from the curve's."""
    max_abs_w: float
    """Largest |σ_line − σ_curve| over the range, weight units."""
    max_rel: float
    """Largest |σ_line/σ_curve − 1| over the range."""
    worst_n: float
    """N where the absolute error is largest."""


def linear_over_range(
    coef: FloatArray, cov: FloatArray, sizes: tuple[int, int] = NETWORK_SIZES
) -> LinearNoise:
    """Weighted least squares of ``a + b·N`` to the curve ``coef`` on a geometric grid of
    :data:`GRID_POINTS` sizes over ``sizes`` (relative error of σ², every size alike); a
    linear map of ``coef``, so its covariance follows exactly."""
    g = np.geomspace(float(sizes[0]), float(sizes[1]), GRID_POINTS)
    curve_design = _poly_design(g, coef.size - 1)
    curve = curve_design @ coef
    if np.any(curve <= 0.0):
        raise CalibrationError("out_noise", "the fitted σ² is not positive over the sizes")
    wb = _poly_design(g, 1) / curve[:, None]
    proj = np.linalg.solve(wb.T @ wb, wb.T @ (curve_design / curve[:, None]))
    ab = proj @ coef
    line = np.sqrt(np.maximum(_poly_design(g, 1) @ ab, 0.0))
    err = line - np.sqrt(curve)
    worst = int(np.argmax(np.abs(err)))
    return LinearNoise(
        a=float(ab[0]),
        b=float(ab[1]),
        cov=np.asarray(proj @ cov @ proj.T, dtype=np.float64),
        max_abs_w=float(np.abs(err[worst])),
        max_rel=float(np.max(np.abs(err) / np.sqrt(curve))),
        worst_n=float(g[worst]),
    )


def monte_carlo_z(tree: Tree, tau_sum_s: float, coef: FloatArray) -> float:
    """z of the Monte Carlo's σ against the curve ``coef`` at its size;
    :class:`CalibrationError` beyond :data:`MC_Z_TOL`."""
    mc = group(tree, "noise_mc", parameter="out_noise", field=MC_FIELD)
    n = int(scalar(mc, "n_devices"))
    gain = line_gain(mc, n, tau_sum_s)
    line = math.sqrt(max(float(_poly_design(np.array([float(n)]), coef.size - 1)[0] @ coef), 0.0))
    sigma, stderr = scalar(mc, "sigma_mc_w") / gain, scalar(mc, "sigma_mc_stderr_w") / gain
    z = (sigma - line) / stderr
    if abs(z) > MC_Z_TOL:
        raise CalibrationError(
            "out_noise",
            f"Monte Carlo σ = {sigma:.4g} ± {stderr:.2g} at N = {n} disagrees with the .noise "
            f"curve {line:.4g} (z = {z:.2f}, |z| > {MC_Z_TOL:g})",
        )
    return z


def fit_output_noise(tree: Tree, tau_sum_s: float) -> tuple[FittedParameter, ...]:
    """``out_noise_a``, ``out_noise_b`` (the straight line σ² = a + b·N over
    :data:`NETWORK_SIZES`, weight units²) and ``out_noise`` (σ at the config tile's N, from
    the quadratic) from the ``.noise`` lines, checked against the Monte Carlo.

    Intervals: the weighted quadratic's covariance, propagated. Residuals: for a and b the
    line's largest error of σ over the range (:data:`LINEAR_NOISE_TOL`); for ``out_noise``
    the quadratic's worst point |z| (:data:`POINT_Z_TOL`). A Monte Carlo |z| beyond
    :data:`MC_Z_TOL` or a point beyond its tolerance raises :class:`CalibrationError`.
    """
    points = noise_points(tree, tau_sum_s)
    coef, cov = fit_noise_poly(points, 2)
    zp = point_z(points, coef)
    if zp > POINT_Z_TOL:
        raise CalibrationError(
            "out_noise",
            f"σ² = a + b·N + c·N² misses a .noise point by {zp:.2f} of its uncertainty "
            f"(> {POINT_Z_TOL:g}); sizes {sorted(points)}",
        )
    z = monte_carlo_z(tree, tau_sum_s, coef)
    lin = linear_over_range(coef, cov)
    if lin.max_abs_w > LINEAR_NOISE_TOL:
        raise CalibrationError(
            "out_noise_b",
            f"the straight line σ² = a + b·N misses σ by {lin.max_abs_w:.3g} w at N = "
            f"{lin.worst_n:.0f} (> {LINEAR_NOISE_TOL:g} over N = {NETWORK_SIZES[0]} … "
            f"{NETWORK_SIZES[1]})",
        )
    noise = group(tree, "noise", parameter="out_noise", field=NOISE_FIELD)
    budget = noise["budget"]
    sizes = ", ".join(str(k) for k in sorted(points))
    n_mc = int(scalar(group(tree, "noise_mc", parameter="out_noise", field=MC_FIELD), "n_devices"))
    lo, hi = NETWORK_SIZES
    extrapolated = f"; extrapolated beyond N = {max(points)}" if max(points) < hi else ""
    opamp = opamp_variances(tree)
    lo_n, hi_n = min(opamp), max(opamp)
    common = (
        f"the op-amp's part of σ² grows from {opamp[lo_n]:.3g} w² at N = {lo_n} to "
        f"{opamp[hi_n]:.3g} w² at N = {hi_n}; "
        f"quadratic σ² = {coef[0]:.4g} + {coef[1]:.4g}·N + {coef[2]:.4g}·N² through the "
        f".noise sizes N = {sizes} (worst point |z| = {zp:.2g}; the Monte Carlo at "
        f"N = {n_mc}: "
        f"z = {z:.2f}); the line fits it over N = {lo} … {hi}{extrapolated}: largest error "
        f"of σ {lin.max_abs_w:.3g} w ({100 * lin.max_rel:.1f} %) at N ≈ {lin.worst_n:.0f}; "
        "residual = that error (w)"
    )
    ha, hb = Z95 * math.sqrt(lin.cov[0, 0]), Z95 * math.sqrt(lin.cov[1, 1])
    n_cfg = scalar(noise["parameters"], "cols")
    row = _poly_design(np.array([n_cfg]), 2)[0]
    sig = math.sqrt(float(row @ coef))
    hs = Z95 * math.sqrt(max(float(row @ cov @ row), 0.0)) / (2.0 * sig)
    sig_line = math.sqrt(lin.a + lin.b * n_cfg)
    analytic = math.hypot(scalar(budget, "device_thermal_w"), scalar(budget, "opamp_w"))

    def par(
        name: str, value: float, half: float, unit: str, note: str, resid: float, tol: float
    ) -> FittedParameter:
        return FittedParameter(
            name=name,
            value=value,
            unit=unit,
            sources=("noise_lines", "ktc", "noise_mc"),
            residual=resid,
            tolerance=tol,
            interval=(value - half, value + half),
            origin="fitted",
            note=note,
        )

    return (
        par(
            "out_noise_a",
            lin.a,
            ha,
            "w^2",
            "σ² at N = 0 of the straight line: kT/C, the op-amp's broadband output noise and "
            "the line's share of the N² part; " + common,
            lin.max_abs_w,
            LINEAR_NOISE_TOL,
        ),
        par(
            "out_noise_b",
            lin.b,
            hb,
            "w^2",
            "σ² per device per array on the line: devices' thermal noise and the op-amp's "
            "e_n·G (which grows as N², so the line is its chord over the range); " + common,
            lin.max_abs_w,
            LINEAR_NOISE_TOL,
        ),
        par(
            "out_noise",
            sig,
            hs,
            "w",
            f"σ at the config's N = {int(n_cfg)} from the quadratic (device, op-amp, kT/C; no "
            f"ADC; the straight line gives {sig_line:.4g}); the analytic budget gives device + "
            f"op-amp {analytic:.4g} and kT/C {scalar(budget, 'ktc_w'):.4g}; the model path's "
            "out_noise is σ = 0.06 by default (paper A's acceptable value); residual = the "
            "quadratic's worst point |z|",
            zp,
            POINT_Z_TOL,
        ),
    )


__all__ = [
    "KTC_TOL",
    "LINEAR_NOISE_TOL",
    "MC_Z_TOL",
    "NETWORK_SIZES",
    "NOISE_POINT_REL",
    "POINT_Z_TOL",
    "LinearNoise",
    "adc_sigma",
    "fit_noise_poly",
    "fit_output_noise",
    "ktc_sigma",
    "linear_over_range",
    "monte_carlo_z",
    "noise_points",
    "opamp_variances",
    "point_z",
]
