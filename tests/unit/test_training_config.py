"""TrainingConfig: validation, TOML round trip, per-layer array-model settings, sweep overrides."""

from __future__ import annotations

from typing import Any

import pytest

from rpucircuit.config import rpu
from rpucircuit.config.base import config_key, from_toml, to_toml
from rpucircuit.config.training import ModelSpec, Setting, TrainingConfig
from rpucircuit.errors import ConfigError

EXAMPLE = """
network = "cnn"
epochs = 3
seed = 7

[model]
preset = "gokmen_onen_haensch_2017"

[[model.settings]]
path = "device.dw_min"
value = 0.002

[[model.settings]]
path = "device.n_devices"
value = 4
layers = [1]

[[model.settings]]
path = "update.bl"
value = 20
layers = [2, 3]
"""


def test_defaults_are_paper_schedule() -> None:
    cfg = TrainingConfig()
    assert (cfg.network, cfg.epochs, cfg.lr, cfg.n_train, cfg.n_test) == (
        "fc",
        30,
        0.01,
        60000,
        10000,
    )
    assert cfg.rpu_configs() == (rpu.floating_point(),) * 3


def test_toml_round_trip_and_key() -> None:
    cfg = from_toml(TrainingConfig, EXAMPLE)
    back = from_toml(TrainingConfig, to_toml(cfg))
    assert back == cfg and config_key(back) == config_key(cfg)
    other = from_toml(TrainingConfig, EXAMPLE.replace("seed = 7", "seed = 8"))
    assert config_key(other) != config_key(cfg)


def test_settings_per_layer() -> None:
    cfg = from_toml(TrainingConfig, EXAMPLE)
    base = rpu.gokmen_onen_haensch_2017()
    c = cfg.rpu_configs()
    assert len(c) == 4
    assert [x.device.dw_min for x in c] == [0.002] * 4
    assert [x.device.n_devices for x in c] == [1, 4, 1, 1]
    assert [x.update.bl for x in c] == [base.update.bl, base.update.bl, 20, 20]
    # everything not set stays the preset's
    assert c[0].forward == base.forward and c[0].device.w_max == base.device.w_max


def test_setting_values_take_the_field_type() -> None:
    # an int given for a float field is a float, so 1 and 1.0 give the same key
    s = Setting(path="device.w_max", value=1)
    assert isinstance(s.value, float) and s.value == 1.0
    assert Setting(path="update.bl", value=5.0).value == 5
    assert isinstance(Setting(path="update.bl", value=5.0).value, int)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("forward.noise_management", 1, "must be bool, not int"),
        ("update.bl", True, "must be int, not bool"),
        ("update.bl", 2.5, "must be int, not float"),
        ("device.w_max", "0.6", "must be float, not str"),
        ("device.w_max", False, "must be float, not bool"),
    ],
)
def test_setting_values_of_the_wrong_type_are_refused(path: str, value: Any, message: str) -> None:
    """Before, ``noise_management = 1`` passed as true and ``bl = true`` as 1."""
    with pytest.raises(ConfigError, match=message):
        Setting(path=path, value=value)


def test_later_settings_win() -> None:
    cfg = TrainingConfig(
        model=ModelSpec(
            preset="gokmen_vlasov_2016",
            settings=(
                Setting(path="update.bl", value=5),
                Setting(path="update.bl", value=40, layers=(0,)),
            ),
        )
    )
    assert [c.update.bl for c in cfg.rpu_configs()] == [40, 5, 5]


def _settings(*items: dict[str, Any]) -> ModelSpec:
    return ModelSpec(preset="gokmen_vlasov_2016", settings=tuple(Setting(**i) for i in items))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrainingConfig(network="rnn"), "network = 'rnn': must be one of"),  # type: ignore[arg-type]
        (lambda: TrainingConfig(epochs=0), "epochs = 0: must be an integer >= 1"),
        (lambda: TrainingConfig(lr=0.0), r"lr = 0\.0: must be > 0"),
        (lambda: TrainingConfig(seed=-1), "seed = -1"),
        (
            lambda: TrainingConfig(n_train=60001),
            r"n_train = 60001: must be an integer in \[1, 60000\]",
        ),
        (lambda: TrainingConfig(n_test=0), "n_test = 0"),
        (lambda: TrainingConfig(eval_last=0), "eval_last = 0"),
        (lambda: TrainingConfig(checkpoint_every=0), "checkpoint_every = 0"),
        (lambda: ModelSpec(preset="nope"), "model.preset = 'nope': must be one of"),
        (lambda: Setting(path="device.dw_mn", value=1.0), "device has no field 'dw_mn'"),
        (lambda: Setting(path="devices.dw_min", value=1.0), "RPUConfig has no field 'devices'"),
        (lambda: Setting(path="device", value=1.0), "names a table, not a value"),
        (lambda: Setting(path="update.bl.x", value=1), "'bl' is a value, not a table"),
        (lambda: Setting(path="update.bl", value=5, layers=(-1,)), r"layers\[0\] = -1"),
        (lambda: Setting(path="update.bl", value=5, layers=(1, 1)), "repeated"),
        (
            lambda: TrainingConfig(
                model=_settings({"path": "update.bl", "value": 5, "layers": (3,)})
            ),
            "the fc network has analog layers 0..2",
        ),
        (
            lambda: TrainingConfig(model=_settings({"path": "device.dw_min", "value": -1.0})),
            r"model.settings\[device.dw_min\] on layer 0: .*dw_min",
        ),
    ],
)
def test_errors(build: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_model_file_skips_preset_validation() -> None:
    # a calibrated model file replaces the preset; the training code refuses it for now
    cfg = TrainingConfig(model=ModelSpec(file="models/default.h5"))
    assert cfg.model.file == "models/default.h5"


def test_apply_override() -> None:
    data: dict[str, Any] = {"epochs": 2}
    TrainingConfig.apply_override(data, "rpu.device.dw_min", 0.01)
    TrainingConfig.apply_override(data, "rpu@1,2.update.bl", 4)
    TrainingConfig.apply_override(data, "model.preset", "gokmen_vlasov_2016")
    TrainingConfig.apply_override(data, "seed", 3)
    assert data == {
        "epochs": 2,
        "seed": 3,
        "model": {
            "preset": "gokmen_vlasov_2016",
            "settings": [
                {"path": "device.dw_min", "value": 0.01},
                {"path": "update.bl", "value": 4, "layers": [1, 2]},
            ],
        },
    }


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({}, "rpu", "give a field"),
        ({}, "rpu@x.update.bl", "layers after '@' must be integers"),
        ({"model": 3}, "rpu.update.bl", "'model' must be a table"),
        ({}, "model..preset", "empty component"),
        ({"model": 3}, "model.preset", "'model' is a value, not a table"),
    ],
)
def test_apply_override_errors(data: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainingConfig.apply_override(data, path, 1)
