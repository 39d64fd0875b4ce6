"""Analytic references checked against hand-computed values and independent solutions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from rpucircuit.circuit import analytic as an

# Paper A's line: 0.36 Ω/µm, 0.2 fF/µm, 400 nm pitch, 1 ns update pulse.
R_UM, C_UM, PITCH_UM = 0.36, 0.2e-15, 0.4


def test_line_rc_hand_value() -> None:
    # 1 mm: 360 Ω × 200 fF = 72 ps; exact arithmetic, float rounding only (1e-12).
    assert an.line_rc_s(1000.0, R_UM, C_UM) == pytest.approx(72e-12, rel=1e-12)


def test_distributed_and_elmore_delay_of_ngspice_md_line() -> None:
    # NGSPICE.md's 4096-segment line: R = 10240 Ω, C = 819.2 fF, 1 kΩ driver.
    # By hand: 0.377·8.389 ns + 0.693·0.8192 ns = 3.730 ns; Elmore (ladder)
    # 8.389 ns·4097/8192 + 0.8192 ns = 5.015 ns. Rounding of the hand values: 1e-3.
    r, c = 10240.0, 819.2e-15
    assert an.distributed_delay_50_s(r, c, r_driver_ohm=1e3) == pytest.approx(3.730e-9, rel=1e-3)
    assert an.elmore_delay_s(r, c, r_driver_ohm=1e3, n_segments=4096) == pytest.approx(
        5.0145e-9, rel=1e-3
    )
    # The distributed Elmore (no segment count) is R·C/2 + R_drv·C exactly.
    assert an.elmore_delay_s(r, c, r_driver_ohm=1e3) == pytest.approx(
        r * c / 2 + 1e3 * c, rel=1e-12
    )


def test_elmore_ladder_matches_first_moment_of_an_independent_ladder_solve() -> None:
    # Independent reference: Elmore delay = Σ_k (resistance shared with node N)·C_k,
    # computed by brute force over the ladder's nodes. Exact up to float rounding (1e-12).
    n, r_seg, c_seg, r_drv, c_load = 7, 3.0, 2e-15, 50.0, 5e-15
    caps = np.full(n, c_seg)
    caps[-1] += c_load
    shared = r_drv + r_seg * np.arange(1, n + 1)
    expected = float(np.sum(shared * caps))
    got = an.elmore_delay_s(n * r_seg, n * c_seg, r_driver_ohm=r_drv, c_load_f=c_load, n_segments=n)
    assert got == pytest.approx(expected, rel=1e-12)


def test_elmore_rejects_zero_segments() -> None:
    with pytest.raises(ValueError, match="n_segments = 0"):
        an.elmore_delay_s(1.0, 1.0, n_segments=0)


def test_max_line_length_and_array_size_paper_a() -> None:
    # Elmore: L = sqrt(2·0.1 ns / (0.36 Ω/µm · 0.2 fF/µm)) = 1666.67 µm → 4166 → 4096.
    assert an.max_line_length_um(1e-10, R_UM, C_UM) == pytest.approx(1666.667, rel=1e-6)
    assert an.max_array_size(1e-9, PITCH_UM, R_UM, C_UM) == 4096
    assert an.max_array_size(1e-9, PITCH_UM, R_UM, C_UM, power_of_two=False) == 4166
    # 50 % of the distributed line: L = sqrt(0.1 ns / (0.377·7.2e-5 s/m²)) = 1919.4 µm.
    length = an.max_line_length_um(1e-10, R_UM, C_UM, definition="distributed_50")
    assert length == pytest.approx(1919.39, rel=1e-5)
    # Full R·C: L = sqrt(0.1 ns / 7.2e-5 s/m²) = 1178.5 µm → 2946 → 2048.
    assert an.max_array_size(1e-9, PITCH_UM, R_UM, C_UM, definition="rc") == 2048


def test_max_line_length_rejects_unknown_definition() -> None:
    with pytest.raises(ValueError, match="definition = 'fast'"):
        an.max_line_length_um(1e-10, R_UM, C_UM, definition="fast")  # type: ignore[arg-type]


def test_integrator_ideal_and_finite_gain_factor() -> None:
    # -Q/C: 1 fC on 100 fF is -10 mV (exact up to rounding).
    assert float(an.integrator_ideal_v(1e-15, 100e-15)) == pytest.approx(-0.01, rel=1e-12)
    assert an.finite_gain_factor(1e4) == pytest.approx(1e4 / 10001, rel=1e-15)


def test_time_encoded_integrator_ideal_limit_is_charge_over_c() -> None:
    g = np.array([1e-6, 2e-6, 5e-7])
    v = np.array([0.5, -0.3, 0.2])
    t_on = np.array([80e-9, 20e-9, 50e-9])
    q = float(np.sum(g * v * t_on))
    got = an.integrator_time_encoded_v(g, v, t_on, t_meas_s=80e-9, c_int_f=100e-15)
    assert got == pytest.approx(-q / 100e-15, rel=1e-12)


def test_time_encoded_integrator_matches_ode_solve_with_finite_gain() -> None:
    # Independent reference: integrate C(1+A0) dv/dt = Σ G_j V_j(t) − G_tot v numerically
    # (RK45, rtol 1e-10) with a deliberately low A0 so the leak is visible (≈ 4 %).
    g = np.array([2e-5, 1e-5, 3e-5])
    v = np.array([0.4, -0.2, 0.3])
    t_on = np.array([80e-9, 30e-9, 55e-9])
    c, a0, t_meas = 100e-15, 50.0, 80e-9

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        drive = float(np.sum(g * v * (t < t_on)))
        return np.array([(drive - g.sum() * y[0]) / (c * (1 + a0))])

    sol = solve_ivp(rhs, (0.0, t_meas), [0.0], rtol=1e-10, atol=1e-18, max_step=1e-10)
    expected = -a0 * sol.y[0, -1]
    got = an.integrator_time_encoded_v(g, v, t_on, t_meas_s=t_meas, c_int_f=c, a0=a0)
    assert got == pytest.approx(expected, rel=1e-6)
    ideal = an.integrator_time_encoded_v(g, v, t_on, t_meas_s=t_meas, c_int_f=c)
    assert abs(got / ideal - 1) > 0.01  # the finite gain is visible in this case


def test_gbw_gain_factor_hand_value() -> None:
    # G = 1.333 µS, C = 103.7 fF, GBW 1 GHz: 2π·1e9·103.7e-15 = 6.516e-4 S → factor
    # 1/(1 + 2.046e-3) = 0.997958 (computed by hand, rounding 1e-6).
    assert an.gbw_gain_factor(1.3333e-6, 103.7e-15, 1e9) == pytest.approx(0.997958, abs=1e-6)


def test_settling_tau_hand_value() -> None:
    # GBW 1 GHz, β = 100/(100+300) = 0.25: τ = 1/(2π·1e9·0.25) = 0.6366 ns.
    assert an.integrator_settling_tau_s(1e9, 100e-15, 300e-15) == pytest.approx(
        0.63662e-9, rel=1e-5
    )


def test_device_conductances_and_unit_charge() -> None:
    g_on, g_off = an.device_conductances_s(24e6, 8.0)
    # Mean conductance 1/24 MΩ = 41.667 nS; G_off = 2·41.667/9 = 9.259 nS; G_on = 8×.
    assert 0.5 * (g_on + g_off) == pytest.approx(1 / 24e6, rel=1e-12)
    assert g_on / g_off == pytest.approx(8.0, rel=1e-12)
    q = an.charge_per_weight_unit_c(1.0, 80e-9, g_on, g_off, 0.6)
    # 1 V · 80 ns · 64.81 nS / 0.6 = 8.642 fC.
    assert q == pytest.approx(8.642e-15, rel=1e-3)
    assert an.c_int_for_bound_f(12.0, q, 1.0) == pytest.approx(12 * q, rel=1e-12)


def test_noise_terms_hand_values() -> None:
    kt = an.BOLTZMANN_J_PER_K * 300.0
    # 2kT·G·T with G = 1 µS, T = 100 ns.
    assert an.device_thermal_charge_var_c2(1e-6, 1e-7) == pytest.approx(2 * kt * 1e-13, rel=1e-12)
    assert an.ktc_charge_var_c2(100e-15) == pytest.approx(kt * 100e-15, rel=1e-12)
    # e_n²G²T/2 only, then plus the single-ended read's C_int²e_n²(π/2)GBW/β (one sample,
    # β = 0.5) and, with an ideal switch, C_in²e_n²(π/2)GBW frozen at the reset.
    low = an.opamp_charge_var_c2(1e-8, 1e-4, 1e-7)
    assert low == pytest.approx(1e-16 * 1e-8 * 1e-7 / 2, rel=1e-12)
    full = an.opamp_charge_var_c2(1e-8, 1e-4, 1e-7, c_int_f=1e-13, c_in_f=1e-13, gbw_hz=1e9)
    band = 1e-16 * math.pi / 2 * 1e9
    assert full - low == pytest.approx(1e-26 * band / 0.5 + 1e-26 * band, rel=1e-12)
    # 9 bits over ±12: LSB 0.046875, /√12 = 0.013532.
    assert an.adc_quantization_w(9, 12.0) == pytest.approx(0.0135316, rel=1e-5)


def test_opamp_reset_part_matches_the_follower_loop_integral() -> None:
    # Part 3 of the single-ended read: while the switch (R) is closed the op-amp
    # (A = ω_t/s) follows e_n through R ‖ C_int into C_in; the charge frozen on the node is
    # C_in·v_n/(1 + sRC_int) = C_in·ω_t/(R·C_tot·s² + (1 + ω_t·R·C_int)·s + ω_t) times e_n.
    # Independent reference: that transfer's |H|² integrated numerically (quad, 1e-6).
    from scipy.integrate import quad

    e_n, c_int, c_in, gbw, r = 1e-8, 1e-13, 6e-13, 1e9, 1e3
    wt = 2 * math.pi * gbw

    def h2(f: float) -> float:
        s = 2j * math.pi * f
        den = r * (c_int + c_in) * s**2 + (1 + wt * r * c_int) * s + wt
        return float(abs(c_in * wt / den) ** 2)

    ref = e_n**2 * sum(quad(h2, a, b, limit=200)[0] for a, b in ((0, 1e9), (1e9, 1e11)))
    ref += e_n**2 * quad(h2, 1e11, math.inf)[0]
    kw = {"c_int_f": c_int, "c_in_f": c_in, "gbw_hz": gbw}
    got = (
        an.opamp_charge_var_c2(e_n, 0.0, 1e-7, r_reset_ohm=r, **kw)
        - an.opamp_charge_var_c2(
            e_n, 0.0, 1e-7, r_reset_ohm=r, c_int_f=c_int, c_in_f=0.0, gbw_hz=gbw
        )
        * (c_int / (c_int + c_in)) ** -1
    )
    assert got == pytest.approx(ref, rel=1e-6)


def test_integrated_white_noise_variance_matches_monte_carlo(rng: np.random.Generator) -> None:
    # Independent check of the S·T/2 rule: sample white current noise of one-sided density
    # S = 4kTG at rate fs (variance S·fs/2 per sample), integrate over T, compare variance.
    # 4000 trials: the sample variance has relative standard error sqrt(2/4000) = 2.2 %,
    # so 10 % is > 4 standard errors.
    g, t, fs = 1e-4, 50e-9, 20e9
    s = 4 * an.BOLTZMANN_J_PER_K * 300.0 * g
    n = round(t * fs)
    samples = rng.normal(0.0, math.sqrt(s * fs / 2), size=(4000, n))
    q = samples.sum(axis=1) / fs
    assert float(np.var(q)) == pytest.approx(an.device_thermal_charge_var_c2(g, t), rel=0.1)


def test_noise_budget_composition() -> None:
    g_on, g_off = an.device_conductances_s(24e6, 8.0)
    b = an.noise_budget(
        n_rows=4096,
        g_on_s=g_on,
        g_off_s=g_off,
        w_max=0.6,
        v_read_v=1.0,
        t_meas_s=80e-9,
        c_int_f=100e-15,
        e_n_v_per_rthz=5e-9,
        adc_bits=9,
        alpha_w=12.0,
    )
    kt = an.BOLTZMANN_J_PER_K * 300.0
    g_line = 2 * 4096 / 24e6  # both arrays end on the one summing node
    q = b.q_unit_c
    # Hand: σ_dev = sqrt(2kT·G_line·T)/Q_unit, σ_amp = sqrt(e_n²G²T/2)/Q_unit, kT/C once.
    assert b.device_thermal_w == pytest.approx(math.sqrt(2 * kt * g_line * 80e-9) / q, rel=1e-9)
    assert b.opamp_w == pytest.approx(math.sqrt(25e-18 * g_line**2 * 80e-9 / 2) / q, rel=1e-9)
    assert b.ktc_w == pytest.approx(math.sqrt(kt * 100e-15) / q, rel=1e-9)
    parts = [b.device_thermal_w, b.opamp_w, b.ktc_w, b.adc_w]
    assert b.total_w == pytest.approx(math.sqrt(sum(p * p for p in parts)), rel=1e-12)


def test_acceptable_opamp_noise_closes_the_budget() -> None:
    # Plugging the acceptable e_n back into the forward budget gives σ = 0.06 exactly.
    kw = dict(
        n_rows=4096,
        r_mean_ohm=24e6,
        w_max=0.6,
        v_read_v=1.0,
        t_meas_s=80e-9,
        alpha_w=12.0,
        v_swing_v=1.0,
        adc_bits=9,
        c_in_f=300e-15,
        gbw_hz=1e9,
    )
    e_n = an.acceptable_opamp_noise_v_per_rthz(sigma_total_w=0.06, on_off_ratio=8.0, **kw)
    assert 1e-9 < e_n < 1e-8
    g_on, g_off = an.device_conductances_s(24e6, 8.0)
    q = an.charge_per_weight_unit_c(1.0, 80e-9, g_on, g_off, 0.6)
    b = an.noise_budget(
        n_rows=4096,
        g_on_s=g_on,
        g_off_s=g_off,
        w_max=0.6,
        v_read_v=1.0,
        t_meas_s=80e-9,
        c_int_f=an.c_int_for_bound_f(12.0, q, 1.0),
        e_n_v_per_rthz=e_n,
        adc_bits=9,
        alpha_w=12.0,
        c_in_f=300e-15,
        gbw_hz=1e9,
    )
    assert b.total_w == pytest.approx(0.06, rel=1e-9)
    # Higher on/off ratio and longer integration both relax the op-amp spec.
    assert an.acceptable_opamp_noise_v_per_rthz(sigma_total_w=0.06, on_off_ratio=16.0, **kw) > e_n
    longer = {**kw, "t_meas_s": 160e-9}
    assert (
        an.acceptable_opamp_noise_v_per_rthz(sigma_total_w=0.06, on_off_ratio=8.0, **longer) > e_n
    )
    # On/off ratio 2 leaves nothing for the op-amp: NaN.
    assert math.isnan(
        an.acceptable_opamp_noise_v_per_rthz(sigma_total_w=0.06, on_off_ratio=2.0, **kw)
    )


def test_ir_drop_budget_paper_a() -> None:
    # 4096 devices, 1638.4 µm × 0.36 Ω/µm = 589.8 Ω, budget 0.1 → 24.16 MΩ.
    r = an.device_resistance_for_ir_budget_ohm(4096, 0.36 * 4096 * 0.4)
    assert r == pytest.approx(24.159e6, rel=1e-4)
    # That line's far-end drop is about half the budget: 0.1·(N+1)/(2N).
    frac = an.ir_drop_far_end_fraction(4096, 0.36 * 0.4, r)
    assert frac == pytest.approx(0.1 * 4097 / 8192, rel=1e-9)


def test_ir_drop_first_order_matches_exact_ladder_solve_for_small_drop() -> None:
    # Independent reference: solve the resistive ladder exactly (dense nodal solve) with
    # devices to a virtual ground; the first-order formula differs by O(drop²) ≈ 1e-4 here.
    n, r_seg, r_dev, r_drv = 32, 2.0, 1e6, 100.0
    g_seg, g_dev, g_drv = 1 / r_seg, 1 / r_dev, 1 / r_drv
    a = np.zeros((n, n))
    b = np.zeros(n)
    for k in range(n):
        a[k, k] += g_dev
        if k == 0:
            a[0, 0] += g_drv
            b[0] = g_drv * 1.0
        else:
            a[k, k] += g_seg
            a[k - 1, k - 1] += g_seg
            a[k, k - 1] -= g_seg
            a[k - 1, k] -= g_seg
    # Node 0 is after the driver; segment resistances sit between device nodes, so the
    # first-order sum uses (R_drv + k·R_seg) for device k = 0..N-1.
    v = np.linalg.solve(a, b)
    exact = 1.0 - v[-1]
    first_order = (r_drv * n + r_seg * n * (n - 1) / 2) / r_dev
    assert exact == pytest.approx(first_order, rel=1e-2)
    got = an.ir_drop_far_end_fraction(n, r_seg, r_dev, r_driver_ohm=r_drv)
    # The library counts one segment before the first device (the netlist's layout):
    # R_seg·N(N+1)/2 instead of N(N-1)/2; the two differ by R_seg·N/R_dev.
    assert got - first_order == pytest.approx(r_seg * n / r_dev, rel=1e-9)


def test_min_on_off_ratio_is_where_the_budget_closes() -> None:
    kw = dict(
        sigma_total_w=0.06,
        n_rows=4096,
        r_mean_ohm=24e6,
        w_max=0.6,
        v_read_v=1.0,
        t_meas_s=80e-9,
        alpha_w=12.0,
        v_swing_v=1.0,
        adc_bits=9,
    )
    r0 = an.min_on_off_ratio(e_n_v_per_rthz=0.0, **kw)
    # Just above the floor a (tiny) op-amp noise is acceptable, just below none is.
    assert not math.isnan(an.acceptable_opamp_noise_v_per_rthz(on_off_ratio=r0 * 1.001, **kw))
    assert math.isnan(an.acceptable_opamp_noise_v_per_rthz(on_off_ratio=r0 * 0.999, **kw))
    r5 = an.min_on_off_ratio(e_n_v_per_rthz=2e-9, **kw)
    assert r5 > r0
    assert an.acceptable_opamp_noise_v_per_rthz(on_off_ratio=r5, **kw) == pytest.approx(
        2e-9, rel=1e-4
    )
    # Without ADC and kT/C (paper A's split) the floor is lower.
    lenient = {**kw, "adc_bits": None}
    assert an.min_on_off_ratio(e_n_v_per_rthz=0.0, include_ktc=False, **lenient) < r0
    # An impossible target: NaN.
    assert math.isnan(an.min_on_off_ratio(e_n_v_per_rthz=1.0, **kw))
