"""IR drop: the line-segment and driver resistances, fitted to simulated reads.

The model path describes IR drop by two ratios (:class:`rpucircuit.model.irdrop.IRDropModel`):
``ρ = r_seg/R_mean`` and ``ρ_d = r_driver/R_mean``. Its map is the first-order expansion
for a tile whose devices all sit at the mean conductance. A simulated tile holds random
weights, so its devices span G_off … G_on, and the first-order drop then has a second part
the mean map leaves out: the potential of a line follows the *sum* of its devices'
currents, ``Σ G⁺·x`` on one array and ``Σ G⁻·x`` on the other, so the pair's loss is
``g·δ·(w·N + S)`` with ``S`` the line's partial weight sum, not ``g·δ·w·N`` alone.
Fitting the mean map to a random tile therefore mixes that term into the ratios (on the
reference IR stress case it puts ρ 50 % high and the driver ratio below zero). The fit
here uses the same first-order expansion with the case's own conductances (it reduces to
the model path's map when every device is at the mean), so the fitted resistances are the
physical ones; the mean map's error on the case with those ratios is reported beside them.

The expansion itself (the regressors ``A_seg`` and ``A_drv``) is in
:mod:`rpucircuit.calibration.lines`; the neglected terms are of relative size ``a_max`` (the
largest attenuation of a device), which is added to each interval as a model error.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from rpucircuit.calibration.base import (
    CalibrationError,
    FittedParameter,
    Tree,
    array,
    combine,
    find_cases,
    least_squares,
    scalar,
    text,
)
from rpucircuit.calibration.lines import case_arrays, case_weights, first_order_regressors
from rpucircuit.calibration.read import case_read_gain
from rpucircuit.model.irdrop import Direction, IRDropModel, weight_drop

IR_RESIDUAL_TOL = 0.05
"""Largest rms of the fit's residual relative to the rms IR drop ``y_q − y_sim/g`` of a
case. The first-order model leaves ~a_max of it (under 1 % on the reference stress case,
6e-7 at DC); a wrong geometry or a missing term leaves a large fraction (the mean map
leaves ~50 % on a random tile)."""

OP_FIELD = "op_sizes"
STRESS_FIELD = "transient_size (the IR-stress transient case)"
BACKWARD_FIELD = "ir_stress_backward"


def _r_mean_ohm(case: Tree) -> float:
    gs = case_arrays(case)
    return 1.0 / float(np.mean([g.mean() for g in gs]))


def _a_max(case: Tree, r_seg: float, r_drv: float) -> float:
    """Largest first-order attenuation of the case's tile, at its largest conductance."""
    gs = case_arrays(case)
    g_max = max(float(g.max()) for g in gs)
    r_mean = _r_mean_ohm(case)
    rows, cols = gs[0].shape
    direction = text(case, "direction")
    out, inp = (rows, cols) if direction == "forward" else (cols, rows)
    model = IRDropModel(
        segment_ratio=min(abs(r_seg) / r_mean, 1.0), driver_ratio=min(abs(r_drv) / r_mean, 1.0)
    )
    # max_attenuation takes the tile in forward orientation (rows = outputs)
    return model.max_attenuation(out, inp) * g_max * r_mean


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CaseFit:
    """The resistances fitted to one case, with 95 % half-widths (model error included)."""

    name: str
    """Case name under ``/transfer``."""
    gain: float
    """Read gain divided out of ``y_sim`` (1 at DC)."""
    r_seg_ohm: float
    r_driver_ohm: float
    half_seg_ohm: float
    half_driver_ohm: float
    residual: float
    """rms of the fit's residual over the rms IR drop of the case."""
    r_mean_ohm: float
    """Mean device resistance of the case (from its conductances)."""


def fit_case(
    name: str, case: Tree, tau_sum_s: float, *, parameter: str = "segment_ratio"
) -> CaseFit:
    """Least squares of the module doc on one case; :class:`CalibrationError` naming
    ``parameter`` when the residual is beyond :data:`IR_RESIDUAL_TOL`."""
    gain = 1.0 if text(case, "analysis") == "op" else case_read_gain(case, tau_sum_s)
    a_seg, a_drv = first_order_regressors(
        case_arrays(case),
        array(case, "x_applied"),
        scalar(case, "dg_unit_s"),
        text(case, "direction"),
    )
    drop = array(case, "y_ideal_quantized_w") - array(case, "y_sim_w") / gain
    fit = least_squares(np.column_stack([a_seg, a_drv]), drop, parameter=parameter)
    r_seg, r_drv = float(fit.coef[0]), float(fit.coef[1])
    scale = float(np.sqrt(np.mean(drop**2)))
    residual = fit.rms / scale if scale > 0.0 else math.inf
    if residual > IR_RESIDUAL_TOL:
        raise CalibrationError(
            parameter,
            f"first-order IR fit of {name} leaves {residual:.3g} of the drop "
            f"(> {IR_RESIDUAL_TOL:g})",
        )
    a_max = _a_max(case, r_seg, r_drv)
    return CaseFit(
        name=name,
        gain=gain,
        r_seg_ohm=r_seg,
        r_driver_ohm=r_drv,
        half_seg_ohm=fit.half_width(0) + a_max * abs(r_seg),
        half_driver_ohm=fit.half_width(1) + a_max * abs(r_drv),
        residual=residual,
        r_mean_ohm=_r_mean_ohm(case),
    )


def mean_map_error(case: Tree, fit: CaseFit) -> float:
    """rms error of the model path's mean map with the case's fitted ratios, relative to
    the rms IR drop of the case."""
    model = IRDropModel(
        segment_ratio=max(fit.r_seg_ohm, 0.0) / fit.r_mean_ohm,
        driver_ratio=max(fit.r_driver_ohm, 0.0) / fit.r_mean_ohm,
    )
    direction: Direction = "forward" if text(case, "direction") == "forward" else "backward"
    w = case_weights(case)
    w_ir = w * model.attenuation(w.shape[0], w.shape[1], direction)
    y_map = (w_ir if direction == "forward" else w_ir.T) @ array(case, "x_applied")
    y = array(case, "y_sim_w") / fit.gain
    drop = array(case, "y_ideal_quantized_w") - y
    return float(np.sqrt(np.mean((y - y_map) ** 2) / np.mean(drop**2)))


def weight_map_error(case: Tree, fit: CaseFit) -> float:
    """rms error of the first-order read with the case's own conductances
    (:func:`rpucircuit.model.irdrop.weight_drop` of each array's ``G/G_mean``, the line sums
    the mean map replaces by their mean) with the case's fitted ratios, relative to the rms
    IR drop of the case: what a data-dependent map would leave (the fit's own residual)."""
    model = IRDropModel(
        segment_ratio=max(fit.r_seg_ohm, 0.0) / fit.r_mean_ohm,
        driver_ratio=max(fit.r_driver_ohm, 0.0) / fit.r_mean_ohm,
    )
    par = model.parasitics(fit.r_mean_ohm)
    direction: Direction = "forward" if text(case, "direction") == "forward" else "backward"
    g_mean = 1.0 / fit.r_mean_ohm
    arrays = case_arrays(case)
    g_eff = sum(
        sign * g * (1.0 - weight_drop(par, g / g_mean, direction))
        for sign, g in zip((1.0, -1.0), arrays, strict=False)
    )
    w_eff = np.asarray(g_eff) / scalar(case, "dg_unit_s")
    y_map = (w_eff if direction == "forward" else w_eff.T) @ array(case, "x_applied")
    y = array(case, "y_sim_w") / fit.gain
    drop = array(case, "y_ideal_quantized_w") - y
    return float(np.sqrt(np.mean((y - y_map) ** 2) / np.mean(drop**2)))


def _stress_note(cases: dict[str, Tree], fits: list[CaseFit]) -> str:
    """The mean map's and the data-dependent map's errors on the stress cases."""
    mean = ", ".join(f"{f.name}: {mean_map_error(cases[f.name], f):.3g}" for f in fits)
    data = ", ".join(f"{f.name}: {weight_map_error(cases[f.name], f):.3g}" for f in fits)
    return (
        f"; the model path's mean map with these ratios misses the drop by {mean} (rms over "
        "rms drop): it takes every device at G_mean, while each line's drop follows its own "
        f"devices; the first-order map with the case's own line sums misses it by {data}"
    )


def _ratio_parameter(
    name: str,
    fits: list[CaseFit],
    ohms: list[tuple[float, float]],
    cfg_ohm: float,
    label: str,
) -> FittedParameter:
    """Combine per-case resistances ``(value, half-width)`` into one ratio to R_mean."""
    values = [r / f.r_mean_ohm for (r, _), f in zip(ohms, fits, strict=True)]
    halves = [h / f.r_mean_ohm for (_, h), f in zip(ohms, fits, strict=True)]
    value, half = combine(values, halves)
    r_mean = fits[0].r_mean_ohm
    cfg_ratio = cfg_ohm / r_mean
    inside = "inside" if value - half <= cfg_ratio <= value + half else "outside"
    return FittedParameter(
        name=name,
        value=value,
        unit="1",
        sources=tuple(f"transfer/{f.name}" for f in fits),
        residual=max(f.residual for f in fits),
        tolerance=IR_RESIDUAL_TOL,
        interval=(value - half, value + half),
        origin="fitted",
        note=(
            f"{label} {value * r_mean:.6g} Ω over R_mean {r_mean:.6g} Ω; the recorded "
            f"circuit has {cfg_ohm:.6g} Ω (ratio {cfg_ratio:.6g}, {inside} the interval); "
            "first-order fit with the cases' own conductances; residual = rms misfit over "
            "rms IR drop"
        ),
    )


def dc_resistances(tree: Tree) -> tuple[float, float]:
    """``(r_seg_ohm, r_driver_ohm)`` of the config's lines from the DC points, combined by
    inverse variance (what :func:`rpucircuit.calibration.read.fit_read_gain` takes out)."""
    ops = find_cases(
        tree,
        "transfer",
        r"op_fwd_random_\d+",
        parameter="segment_ratio",
        case="transfer/op_fwd_random_<N>",
        field=OP_FIELD,
    )
    fits = [fit_case(name, case, 0.0) for name, case in ops.items()]
    r_seg, _ = combine([f.r_seg_ohm for f in fits], [f.half_seg_ohm for f in fits])
    r_drv, _ = combine([f.r_driver_ohm for f in fits], [f.half_driver_ohm for f in fits])
    return r_seg, r_drv


def _stress_fits(
    cases: dict[str, Tree], tau_sum_s: float, parameter: str
) -> tuple[list[CaseFit], Tree]:
    fits = [fit_case(name, case, tau_sum_s, parameter=parameter) for name, case in cases.items()]
    return fits, next(iter(cases.values()))["parameters"]


def fit_ir_drop(
    tree: Tree, tau_sum_s: float, *, tau_backward_s: float | None = None
) -> tuple[FittedParameter, ...]:
    """Segment and driver ratios of the config's lines from the DC points, and of the IR
    stress cases' lines (whose drop is ×10⁴, large enough for a transient to resolve).

    Returns ``segment_ratio``, ``driver_ratio`` (DC points ``op_fwd_random_<N>``, the
    config's own lines and devices: what the model path takes),
    ``segment_ratio_ir_stress``, ``driver_ratio_ir_stress`` (the forward stress case; their
    notes give the model path's mean-map error on it) and ``segment_ratio_backward``,
    ``driver_ratio_backward`` (:func:`fit_backward`). ``tau_sum_s`` is the forward
    summing-node time constant (:func:`rpucircuit.calibration.read.fit_read_gain`) for the
    transient's gain, ``tau_backward_s`` the backward one (default: the forward one).
    """
    ops = find_cases(
        tree,
        "transfer",
        r"op_fwd_random_\d+",
        parameter="segment_ratio",
        case="transfer/op_fwd_random_<N>",
        field=OP_FIELD,
    )
    stress = find_cases(
        tree,
        "transfer",
        r"fwd_ir_stress_\d+",
        parameter="segment_ratio_ir_stress",
        case="transfer/fwd_ir_stress_<N>",
        field=STRESS_FIELD,
    )
    out: list[FittedParameter] = []
    for group_cases, suffix in ((ops, ""), (stress, "_ir_stress")):
        fits, p = _stress_fits(group_cases, tau_sum_s, f"segment_ratio{suffix}")
        seg = _ratio_parameter(
            f"segment_ratio{suffix}",
            fits,
            [(f.r_seg_ohm, f.half_seg_ohm) for f in fits],
            scalar(p, "r_seg_row_ohm"),
            "segment resistance",
        )
        drv = _ratio_parameter(
            f"driver_ratio{suffix}",
            fits,
            [(f.r_driver_ohm, f.half_driver_ohm) for f in fits],
            scalar(p, "r_driver_ohm"),
            "driver resistance",
        )
        if suffix:
            extra = _stress_note(group_cases, fits)
            seg = _with_note(seg, extra)
            drv = _with_note(drv, extra)
        out += [seg, drv]
    tau_bwd = tau_sum_s if tau_backward_s is None else tau_backward_s
    out += fit_backward(tree, tau_bwd, config_case=next(iter(ops.values())))
    return tuple(out)


def _scaled(
    name: str,
    fits: list[CaseFit],
    ohms: list[tuple[float, float]],
    recorded_ohm: float,
    cfg_ohm: float,
    cfg_r_mean_ohm: float,
    label: str,
) -> FittedParameter:
    """Per-case resistances as fractions of the stress case's recorded value, combined and
    scaled to the config's lines: ``(r_fit/r_recorded)·r_cfg/R_mean_cfg``."""
    if recorded_ohm <= 0.0:
        raise CalibrationError(
            name,
            f"the backward stress case records a {label} of {recorded_ohm:g} Ω: no "
            "fraction of it to carry over to the config's lines",
        )
    scale = cfg_ohm / recorded_ohm / cfg_r_mean_ohm
    value, half = combine([r * scale for r, _ in ohms], [h * scale for _, h in ohms])
    cfg_ratio = cfg_ohm / cfg_r_mean_ohm
    inside = "inside" if value - half <= cfg_ratio <= value + half else "outside"
    raw = combine(
        [r / f.r_mean_ohm for (r, _), f in zip(ohms, fits, strict=True)],
        [h / f.r_mean_ohm for (_, h), f in zip(ohms, fits, strict=True)],
    )[0]
    return FittedParameter(
        name=name,
        value=value,
        unit="1",
        sources=tuple(f"transfer/{f.name}" for f in fits),
        residual=max(f.residual for f in fits),
        tolerance=IR_RESIDUAL_TOL,
        interval=(value - half, value + half),
        origin="fitted",
        note=(
            f"backward read of the IR stress case: {label} {raw:.6g} of R_mean there "
            f"({sum(r for r, _ in ohms) / len(ohms):.6g} Ω against the {recorded_ohm:.6g} Ω "
            f"it records), that fraction of the config's {cfg_ohm:.6g} Ω over its R_mean "
            f"{cfg_r_mean_ohm:.6g} Ω; the config's ratio {cfg_ratio:.6g} is {inside} the "
            "interval; first-order fit with the case's own conductances; residual = rms "
            "misfit over rms IR drop"
        ),
    )


def fit_backward(
    tree: Tree, tau_backward_s: float, *, config_case: Tree
) -> tuple[FittedParameter, FittedParameter]:
    """``segment_ratio_backward``, ``driver_ratio_backward``: the ratios of the config's
    lines as the backward read sees them, from ``transfer/bwd_ir_stress_<N>``.

    The stress case's resistances are those of the config ×100 (lines) over devices ÷100,
    so its drop is large enough to fit but its ratios are 10⁴ times the config's. Each
    fitted resistance is taken as a fraction of the one the case records and that fraction
    applied to the config's (``config_case``'s ``parameters``, the DC point's), so the
    values are in the model path's units, beside ``segment_ratio`` and ``driver_ratio``.
    """
    cases = find_cases(
        tree,
        "transfer",
        r"bwd_ir_stress_\d+",
        parameter="segment_ratio_backward",
        case="transfer/bwd_ir_stress_<N>",
        field=BACKWARD_FIELD,
    )
    fits, p = _stress_fits(cases, tau_backward_s, "segment_ratio_backward")
    extra = _stress_note(cases, fits)
    pc = config_case["parameters"]
    r_mean_cfg = 2.0 / (scalar(pc, "g_on_s") + scalar(pc, "g_off_s"))
    seg = _scaled(
        "segment_ratio_backward",
        fits,
        [(f.r_seg_ohm, f.half_seg_ohm) for f in fits],
        scalar(p, "r_seg_col_ohm"),
        scalar(pc, "r_seg_col_ohm"),
        r_mean_cfg,
        "segment resistance",
    )
    drv = _scaled(
        "driver_ratio_backward",
        fits,
        [(f.r_driver_ohm, f.half_driver_ohm) for f in fits],
        scalar(p, "r_driver_ohm"),
        scalar(pc, "r_driver_ohm"),
        r_mean_cfg,
        "driver resistance",
    )
    return _with_note(seg, extra), _with_note(drv, extra)


def _with_note(p: FittedParameter, extra: str) -> FittedParameter:
    return dataclasses.replace(p, note=p.note + extra)


__all__ = [
    "IR_RESIDUAL_TOL",
    "CaseFit",
    "dc_resistances",
    "fit_backward",
    "fit_case",
    "fit_ir_drop",
    "mean_map_error",
    "weight_map_error",
]
