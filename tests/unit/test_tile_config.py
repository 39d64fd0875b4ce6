"""Circuit config: paper-A numbers, derived quantities, validation before any simulation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rpucircuit.config.base import from_toml, to_toml
from rpucircuit.config.tile import (
    BOLTZMANN_J_PER_K,
    CircuitConfig,
    DeviceConfig,
    LineConfig,
    PeripheryConfig,
    TileConfig,
    check_spice_budget,
    estimate_spice_cost,
    gokmen_vlasov_2016,
    input_volt_seconds,
    quantize_inputs,
    replace_tile,
    update_rate_shape,
    update_v0_v,
)
from rpucircuit.errors import ConfigError

# Exact arithmetic on a handful of doubles: 1e-12 relative is far above rounding (~1e-15).
REL = 1e-12


def test_paper_a_segment_and_line_numbers() -> None:
    cfg = gokmen_vlasov_2016()
    # 0.36 Ω/µm × 0.4 µm = 0.144 Ω; 0.2 fF/µm × 0.4 µm = 0.08 fF (PHYSICS.md).
    assert cfg.tile.r_seg_row_ohm == pytest.approx(0.144, rel=REL)
    assert cfg.tile.r_seg_col_ohm == pytest.approx(0.144, rel=REL)
    assert cfg.tile.c_seg_row_f == pytest.approx(0.08e-15, rel=REL)
    # A 4096-device line: 4096 × 0.144 Ω ≈ 590 Ω; N·R_line/R_dev ≈ 0.1 → R_dev ≈ 24 MΩ.
    r_line = 4096 * cfg.tile.r_seg_row_ohm
    assert r_line == pytest.approx(589.824, rel=REL)
    # 4096 × 590 Ω / 0.1 = 24.2 MΩ; the preset's 24 MΩ is that figure rounded (1 %).
    assert 4096 * r_line / 0.1 == pytest.approx(cfg.device.r_mean_ohm, rel=0.01)


def test_weight_scale_derivation() -> None:
    cfg = gokmen_vlasov_2016()
    d, p = cfg.device, cfg.periphery
    g_mean = 1 / 24e6
    # G_mean = (G_on + G_off)/2 and G_on/G_off = 8, solved by hand: G_off = 2·G_mean/9.
    assert d.g_off_s == pytest.approx(2 * g_mean / 9, rel=REL)
    assert d.g_on_s == pytest.approx(16 * g_mean / 9, rel=REL)
    assert (d.g_on_s + d.g_off_s) / 2 == pytest.approx(g_mean, rel=REL)
    assert d.dg_unit_s == pytest.approx((d.g_on_s - d.g_off_s) / 0.6, rel=REL)
    assert cfg.q_unit_c == pytest.approx(1.0 * 80e-9 * d.dg_unit_s, rel=REL)
    # C_int from α = 12 and a 1 V swing: 12·Q_unit/1 V; the bound it implies is α back.
    assert cfg.c_int_f == pytest.approx(12 * cfg.q_unit_c, rel=REL)
    assert cfg.alpha_effective == pytest.approx(12.0, rel=REL)
    assert cfg.v_out_per_weight_v == pytest.approx(1.0 / 12.0, rel=REL)
    assert cfg.adc_range_v == p.v_out_max_v
    assert d.dg_pulse_s == pytest.approx(0.001 * d.dg_unit_s, rel=REL)
    assert p.r_noise_ohm == pytest.approx((10e-9) ** 2 / (4 * BOLTZMANN_J_PER_K * 300), rel=REL)
    assert cfg.kt_over_c_v == pytest.approx(math.sqrt(BOLTZMANN_J_PER_K * 300 / cfg.c_int_f))


def test_explicit_c_int_and_adc_range_win() -> None:
    cfg = gokmen_vlasov_2016()
    cfg2 = dataclasses.replace(
        cfg, periphery=dataclasses.replace(cfg.periphery, c_int_f=200e-15, adc_range_v=0.5)
    )
    assert cfg2.c_int_f == 200e-15
    assert cfg2.adc_range_v == 0.5
    assert cfg2.alpha_effective == pytest.approx(200e-15 / cfg.q_unit_c, rel=REL)


@pytest.mark.parametrize("k", [0.05, 0.1, 0.3, 0.5, 0.7, 0.9])
def test_update_v0_gives_k(k: float) -> None:
    """f(V_S/2)/f(V_S) = k for the closed-form V0 (checked by evaluating f directly)."""
    vs = 2.0
    v0 = update_v0_v(k, vs)
    ratio = update_rate_shape(vs / 2, k, v0) / update_rate_shape(vs, k, v0)
    assert ratio == pytest.approx(k, rel=1e-12)  # closed form: rounding only


def test_update_rate_scale_gives_dg_per_pulse() -> None:
    cfg = gokmen_vlasov_2016()
    p = cfg.periphery
    f = update_rate_shape(p.v_s_v, cfg.device.k, cfg.update_v0_v)
    assert cfg.update_rate_scale * f * p.t_pulse_s == pytest.approx(cfg.device.dg_pulse_s, rel=REL)
    d = dataclasses.replace(cfg.device, up_down_ratio=1.1)
    assert d.dg_up_s / d.dg_down_s == pytest.approx(1.1, rel=REL)
    assert (d.dg_up_s + d.dg_down_s) / 2 == pytest.approx(d.dg_pulse_s, rel=REL)


def test_response_names() -> None:
    assert DeviceConfig(k=0.8).response == "saturating"
    assert DeviceConfig(k=0.5).response == "linear"
    assert DeviceConfig(k=0.1).response == "rectifying"


def test_toml_round_trip_and_key() -> None:
    cfg = gokmen_vlasov_2016(rows=4, cols=5)
    back = from_toml(CircuitConfig, to_toml(cfg))
    assert back == cfg


def test_input_quantization() -> None:
    cfg = gokmen_vlasov_2016()
    x = np.array([0.0, 1.0, -1.0, 0.5, 1 / 252 * 0.99])
    xq = quantize_inputs(cfg, x)
    assert np.array_equal(xq, np.array([0.0, 1.0, -1.0, 63 / 126, 0.0]))
    u = input_volt_seconds(cfg, x)
    assert np.allclose(u, xq * 1.0 * 80e-9, rtol=REL, atol=0)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: LineConfig(r_ohm_per_um=-1.0), r"r_ohm_per_um = -1.0: must be >= 0"),
        (lambda: LineConfig(c_f_per_um=math.nan), r"c_f_per_um = nan: must be finite"),
        (lambda: TileConfig(rows=0), r"rows = 0: must be an integer"),
        (lambda: TileConfig(cols=2.5), r"cols = 2.5: must be an integer"),  # type: ignore[arg-type]
        (lambda: TileConfig(pitch_um=0.0), r"pitch_um = 0.0: must be > 0"),
        (lambda: TileConfig(r_driver_ohm=-5.0), r"r_driver_ohm = -5.0"),
        (lambda: TileConfig(row_line="x"), r"row_line = 'x': must be a LineConfig"),  # type: ignore[arg-type]
        (lambda: TileConfig(col_line=1), r"col_line = 1: must be a LineConfig"),  # type: ignore[arg-type]
        (lambda: TileConfig(paired=1), r"paired = 1: must be true or false"),  # type: ignore[arg-type]
        (lambda: TileConfig(spice_limit_s=math.inf), r"spice_limit_s = inf"),
        (lambda: DeviceConfig(r_mean_ohm=0.0), r"r_mean_ohm = 0.0: must be > 0"),
        (lambda: DeviceConfig(r_mean_ohm=-24e6), r"r_mean_ohm = -24000000.0: must be > 0"),
        (lambda: DeviceConfig(on_off_ratio=1.0), r"on_off_ratio = 1.0: must lie in \(1"),
        (lambda: DeviceConfig(on_off_ratio=0.5), r"on_off_ratio = 0.5"),
        (lambda: DeviceConfig(k=0.0), r"k = 0.0: must lie in \(0, 1\)"),
        (lambda: DeviceConfig(k=1.0), r"k = 1.0: must lie in \(0, 1\)"),
        (lambda: DeviceConfig(read_iv="cubic"), r"read_iv = 'cubic': must be one of"),  # type: ignore[arg-type]
        (lambda: DeviceConfig(w_max=math.inf), r"w_max = inf: must be finite"),
        (lambda: DeviceConfig(dw_min=0.0), r"dw_min = 0.0"),
        (lambda: DeviceConfig(up_down_ratio=0.0), r"up_down_ratio = 0.0"),
        (lambda: DeviceConfig(bound_margin=0.6), r"bound_margin = 0.6"),
        (lambda: DeviceConfig(read_v0_v=-1.0), r"read_v0_v = -1.0"),
        (lambda: PeripheryConfig(encoding="pwm"), r"encoding = 'pwm': must be one of"),  # type: ignore[arg-type]
        (lambda: PeripheryConfig(t_meas_s=math.nan), r"t_meas_s = nan: must be finite"),
        (lambda: PeripheryConfig(a0=0.5), r"a0 = 0.5: must lie in"),
        (lambda: PeripheryConfig(adc_bits=0), r"adc_bits = 0"),
        (lambda: PeripheryConfig(bl=0), r"bl = 0"),
        (lambda: PeripheryConfig(input_steps=0), r"input_steps = 0"),
        (lambda: PeripheryConfig(v_read_v=0.0), r"v_read_v = 0.0"),
        (lambda: PeripheryConfig(c_int_f=-1e-15), r"c_int_f = -1e-15"),
        (lambda: PeripheryConfig(temperature_k=0.0), r"temperature_k = 0.0"),
        (lambda: PeripheryConfig(gbw_hz=0.0), r"gbw_hz = 0.0"),
        (lambda: PeripheryConfig(e_n_v_per_rthz=-1.0), r"e_n_v_per_rthz = -1.0"),
        (lambda: PeripheryConfig(t_reset_s=-1.0), r"t_reset_s = -1.0"),
        (lambda: PeripheryConfig(t_settle_s=-1.0), r"t_settle_s = -1.0"),
        (lambda: PeripheryConfig(r_reset_ohm=0.0), r"r_reset_ohm = 0.0"),
        (lambda: PeripheryConfig(v_out_max_v=0.0), r"v_out_max_v = 0.0"),
        (lambda: PeripheryConfig(alpha=0.0), r"alpha = 0.0"),
        (lambda: PeripheryConfig(adc_range_v=-1.0), r"adc_range_v = -1.0"),
        (lambda: PeripheryConfig(v_s_v=0.0), r"v_s_v = 0.0"),
        (lambda: PeripheryConfig(t_pulse_s=0.0), r"t_pulse_s = 0.0"),
        (lambda: PeripheryConfig(t_rise_s=0.0), r"t_rise_s = 0.0"),
        (
            lambda: PeripheryConfig(t_rise_s=0.6e-9, t_pulse_s=1e-9),
            r"t_rise_s = 6e-10: must be at most half of t_pulse_s",
        ),
        (
            lambda: PeripheryConfig(t_rise_s=0.3e-9, t_pulse_s=1e-9, input_steps=1000),
            r"t_rise_s = 3e-10: must not exceed the input step",
        ),
        (lambda: CircuitConfig(tile=DeviceConfig()), r"tile = .*: must be a TileConfig"),  # type: ignore[arg-type]
    ],
)
def test_bad_values_name_the_field(build: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()  # type: ignore[operator]


def test_spice_cost_estimate_and_budget() -> None:
    # Any size builds (the nodal solver takes it); the budget is checked where a netlist
    # for ngspice is made (tests/unit/test_spice_budget.py).
    big = CircuitConfig(tile=TileConfig(rows=1024, cols=1024))
    with pytest.raises(ConfigError, match=r"too large to simulate \(op\).*estimated ngspice time"):
        check_spice_budget(big, "op")
    cost = estimate_spice_cost(big, "op")
    assert cost.nodes == 2 * (2 * 1024 * 1024 + 1024)
    # nodes^2.5 scaling (N^5, NGSPICE.md) between any two sizes; memory grows with nodes.
    small = estimate_spice_cost(gokmen_vlasov_2016(rows=64, cols=64), "op")
    assert small.nodes == 2 * (2 * 64 * 64 + 64)
    assert cost.seconds / small.seconds == pytest.approx((cost.nodes / small.nodes) ** 2.5, rel=REL)
    assert cost.memory_bytes > small.memory_bytes > 12.5e6
    with pytest.raises(ConfigError, match=r"too large to simulate \(tran\)"):
        check_spice_budget(replace_tile(gokmen_vlasov_2016(), rows=128, cols=128), "tran")


def test_malformed_and_unknown_toml() -> None:
    with pytest.raises(ConfigError, match="malformed TOML"):
        from_toml(CircuitConfig, "[tile\nrows = 3")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) tile.rowz"):
        from_toml(CircuitConfig, "[tile]\nrowz = 3\n")
    with pytest.raises(ConfigError, match=r"device.r_mean_ohm = -1.0: must be > 0|r_mean_ohm"):
        from_toml(CircuitConfig, "[device]\nr_mean_ohm = -1.0\n")
    with pytest.raises(ConfigError, match=r"device.read_iv = 'x\\n.control'"):
        from_toml(CircuitConfig, '[device]\nread_iv = "x\\n.control"\n')
