"""Pulsed update: Δw_min, the half-select nonlinearity k, the up/down ratio, the weight
bounds and their ramp, the device-to-device spread of Δw_min, and the spreads SPICE
cannot see.

Each update case is one stochastic cycle on one array of devices starting at G_mean: every
device changes by ``Δg = a·n_full + b·n_half`` (``n_full`` coincident pulses at V_S,
``n_half`` half-selected ones at V_S/2), fitted over the devices by least squares; ``k =
b/a`` and ``Δw = a/ΔG_unit``. The up (+1) and down (−1) cycles give ``a_up`` and ``a_down``:
the model's imbalance ``u`` (Δg_up ∝ 1 + u, Δg_down ∝ 1 − u) comes from one joint fit of
both cycles with a common response shape that includes the pulses in consecutive slots,
whose edges merge (:func:`fit_imbalance`), and the up/down ratio is ``(1 + u)/(1 − u)``.
The cases used are those whose device model has the config's k (the campaign field
``update_k`` must include it).

The k cases run identical devices (``rate_factor`` all 1; a case with its own rates is
refused). The device-to-device spread of the rate, ``dw_min_dtod``, comes from
``/update_dtod`` (:func:`fit_device_spread`): every line pulses in every slot, so each
device's Δg per pulse is its own rate. The bounds come from ``/update_bound``
(:func:`fit_bounds`): devices started 0 … span pulses from G_on or G_off, whose rate ramps
to zero over ``bound_margin·(G_on − G_off)``, give G_on, G_off and the margin, and ``w_max
= −w_min = (G_on − G_off)/ΔG_unit`` by the weight scale's definition
(``rpucircuit/config/tile.py``). A SPICE device is deterministic and the campaign draws no
other spread, so the cycle-to-cycle spread, the bounds' and the up/down imbalance's
device-to-device spreads (:class:`rpucircuit.config.rpu.PulsedDeviceConfig`) are not
observable; they come from paper A's preset (origin ``config``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
from scipy import optimize, stats

from rpucircuit.calibration.base import (
    CONFIDENCE,
    CalibrationError,
    FittedParameter,
    FloatArray,
    LinearFit,
    MissingCaseError,
    Tree,
    array,
    case_config,
    config_parameter,
    least_squares,
    scalar,
    t_quantile,
    text,
)
from rpucircuit.calibration.read import config_tile
from rpucircuit.config.rpu import gokmen_vlasov_2016

UPDATE_RESIDUAL_TOL = 0.02
"""Largest rms of ``Δg − a·n_full − b·n_half`` relative to the rms Δg of a cycle. The
count model is exact for a rate that depends on the pulse voltage only; what is left comes
from the pulse edges and from the state changing within a cycle (reference file: 5e-3
rectifying, 3e-3 saturating, 1e-6 linear); 2 % is the accuracy paper A asks of the up/down
symmetry."""

K_MATCH = 1e-9
"""Relative difference under which a case's model k counts as the config's k."""

UPDATE_FIELD = "update_k (must list the config's device k)"
DTOD_FIELD = "update_dtod_size"
MIN_MARGIN_PULSES = 1e-6
"""Floor of the margin (in free-rate pulses) while fitting: keeps the ramp's
``exp(−r·n/M)`` finite when the optimizer tries M → 0."""
BOUND_FIELD = "update_bound_span_pulses"


def _fit_cycle(name: str, case: Tree, parameter: str) -> tuple[LinearFit, float]:
    n_full = array(case, "n_full").ravel()
    n_half = array(case, "n_half").ravel()
    dg = array(case, "dg_s").ravel()
    fit = least_squares(np.column_stack([n_full, n_half]), dg, parameter=parameter)
    scale = float(np.sqrt(np.mean(dg**2)))
    rel = fit.rms / scale if scale > 0.0 else math.inf
    if rel > UPDATE_RESIDUAL_TOL:
        raise CalibrationError(
            parameter,
            f"Δg = a·n_full + b·n_half leaves a relative rms of {rel:.3g} > "
            f"{UPDATE_RESIDUAL_TOL:g} on update/{name}",
        )
    return fit, rel


def _k_of(fit: LinearFit) -> tuple[float, float]:
    """k = b/a and its 95 % half-width (delta method with the coefficients' covariance)."""
    a, b = float(fit.coef[0]), float(fit.coef[1])
    grad = np.array([-b / a**2, 1.0 / a])
    var = float(grad @ fit.cov @ grad)
    half = t_quantile(fit.dof) * math.sqrt(max(var, 0.0)) if fit.dof > 0 else 0.0
    return b / a, half


def _cycles(tree: Tree, k: float) -> dict[int, tuple[str, Tree]]:
    cases = tree.get("update")
    found: dict[int, tuple[str, Tree]] = {}
    if isinstance(cases, Mapping):
        for name in sorted(cases):
            case = cases[name]
            if abs(scalar(case, "k_model") / k - 1.0) <= K_MATCH:
                found[int(scalar(case, "polarity"))] = (name, case)
    for polarity, word in ((1, "up"), (-1, "down")):
        if polarity not in found:
            label = f"update/<response>_k{k:g}_{word}".replace(".", "p")
            raise MissingCaseError("k_half_select", label, UPDATE_FIELD)
        name, case = found[polarity]
        if "rate_factor" in case and np.any(array(case, "rate_factor") != 1.0):
            raise CalibrationError(
                "k_half_select",
                f"update/{name} has devices with their own rates (rate_factor ≠ 1): the count "
                "fit needs identical devices (the campaign runs these cases with "
                "device.dw_min_dtod = 0; rerun `rpucircuit characterize`)",
            )
    return found


def edge_terms(case: Tree) -> FloatArray | None:
    """Per device, the counts of consecutive pulse slots, ``(devices, 3)``: full then full,
    full next to half, half then half (from the case's ``row_bits`` and ``col_bits``); None
    when the case holds no bit streams.

    Why: a device pulsed in two consecutive slots sees the pulses' edges merge (the voltage
    does not return to zero between them), which adds to its Δg beyond the count model. On
    paper A's rectifying device that is +2.9 %, +0.7 % and +0.15 % of a coincident pulse
    per pair; the count model's 0.4–0.5 % residual is almost all of it."""
    if "row_bits" not in case or "col_bits" not in case:
        return None
    rb = np.asarray(case["row_bits"], dtype=np.int64)
    cb = np.asarray(case["col_bits"], dtype=np.int64)
    level = rb[:, None, :] + cb[None, :, :]  # (rows, cols, slots): 2 full, 1 half
    full = (level == 2).astype(np.int64)
    half = (level == 1).astype(np.int64)
    ff = (full[..., 1:] * full[..., :-1]).sum(axis=-1)
    fh = (full[..., 1:] * half[..., :-1] + half[..., 1:] * full[..., :-1]).sum(axis=-1)
    hh = (half[..., 1:] * half[..., :-1]).sum(axis=-1)
    out: FloatArray = np.column_stack([ff.ravel(), fh.ravel(), hh.ravel()]).astype(np.float64)
    return out


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Imbalance:
    """The up/down imbalance ``u`` of one joint fit of both cycles (:func:`fit_imbalance`)."""

    u: float
    half: float
    """95 % half-width of u."""
    rel_rms: float
    """rms of the joint fit's residual over the rms |Δg|."""
    edge_terms: bool
    """Whether the consecutive-slot terms were in the model."""


def fit_imbalance(up: Tree, down: Tree) -> Imbalance:
    """``u`` of ``|Δg| = (1 + u·s)·(a·n_full + b·n_half + Σ e_m·edge_m)`` over both cycles
    (s = +1 up, −1 down): one shape of the response for both polarities and one scale
    factor between them. The edge terms (:func:`edge_terms`; those the cycles leave
    unresolved dropped) take out the consecutive-slot pulses, which the two cycles' random
    bit streams hold in different numbers: fitted per cycle with the counts alone, their
    share goes into each cycle's ``a`` and shows as an imbalance that the device does not
    have. Least squares in the shape for each u, u by a bounded scalar search; the interval
    from the linearized model at the optimum."""
    rows: list[FloatArray] = []
    ys: list[FloatArray] = []
    signs: list[FloatArray] = []
    edges = [edge_terms(up), edge_terms(down)]
    use_edges = all(e is not None for e in edges)
    for sign, case, e in ((1.0, up, edges[0]), (-1.0, down, edges[1])):
        cols = [array(case, "n_full").ravel(), array(case, "n_half").ravel()]
        x = np.column_stack(cols)
        if use_edges and e is not None:
            x = np.column_stack([x, e])
        rows.append(x)
        ys.append(sign * array(case, "dg_s").ravel())
        signs.append(np.full(x.shape[0], sign))
    x_all = np.vstack(rows)
    y = np.concatenate(ys)
    s = np.concatenate(signs)
    keep = [0, 1]
    for j in range(2, x_all.shape[1]):  # edge terms the cycles resolve
        trial = [*keep, j]
        if np.linalg.matrix_rank(x_all[:, trial]) == len(trial):
            keep = trial
    x_all = x_all[:, keep]
    scale = float(np.sqrt(np.mean(y**2)))
    if not scale > 0.0:
        raise CalibrationError("up_down", "the update cycles moved no device")
    y = y / scale  # conductances of ~1e-10 S would make the normal equations singular

    def shape_fit(u: float) -> tuple[FloatArray, float]:
        scale = 1.0 + u * s
        beta, *_ = np.linalg.lstsq(x_all * scale[:, None], y, rcond=None)
        r = y - (x_all @ beta) * scale
        return np.asarray(beta, dtype=np.float64), float(r @ r)

    res = optimize.minimize_scalar(
        lambda u: shape_fit(u)[1], bounds=(-0.5, 0.5), method="bounded", options={"xatol": 1e-10}
    )
    u = float(res.x)
    beta, sse = shape_fit(u)
    jac = np.column_stack([x_all * (1.0 + u * s)[:, None], s * (x_all @ beta)])
    dof = y.size - jac.shape[1]
    var = sse / dof if dof > 0 else 0.0
    cov = var * np.linalg.inv(jac.T @ jac)
    half = t_quantile(dof) * math.sqrt(max(float(cov[-1, -1]), 0.0)) if dof > 0 else 0.0
    return Imbalance(
        u=u,
        half=half,
        rel_rms=math.sqrt(sse / y.size),
        edge_terms=len(keep) > 2,
    )


def config_spreads() -> list[FittedParameter]:
    """The spreads no case observes (paper A's preset, origin ``config``): cycle-to-cycle
    Δw_min, device-to-device bounds and up/down imbalance."""
    preset = gokmen_vlasov_2016().device
    spreads = {
        "dw_min_ctoc": preset.dw_min_ctoc,
        "w_bound_dtod": preset.w_bound_dtod,
        "up_down_dtod": preset.up_down_dtod,
    }
    return [
        config_parameter(
            name,
            value,
            "1",
            ("rpucircuit.config.rpu.gokmen_vlasov_2016",),
            "the SPICE device is deterministic and the campaign draws only its rate's "
            "device-to-device spread: this spread is not observable; paper A's preset value",
        )
        for name, value in spreads.items()
    ]


# --------------------------------------------------------------------------- spread


def _pair(tree: Tree, kind: str, stem: str, *, parameter: str, field: str) -> tuple[Tree, Tree]:
    """The ``_up`` and ``_down`` cases ``tree[kind][stem_up|down]``, or
    :class:`MissingCaseError` naming the first one missing."""
    cases = tree.get(kind)
    out: list[Tree] = []
    for word in ("up", "down"):
        case = cases.get(f"{stem}_{word}") if isinstance(cases, Mapping) else None
        if not isinstance(case, Mapping):
            raise MissingCaseError(parameter, f"{kind}/{stem}_{word}", field)
        out.append(case)
    return out[0], out[1]


def device_factors(case: Tree) -> FloatArray:
    """Each device's rate over the mean rate of the case, ``dg_per_pulse_s`` over its mean
    (the case's devices are away from the bounds, so Δg per pulse is the rate)."""
    rate = array(case, "dg_per_pulse_s").ravel()
    mean = float(rate.mean())
    if mean == 0.0:
        raise CalibrationError("dw_min_dtod", f"{text(case, 'name')}: no device moved")
    out: FloatArray = rate / mean
    return out


def fit_device_spread(tree: Tree) -> FittedParameter:
    """``dw_min_dtod``: relative std of the devices' rates, from ``/update_dtod``.

    Every device of the case pulses BL times and nothing else, so its Δg per pulse is its
    own rate; up and down draw the same devices, so their factors are averaged per device
    (one sample of ``n`` devices, not two). Interval: χ² with ``n − 1`` degrees of freedom
    on the sample variance of ``1 + σ·ξ`` (normalizing by the sample mean instead of the
    population's adds a relative error ~σ/√n² to σ, far inside it). Residual: rms of each
    device's observed factor over its drawn ``rate_factor`` (both over their means) − 1,
    worse polarity; tolerance :data:`UPDATE_RESIDUAL_TOL` (pulse edges leave ~0.3 %).
    """
    parameter = "dw_min_dtod"
    up, dn = _pair(tree, "update_dtod", "dtod", parameter=parameter, field=DTOD_FIELD)
    f_up, f_dn = device_factors(up), device_factors(dn)
    residual = 0.0
    for case, f in ((up, f_up), (dn, f_dn)):
        drawn = array(case, "rate_factor").ravel()
        rel = f / (drawn / drawn.mean()) - 1.0
        residual = max(residual, float(np.sqrt(np.mean(rel**2))))
    if residual > UPDATE_RESIDUAL_TOL:
        raise CalibrationError(
            parameter,
            f"observed rate factors differ from the drawn ones by a relative rms of "
            f"{residual:.3g} > {UPDATE_RESIDUAL_TOL:g} (update_dtod)",
        )
    f = 0.5 * (f_up + f_dn)
    n = f.size
    if n < 3:
        raise CalibrationError(parameter, f"update_dtod has {n} devices: need at least 3")
    s = float(np.std(f, ddof=1) / np.mean(f))
    lo_q = float(stats.chi2.ppf(0.5 + CONFIDENCE / 2.0, n - 1))
    hi_q = float(stats.chi2.ppf(0.5 - CONFIDENCE / 2.0, n - 1))
    interval = (s * math.sqrt((n - 1) / lo_q), s * math.sqrt((n - 1) / hi_q))
    cfg = scalar(up, "dw_min_dtod_model")
    inside = "inside" if interval[0] <= cfg <= interval[1] else "outside"
    return FittedParameter(
        name=parameter,
        value=s,
        unit="1",
        sources=("update_dtod/dtod_up", "update_dtod/dtod_down"),
        residual=residual,
        tolerance=UPDATE_RESIDUAL_TOL,
        interval=interval,
        origin="fitted",
        note=(
            f"relative std of the rates of {n} devices (up and down averaged per device), "
            f"χ² interval; the campaign drew them with dw_min_dtod = {cfg:g} ({inside} the "
            "interval; one draw of n devices scatters by ~1/√(2n)); residual = rms of "
            "observed over drawn factor − 1, worse polarity"
        ),
    )


# --------------------------------------------------------------------------- bounds


def bound_moves(
    distance_s: FloatArray, *, margin_s: float, rate_s: float, n_pulses: int
) -> FloatArray:
    """|Δg| of devices starting ``distance_s`` from the bound they are driven towards,
    after ``n_pulses`` pulses of free rate ``rate_s`` (S per pulse) whose rate ramps
    linearly to zero over the last ``margin_s`` (the schema doc's closed form): free
    pulses ``f = clip((d − M)/r, 0, BL)``, then the distance left in the margin decays as
    ``exp(−r·n/M)``."""
    d = np.maximum(np.asarray(distance_s, dtype=np.float64), 0.0)
    free = np.clip((d - margin_s) / rate_s, 0.0, float(n_pulses))
    inside = np.minimum(d, margin_s)
    out: FloatArray = rate_s * free + inside * (
        1.0 - np.exp(-(n_pulses - free) * rate_s / margin_s)
    )
    return out


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class BoundFit:
    """One bound case fitted: bound, margin (S) and free rate (S per pulse), 95 %
    half-widths, and the rms misfit over the rms |Δg|."""

    bound_s: float
    margin_s: float
    rate_s: float
    half_bound_s: float
    half_margin_s: float
    residual: float


def fit_bound_case(case: Tree, name: str) -> BoundFit:
    """Nonlinear least squares of :func:`bound_moves` to one ``/update_bound`` case in its
    three unknowns (bound, margin, free rate); the start is the device nearest the bound
    and the farthest device's rate. Interval: t-quantile × the Jacobian's standard error."""
    polarity = float(scalar(case, "polarity"))
    g0 = array(case, "g0_s").ravel()
    moved = polarity * array(case, "dg_s").ravel()
    bl = int(scalar(case, "n_pulses"))
    r0 = float(np.max(np.abs(moved))) / bl
    if r0 <= 0.0:
        raise CalibrationError("w_max", f"{name}: no device moved")
    edge = float(np.max(polarity * g0))  # the start nearest the bound, in polarity·g

    def model(u: FloatArray) -> FloatArray:
        distance = (edge + u[0] * r0) - polarity * g0
        margin = max(abs(float(u[1])), MIN_MARGIN_PULSES) * r0
        m = bound_moves(distance, margin_s=margin, rate_s=float(u[2]) * r0, n_pulses=bl)
        return (m - moved) / r0

    start = np.array([0.5, 0.5 * bl, 1.0])
    res = optimize.least_squares(model, start, x_scale=np.array([1.0, bl, 1.0]))
    dof = moved.size - 3
    if dof < 1:
        raise CalibrationError("w_max", f"{name} has {moved.size} devices: need at least 4")
    resid = res.fun * r0
    scale = float(np.sqrt(np.mean(moved**2)))
    residual = float(np.sqrt(np.mean(resid**2))) / scale
    if residual > UPDATE_RESIDUAL_TOL:
        raise CalibrationError(
            "w_max",
            f"the bound ramp leaves a relative rms of {residual:.3g} > "
            f"{UPDATE_RESIDUAL_TOL:g} on {name}",
        )
    jac = res.jac * r0  # d(residual in S)/d(u)
    if np.linalg.matrix_rank(jac, tol=1e-9 * float(np.max(np.abs(jac)))) < 3:
        raise CalibrationError(
            "w_max",
            f"{name}: the devices do not see the bound's ramp (no start within margin + BL "
            "pulses of it), so the bound and the margin are not determined; raise "
            "update_bound_span_pulses or start devices nearer the bound",
        )
    cov = float(resid @ resid) / dof * np.linalg.pinv(jac.T @ jac)
    t = t_quantile(dof)
    u = res.x
    return BoundFit(
        bound_s=polarity * (edge + float(u[0]) * r0),
        margin_s=abs(float(u[1])) * r0,
        rate_s=float(u[2]) * r0,
        half_bound_s=t * math.sqrt(max(float(cov[0, 0]), 0.0)) * r0,
        half_margin_s=t * math.sqrt(max(float(cov[1, 1]), 0.0)) * r0,
        residual=residual,
    )


def fit_bounds(tree: Tree) -> tuple[FittedParameter, ...]:
    """``g_on``, ``g_off`` (S), ``w_max``, ``w_min`` (weight units) and ``bound_margin``
    (fraction of G_on − G_off) from ``/update_bound``.

    Each case's devices start 0 … span pulses from one bound and pulse BL times; the fit
    of :func:`bound_moves` gives the bound, the margin and the free rate. ``w_max =
    (G_on − G_off)/ΔG_unit`` with the case's ΔG_unit (``parameters/dg_unit_s``: the weight
    scale, ``rpucircuit/config/tile.py``), ``w_min = −w_max`` (a pair spans ±(G_on − G_off));
    the margin is the mean of the two cases' over G_on − G_off. Intervals: each fit's 95 %
    half-width, added for a difference; for the margin, half the up/down difference added.
    Residual: rms misfit over rms |Δg|, worse case; tolerance :data:`UPDATE_RESIDUAL_TOL`.
    """
    up, dn = _pair(tree, "update_bound", "bound", parameter="w_max", field=BOUND_FIELD)
    on, off = (
        fit_bound_case(up, "update_bound/bound_up"),
        fit_bound_case(dn, "update_bound/bound_down"),
    )
    sources = ("update_bound/bound_up", "update_bound/bound_down")
    residual = max(on.residual, off.residual)
    span = on.bound_s - off.bound_s
    h_span = on.half_bound_s + off.half_bound_s
    dg_unit = scalar(up, "parameters/dg_unit_s")
    g_on_cfg, g_off_cfg = scalar(up, "g_on_s"), scalar(up, "g_off_s")
    w_cfg = (g_on_cfg - g_off_cfg) / dg_unit
    b_up, b_dn = on.margin_s / span, off.margin_s / span
    margin = 0.5 * (b_up + b_dn)
    h_margin = 0.5 * math.hypot(on.half_margin_s, off.half_margin_s) / span + 0.5 * abs(b_up - b_dn)
    margin_cfg = scalar(up, "bound_margin_model")

    def par(name: str, value: float, half: float, unit: str, note: str) -> FittedParameter:
        return FittedParameter(
            name=name,
            value=value,
            unit=unit,
            sources=sources,
            residual=residual,
            tolerance=UPDATE_RESIDUAL_TOL,
            interval=(value - half, value + half),
            origin="fitted",
            note=note + "; residual = rms misfit of the bound ramp over rms |Δg|, worse case",
        )

    return (
        par(
            "g_on", on.bound_s, on.half_bound_s, "S", f"the device model's G_on = {g_on_cfg:.6g} S"
        ),
        par(
            "g_off",
            off.bound_s,
            off.half_bound_s,
            "S",
            f"the device model's G_off = {g_off_cfg:.6g} S",
        ),
        par(
            "w_max",
            span / dg_unit,
            h_span / dg_unit,
            "w",
            f"(G_on − G_off)/ΔG_unit with ΔG_unit = {dg_unit:.6g} S; "
            f"the config's w_max = {w_cfg:g}",
        ),
        par(
            "w_min",
            -span / dg_unit,
            h_span / dg_unit,
            "w",
            f"−(G_on − G_off)/ΔG_unit (the m device at G_on, the p device at G_off); the "
            f"config's −{w_cfg:g}",
        ),
        par(
            "bound_margin",
            margin,
            h_margin,
            "1",
            f"rate ramp over G_on − G_off, mean of up {b_up:.4g} and down {b_dn:.4g} "
            f"(free rates {on.rate_s:.4g}, {off.rate_s:.4g} S per pulse); the device model's "
            f"margin = {margin_cfg:g}",
        ),
    )


def fit_update(tree: Tree, *, k_model: float | None = None) -> tuple[FittedParameter, ...]:
    """``dw_min``, ``k_half_select``, ``up_down_ratio``, ``up_down`` (the k cases),
    ``g_on``, ``g_off``, ``w_max``, ``w_min``, ``bound_margin`` (:func:`fit_bounds`),
    ``dw_min_dtod`` (:func:`fit_device_spread`), all fitted, and ``dw_min_ctoc``,
    ``w_bound_dtod``, ``up_down_dtod`` (config).

    ``k_model`` picks the k cases (default: the config's device k). Intervals: the fit's
    95 % half-width of each cycle; where the up and down cycles are averaged, half their
    difference is added (they differ by more than their fit errors on the pulse edges).
    """
    cfg = case_config(config_tile(tree))
    k = float(cfg["device"]["k"]) if k_model is None else float(k_model)
    cycles = _cycles(tree, k)
    (name_up, up), (name_dn, dn) = cycles[1], cycles[-1]
    fit_up, rel_up = _fit_cycle(name_up, up, "k_half_select")
    fit_dn, rel_dn = _fit_cycle(name_dn, dn, "k_half_select")
    rel = max(rel_up, rel_dn)
    sources = (f"update/{name_up}", f"update/{name_dn}")
    dg_unit = scalar(up, "parameters/dg_unit_s")
    out: list[FittedParameter] = []

    def fitted(name: str, value: float, half: float, unit: str, note: str) -> None:
        out.append(
            FittedParameter(
                name=name,
                value=value,
                unit=unit,
                sources=sources,
                residual=rel,
                tolerance=UPDATE_RESIDUAL_TOL,
                interval=(value - half, value + half),
                origin="fitted",
                note=note + "; residual = relative rms of the count model, worse cycle",
            )
        )

    k_up, h_up = _k_of(fit_up)
    k_dn, h_dn = _k_of(fit_dn)
    k_fit = 0.5 * (k_up + k_dn)
    fitted(
        "k_half_select",
        k_fit,
        0.5 * math.hypot(h_up, h_dn) + 0.5 * abs(k_up - k_dn),
        "1",
        f"mean of up {k_up:.5g} and down {k_dn:.5g}; the device model's k = {k:g}",
    )
    a_up, a_dn = float(fit_up.coef[0]), -float(fit_dn.coef[0])
    h_aup, h_adn = fit_up.half_width(0), fit_dn.half_width(0)
    dw = 0.5 * (a_up + a_dn) / dg_unit
    dw_cfg = float(cfg["device"]["dw_min"])
    fitted(
        "dw_min",
        dw,
        (0.5 * math.hypot(h_aup, h_adn) + 0.5 * abs(a_up - a_dn)) / dg_unit,
        "w",
        f"Δg per coincident pulse over ΔG_unit, mean of up and down; config Δw_min = {dw_cfg:g}",
    )
    imb = fit_imbalance(up, dn)
    u, h_u = imb.u, imb.half
    ratio = (1.0 + u) / (1.0 - u)
    h_ratio = 2.0 * h_u / (1.0 - u) ** 2
    ratio_cfg = float(cfg["device"]["up_down_ratio"])
    per_cycle = a_up / a_dn
    how = (
        "joint fit of both cycles, one response shape (counts and consecutive-slot pulse "
        "edges) and one scale factor (1 ± u)"
        if imb.edge_terms
        else "joint fit of both cycles, one count model and one scale factor (1 ± u); the "
        "cases hold no bit streams for the pulse-edge terms"
    )
    common = (
        f"{how}, relative rms {imb.rel_rms:.2g}; the per-cycle count fits alone give "
        f"a_up/a_down = {per_cycle:.5g} (u = {(per_cycle - 1.0) / (per_cycle + 1.0):.3g}), "
        "biased by the consecutive-slot pulses their bit streams hold in different numbers"
    )
    fitted(
        "up_down_ratio",
        ratio,
        h_ratio,
        "1",
        f"Δg_up/Δg_down per pulse, (1 + u)/(1 − u); the device model's ratio = {ratio_cfg:g}; "
        + common,
    )
    fitted(
        "up_down",
        u,
        h_u,
        "1",
        "the model's imbalance u (Δg_up ∝ 1 + u, Δg_down ∝ 1 − u); " + common,
    )
    out += fit_bounds(tree)
    out.append(fit_device_spread(tree))
    out += config_spreads()
    return tuple(out)


__all__ = [
    "UPDATE_RESIDUAL_TOL",
    "BoundFit",
    "Imbalance",
    "bound_moves",
    "config_spreads",
    "device_factors",
    "edge_terms",
    "fit_bound_case",
    "fit_bounds",
    "fit_device_spread",
    "fit_imbalance",
    "fit_update",
]
