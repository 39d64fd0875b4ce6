"""The committed reference campaign (sim_data/reference/) reads back and is consistent.

Regenerate with ``rpucircuit characterize --quick --out sim_data/reference`` (the cache
folder and PNGs it also writes are not committed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rpucircuit.circuit import analytic as an
from rpucircuit.circuit import characterize as ch
from rpucircuit.circuit import extract as ex
from rpucircuit.circuit.characterize import run as ch_run
from rpucircuit.config.base import config_key

REFERENCE = Path(__file__).resolve().parents[2] / "sim_data" / "reference" / ch.RESULT_NAME


@pytest.fixture(scope="module")
def reference() -> tuple[dict, object]:
    return ch.load(REFERENCE)


def test_reference_is_small_and_has_provenance(reference: tuple[dict, object]) -> None:
    assert REFERENCE.stat().st_size < 2_000_000
    _, prov = reference
    spec = ch.load_spec(prov.config_toml, source=str(REFERENCE))  # type: ignore[attr-defined]
    assert config_key(spec) == prov.config_key  # type: ignore[attr-defined]
    assert spec.campaign == ch.quick_campaign()
    assert prov.ngspice_version.startswith("ngspice")  # type: ignore[attr-defined]


def test_reference_ideal_outputs_recompute_from_stored_conductances(
    reference: tuple[dict, object],
) -> None:
    tree, _ = reference
    assert tree["transfer"]
    for case in tree["transfer"].values():
        par = case["parameters"]
        w = (case["g_pos_s"] - case["g_neg_s"]) / par["dg_unit_s"]
        mat = w if case["direction"] == "forward" else w.T
        # Inputs as applied: sign(x)·round(|x|·steps)/steps, exactly.
        steps = par["input_steps"]
        x_q = np.sign(case["x"]) * np.round(np.abs(case["x"]) * steps) / steps
        np.testing.assert_array_equal(x_q, case["x_applied"])
        np.testing.assert_allclose(mat @ x_q, case["y_ideal_quantized_w"], rtol=0, atol=1e-12)
        # Q_unit from the stored parameters (float rounding only).
        assert par["q_unit_c"] == pytest.approx(
            par["v_read_v"] * par["t_meas_s"] * par["dg_unit_s"], rel=1e-12
        )


def test_reference_was_made_by_the_current_plan(reference: tuple[dict, object]) -> None:
    """The committed file holds the jobs the current plan makes, with the seeds it gives them
    now: the Monte Carlo's recorded seed, and each transfer case's conductances and inputs
    as its job's generator draws them (exact up to rounding, 1e-12). A change of the seeding
    or of the planned cases makes the file stale: regenerate it (module docstring)."""
    tree, prov = reference
    spec = ch.load_spec(prov.config_toml, source=str(REFERENCE))  # type: ignore[attr-defined]
    jobs = {j.name: j for j in ch.plan(spec.circuit, spec.campaign)}
    assert sorted(str(n) for n in tree["jobs"]["name"]) == sorted(jobs)
    assert tree["noise_mc"]["seed"] == jobs["noise_mc"].seed
    for name, case in tree["transfer"].items():
        job = jobs[name]
        w, x = ch_run._weights_inputs(job, np.random.default_rng(job.seed))
        g_pos, _ = ex.weights_to_conductances(job.circuit, w)
        np.testing.assert_allclose(case["g_pos_s"], g_pos, rtol=1e-12, atol=0)
        np.testing.assert_allclose(case["x"], x, rtol=1e-12, atol=0)


def test_reference_results_meet_the_accuracy_targets(reference: tuple[dict, object]) -> None:
    tree, _ = reference
    for case in tree["update"].values():
        assert case["k"] == pytest.approx(case["k_model"], rel=0.05)
    ktc = tree["ktc"]
    assert ktc["v2_sim"] == pytest.approx(ktc["v2_analytic"], rel=0.01)
    kt = an.BOLTZMANN_J_PER_K * ktc_temperature(tree)
    assert ktc["v2_analytic"] == pytest.approx(kt / ktc["c_int_f"], rel=1e-12)
    noise = tree["noise"]
    assert noise["sigma_sim_no_opamp_w"] == pytest.approx(
        noise["budget"]["device_thermal_w"], rel=0.03
    )
    mc = tree["noise_mc"]
    assert abs(mc["sigma_mc_w"] - mc["sigma_noise_w"]) < 3 * mc["sigma_mc_stderr_w"]
    # The Monte Carlo carries all three sources; the reference adds them in
    # quadrature (to rounding) and kT/C is √(kT·C_int)/Q_unit (the switch's `.noise`, 1 %).
    assert mc["sources"] == "device,opamp,ktc"
    parts = np.array([mc["sigma_device_w"], mc["sigma_opamp_w"], mc["sigma_ktc_w"]])
    assert np.all(parts > 0.0)
    assert float(np.sqrt(np.sum(parts**2))) == pytest.approx(mc["sigma_noise_w"], rel=1e-12)
    q_unit = noise["budget"]["q_unit_c"]
    assert mc["sigma_ktc_w"] == pytest.approx(np.sqrt(kt * ktc["c_int_f"]) / q_unit, rel=0.01)
    assert mc["v_reset_v"].shape == mc["q_c"].shape == (mc["trials"],)


def ktc_temperature(tree: dict) -> float:
    return float(tree["ktc"]["parameters"]["temperature_k"])


def test_reference_ramp_case_saturates_some_rows_and_not_others(
    reference: tuple[dict, object],
) -> None:
    """Regression: the quick ramp (8 rows of up to w_max = 0.6, all inputs 1) reached 4.8,
    below its bound α/2 = 6, so the output bound was never observed. Its bound is now
    N·w_max/ramp_overdrive = 2.4: the outer rows clip, the inner ones stay linear."""
    tree, _ = reference
    case = tree["transfer"]["fwd_ramp_saturating_8"]
    saturated = np.asarray(case["errors"]["saturated"], dtype=bool)
    assert 1 <= int(saturated.sum()) < saturated.size
    ideal, sim, alpha = case["y_ideal_quantized_w"], case["y_sim_w"], case["alpha_w"]
    # Clipped outputs sit at the bound (the clamp at the swing, 0.1 %); the rest follow the
    # ideal output to 1 % of the bound (gain and edges).
    np.testing.assert_allclose(np.abs(sim[saturated]), alpha, rtol=1e-3)
    np.testing.assert_allclose(sim[~saturated], ideal[~saturated], rtol=0, atol=0.01 * alpha)


def test_reference_device_spread_is_observed(reference: tuple[dict, object]) -> None:
    """The spread cases show paper A's 30 % Δw_min spread: each device's Δg per pulse is its
    drawn factor times one rate (1e-4: ngspice rounding), the same devices up and down,
    and the sample's relative std lies in the χ² 99.9 % interval for 63 degrees of
    freedom, [0.718, 1.301]·30 %."""
    tree, _ = reference
    up, down = tree["update_dtod"]["dtod_up"], tree["update_dtod"]["dtod_down"]
    np.testing.assert_array_equal(up["rate_factor"], down["rate_factor"])
    for case in (up, down):
        assert case["dw_min_dtod_model"] == 0.3
        per = case["dg_per_pulse_s"] / case["rate_factor"]
        np.testing.assert_allclose(per, np.mean(per), rtol=1e-4)
        assert 0.718 * 0.3 <= case["spread_rel"] <= 1.301 * 0.3
    # The k cases have identical devices.
    for case in tree["update"].values():
        np.testing.assert_array_equal(case["rate_factor"], 1.0)


def test_reference_bound_cases_show_the_soft_bound(reference: tuple[dict, object]) -> None:
    """Devices on the bound do not move; those further than the margin (6 pulses) plus BL
    move at the free rate (within 1 %: pulse edges); in between the move grows with the
    distance."""
    tree, _ = reference
    for case in tree["update_bound"].values():
        d = case["distance_pulses"].ravel()
        rel = case["dg_per_pulse_s"].ravel() / case["dg_model_s"]
        margin = case["bound_margin_model"] * (case["g_on_s"] - case["g_off_s"])
        m = margin / abs(case["dg_model_s"])
        assert rel[d == 0.0] == pytest.approx(0.0, abs=1e-6)
        far = d >= m + case["n_pulses"]
        assert np.any(far) and np.any(~far)
        np.testing.assert_allclose(rel[far], 1.0, rtol=0.01)
        assert np.all(np.diff(rel[np.argsort(d)]) >= -1e-6)


def test_reference_noise_lines_cover_three_sizes(reference: tuple[dict, object]) -> None:
    """`.noise` at every noise size and the Monte Carlo's: σ² grows with N, and each size's
    device-only σ is its analytic device thermal noise (3 %, as for /noise)."""
    tree, prov = reference
    spec = ch.load_spec(prov.config_toml, source=str(REFERENCE))  # type: ignore[attr-defined]
    c = spec.campaign
    lines = sorted(tree["noise_lines"].values(), key=lambda x: int(x["n_devices"]))
    sizes = [int(x["n_devices"]) for x in lines]
    assert sizes == sorted({*c.noise_sizes, c.noise_mc_devices})
    assert len(sizes) >= 3
    sigma2 = np.array([x["sigma_sim_w"] ** 2 for x in lines])
    assert np.all(np.diff(sigma2) > 0)
    for x in lines:
        assert x["sigma_sim_no_opamp_w"] == pytest.approx(x["budget"]["device_thermal_w"], rel=0.03)
    assert tree["transfer"]["bwd_ir_stress_8"]["direction"] == "backward"
