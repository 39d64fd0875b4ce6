"""Model-side configs: paper defaults, presets, TOML round trip, and every validation error."""

from __future__ import annotations

import dataclasses

import pytest

from rpucircuit.config import config_key, from_toml, rpu, to_toml
from rpucircuit.errors import ConfigError


def test_defaults_are_paper_a_numbers() -> None:
    io = rpu.IOConfig()
    dev = rpu.PulsedDeviceConfig()
    # PHYSICS.md: sigma 0.06, alpha 12, 7-bit DAC (1/126), 9-bit ADC (1/510)
    assert (io.out_noise, io.out_bound) == (0.06, 12.0)
    assert io.inp_res == 1.0 / 126.0 and io.out_res == 1.0 / 510.0
    # PHYSICS.md: dw_min 0.001 with 30 % d2d and c2c, bounds ±0.6 with 30 % d2d
    assert (dev.dw_min, dev.dw_min_dtod, dev.dw_min_ctoc) == (0.001, 0.3, 0.3)
    assert (dev.w_max, dev.w_min, dev.w_bound_dtod) == (0.6, -0.6, 0.3)
    assert (dev.up_down, dev.up_down_dtod, dev.k_half_select) == (0.0, 0.01, 0.0)
    assert rpu.UpdateConfig().bl == 10


def test_presets() -> None:
    fp = rpu.floating_point()
    assert fp.forward.is_perfect and fp.backward.is_perfect
    assert fp.update.pulse_type == "exact" and not fp.device.bounded
    a = rpu.gokmen_vlasov_2016()
    assert a.update.bl == 10 and a.update.update_management
    assert a.forward.noise_management and a.forward.bound_management
    assert a.backward.noise_management and not a.backward.bound_management
    assert rpu.gokmen_vlasov_2016(k_half_select=0.5).device.k_half_select == 0.5
    b = rpu.gokmen_onen_haensch_2017(n_devices=4)
    assert b.backward.bound_management and b.device.n_devices == 4
    off = rpu.gokmen_onen_haensch_2017(noise_management=False, update_management=False)
    assert not off.forward.noise_management and not off.update.update_management


def test_toml_round_trip_and_stable_key() -> None:
    cfg = rpu.gokmen_onen_haensch_2017(n_devices=3, bl=31)
    back = from_toml(rpu.RPUConfig, to_toml(cfg))
    assert back == cfg
    assert config_key(back) == config_key(cfg)
    other = dataclasses.replace(cfg, update=rpu.UpdateConfig(bl=30))
    assert config_key(other) != config_key(cfg)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (rpu.IOConfig, {"inp_bound": 0.0}, r"inp_bound = 0\.0: must be > 0"),
        (rpu.IOConfig, {"inp_res": -0.1}, r"inp_res = -0\.1: must lie in \[0, 0\.5\]"),
        (rpu.IOConfig, {"inp_res": 0.75}, r"inp_res = 0\.75: must lie in \[0, 0\.5\]"),
        (rpu.IOConfig, {"out_noise": -1.0}, r"out_noise = -1\.0: must be >= 0"),
        (rpu.IOConfig, {"out_bound": -2.0}, r"out_bound = -2\.0: must be >= 0"),
        (rpu.IOConfig, {"out_res": 2.0}, r"out_res = 2\.0: must lie in \[0, 0\.5\]"),
        (rpu.IOConfig, {"bm_max_factor": 0.5}, r"bm_max_factor = 0\.5: must lie in \[1, "),
        (rpu.IOConfig, {"out_bound": 0.0}, r"bound_management = True needs a finite out_bound"),
        (rpu.PulsedDeviceConfig, {"dw_min": 0.0}, r"dw_min = 0\.0: must be > 0"),
        (rpu.PulsedDeviceConfig, {"dw_min_dtod": -0.1}, r"dw_min_dtod = -0\.1: must lie"),
        (rpu.PulsedDeviceConfig, {"dw_min_ctoc": 11.0}, r"dw_min_ctoc = 11\.0: must lie"),
        (rpu.PulsedDeviceConfig, {"w_max": -0.6}, r"w_max = -0\.6: must be > 0"),
        (rpu.PulsedDeviceConfig, {"w_min": 0.6}, r"w_min = 0\.6: must lie in \[-1e\+09, 0\)"),
        (rpu.PulsedDeviceConfig, {"w_bound_dtod": -1.0}, r"w_bound_dtod = -1\.0: must lie"),
        (rpu.PulsedDeviceConfig, {"up_down": 1.0}, r"up_down = 1\.0: must lie in \(-1, 1\)"),
        (rpu.PulsedDeviceConfig, {"up_down_dtod": 2.0}, r"up_down_dtod = 2\.0: must lie"),
        (rpu.PulsedDeviceConfig, {"k_half_select": 1.5}, r"k_half_select = 1\.5: must lie"),
        (rpu.PulsedDeviceConfig, {"n_devices": 0}, r"n_devices = 0: must be an integer in"),
        (rpu.PulsedDeviceConfig, {"n_devices": 2.0}, r"n_devices = 2\.0: must be an integer"),
        (
            rpu.PulsedDeviceConfig,
            {"soft_bounds": True, "bounded": False},
            r"soft_bounds = True needs bounded = True",
        ),
        (rpu.UpdateConfig, {"bl": 65}, r"bl = 65: must be an integer in \[1, 64\]"),
        (rpu.UpdateConfig, {"pulse_type": "exactly"}, r"pulse_type = 'exactly': must be one of"),
        (rpu.RPUConfig, {"forward": rpu.UpdateConfig()}, r"forward = .*must be an IOConfig"),
    ],
)
def test_validation_errors(cls: type, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


def test_unknown_toml_field_is_refused() -> None:
    text = to_toml(rpu.gokmen_vlasov_2016()).replace("bl = 10", "bl = 10\nbll = 3")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) update\.bll"):
        from_toml(rpu.RPUConfig, text)
