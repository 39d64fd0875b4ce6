"""Output noise of a read: ``σ² = a + b·N + c·N²`` over the devices per array on an output line,
kT/C of the integrator reset, and the ADC's quantization.

What the file holds. ``/noise_lines/noise_<N>`` is ngspice's ``.noise`` of one output line
of ``N`` devices per array (one per campaign ``noise_sizes`` entry, plus the Monte Carlo's
``noise_mc_devices``) for the single-ended read, without kT/C; ``/ktc`` is ``.noise`` of the
reset switch across C_int; ``/noise_mc`` is a transient-noise Monte Carlo of a line of
``noise_mc_devices`` devices with all three sources, an independent check of one size;
``/noise`` is the config tile's line (its analytic budget is quoted in the notes).

Model. Device thermal noise adds ``2kT·G·T`` per device (linear in N); kT/C and the op-amp's
broadband output noise at a short line do not depend on N; the op-amp's ``e_n·G`` part and
its charge frozen on the line capacitance grow as N² (the op-amp's noise gain is affine in
the line's conductance and capacitance, both ∝ N). So the behavioral model is
``σ² = a + b·N + c·N²`` with ``c ≥ 0``, fitted by weighted least squares to the ``.noise``
sizes (with kT/C) — the simulated points, not the analytic budget — and its residual is
reported at every size. With as many sizes as coefficients the curve passes through them;
the independent checks are then the Monte Carlo at its size (:data:`MC_Z_TOL`) and the
analytic budget (:func:`rpucircuit.circuit.analytic.noise_budget`) of the recorded circuit
at the long lines the fit extrapolates to (:data:`ANALYTIC_SIZES`, within
:data:`ANALYTIC_TOL_W`), which calibration records as validation rows. What the quadratic
leaves out: the read gain falls with N (the GBW-limited virtual ground), and the parts that
act at the output (kT/C, the op-amp's broadband and reset noise) are larger in weight units
by its inverse, which curves σ² beyond N²; at N = 4096 that puts the extrapolated σ ~10 %
low on paper A's tile. Every σ here is in weight units of the signal as it reaches the
output (divided by the read gain, as ``sigma_sim_w`` is); the Monte Carlo's σ, which are
not, are divided by the gain of their line (:func:`rpucircuit.calibration.read.line_gain`).
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
from rpucircuit.circuit.extract.noise import config_noise_budget
from rpucircuit.config.tile import circuit_config_from_data
from rpucircuit.model.modelparts import NoiseModel

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

POINT_Z_TOL = 3.0
"""Largest |misfit| of a ``.noise`` point from the quadratic in units of its standard
deviation (:data:`NOISE_POINT_REL`): beyond 3 the quadratic does not describe the sizes."""

ANALYTIC_SIZES = (1024, 2048)
"""Line lengths where the fitted σ is compared with the analytic budget of the recorded
circuit: the longest output lines of paper A's and B's networks (785 devices) rounded up,
and twice that."""

ANALYTIC_TOL_W = 0.006
"""Largest |σ_fit − σ_analytic| (weight units) at :data:`ANALYTIC_SIZES`: a tenth of paper
A's acceptable σ = 0.06, the level where an error of the per-read σ starts to matter next to
the noise a network tolerates (paper A's tile: 0.0014 w at N = 1024, 0.0037 w at 2048)."""

EXTRA_SIZES = (4096,)
"""Longer lines whose comparison with the analytic budget is reported in the note only
(beyond the networks' tiles; the quadratic's gain-independent form is ~10 % low there)."""

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


def fit_nonnegative_quadratic(points: dict[int, float]) -> tuple[FloatArray, FloatArray]:
    """``(coef, cov)`` of ``σ² = a + b·N + c·N²`` with ``c ≥ 0``: the weighted quadratic of
    :func:`fit_noise_poly`, or, when its ``c`` comes out negative (no N² growth resolved),
    the weighted straight line with ``c = 0`` (its covariance padded with zeros)."""
    coef, cov = fit_noise_poly(points, 2)
    if coef[2] >= 0.0:
        return coef, cov
    lin, lin_cov = fit_noise_poly(points, 1)
    pad = np.zeros((3, 3))
    pad[:2, :2] = lin_cov
    return np.append(lin, 0.0), pad


def point_residuals(points: dict[int, float], coef: FloatArray) -> dict[int, float]:
    """Relative residual of σ at each size, ``σ_fit/σ_point − 1``."""
    return {
        n: math.sqrt(max(float(_poly_design(np.array([float(n)]), 2)[0] @ coef), 0.0))
        / math.sqrt(points[n])
        - 1.0
        for n in sorted(points)
    }


def analytic_sigma(tree: Tree, n_devices: int) -> float:
    """σ (weight units: device thermal, op-amp and kT/C; no ADC) of an output line of
    ``n_devices`` per array on the recorded circuit, from the analytic budget
    (:func:`rpucircuit.circuit.analytic.noise_budget`, the same call the ``.noise`` cases
    record): an independent reference for the fitted curve at sizes not simulated."""
    node = group(tree, "noise", parameter="out_noise", field=NOISE_FIELD)
    cfg = circuit_config_from_data(
        case_config(node), source="noise/parameters/config_toml", extra_tables=("campaign",)
    )
    b = config_noise_budget(cfg, n_devices)
    return math.sqrt(b.device_thermal_w**2 + b.opamp_w**2 + b.ktc_w**2)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AnalyticCheck:
    """The fitted σ against the analytic budget at one line length."""

    n_devices: int
    fitted_w: float
    analytic_w: float
    tolerance_w: float
    """:data:`ANALYTIC_TOL_W`, or NaN for a size reported only (:data:`EXTRA_SIZES`)."""

    @property
    def error_w(self) -> float:
        return self.fitted_w - self.analytic_w


def analytic_checks(tree: Tree, noise: NoiseModel) -> tuple[AnalyticCheck, ...]:
    """The noise model against :func:`analytic_sigma` at :data:`ANALYTIC_SIZES` (with their
    tolerance) and :data:`EXTRA_SIZES` (reported)."""
    out = []
    for n in (*ANALYTIC_SIZES, *EXTRA_SIZES):
        out.append(
            AnalyticCheck(
                n_devices=n,
                fitted_w=noise.sigma(n),
                analytic_w=analytic_sigma(tree, n),
                tolerance_w=ANALYTIC_TOL_W if n in ANALYTIC_SIZES else math.nan,
            )
        )
    return tuple(out)


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
    """``out_noise_a``, ``out_noise_b``, ``out_noise_c`` (σ² = a + b·N + c·N², c ≥ 0,
    weight units², :func:`fit_nonnegative_quadratic` of the ``.noise`` sizes with kT/C) and
    ``out_noise`` (σ at the config tile's N), checked against the Monte Carlo.

    Intervals: the weighted fit's covariance, propagated. Residuals: the worst point |z|
    (:data:`POINT_Z_TOL`); the note gives the relative residual of σ at every size and the
    analytic budget at :data:`ANALYTIC_SIZES` and :data:`EXTRA_SIZES`. A Monte Carlo |z|
    beyond :data:`MC_Z_TOL` or a point beyond its tolerance raises :class:`CalibrationError`.
    """
    points = noise_points(tree, tau_sum_s)
    coef, cov = fit_nonnegative_quadratic(points)
    zp = point_z(points, coef)
    if zp > POINT_Z_TOL:
        raise CalibrationError(
            "out_noise",
            f"σ² = a + b·N + c·N² misses a .noise point by {zp:.2f} of its uncertainty "
            f"(> {POINT_Z_TOL:g}); sizes {sorted(points)}",
        )
    if coef[1] < 0.0:
        raise CalibrationError(
            "out_noise_b",
            f"σ² = a + b·N + c·N² through sizes {sorted(points)} has b = {coef[1]:.3g} < 0: "
            "σ² does not grow with the line",
        )
    z = monte_carlo_z(tree, tau_sum_s, coef)
    noise_node = group(tree, "noise", parameter="out_noise", field=NOISE_FIELD)
    budget = noise_node["budget"]
    n_mc = int(scalar(group(tree, "noise_mc", parameter="out_noise", field=MC_FIELD), "n_devices"))
    opamp = opamp_variances(tree)
    lo_n, hi_n = min(opamp), max(opamp)
    resid = ", ".join(
        f"N = {n}: {100 * r:+.2g} %" for n, r in point_residuals(points, coef).items()
    )
    exact = (
        " (as many sizes as coefficients: the curve passes through them)"
        if len(points) <= 3
        else ""
    )
    model = NoiseModel(a=float(coef[0]), b=float(coef[1]), c=float(coef[2]))
    checks = ", ".join(
        f"N = {c.n_devices}: {c.fitted_w:.4g} against {c.analytic_w:.4g} "
        f"({100 * c.error_w / c.analytic_w:+.1f} %)"
        for c in analytic_checks(tree, model)
    )
    clamped = "; c < 0 came out, so c = 0 (straight line)" if coef[2] == 0.0 else ""
    common = (
        f"σ² = {coef[0]:.4g} + {coef[1]:.4g}·N + {coef[2]:.4g}·N² fitted to the .noise sizes "
        f"with kT/C{clamped}; residual of σ at each size: {resid}{exact}; worst point "
        f"|z| = {zp:.2g}; the Monte Carlo at N = {n_mc}: z = {z:.2f}; the op-amp's part of "
        f"σ² grows from {opamp[lo_n]:.3g} w² at N = {lo_n} to {opamp[hi_n]:.3g} w² at "
        f"N = {hi_n}; the analytic budget (independent reference; tolerance "
        f"{ANALYTIC_TOL_W:g} w up to N = {max(ANALYTIC_SIZES)}): {checks}; residual = the "
        "worst point |z|"
    )
    n_cfg = scalar(noise_node["parameters"], "cols")
    row = _poly_design(np.array([n_cfg]), 2)[0]
    sig = math.sqrt(float(row @ coef))
    hs = Z95 * math.sqrt(max(float(row @ cov @ row), 0.0)) / (2.0 * sig)
    analytic = math.hypot(scalar(budget, "device_thermal_w"), scalar(budget, "opamp_w"))

    def par(name: str, value: float, half: float, unit: str, note: str) -> FittedParameter:
        return FittedParameter(
            name=name,
            value=value,
            unit=unit,
            sources=("noise_lines", "ktc", "noise_mc"),
            residual=zp,
            tolerance=POINT_Z_TOL,
            interval=(value - half, value + half),
            origin="fitted",
            note=note,
        )

    half = [Z95 * math.sqrt(max(float(cov[k, k]), 0.0)) for k in range(3)]
    return (
        par(
            "out_noise_a",
            float(coef[0]),
            half[0],
            "w^2",
            "σ² at N = 0: kT/C and the op-amp's broadband output noise; " + common,
        ),
        par(
            "out_noise_b",
            float(coef[1]),
            half[1],
            "w^2",
            "σ² per device per array on the line: the devices' thermal noise and the "
            "op-amp's broadband noise gain; " + common,
        ),
        par(
            "out_noise_c",
            float(coef[2]),
            half[2],
            "w^2",
            "σ² per device²: the op-amp's e_n through the line's conductance and frozen on "
            "its capacitance (both ∝ N); " + common,
        ),
        par(
            "out_noise",
            sig,
            hs,
            "w",
            f"σ at the config's N = {int(n_cfg)} (device, op-amp, kT/C; no ADC); the analytic "
            f"budget gives device + op-amp {analytic:.4g} and kT/C "
            f"{scalar(budget, 'ktc_w'):.4g}; the model path's out_noise is σ = 0.06 by "
            "default (paper A's acceptable value); residual = the worst point |z|",
        ),
    )


__all__ = [
    "ANALYTIC_SIZES",
    "ANALYTIC_TOL_W",
    "EXTRA_SIZES",
    "KTC_TOL",
    "MC_Z_TOL",
    "NOISE_POINT_REL",
    "POINT_Z_TOL",
    "AnalyticCheck",
    "adc_sigma",
    "analytic_checks",
    "analytic_sigma",
    "fit_noise_poly",
    "fit_nonnegative_quadratic",
    "fit_output_noise",
    "ktc_sigma",
    "monte_carlo_z",
    "noise_points",
    "opamp_variances",
    "point_residuals",
    "point_z",
]
