"""Calibration fits recover planted values, and fail loudly on missing cases and bad fits.

Each test starts from a copy of the reference tree (so every case has its real layout and
parameters) and replaces the simulated outputs by values built from known parameters: by
formula, or for the IR drop by the independent nodal solve of a tile with planted line and
driver resistances. Exact data are recovered to float rounding (1e-9 relative); the nodal
data to the first-order model's error (a_max, ~1e-4 here).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rpucircuit import errors
from rpucircuit.calibration import CalibrationError, FittedParameter, MissingCaseError, base
from rpucircuit.calibration.base import least_squares
from rpucircuit.calibration.ir_drop import dc_resistances, fit_backward, fit_ir_drop
from rpucircuit.calibration.lines import case_drop, first_order_regressors
from rpucircuit.calibration.model import noise_model
from rpucircuit.calibration.noise import (
    fit_noise_poly,
    fit_nonnegative_quadratic,
    fit_output_noise,
    ktc_sigma,
    noise_points,
    point_z,
)
from rpucircuit.calibration.read import (
    case_read_gain,
    fit_input_transfer,
    fit_output_bound,
    fit_read_gain,
    gain_of,
    line_conductance_s,
)
from rpucircuit.calibration.update import (
    bound_moves,
    edge_terms,
    fit_bounds,
    fit_device_spread,
    fit_update,
)
from rpucircuit.circuit import characterize as ch
from rpucircuit.circuit import nodal
from rpucircuit.config.tile import LineConfig, gokmen_vlasov_2016
from rpucircuit.model.irdrop import IRDropModel, first_order_attenuation

REFERENCE = Path(__file__).resolve().parents[2] / "sim_data" / "reference" / ch.RESULT_NAME
EXACT = 1e-9
"""Relative tolerance for data built exactly from the planted values (float rounding of
sums over a few dozen terms, far above 1e-16, far below any physical effect)."""
TAU = 2.0e-10
"""Planted summing-node time constant (s), 20 % above the reference op-amp's."""


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    tree, _ = ch.load(REFERENCE)
    return tree


@pytest.fixture
def tree(reference: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(reference)


def _plant_gain(tree: dict[str, Any], tau: float) -> None:
    """Replace every linear transient read by a pure gain with time constant ``tau``."""
    for name, case in tree["transfer"].items():
        if name.startswith(("fwd_random", "fwd_no_line", "bwd_random", "fwd_ir_stress")):
            case["y_sim_w"] = case_read_gain(case, tau) * case["y_ideal_quantized_w"]


def _weights(case: dict[str, Any]) -> np.ndarray:
    w = np.asarray(case["g_pos_s"] - case["g_neg_s"], dtype=np.float64) / float(case["dg_unit_s"])
    return w if str(case["direction"]) == "forward" else w.T


# --------------------------------------------------------------------------- read gain


def test_read_gain_recovers_planted_time_constant(tree: dict[str, Any]) -> None:
    _plant_gain(tree, TAU)
    for direction in ("forward", "backward"):
        tau, gain = fit_read_gain(tree, direction)
        assert tau.value == pytest.approx(TAU, rel=EXACT)
        assert tau.residual < 1e-12  # exact data: nothing left
        p = tree["noise"]["parameters"]
        g_line = 2 * 32 * 0.5 * (float(p["g_on_s"]) + float(p["g_off_s"]))
        expected = gain_of(TAU, g_line_s=g_line, c_int_f=float(p["c_int_f"]), a0=float(p["a0"]))
        assert gain.value == pytest.approx(expected, rel=EXACT)


def test_read_gain_takes_out_the_ir_drop_it_is_given(tree: dict[str, Any]) -> None:
    # y_sim = g·(y_q − first-order drop of 5 Ω segments and 50 Ω drivers): given those
    # resistances the fit recovers τ exactly; ignoring them biases it by the drop.
    del tree["transfer"]["fwd_random_32x32"]  # one case, planted
    case = tree["transfer"]["fwd_random_8"]
    ref = case["y_ideal_quantized_w"] - case_drop(case, 5.0, 50.0)
    case["y_sim_w"] = case_read_gain(case, TAU) * ref
    tau, _ = fit_read_gain(tree, "forward", r_seg_ohm=5.0, r_driver_ohm=50.0)
    assert tau.value == pytest.approx(TAU, rel=EXACT)
    biased, _ = fit_read_gain(tree, "forward")
    assert biased.value > TAU * 1.01


def test_read_gain_residual_beyond_tolerance_names_the_parameter(
    tree: dict[str, Any], rng: np.random.Generator
) -> None:
    case = tree["transfer"]["fwd_random_8"]
    case["y_sim_w"] = case["y_sim_w"] * (1.0 + 0.01 * rng.standard_normal(8))
    with pytest.raises(CalibrationError, match=r"tau_sum_forward_s: gain fit leaves"):
        fit_read_gain(tree, "forward")


def test_read_gain_missing_direction_names_case_and_field(tree: dict[str, Any]) -> None:
    del tree["transfer"]["bwd_random_8"]
    with pytest.raises(MissingCaseError, match=r"transfer/bwd_random_<N>.*transient_size"):
        fit_read_gain(tree, "backward")


# --------------------------------------------------------------------------- IR drop


def _plant_ir(tree: dict[str, Any], r_seg: float, r_drv: float) -> None:
    """DC point from the nodal solve of the same conductances with planted resistances."""
    case = tree["transfer"]["op_fwd_random_16"]
    base = gokmen_vlasov_2016(rows=16, cols=16)
    line = LineConfig(r_ohm_per_um=r_seg / base.tile.pitch_um, c_f_per_um=0.2e-15)
    cfg = dataclasses.replace(
        base,
        tile=dataclasses.replace(base.tile, row_line=line, col_line=line, r_driver_ohm=r_drv),
    )
    res = nodal.read(cfg, case["g_pos_s"], case["g_neg_s"], case["x"], finite_gain=False)
    assert cfg.q_unit_c == pytest.approx(float(case["q_unit_c"]), rel=1e-12)
    case["y_sim_w"] = res.q_c / cfg.q_unit_c


def test_ir_drop_recovers_resistances_of_a_nodal_solve(tree: dict[str, Any]) -> None:
    # 5 Ω segments and 50 Ω drivers on 24 MΩ devices: a_max ≈ 1e-4, so the first-order
    # fit is within ~1e-4 relative of the planted values, and the interval holds them.
    _plant_ir(tree, 5.0, 50.0)
    tau, _ = fit_read_gain(tree, "forward")
    params = {p.name: p for p in fit_ir_drop(tree, tau.value)}
    seg, drv = params["segment_ratio"], params["driver_ratio"]
    assert seg.value == pytest.approx(5.0 / 24e6, rel=1e-3)
    assert drv.value == pytest.approx(50.0 / 24e6, rel=1e-3)
    assert seg.contains(5.0 / 24e6) and drv.contains(50.0 / 24e6)
    assert "outside the interval" in seg.note  # the recorded circuit has 0.144 Ω
    r_seg, r_drv = dc_resistances(tree)
    assert (r_seg, r_drv) == pytest.approx((5.0, 50.0), rel=1e-3)


def test_ir_drop_residual_beyond_tolerance_names_the_parameter(
    tree: dict[str, Any], rng: np.random.Generator
) -> None:
    case = tree["transfer"]["op_fwd_random_16"]
    drop = case["y_ideal_quantized_w"] - case["y_sim_w"]
    scale = float(np.sqrt(np.mean(drop**2)))
    case["y_sim_w"] = case["y_sim_w"] + scale * rng.standard_normal(16)
    with pytest.raises(CalibrationError, match=r"segment_ratio: first-order IR fit"):
        fit_ir_drop(tree, TAU)


def test_ir_stress_residual_names_the_stress_parameter(
    tree: dict[str, Any], rng: np.random.Generator
) -> None:
    case = tree["transfer"]["fwd_ir_stress_8"]
    drop = case["y_ideal_quantized_w"] - case["y_sim_w"]
    scale = float(np.sqrt(np.mean(drop**2)))
    case["y_sim_w"] = case["y_sim_w"] + scale * rng.standard_normal(8)
    with pytest.raises(CalibrationError, match=r"segment_ratio_ir_stress: first-order IR fit"):
        fit_ir_drop(tree, TAU)


def test_backward_ratios_recover_a_nodal_solve(tree: dict[str, Any]) -> None:
    # The backward stress case replaced by a nodal solve of its own conductances with
    # 20 Ω segments and 30 Ω drivers (the case records 14.4 Ω and 10 Ω): the fitted
    # fractions 20/14.4 and 30/10 carry over to the config's 0.144 Ω and 10 Ω on 24 MΩ.
    # On 8 devices of 240 kΩ, a_max ≈ 8²·20/240e3/2 ≈ 3e-3: tolerance 1 %.
    case = tree["transfer"]["bwd_ir_stress_8"]
    base = gokmen_vlasov_2016(rows=8, cols=8)
    line = LineConfig(r_ohm_per_um=20.0 / base.tile.pitch_um, c_f_per_um=0.2e-15)
    cfg = dataclasses.replace(
        base,
        tile=dataclasses.replace(base.tile, row_line=line, col_line=line, r_driver_ohm=30.0),
        device=dataclasses.replace(base.device, r_mean_ohm=24e4),
    )
    assert cfg.q_unit_c == pytest.approx(float(case["q_unit_c"]), rel=1e-12)
    res = nodal.read(
        cfg, case["g_pos_s"], case["g_neg_s"], case["x"], direction="backward", finite_gain=False
    )
    case["y_sim_w"] = case_read_gain(case, TAU) * res.q_c / cfg.q_unit_c
    seg, drv = fit_backward(tree, TAU, config_case=tree["transfer"]["op_fwd_random_16"])
    assert seg.value == pytest.approx(20.0 / 14.4 * 0.144 / 24e6, rel=0.01)
    assert drv.value == pytest.approx(30.0 / 10.0 * 10.0 / 24e6, rel=0.01)
    assert seg.contains(20.0 / 14.4 * 0.144 / 24e6) and drv.contains(3.0 * 10.0 / 24e6)
    assert "outside the interval" in seg.note  # the config's own 6e-9


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("fwd_ir_stress_8", r"transfer/fwd_ir_stress_<N>.*transient_size"),
        ("op_fwd_random_16", r"transfer/op_fwd_random_<N>.*op_sizes"),
        ("bwd_ir_stress_8", r"segment_ratio_backward: .*bwd_ir_stress_<N>.*ir_stress_backward"),
    ],
)
def test_ir_drop_missing_case_names_case_and_field(
    tree: dict[str, Any], case: str, message: str
) -> None:
    del tree["transfer"][case]
    with pytest.raises(MissingCaseError, match=message):
        fit_ir_drop(tree, TAU)


# --------------------------------------------------------------------------- input transfer


def _plant_transfer(tree: dict[str, Any], coefs: tuple[float, float, float]) -> None:
    case = tree["transfer"]["fwd_sinh_amplitude_8"]
    x = case["x_applied"]
    f = coefs[0] * x + coefs[1] * x**3 + coefs[2] * x**5
    case["y_sim_w"] = case_read_gain(case, TAU) * (_weights(case) @ f)


def test_input_transfer_recovers_planted_polynomial(tree: dict[str, Any]) -> None:
    _plant_transfer(tree, (1.02, 0.3, 0.05))
    params = {p.name: p for p in fit_input_transfer(tree, TAU)}
    for k, c in zip((1, 3, 5), (1.02, 0.3, 0.05), strict=True):
        assert params[f"input_transfer_c{k}"].value == pytest.approx(c, rel=1e-7, abs=EXACT)


def test_input_transfer_not_monotone_is_refused(tree: dict[str, Any]) -> None:
    # f'(x) = 1 − 3x² < 0 beyond x = 0.58
    _plant_transfer(tree, (1.0, -1.0, 0.0))
    with pytest.raises(CalibrationError, match=r"input_transfer: fitted f is not monotone"):
        fit_input_transfer(tree, TAU)


def test_input_transfer_residual_beyond_tolerance(tree: dict[str, Any]) -> None:
    case = tree["transfer"]["fwd_sinh_amplitude_8"]
    case["y_sim_w"] = case["y_sim_w"] + 0.05 * np.sign(case["y_sim_w"])
    with pytest.raises(CalibrationError, match=r"input_transfer: odd polynomial"):
        fit_input_transfer(tree, TAU)


def test_input_transfer_missing_case(tree: dict[str, Any]) -> None:
    del tree["transfer"]["fwd_sinh_amplitude_8"]
    with pytest.raises(MissingCaseError, match=r"fwd_sinh_amplitude_<N>.*transient_size"):
        fit_input_transfer(tree, TAU)


# --------------------------------------------------------------------------- output bound


def _plant_clip(tree: dict[str, Any], level: float) -> dict[str, Any]:
    case: dict[str, Any] = tree["transfer"]["fwd_ramp_saturating_8"]
    linear = case_read_gain(case, TAU) * case["y_ideal_quantized_w"]
    case["y_sim_w"] = np.clip(linear, -level, level)
    return case


def test_output_bound_recovers_planted_swing(tree: dict[str, Any]) -> None:
    # Clipped at 4 weight units of the ramp case, whose bound (its C_int) is the
    # config's α times case/config: the config's tile then reaches 4 × config α / case α
    # (quick campaign: 4 × 12 / 2.4 = 20).
    case = _plant_clip(tree, 4.0)
    ratio = tree["noise"]["parameters"]["alpha_w"] / case["parameters"]["alpha_w"]
    alpha = fit_output_bound(tree, TAU)
    assert alpha.origin == "fitted"
    assert alpha.value == pytest.approx(4.0 * ratio, rel=EXACT)
    assert alpha.residual < EXACT


def test_output_bound_spread_beyond_tolerance(tree: dict[str, Any]) -> None:
    case = _plant_clip(tree, 4.0)
    case["y_sim_w"][-1] = 4.4  # one saturated output 10 % above the others
    with pytest.raises(CalibrationError, match=r"out_bound: saturated outputs .* spread"):
        fit_output_bound(tree, TAU)


def test_output_bound_missing_case(tree: dict[str, Any]) -> None:
    del tree["transfer"]["fwd_ramp_saturating_8"]
    with pytest.raises(MissingCaseError, match=r"fwd_ramp_saturating_<N>.*transient_size"):
        fit_output_bound(tree, TAU)


# --------------------------------------------------------------------------- noise


def _small_line_gain(tree: dict[str, Any]) -> float:
    p = tree["noise_mc"]["parameters"]
    g_mean = 0.5 * (float(p["g_on_s"]) + float(p["g_off_s"]))
    n = float(tree["noise_mc"]["n_devices"])
    return gain_of(TAU, g_line_s=2 * n * g_mean, c_int_f=float(p["c_int_f"]), a0=float(p["a0"]))


def _ktc_at(case: dict[str, Any], tree: dict[str, Any]) -> float:
    """kT/C in weight units of a noise line, by hand: √(kT/C_int)·C_int/(Q_unit·gain)."""
    p = case["parameters"]
    n = float(case["n_devices"])
    g_mean = 0.5 * (float(p["g_on_s"]) + float(p["g_off_s"]))
    gain = gain_of(TAU, g_line_s=2 * n * g_mean, c_int_f=float(p["c_int_f"]), a0=float(p["a0"]))
    v2 = float(tree["ktc"]["v2_sim"])
    return math.sqrt(v2) * float(p["c_int_f"]) / (float(p["q_unit_c"]) * gain)


def _plant_noise(tree: dict[str, Any], a: float, b: float, c: float = 0.0) -> None:
    """Every noise line's σ (with kT/C) on σ² = a + b·N + c·N², the Monte Carlo on it."""
    for case in tree["noise_lines"].values():
        n = float(case["n_devices"])
        case["sigma_sim_w"] = np.float64(math.sqrt(a + b * n + c * n**2 - _ktc_at(case, tree) ** 2))
    n_mc = float(tree["noise_mc"]["n_devices"])
    sigma_mc = math.sqrt(a + b * n_mc + c * n_mc**2) * _small_line_gain(tree)
    tree["noise_mc"]["sigma_noise_w"] = np.float64(sigma_mc)
    tree["noise_mc"]["sigma_mc_w"] = np.float64(sigma_mc)


def test_noise_recovers_planted_line(tree: dict[str, Any]) -> None:
    # A straight planted line: c comes out 0 (within rounding) and a, b are the line's.
    _plant_noise(tree, 1e-4, 2e-6)
    coef, _ = fit_noise_poly(noise_points(tree, TAU), 2)
    assert coef[:2] == pytest.approx([1e-4, 2e-6], rel=EXACT)
    assert coef[2] == pytest.approx(0.0, abs=EXACT * 2e-6 / 1024)
    params = {p.name: p for p in fit_output_noise(tree, TAU)}
    assert params["out_noise_a"].value == pytest.approx(1e-4, rel=EXACT)
    assert params["out_noise_b"].value == pytest.approx(2e-6, rel=EXACT)
    assert params["out_noise_c"].value == pytest.approx(0.0, abs=EXACT * 2e-6 / 1024)
    assert params["out_noise"].value == pytest.approx(math.sqrt(1e-4 + 64e-6), rel=EXACT)
    assert params["out_noise"].residual == pytest.approx(0.0, abs=1e-6)  # points on it


def test_noise_recovers_planted_quadratic(tree: dict[str, Any]) -> None:
    # σ² = 1e-4 + 1e-6·N + 2e-10·N²: a, b and c recovered from the four sizes, and the
    # model built from them gives σ at N = 1024 as the planted curve does.
    a, b, c = 1e-4, 1e-6, 2e-10
    _plant_noise(tree, a, b, c)
    params = {p.name: p for p in fit_output_noise(tree, TAU)}
    got = [params[f"out_noise_{k}"].value for k in "abc"]
    assert got == pytest.approx([a, b, c], rel=1e-7)
    model = noise_model(params)
    assert model.sigma(1024) == pytest.approx(math.sqrt(a + 1024 * b + 1024**2 * c), rel=1e-7)
    assert params["out_noise"].value == pytest.approx(math.sqrt(a + 32 * b + 1024 * c), rel=1e-7)
    # every size's residual is in the note, the largest included
    note = params["out_noise_c"].note
    for case in tree["noise_lines"].values():
        assert f"N = {int(case['n_devices'])}: " in note


def test_noise_negative_curvature_gives_the_straight_line(tree: dict[str, Any]) -> None:
    # σ² bending down (c < 0 planted): the fit keeps c = 0 and takes the weighted line.
    _plant_noise(tree, 1e-4, 2e-6, -5e-10)
    points = noise_points(tree, TAU)
    line, _ = fit_noise_poly(points, 1)
    coef, cov = fit_nonnegative_quadratic(points)
    assert coef[2] == 0.0 and cov[2, 2] == 0.0
    assert coef[:2] == pytest.approx(line, rel=1e-12)
    # the line through a curved set misses the points, which the residual reports
    assert point_z(points, coef) > 0.1


def test_noise_point_off_the_quadratic_is_refused(tree: dict[str, Any]) -> None:
    _plant_noise(tree, 1e-4, 2e-6)
    case = tree["noise_lines"]["noise_8"]
    case["sigma_sim_w"] = case["sigma_sim_w"] * 1.3
    with pytest.raises(CalibrationError, match=r"out_noise: σ² = a \+ b·N \+ c·N² misses"):
        fit_output_noise(tree, TAU)


def test_noise_missing_lines_names_case_and_field(tree: dict[str, Any]) -> None:
    del tree["noise_lines"]
    with pytest.raises(
        MissingCaseError, match=r"out_noise: .*'noise_lines/noise_<N>'.*noise_sizes"
    ):
        fit_output_noise(tree, TAU)


def test_noise_needs_three_sizes(tree: dict[str, Any]) -> None:
    del tree["noise_lines"]["noise_8"], tree["noise_lines"]["noise_32"]
    with pytest.raises(CalibrationError, match=r"out_noise: noise_lines has 2 sizes .* at least 3"):
        fit_output_noise(tree, TAU)


def test_noise_monte_carlo_disagreement_names_the_parameter(tree: dict[str, Any]) -> None:
    _plant_noise(tree, 1e-4, 2e-6)
    tree["noise_mc"]["sigma_mc_w"] = tree["noise_mc"]["sigma_noise_w"] * 1.5
    with pytest.raises(CalibrationError, match=r"out_noise: Monte Carlo .* disagrees"):
        fit_output_noise(tree, TAU)


def test_noise_missing_monte_carlo(tree: dict[str, Any]) -> None:
    del tree["noise_mc"]
    with pytest.raises(MissingCaseError, match=r"'noise_mc'.*noise_mc_trials"):
        fit_output_noise(tree, TAU)


def test_ktc_far_from_kt_over_c_is_refused(tree: dict[str, Any]) -> None:
    tree["ktc"]["v2_sim"] = tree["ktc"]["v2_analytic"] * 1.1
    with pytest.raises(CalibrationError, match=r"out_noise_ktc: ngspice kT/C differs"):
        ktc_sigma(tree, TAU)


# --------------------------------------------------------------------------- update


def _plant_update(tree: dict[str, Any], k: float, a_up: float, a_down: float) -> None:
    for name, a in (("rectifying_k0p1_up", a_up), ("rectifying_k0p1_down", -a_down)):
        case = tree["update"][name]
        case["dg_s"] = a * (case["n_full"] + k * case["n_half"])


def test_update_recovers_planted_device(tree: dict[str, Any]) -> None:
    dg_unit = float(tree["update"]["rectifying_k0p1_up"]["parameters"]["dg_unit_s"])
    _plant_update(tree, 0.2, 1.1e-3 * dg_unit, 0.9e-3 * dg_unit)
    params = {p.name: p for p in fit_update(tree)}
    assert params["k_half_select"].value == pytest.approx(0.2, rel=EXACT)
    assert params["dw_min"].value == pytest.approx(1e-3, rel=EXACT)
    assert params["up_down_ratio"].value == pytest.approx(1.1 / 0.9, rel=1e-7)
    assert params["up_down"].value == pytest.approx(0.1, rel=1e-7)  # (1+u)/(1−u) = 11/9


def test_update_imbalance_not_biased_by_pulse_edges(tree: dict[str, Any]) -> None:
    """A symmetric device whose consecutive-slot pulses add to Δg (edges merging, as
    ngspice shows: +3 %, +0.7 %, +0.15 % of a pulse per full-full, full-half, half-half
    pair): the joint fit with the edge terms gives u = 0, where the per-cycle count fits
    read the cycles' different numbers of such pairs as an imbalance."""
    dg_unit = float(tree["update"]["rectifying_k0p1_up"]["parameters"]["dg_unit_s"])
    a = 1e-3 * dg_unit
    for name, sign in (("rectifying_k0p1_up", 1.0), ("rectifying_k0p1_down", -1.0)):
        case = tree["update"][name]
        e = edge_terms(case)
        assert e is not None
        shape = case["n_full"].shape
        extra = (e @ np.array([0.03, 0.007, 0.0015])).reshape(shape)
        case["dg_s"] = sign * a * (case["n_full"] + 0.1 * case["n_half"] + extra)
    params = {p.name: p for p in fit_update(tree)}
    assert params["up_down"].value == pytest.approx(0.0, abs=1e-9)
    assert params["up_down_ratio"].value == pytest.approx(1.0, abs=1e-9)
    # the per-cycle count fits read an imbalance into the same data
    a_cycle = []
    for name in ("rectifying_k0p1_up", "rectifying_k0p1_down"):
        case = tree["update"][name]
        x = np.column_stack([case["n_full"].ravel(), case["n_half"].ravel()])
        a_cycle.append(abs(np.linalg.lstsq(x, case["dg_s"].ravel(), rcond=None)[0][0]))
    assert abs(a_cycle[0] / a_cycle[1] - 1.0) > 1e-4
    note = params["up_down"].note
    assert "consecutive-slot pulse edges" in note and "a_up/a_down = " in note


def test_update_imbalance_without_bit_streams_uses_the_counts(tree: dict[str, Any]) -> None:
    dg_unit = float(tree["update"]["rectifying_k0p1_up"]["parameters"]["dg_unit_s"])
    _plant_update(tree, 0.2, 1.1e-3 * dg_unit, 0.9e-3 * dg_unit)
    for name in ("rectifying_k0p1_up", "rectifying_k0p1_down"):
        del tree["update"][name]["row_bits"]
    params = {p.name: p for p in fit_update(tree)}
    assert params["up_down"].value == pytest.approx(0.1, rel=1e-7)
    assert "no bit streams" in params["up_down"].note


def test_update_residual_beyond_tolerance_names_the_parameter(
    tree: dict[str, Any], rng: np.random.Generator
) -> None:
    case = tree["update"]["rectifying_k0p1_up"]
    case["dg_s"] = case["dg_s"] * (1.0 + 0.2 * rng.standard_normal(case["dg_s"].shape))
    with pytest.raises(CalibrationError, match=r"k_half_select: Δg = a·n_full"):
        fit_update(tree)


def test_update_missing_k_names_case_and_field(tree: dict[str, Any]) -> None:
    with pytest.raises(MissingCaseError, match=r"update/<response>_k0p3_up.*update_k"):
        fit_update(tree, k_model=0.3)


def test_update_refuses_k_cases_with_device_spread(tree: dict[str, Any]) -> None:
    case = tree["update"]["rectifying_k0p1_up"]
    case["rate_factor"] = case["rate_factor"] * 1.1
    with pytest.raises(
        CalibrationError, match=r"k_half_select: update/rectifying_k0p1_up .*\(rate_factor ≠ 1\)"
    ):
        fit_update(tree)


def _plant_spread(tree: dict[str, Any], factors: np.ndarray) -> None:
    """Both spread cases: each device's Δg per pulse is the mean rate times its factor."""
    for case in tree["update_dtod"].values():
        case["rate_factor"] = factors
        case["dg_per_pulse_s"] = float(case["dg_model_s"]) * factors


def test_spread_recovers_planted_devices(tree: dict[str, Any], rng: np.random.Generator) -> None:
    # 4096 devices drawn with σ = 0.2: the fit is the sample's relative std (ddof = 1) to
    # float rounding, and the χ² interval (±2 %) holds the population's 0.2 for this draw.
    factors = 1.0 + 0.2 * rng.standard_normal((64, 64))
    _plant_spread(tree, factors)
    spread = fit_device_spread(tree)
    assert spread.value == pytest.approx(
        float(np.std(factors, ddof=1) / np.mean(factors)), rel=EXACT
    )
    assert spread.contains(0.2)
    assert spread.residual == pytest.approx(0.0, abs=EXACT)
    assert "drew them with dw_min_dtod = 0.3" in spread.note  # the recorded model value


def test_spread_observed_unlike_drawn_is_refused(
    tree: dict[str, Any], rng: np.random.Generator
) -> None:
    factors = 1.0 + 0.2 * rng.standard_normal((8, 8))
    _plant_spread(tree, factors)
    tree["update_dtod"]["dtod_down"]["rate_factor"] = np.roll(factors, 1)
    with pytest.raises(CalibrationError, match=r"dw_min_dtod: observed rate factors differ"):
        fit_device_spread(tree)


@pytest.mark.parametrize("word", ["up", "down"])
def test_spread_missing_case_names_case_and_field(tree: dict[str, Any], word: str) -> None:
    del tree["update_dtod"][f"dtod_{word}"]
    with pytest.raises(
        MissingCaseError, match=rf"dw_min_dtod: .*'update_dtod/dtod_{word}'.*update_dtod_size"
    ):
        fit_device_spread(tree)


def _euler_bound(
    g0: np.ndarray, polarity: int, *, bound: float, margin: float, rate: float, pulses: int
) -> np.ndarray:
    """Δg of the ramp dg/dn = ±rate·min(1, distance/margin), stepped by Euler with 2000
    steps per pulse (an independent check of the closed form; error ~rate/2000)."""
    g = g0.astype(np.float64).copy()
    steps = 2000 * pulses
    for _ in range(steps):
        distance = np.maximum(polarity * (bound - g), 0.0)
        g += polarity * rate / 2000 * np.minimum(1.0, distance / margin)
    out: np.ndarray = g - g0
    return out


def _plant_bounds(
    tree: dict[str, Any], g_on: float, g_off: float, margin: float, rate: float
) -> None:
    for case, bound, polarity in (
        (tree["update_bound"]["bound_up"], g_on, 1),
        (tree["update_bound"]["bound_down"], g_off, -1),
    ):
        bl = int(case["n_pulses"])
        dg = _euler_bound(
            np.asarray(case["g0_s"]),
            polarity,
            bound=bound,
            margin=margin * (g_on - g_off),
            rate=rate,
            pulses=bl,
        )
        case["dg_s"] = dg
        case["dg_per_pulse_s"] = dg / bl


def test_bounds_recover_planted_ramp(tree: dict[str, Any]) -> None:
    # Bounds 0.1 % inside the recorded ones, a 0.8 % margin and a rate 10 % above the model's:
    # the closed-form fit recovers them from the Euler-stepped data to the stepping error
    # (1e-4 of a pulse, 1e-5 of the margin; tolerance 1e-3 relative on the margin, 1e-4 of
    # G_on − G_off, a sixtieth of a pulse, on the bounds).
    case = tree["update_bound"]["bound_up"]
    g_on_rec, g_off_rec = float(case["g_on_s"]), float(case["g_off_s"])
    span = g_on_rec - g_off_rec
    g_on, g_off = g_on_rec - 0.001 * span, g_off_rec + 0.001 * span
    rate = 1.1 * float(case["dg_model_s"])
    _plant_bounds(tree, g_on, g_off, 0.008, rate)
    params = {p.name: p for p in fit_bounds(tree)}
    assert params["g_on"].value == pytest.approx(g_on, abs=1e-4 * span)
    assert params["g_off"].value == pytest.approx(g_off, abs=1e-4 * span)
    dg_unit = float(case["parameters"]["dg_unit_s"])
    assert params["w_max"].value == pytest.approx((g_on - g_off) / dg_unit, rel=1e-4)
    assert params["w_min"].value == pytest.approx(-(g_on - g_off) / dg_unit, rel=1e-4)
    assert params["bound_margin"].value == pytest.approx(0.008, rel=1e-3)
    assert params["w_max"].residual < 1e-3


def test_bound_moves_closed_form_matches_stepping() -> None:
    # Devices 0 … 20 pulses from G_on, margin 6 pulses, 10 pulses: closed form against Euler.
    rate, margin, bl = 1.0, 6.0, 10
    d = np.linspace(0.0, 20.0, 21)
    stepped = _euler_bound(100.0 - d, 1, bound=100.0, margin=margin, rate=rate, pulses=bl)
    closed = bound_moves(d, margin_s=margin, rate_s=rate, n_pulses=bl)
    # Euler's first-order error, ~step/(2·margin) of the distance decayed: 9e-5 pulses here
    assert closed == pytest.approx(stepped, abs=5e-4)
    assert closed[0] == 0.0 and closed[-1] == pytest.approx(bl, rel=1e-12)


def test_bounds_misfit_beyond_tolerance_names_the_parameter(
    tree: dict[str, Any], rng: np.random.Generator
) -> None:
    case = tree["update_bound"]["bound_down"]
    case["dg_s"] = case["dg_s"] * (1.0 + 0.3 * rng.standard_normal(case["dg_s"].shape))
    with pytest.raises(CalibrationError, match=r"w_max: the bound ramp leaves"):
        fit_bounds(tree)


def test_bounds_without_devices_near_the_bound_are_refused(tree: dict[str, Any]) -> None:
    # Every device moves its full BL pulses: nothing shows where the bound or the ramp is.
    case = tree["update_bound"]["bound_up"]
    case["dg_s"] = np.full_like(case["dg_s"], 10 * float(case["dg_model_s"]))
    with pytest.raises(CalibrationError, match=r"w_max: .*bound_up: the devices do not see"):
        fit_bounds(tree)


def test_backward_ratio_without_recorded_resistance_is_refused(tree: dict[str, Any]) -> None:
    tree["transfer"]["bwd_ir_stress_8"]["parameters"]["r_driver_ohm"] = np.float64(0.0)
    with pytest.raises(CalibrationError, match=r"driver_ratio_backward: .* records a driver"):
        fit_backward(tree, TAU, config_case=tree["transfer"]["op_fwd_random_16"])


def test_bounds_missing_case_names_case_and_field(tree: dict[str, Any]) -> None:
    del tree["update_bound"]
    with pytest.raises(
        MissingCaseError, match=r"w_max: .*'update_bound/bound_up'.*update_bound_span_pulses"
    ):
        fit_bounds(tree)


# --------------------------------------------------------------------------- records


def test_calibration_errors_live_with_the_others() -> None:
    # rpucircuit.errors holds the hierarchy; the calibration package re-exports the classes.
    assert CalibrationError is errors.CalibrationError
    assert MissingCaseError is base.MissingCaseError is errors.MissingCaseError
    assert issubclass(MissingCaseError, CalibrationError)
    assert issubclass(CalibrationError, errors.RpuError)


def test_fitted_parameter_refuses_inverted_interval() -> None:
    with pytest.raises(CalibrationError, match=r"x: interval .* has lo > hi"):
        FittedParameter(
            name="x",
            value=1.0,
            unit="1",
            sources=("a",),
            residual=0.0,
            tolerance=1.0,
            interval=(2.0, 0.0),
            origin="fitted",
        )


def test_fitted_parameter_refuses_unknown_origin() -> None:
    with pytest.raises(CalibrationError, match=r"x: origin = 'guessed'"):
        FittedParameter(
            name="x",
            value=1.0,
            unit="1",
            sources=("a",),
            residual=0.0,
            tolerance=1.0,
            interval=(1.0, 1.0),
            origin="guessed",  # type: ignore[arg-type]
        )


def test_fitted_parameter_refuses_empty_name() -> None:
    with pytest.raises(CalibrationError, match=r"name must not be empty"):
        FittedParameter(
            name="",
            value=1.0,
            unit="1",
            sources=(),
            residual=0.0,
            tolerance=1.0,
            interval=(1.0, 1.0),
            origin="config",
        )


def test_least_squares_refuses_inseparable_terms() -> None:
    design = np.column_stack([np.arange(4.0), 2.0 * np.arange(4.0)])
    with pytest.raises(CalibrationError, match=r"p: the cases cannot separate"):
        least_squares(design, np.arange(4.0), parameter="p")


def test_least_squares_refuses_too_few_points() -> None:
    with pytest.raises(CalibrationError, match=r"p: need at least 2 data points"):
        least_squares(np.ones((1, 2)), np.ones(1), parameter="p")


def test_least_squares_refuses_nan() -> None:
    with pytest.raises(CalibrationError, match=r"p: the data contain NaN"):
        least_squares(np.array([[1.0], [math.nan]]), np.ones(2), parameter="p")


def test_line_conductance_counts_both_arrays(tree: dict[str, Any]) -> None:
    case = tree["transfer"]["fwd_random_8"]
    g_mean = 0.5 * (float(case["parameters"]["g_on_s"]) + float(case["parameters"]["g_off_s"]))
    # G± = G_mean ± w·ΔG/2: the pair sums to 2·G_mean per cross point, 8 per line
    assert line_conductance_s(case) == pytest.approx(16 * g_mean, rel=1e-12)


# --------------------------------------------------------------------------- more refusals


def test_read_gain_without_signal_is_refused(tree: dict[str, Any]) -> None:
    tree["transfer"]["fwd_random_8"]["y_ideal_quantized_w"] = np.zeros(8)
    with pytest.raises(CalibrationError, match=r"tau_sum_forward_s: case 'fwd_random_8' has no"):
        fit_read_gain(tree, "forward")


def test_read_gain_needs_a_transient_case(tree: dict[str, Any]) -> None:
    for name in ("fwd_random_8", "fwd_random_32x32", "fwd_no_line_8"):
        tree["transfer"][name]["analysis"] = "op"
    with pytest.raises(CalibrationError, match=r"no transient case among transfer/fwd_random"):
        fit_read_gain(tree, "forward")


def test_config_tile_is_required(tree: dict[str, Any]) -> None:
    for name in ("noise", "ktc", "noise_mc", "timing"):
        del tree[name]
    with pytest.raises(CalibrationError, match=r"config tile: the file holds none of noise"):
        fit_read_gain(tree, "forward")


def test_time_encoded_read_beyond_tolerance(tree: dict[str, Any], rng: np.random.Generator) -> None:
    case = tree["transfer"]["fwd_sinh_time_8"]
    case["y_sim_w"] = case["y_sim_w"] * (1.0 + 0.05 * rng.standard_normal(8))
    with pytest.raises(CalibrationError, match=r"input_gain_time: time-encoded sinh read"):
        fit_input_transfer(tree, TAU)


def test_time_encoded_case_missing(tree: dict[str, Any]) -> None:
    del tree["transfer"]["fwd_sinh_time_8"]
    with pytest.raises(MissingCaseError, match=r"fwd_sinh_time_<N>.*transient_size"):
        fit_input_transfer(tree, TAU)


def test_noise_missing_noise_case(tree: dict[str, Any]) -> None:
    del tree["noise"]
    with pytest.raises(MissingCaseError, match=r"out_noise: .* no case 'noise'"):
        fit_output_noise(tree, TAU)


def test_ktc_missing_case(tree: dict[str, Any]) -> None:
    del tree["ktc"]
    with pytest.raises(MissingCaseError, match=r"out_noise_ktc: .* no case 'ktc'"):
        ktc_sigma(tree, TAU)


# --------------------------------------------------------------------------- IR regressors


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_regressors_reduce_to_the_model_paths_map_at_the_mean(direction: str) -> None:
    # One array, every device at g: the first-order drop must be the model path's map
    # (rpucircuit.model.irdrop, an independent closed form) times W, to float rounding.
    rows, cols, g, dg_unit = 5, 7, 1e-6, 2e-7
    x = np.linspace(-1.0, 1.0, cols if direction == "forward" else rows)
    a_seg, a_drv = first_order_regressors([np.full((rows, cols), g)], x, dg_unit, direction)
    r_seg, r_drv = 3.0, 11.0
    model = IRDropModel(segment_ratio=r_seg * g, driver_ratio=r_drv * g)
    a = first_order_attenuation(model, rows, cols, direction)  # type: ignore[arg-type]
    w = np.full((rows, cols), g / dg_unit)
    mat = w * a if direction == "forward" else (w * a).T
    assert r_seg * a_seg + r_drv * a_drv == pytest.approx(mat @ x, rel=1e-12)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_regressors_match_a_nodal_solve(direction: str, rng: np.random.Generator) -> None:
    # Random pair on a 6×5 tile with 1 kΩ segments or drivers (a_max ≈ 1e-3): the nodal
    # solve's drop equals the first-order prediction within a_max of the drop.
    base = gokmen_vlasov_2016(rows=6, cols=5)
    d = base.device
    w = rng.uniform(-0.6, 0.6, (6, 5))
    gp, gn = d.g_mean_s + 0.5 * w * d.dg_unit_s, d.g_mean_s - 0.5 * w * d.dg_unit_s
    x = rng.uniform(-1.0, 1.0, 5 if direction == "forward" else 6)
    x_q = np.round(x * 126) / 126
    a_seg, a_drv = first_order_regressors([gp, gn], x_q, d.dg_unit_s, direction)
    for r_seg, r_drv in ((1e3, 0.0), (0.0, 1e3)):
        line = LineConfig(r_ohm_per_um=r_seg / base.tile.pitch_um, c_f_per_um=0.2e-15)
        cfg = dataclasses.replace(
            base,
            tile=dataclasses.replace(base.tile, row_line=line, col_line=line, r_driver_ohm=r_drv),
        )
        res = nodal.read(cfg, gp, gn, x, direction=direction, finite_gain=False)  # type: ignore[arg-type]
        drop = (res.q_ideal_c - res.q_c) / cfg.q_unit_c
        predicted = r_seg * a_seg + r_drv * a_drv
        scale = float(np.max(np.abs(drop)))
        assert np.max(np.abs(predicted - drop)) <= 2e-3 * scale
