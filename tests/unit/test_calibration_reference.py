"""Calibration fits on the committed reference campaign (a quick campaign of paper A's
tile, ``sim_data/reference/characterization.h5``), whose circuit config is known.

Every tolerance below says where it comes from; the values the fits give on this file are
quoted in the comments so a change in them shows up as a change in a number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rpucircuit.calibration import FittedParameter, by_name, fit_all
from rpucircuit.calibration.ir_drop import fit_case, mean_map_error, weight_map_error
from rpucircuit.calibration.model import noise_model
from rpucircuit.calibration.noise import ANALYTIC_SIZES, ANALYTIC_TOL_W, analytic_sigma
from rpucircuit.circuit import characterize as ch

REFERENCE = Path(__file__).resolve().parents[2] / "sim_data" / "reference" / ch.RESULT_NAME

# paper A's tile as the reference campaign records it (rpucircuit.config.tile.gokmen_vlasov_2016)
R_MEAN_OHM = 24e6
R_SEG_OHM = 0.36 * 0.4
R_DRIVER_OHM = 10.0
G_ON_S = 2.0 / R_MEAN_OHM * 8.0 / 9.0  # G_mean·2r/(r + 1) with on/off ratio r = 8
G_OFF_S = G_ON_S / 8.0
DW_MIN_DTOD = 0.3  # the reference config's device.dw_min_dtod (paper A's preset)
SINH_GAIN = math.sinh(2.0) / 2.0  # (V0/V_read)·sinh(V_read/V0) with V_read = 1 V, V0 = 0.5 V


@pytest.fixture(scope="module")
def tree() -> dict[str, Any]:
    tree, _ = ch.load(REFERENCE)
    return tree


@pytest.fixture(scope="module")
def fitted(tree: dict[str, Any]) -> dict[str, FittedParameter]:
    return by_name(fit_all(tree))


def test_every_parameter_is_complete_and_within_its_tolerance(
    fitted: dict[str, FittedParameter],
) -> None:
    for p in fitted.values():
        assert p.sources, p.name
        lo, hi = p.interval
        assert lo <= p.value <= hi, p.name
        if p.origin == "fitted":
            assert p.residual <= p.tolerance, p.name
        else:
            assert math.isnan(p.residual) and lo == hi == p.value, p.name


def test_k_within_two_percent_of_the_device_model(fitted: dict[str, FittedParameter]) -> None:
    # 2 %: paper A's symmetry scale; the SPICE cycles give 0.1014 (up) and 0.1009 (down),
    # the pulse edges shifting the half-selected response slightly.
    k = fitted["k_half_select"]
    assert k.value == pytest.approx(0.1, rel=0.02)
    assert k.contains(0.1)


def test_update_step_and_symmetry_against_the_device_model(
    fitted: dict[str, FittedParameter],
) -> None:
    # Δw_min: the rectifying device gives 2 % less per pulse than its nominal 0.001 (0.98e-3;
    # the sinh rate on the pulse edges); 3 % bounds that. Up/down: the device model is
    # symmetric (ratio 1). The joint fit with the consecutive-slot terms gives u = 1.9e-5
    # (the full campaign's cycles give 2.2e-5); the per-cycle count fits gave -7e-5 here
    # and 2.9e-3 on the full campaign, each cycle's a absorbing its own bit streams'
    # consecutive pulses. 1e-4 bounds u, far inside paper A's 2 % symmetry requirement.
    assert fitted["dw_min"].value == pytest.approx(1e-3, rel=0.03)
    assert fitted["up_down_ratio"].value == pytest.approx(1.0, abs=2e-4)
    assert fitted["up_down"].value == pytest.approx(0.0, abs=1e-4)
    assert "consecutive-slot pulse edges" in fitted["up_down"].note
    for name in ("dw_min_ctoc", "w_bound_dtod", "up_down_dtod"):
        assert fitted[name].origin == "config"


def test_k_cases_have_identical_devices(tree: dict[str, Any]) -> None:
    # The count fit needs one rate for every device: the campaign runs the k cases with
    # dw_min_dtod = 0, so every rate_factor is exactly 1.
    for case in tree["update"].values():
        assert np.all(np.asarray(case["rate_factor"]) == 1.0)


def test_spread_within_its_chi2_interval_of_the_configured_one(
    tree: dict[str, Any], fitted: dict[str, FittedParameter]
) -> None:
    # 64 devices drawn with dw_min_dtod = 0.3: the sample gives 0.274, and the χ² 95 %
    # interval of 63 degrees of freedom (0.233 … 0.331) holds the configured 0.3.
    spread = fitted["dw_min_dtod"]
    assert spread.origin == "fitted"
    assert spread.contains(DW_MIN_DTOD)
    # Independent: the campaign's own spread_rel (same devices, one polarity); the two
    # polarities observe the same factors to the pulse edges' 1e-6 (the fit's residual).
    assert spread.value == pytest.approx(
        float(tree["update_dtod"]["dtod_up"]["spread_rel"]), rel=1e-4
    )
    assert spread.residual < 1e-4


def test_bounds_recover_g_on_g_off_and_the_margin(fitted: dict[str, FittedParameter]) -> None:
    # The bound ramp's closed form fits the full-select cases to 2e-7 of their Δg; the
    # bounds come out within 1e-8 of the device model's. Tolerance: 1e-4 of G_on − G_off, a
    # hundredth of the margin (the bound is located far inside the ramp it is seen through).
    span = G_ON_S - G_OFF_S
    assert fitted["g_on"].value == pytest.approx(G_ON_S, abs=1e-4 * span)
    assert fitted["g_off"].value == pytest.approx(G_OFF_S, abs=1e-4 * span)
    assert fitted["g_on"].contains(G_ON_S) and fitted["g_off"].contains(G_OFF_S)
    # w_max = (G_on − G_off)/ΔG_unit = 0.6 by the weight scale's definition (config/tile.py)
    assert fitted["w_max"].value == pytest.approx(0.6, rel=1e-4)
    assert fitted["w_min"].value == pytest.approx(-0.6, rel=1e-4)
    assert fitted["w_max"].origin == fitted["w_min"].origin == "fitted"
    # margin 0.01 of G_on − G_off (paper A's device, netlists/rpu_devices.lib): to 1e-6
    assert fitted["bound_margin"].value == pytest.approx(0.01, rel=1e-4)
    assert fitted["bound_margin"].contains(0.01)


def test_ir_ratios_contain_the_config_lines_and_devices(
    fitted: dict[str, FittedParameter],
) -> None:
    # The DC point resolves the paper-A ratios (6e-9, 4.2e-7) to ~1e-6 relative; the
    # interval adds the first-order model's error a_max.
    assert fitted["segment_ratio"].contains(R_SEG_OHM / R_MEAN_OHM)
    assert fitted["driver_ratio"].contains(R_DRIVER_OHM / R_MEAN_OHM)
    assert fitted["segment_ratio"].value == pytest.approx(R_SEG_OHM / R_MEAN_OHM, rel=1e-4)
    # The stress case: lines ×100, devices ÷100.
    assert fitted["segment_ratio_ir_stress"].contains(100 * R_SEG_OHM / (R_MEAN_OHM / 100))
    assert fitted["driver_ratio_ir_stress"].contains(R_DRIVER_OHM / (R_MEAN_OHM / 100))
    assert "mean map" in fitted["segment_ratio_ir_stress"].note
    # The backward stress case, scaled back to the config's lines: 5.99e-9 ± 1.5 % and
    # 4.04e-7 ± 9 % (the driver's share of the drop is small on 8 devices).
    assert fitted["segment_ratio_backward"].contains(R_SEG_OHM / R_MEAN_OHM)
    assert fitted["driver_ratio_backward"].contains(R_DRIVER_OHM / R_MEAN_OHM)
    assert fitted["segment_ratio_backward"].sources == ("transfer/bwd_ir_stress_8",)


@pytest.mark.parametrize(
    ("name", "tau_name"),
    [("fwd_ir_stress_8", "tau_sum_forward_s"), ("bwd_ir_stress_8", "tau_sum_backward_s")],
)
def test_ir_stress_mean_map_and_data_dependent_map(
    tree: dict[str, Any], fitted: dict[str, FittedParameter], name: str, tau_name: str
) -> None:
    """The model path's mean map leaves out the drop's dependence on each line's own
    devices: on the IR-stress cases (random weights) it misses 28 % (forward) and 27 %
    (backward) of the drop, with the fitted ratios. The first-order map with the case's own
    line sums (irdrop.weight_drop) misses what the fit's residual says, 0.06 % and 0.14 %:
    what is missing is that term, not a wrong ratio."""
    case = tree["transfer"][name]
    fit = fit_case(name, case, fitted[tau_name].value)
    assert 0.2 < mean_map_error(case, fit) < 0.35
    data = weight_map_error(case, fit)
    assert data < 0.005
    assert data == pytest.approx(fit.residual, rel=0.05)


def test_read_gain_close_to_the_config_op_amp(fitted: dict[str, FittedParameter]) -> None:
    # Config: τ_sum = 1/(2π·GBW) + t_meas/(2(1+A0)) = 1.632e-10 s. With the drivers' IR drop
    # taken out, the macro-model gives 1.651e-10 s forward and 1.647e-10 s backward (an
    # implied GBW 1.2 % below the config's; a 12-device campaign gives the same to 0.1 %, so
    # τ_sum does not depend on the size); 3 % bounds the first-order summing-node model's
    # error. On the config's 32-device lines: a gain of 0.99567 against 0.99572.
    tau_cfg = 1.0 / (2.0 * math.pi * 1e9) + 80e-9 / (2.0 * (1.0 + 1e4))
    for direction in ("forward", "backward"):
        assert fitted[f"tau_sum_{direction}_s"].value == pytest.approx(tau_cfg, rel=0.03)
        assert fitted[f"read_gain_{direction}"].value == pytest.approx(0.99572, abs=2e-4)


def test_input_transfer_follows_the_sinh_device(fitted: dict[str, FittedParameter]) -> None:
    # Amplitude: f(1) = c1 + c3 + c5 against sinh(2)/2 = 1.8134; the degree-5 polynomial
    # fitted on 8 outputs gives 1.8102 (0.2 %); 0.5 % bounds it. c1 is the small-signal
    # slope, 1 for the device's small-signal conductance (0.9998).
    c1, c3, c5 = (fitted[f"input_transfer_c{k}"].value for k in (1, 3, 5))
    assert c1 == pytest.approx(1.0, rel=1e-2)
    assert c1 + c3 + c5 == pytest.approx(SINH_GAIN, rel=5e-3)
    # Time encoding: one gain, 1.8094 against 1.8134 (the pulse edges, 0.2 %): 0.5 %.
    assert fitted["input_gain_time"].value == pytest.approx(SINH_GAIN, rel=5e-3)


def test_output_bound_observed_in_the_quick_campaign(
    fitted: dict[str, FittedParameter],
) -> None:
    # The ramp case's bound is 8 rows × w_max 0.6 / ramp_overdrive 2 = 2.4, so its outer
    # rows (4.8 and 3.4) clip on both sides: 4 saturated outputs. The integrator clamps at
    # v_out_max_v = 1 V, so they agree to rounding and scale to the config's α = 12
    # (1e-6 bounds the rounding).
    alpha = fitted["out_bound"]
    assert alpha.origin == "fitted"
    assert alpha.value == pytest.approx(12.0, rel=1e-6)
    assert "from 4 saturated outputs" in alpha.note


def test_periphery_steps_from_config(fitted: dict[str, FittedParameter]) -> None:
    assert fitted["inp_res"].value == pytest.approx(1.0 / 252.0, rel=1e-12)
    assert fitted["out_res"].value == pytest.approx(1.0 / 512.0, rel=1e-12)


def test_noise_quadratic_against_the_analytic_budget(
    tree: dict[str, Any], fitted: dict[str, FittedParameter]
) -> None:
    model = noise_model(fitted)
    a, b, c = model.a, model.b, model.c
    ktc = fitted["out_noise_ktc"].value
    # kT/C: ngspice against kT/C_int (0.1 %), within the 2 % tolerance.
    assert ktc == pytest.approx(float(tree["noise"]["budget"]["ktc_w"]), rel=0.02)
    # Independent reference at the simulated sizes: the analytic budget each .noise line
    # records (device, op-amp and kT/C); .noise and the budget agree to 0.7 % there, so the
    # fitted curve meets it within the 2 % point uncertainty.
    for case in tree["noise_lines"].values():
        n = int(case["n_devices"])
        bud = case["budget"]
        analytic = math.sqrt(
            float(bud["device_thermal_w"]) ** 2
            + float(bud["opamp_w"]) ** 2
            + float(bud["ktc_w"]) ** 2
        )
        assert model.sigma(n) == pytest.approx(analytic, rel=0.02)
        # the budget recomputed from the recorded circuit is the one the case holds
        assert analytic_sigma(tree, n) == pytest.approx(analytic, rel=1e-9)
    # Beyond the simulated sizes (N ≤ 128) the curve is extrapolated: the analytic budget
    # of the recorded circuit at N = 1024 and 2048 is the reference, within ANALYTIC_TOL_W
    # (0.006 w). Measured: 0.0343 against 0.0357 (−3.8 %) at 1024, −6.3 % at 2048; the
    # straight line of the earlier model missed 1024 by 13 %.
    for n in ANALYTIC_SIZES:
        assert model.sigma(n) == pytest.approx(analytic_sigma(tree, n), abs=ANALYTIC_TOL_W)
        assert model.sigma(n) == pytest.approx(analytic_sigma(tree, n), rel=0.08)
    # the N² part is resolved: c > 0, and σ(1024) is 10 % above the line through a and b
    assert c > 0.0 and a > 0.0 and b > 0.0
    assert model.sigma(1024) > 1.1 * math.sqrt(a + 1024 * b)
    # The quadratic passes through the four sizes (worst |z| 1e-4; tolerance 3), each
    # size's residual is in the note, and the Monte Carlo at N = 4 agrees (z = -0.51).
    assert fitted["out_noise"].residual < 0.01
    for k in "abc":
        assert fitted[f"out_noise_{k}"].residual == fitted["out_noise"].residual
    note = fitted["out_noise_c"].note
    for n in (4, 8, 32, 128):
        assert f"N = {n}: " in note
    assert "z = -0.51" in note
    assert "from 2.26e-05 w² at N = 4 to 3.4e-05 w² at N = 128" in note
    assert fitted["out_noise_adc"].value == pytest.approx(24.0 / 512 / math.sqrt(12), rel=0.01)
