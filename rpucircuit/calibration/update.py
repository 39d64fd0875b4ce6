"""Pulsed update: Δw_min, the half-select nonlinearity k, the up/down ratio, the weight
bounds, and the device spreads SPICE cannot see.

Each update case is one stochastic cycle on one array of devices starting at G_mean: every
device changes by ``Δg = a·n_full + b·n_half`` (``n_full`` coincident pulses at V_S,
``n_half`` half-selected ones at V_S/2), fitted over the devices by least squares; ``k =
b/a`` and ``Δw = a/ΔG_unit``. The up (+1) and down (−1) cycles give ``a_up`` and ``a_down``:
the up/down ratio is ``a_up/|a_down|`` and the model's imbalance ``u`` solves
``(1 + u)/(1 − u)`` = that ratio. The cases used are those whose device model has the
config's k (the campaign field ``update_k`` must include it).

A SPICE device is deterministic and every device of a netlist is the same, so the
device-to-device and cycle-to-cycle spreads of the model (:class:`rpucircuit.config.rpu.
PulsedDeviceConfig`) are not observable; they come from paper A's preset (origin
``config``), as do the weight bounds, which no case drives a device to (the bounds are
``±(G_on − G_off)/ΔG_unit`` by the weight scale's definition).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from rpucircuit.calibration.base import (
    CalibrationError,
    FittedParameter,
    LinearFit,
    MissingCaseError,
    Tree,
    array,
    case_config,
    config_parameter,
    least_squares,
    scalar,
    t_quantile,
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
    return found


def config_device_parameters(case: Tree, source: str) -> list[FittedParameter]:
    """``w_max``, ``w_min`` (the weight scale of the case's parameters) and the spreads
    SPICE cannot see (paper A's preset): all origin ``config``."""
    p = case["parameters"]
    w_max = (scalar(p, "g_on_s") - scalar(p, "g_off_s")) / scalar(p, "dg_unit_s")
    where = (f"{source}/parameters",)
    out = [
        config_parameter(
            "w_max", w_max, "w", where, "(G_on − G_off)/ΔG_unit; no case drives a device to G_on"
        ),
        config_parameter(
            "w_min", -w_max, "w", where, "−(G_on − G_off)/ΔG_unit; no case drives one to G_off"
        ),
    ]
    preset = gokmen_vlasov_2016().device
    spreads = {
        "dw_min_dtod": preset.dw_min_dtod,
        "dw_min_ctoc": preset.dw_min_ctoc,
        "w_bound_dtod": preset.w_bound_dtod,
        "up_down_dtod": preset.up_down_dtod,
    }
    for name, value in spreads.items():
        out.append(
            config_parameter(
                name,
                value,
                "1",
                ("rpucircuit.config.rpu.gokmen_vlasov_2016",),
                "every SPICE device is the same deterministic model: spreads are not "
                "observable; paper A's preset value",
            )
        )
    return out


def fit_update(tree: Tree, *, k_model: float | None = None) -> tuple[FittedParameter, ...]:
    """``dw_min``, ``k_half_select``, ``up_down_ratio``, ``up_down`` (fitted) and ``w_max``,
    ``w_min``, ``dw_min_dtod``, ``dw_min_ctoc``, ``w_bound_dtod``, ``up_down_dtod`` (config).

    ``k_model`` picks the cases (default: the config's device k). Intervals: the fit's
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
    ratio = a_up / a_dn
    h_ratio = ratio * math.hypot(h_aup / a_up, h_adn / a_dn)
    ratio_cfg = float(cfg["device"]["up_down_ratio"])
    fitted(
        "up_down_ratio",
        ratio,
        h_ratio,
        "1",
        f"Δg_up/Δg_down per coincident pulse; the device model's ratio = {ratio_cfg:g}",
    )
    u = (ratio - 1.0) / (ratio + 1.0)
    h_u = 2.0 * h_ratio / (ratio + 1.0) ** 2
    fitted(
        "up_down",
        u,
        h_u,
        "1",
        "the model's imbalance u with (1 + u)/(1 − u) = up_down_ratio",
    )
    out += config_device_parameters(up, f"update/{name_up}")
    return tuple(out)


__all__ = ["UPDATE_RESIDUAL_TOL", "config_device_parameters", "fit_update"]
