"""Pure extraction functions against hand values and independent references."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rpucircuit.circuit import extract as ex
from rpucircuit.circuit.extract import common
from rpucircuit.errors import ExtractionError


def test_first_crossing_interpolates_linearly() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([0.0, 0.2, 0.6, 1.0])
    # Between t=1 (0.2) and t=2 (0.6): 0.5 is reached at 1 + 0.3/0.4 = 1.75 (exact).
    assert ex.first_crossing_s(t, v, 0.5) == pytest.approx(1.75, rel=1e-12)
    assert ex.first_crossing_s(t, v, -1.0) == 0.0


def test_first_crossing_of_exponential_matches_ln2() -> None:
    # Independent reference: 1 - exp(-t/τ) crosses 0.5 at τ·ln 2. A 10,001-point grid over
    # 10τ has step 1e-3 τ; linear interpolation of the convex curve errs by < 1e-6 τ.
    tau = 3e-9
    t = np.linspace(0.0, 10 * tau, 10_001)
    v = 1.0 - np.exp(-t / tau)
    assert ex.first_crossing_s(t, v, 0.5) == pytest.approx(tau * math.log(2), rel=1e-5)


def test_first_crossing_errors() -> None:
    with pytest.raises(ExtractionError, match="never reaches 2"):
        ex.first_crossing_s([0.0, 1.0], [0.0, 1.0], 2.0)
    with pytest.raises(ExtractionError, match="need two equal 1-D arrays"):
        ex.first_crossing_s([0.0, 1.0], [0.0], 0.5)


def test_fit_update_response_recovers_known_parameters(rng: np.random.Generator) -> None:
    # Synthetic devices with known Δg per pulse and k, plus 1e-3 relative noise: the
    # least-squares fit over 200 devices recovers k to well within 1 %.
    a_true, k_true = 2.5e-10, 0.1
    n_full = rng.integers(0, 10, size=200)
    n_half = rng.integers(0, 20, size=200)
    dg = a_true * (n_full + k_true * n_half)
    dg = dg + rng.normal(0.0, 1e-3 * a_true, size=dg.shape)
    a, k, rms = ex.fit_update_response(n_full, n_half, dg)
    assert a == pytest.approx(a_true, rel=1e-3)
    assert k == pytest.approx(k_true, rel=1e-2)
    assert rms == pytest.approx(1e-3 * a_true, rel=0.3)  # sample σ of 200 draws


def test_fit_update_response_errors() -> None:
    with pytest.raises(ExtractionError, match="shapes differ"):
        ex.fit_update_response([1, 2], [1], [1.0, 2.0])
    with pytest.raises(ExtractionError, match="cannot separate"):
        ex.fit_update_response([1, 2, 3], [2, 4, 6], [1.0, 2.0, 3.0])
    with pytest.raises(ExtractionError, match="no update was seen"):
        ex.fit_update_response([1, 0, 1], [0, 1, 1], [0.0, 1.0, 1.0])
    with pytest.raises(ExtractionError, match="no update was seen"):
        ex.fit_update_response([1, 0, 1], [0, 1, 1], [0.0, 0.0, 0.0])


def test_fit_update_response_zero_is_judged_against_the_data_scale() -> None:
    """Regression: the "no update" check compared the fitted coefficient with exactly 0, and
    lstsq returns ±1e-16 instead of 0 on some machines, so no error was raised. A half-select
    only response (Δg = k·n_half, no coincident part) at any scale of Δg is refused; a
    coincident part of 1e-6 of the half-selected one is still seen."""
    n_full, n_half = [1, 0, 1, 2], [0, 1, 1, 3]
    for scale in (1e-12, 1.0, 1e6):
        with pytest.raises(ExtractionError, match="no update was seen"):
            ex.fit_update_response(n_full, n_half, scale * np.asarray(n_half, dtype=float))
        dg = scale * (1e-6 * np.asarray(n_full) + np.asarray(n_half, dtype=float))
        a, _, _ = ex.fit_update_response(n_full, n_half, dg)
        assert a == pytest.approx(1e-6 * scale, rel=1e-6)


def test_windowed_variance_of_white_noise_is_st_over_2() -> None:
    # White S on ngspice's usual log grid (20 points/decade, 1 kHz-10 GHz): the window
    # integral is S·T/2 up to the missing tail above 10 GHz, S/(2π²·10 GHz) ≈ 6e-5 of
    # S·T/2 for T = 80 ns, plus interpolation error: 1e-3.
    f = np.logspace(3, 10, 141)
    s = np.full_like(f, 2.5e-24)
    t = 80e-9
    assert ex.windowed_charge_variance_c2(f, s, t) == pytest.approx(s[0] * t / 2, rel=1e-3)


def test_windowed_variance_of_lowpass_noise_matches_closed_form() -> None:
    # Independent reference: S(f) = S0/(1+(f/fc)²) through the integration window. The
    # integral has the closed form S0·T/2 − S0·(1 − exp(−2π fc T))/(4π fc) (Fourier pair
    # of the window's autocorrelation with the Lorentzian's exp(−2π fc |τ|)); 2e-3 covers
    # the log-log interpolation of the 40-points/decade grid.
    fc, t, s0 = 20e6, 80e-9, 1e-24
    f = np.logspace(2, 11, 361)
    s = s0 / (1 + (f / fc) ** 2)
    expected = s0 * t / 2 - s0 * (1 - math.exp(-2 * math.pi * fc * t)) / (4 * math.pi * fc)
    assert ex.windowed_charge_variance_c2(f, s, t) == pytest.approx(expected, rel=2e-3)


def test_windowed_variance_errors() -> None:
    with pytest.raises(ExtractionError, match="increasing 1-D frequency grid"):
        ex.windowed_charge_variance_c2([2.0, 1.0], [1.0, 1.0], 1e-8)
    with pytest.raises(ExtractionError, match="PSD >= 0"):
        ex.windowed_charge_variance_c2([1.0, 2.0], [1.0, -1.0], 1e-8)


def test_current_psd_referral_hand_value() -> None:
    # S_v = 1e-12 V²/Hz at 1 MHz behind 100 fF: (2π·1e6·1e-13)² = 3.948e-13 → 3.948e-25.
    got = ex.current_psd_from_integrator_output([1e6], [1e-12], 1e-13)
    assert got[0] == pytest.approx((2 * math.pi * 1e-7) ** 2 * 1e-12, rel=1e-12)


def test_white_noise_samples_statistics_and_repeatability() -> None:
    a = ex.white_noise_samples(1e-8, 1e-11, 20_000, rng=np.random.default_rng(5))
    b = ex.white_noise_samples(1e-8, 1e-11, 20_000, rng=np.random.default_rng(5))
    assert a[0] == 0.0
    np.testing.assert_array_equal(a, b)
    # Variance e²/(2dt) = 1e-16/2e-11 = 5e-6 V²; 20,000 samples: σ_rel = 1 %, test 5 %.
    assert float(np.var(a[1:])) == pytest.approx(5e-6, rel=0.05)
    with pytest.raises(ExtractionError, match="need dt > 0"):
        ex.white_noise_samples(1e-8, 0.0, 10, rng=np.random.default_rng(5))


def test_transfer_decomposition_adds_up_and_finds_known_parts(rng: np.random.Generator) -> None:
    ideal = rng.uniform(-14.0, 14.0, size=50)
    ideal_q = ideal + rng.uniform(-0.01, 0.01, size=50)
    nodal0 = 0.999 * ideal_q
    nodal = nodal0 * (1 - 0.02 * np.linspace(0, 1, 50))
    sim = np.clip(0.98 * nodal, -12.0, 12.0) + 1e-4
    err = ex.decompose_transfer_error(
        y_ideal_w=ideal,
        y_ideal_quantized_w=ideal_q,
        y_nodal_w=nodal,
        y_nodal_no_line_w=nodal0,
        y_sim_w=sim,
        alpha_w=12.0,
    )
    parts = err.quantization_w + err.gain_w + err.ir_drop_w + err.saturation_w + err.residual_w
    np.testing.assert_allclose(parts, err.total_w, rtol=0, atol=1e-12)
    # Gain fitted on unsaturated outputs: 0.98 up to the 1e-4 offset's leverage (< 1e-4).
    assert err.gain == pytest.approx(0.98, abs=1e-4)
    assert np.array_equal(err.saturated, np.abs(nodal) >= 12.0)
    np.testing.assert_allclose(err.residual_w[~err.saturated], 1e-4, atol=1e-4)
    with pytest.raises(ExtractionError, match="of one shape"):
        ex.decompose_transfer_error(
            y_ideal_w=ideal,
            y_ideal_quantized_w=ideal_q[:3],
            y_nodal_w=nodal,
            y_nodal_no_line_w=nodal0,
            y_sim_w=sim,
            alpha_w=12.0,
        )


def test_decomposition_of_all_zero_outputs_fits_no_gain() -> None:
    """Zero inputs: the nodal predictions are 0 up to rounding (here 1e-18), so there is no
    gain to fit. The guard compared the predictions' energy with exactly 0 and fitted a gain
    of rounding noise over rounding noise (here 1e3); it now counts them as 0 against the
    outputs' scale and keeps the gain at 1."""
    tiny = np.array([1e-18, -2e-18, 0.5e-18])
    err = ex.decompose_transfer_error(
        y_ideal_w=np.zeros(3),
        y_ideal_quantized_w=np.zeros(3),
        y_nodal_w=tiny,
        y_nodal_no_line_w=np.zeros(3),
        y_sim_w=1e3 * tiny + np.array([0.0, 0.0, 1e-3]),
        alpha_w=12.0,
    )
    assert err.gain == 1.0
    parts = err.quantization_w + err.gain_w + err.ir_drop_w + err.saturation_w + err.residual_w
    np.testing.assert_allclose(parts, err.total_w, rtol=0, atol=1e-15)


def test_job_names_are_made_safe_for_run_folders() -> None:
    assert common.job_name("upd-k0.9_UP") == "upd-k0-9_up"
    assert common.job_name("9lives") == "j9lives"
    assert len(common.job_name("a" * 100)) == 64


def test_weights_to_conductances_maps_the_pair_and_refuses_out_of_range() -> None:
    from rpucircuit.config.tile import gokmen_vlasov_2016

    cfg = gokmen_vlasov_2016(rows=2, cols=2)
    d = cfg.device
    g_pos, g_neg = ex.weights_to_conductances(cfg, [[d.w_max, 0.0], [-d.w_max, 0.3]])
    # Full scale puts one device at G_on and its partner at G_off (rounding only).
    assert g_pos[0, 0] == pytest.approx(d.g_on_s, rel=1e-12)
    assert g_neg[0, 0] == pytest.approx(d.g_off_s, rel=1e-12)
    np.testing.assert_allclose((g_pos - g_neg) / d.dg_unit_s, [[0.6, 0.0], [-0.6, 0.3]], atol=1e-12)
    with pytest.raises(ExtractionError, match=r"weights must lie in ±w_max = ±0\.6"):
        ex.weights_to_conductances(cfg, [[0.7, 0.0], [0.0, 0.0]])


def test_missing_simulator_vector_is_an_extraction_error() -> None:
    from rpucircuit.circuit.spice import RawResult

    with pytest.raises(ExtractionError, match="lacks 'v\\(out0\\)'"):
        common.real_vector(RawResult(plots=()), "v(out0)")


def test_monte_carlo_refuses_bad_sizes(tmp_path: Path) -> None:
    from rpucircuit.config.tile import gokmen_vlasov_2016

    with pytest.raises(ExtractionError, match="need trials >= 2"):
        ex.noise_monte_carlo(gokmen_vlasov_2016(), trials=1, seed=1, workdir=tmp_path)
    cfg = gokmen_vlasov_2016()
    with pytest.raises(ExtractionError, match="need distinct names"):
        ex.noise_monte_carlo(cfg, sources=("device", "shot"), seed=1, workdir=tmp_path)
    with pytest.raises(ExtractionError, match="need distinct names"):
        ex.noise_monte_carlo(cfg, sources=("ktc", "ktc"), seed=1, workdir=tmp_path)
    with pytest.raises(ExtractionError, match="need distinct names"):
        ex.noise_monte_carlo(cfg, sources=(), seed=1, workdir=tmp_path)
    with pytest.raises(ExtractionError, match="dt_amp_s = 1e-06"):
        ex.noise_monte_carlo(cfg, dt_amp_s=1e-6, seed=1, workdir=tmp_path)


def test_noise_time_grid_is_coarse_then_fine() -> None:
    t = ex.noise_time_grid(10e-9, 1e-9, 1e-10, 2e-9)
    d = np.diff(t)
    assert t[0] == 0.0 and t[-1] == pytest.approx(10e-9, rel=1e-12)
    # 8 coarse steps to 8 ns, then 20 fine steps of 0.1 ns (exact to rounding, 1e-9 rel).
    np.testing.assert_allclose(d[:8], 1e-9, rtol=1e-9)
    np.testing.assert_allclose(d[8:], 1e-10, rtol=1e-9)
    assert d.size == 28
    # A fine tail longer than the span leaves a uniform fine grid.
    np.testing.assert_allclose(np.diff(ex.noise_time_grid(1e-9, 1e-9, 1e-10, 5e-9)), 1e-10)
    with pytest.raises(ExtractionError, match="need 0 < dt_fine <= dt_coarse"):
        ex.noise_time_grid(1e-9, 1e-10, 1e-9, 0.0)


@pytest.mark.parametrize("t_end_s", [1e-9, 3e-9, 7e-9, 2.1e-8, 9.9e-8])
def test_noise_time_grid_starts_at_zero_without_a_rounding_step(t_end_s: float) -> None:
    """Regression: a span that is a multiple of the fine step left the split point at ±1e-25 s
    instead of 0 (an exact ``> 0.0`` test), giving a first step of 1e-25 s or a grid that
    starts below 0, which white_noise_on_grid refuses. Every step is at least the fine step
    (up to rounding, 1e-9 of it) and the grid starts at exactly 0."""
    for dt_coarse, dt_fine, t_fine in (
        (3e-10, 1e-11, 2e-9),
        (1e-9, 1e-10, 5e-9),
        (1e-9, 1e-11, 1e-8),
    ):
        t = ex.noise_time_grid(t_end_s, dt_coarse, dt_fine, t_fine)
        assert t[0] == 0.0
        assert float(np.min(np.diff(t))) > dt_fine * (1 - 1e-9)
        assert t[-1] == pytest.approx(t_end_s, rel=1e-12)
        ex.white_noise_on_grid(1e-8, t, rng=np.random.default_rng(0))


def test_white_noise_on_grid_integrates_like_white_noise() -> None:
    # The PWL integral over the grid (trapezoid) must have variance density²·span/2 on a
    # non-uniform grid. 4000 draws: σ_rel of a variance ≈ √(2/4000) = 2.2 %, test 8 %.
    t = ex.noise_time_grid(20e-9, 1e-9, 5e-11, 5e-9)
    rng = np.random.default_rng(3)
    a = np.stack([ex.white_noise_on_grid(1e-8, t, rng=rng) for _ in range(4000)])
    assert np.all(a[:, 0] == 0.0)
    integral = np.trapezoid(a, t, axis=1)
    assert float(np.var(integral)) == pytest.approx(1e-16 * 20e-9 / 2, rel=0.08)
    # On a uniform grid the interior samples match white_noise_samples' variance e²/(2dt).
    u = ex.white_noise_on_grid(1e-8, np.arange(20_001) * 1e-11, rng=np.random.default_rng(5))
    assert float(np.var(u[1:-1])) == pytest.approx(5e-6, rel=0.05)
    with pytest.raises(ExtractionError, match="increasing 1-D grid from 0"):
        ex.white_noise_on_grid(1e-8, [1.0, 2.0], rng=rng)


def test_opamp_reference_counts_the_broadband_part_once() -> None:
    # A hand spectrum: flat op-amp current density S0 (e_n²G²) plus a broadband part
    # S1·(f/f1)² cut off at f_c (first-order, squared), devices S_d. Reference: the
    # window of the op-amp part (dt → 0, no sinc weighting) averaged with S0·T/2.
    f = np.geomspace(1e3, 1e11, 4001)
    s0, s_d, t = 1e-28, 3e-28, 80e-9
    broad = 1e-28 * (f / 1e6) ** 2 / (1.0 + (f / 1e9) ** 2)
    full, quiet = s_d + s0 + broad, np.full_like(f, s_d)
    window = ex.windowed_charge_variance_c2(f, s0 + broad, t)
    got = ex.opamp_noise_reference_c2(
        f, full, quiet, t_meas_s=t, dt_amp_s=1e-15, f_flat_hz=(2e3, 2e4)
    )
    # The flat band carries ≤ 4e-4 of the broadband part: 1e-3 relative.
    assert got == pytest.approx(0.5 * (window + s0 * t / 2), rel=1e-3)
    # The broadband part dominates: the single read is well below the window.
    assert got < 0.75 * window
    with pytest.raises(ExtractionError, match="no frequency point between"):
        ex.opamp_noise_reference_c2(f, full, quiet, t_meas_s=t, dt_amp_s=1e-12, f_flat_hz=(1, 2))
    with pytest.raises(ExtractionError, match="differ from the frequency grid"):
        ex.opamp_noise_reference_c2(
            f, full[:-1], quiet, t_meas_s=t, dt_amp_s=1e-12, f_flat_hz=(1, 2)
        )
