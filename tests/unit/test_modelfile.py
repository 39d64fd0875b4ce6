"""Array-model files: HDF5 round trips, every refusal, the training hookup, the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from rpucircuit import cli, store
from rpucircuit.config.base import config_key, from_toml, to_toml
from rpucircuit.config.rpu import RPUConfig
from rpucircuit.config.training import PRESETS, ModelSpec, Setting, TrainingConfig
from rpucircuit.errors import ConfigError, StoreError, UnsupportedError
from rpucircuit.model.irdrop import IRDropModel
from rpucircuit.model.modelfile import (
    MODEL_KIND,
    MODEL_SCHEMA,
    ArrayModel,
    CharacterizationLink,
    InputTransfer,
    IRDrop,
    ModelParameter,
    NoiseModel,
    PresetExport,
    ValidationCheck,
    check_characterization,
    file_sha256,
    load_model,
    parameter_from,
    save_model,
)
from rpucircuit.model.modelshow import describe
from rpucircuit.training.loop import build_network, load_array_model


def export(tmp_path: Path, preset: str, ratio: float = 0.0, name: str = "") -> Path:
    origin = PresetExport(preset=preset, segment_ratio=ratio)
    return save_model(tmp_path / (name or f"{preset}.h5"), origin.build(), origin=origin)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_round_trips(tmp_path: Path, preset: str) -> None:
    origin = PresetExport(preset=preset)
    path = save_model(tmp_path / "m.h5", origin.build(), origin=origin)
    loaded = load_model(path)
    assert loaded.model.rpu == PRESETS[preset]()  # the whole RPUConfig, field by field
    assert loaded.model.source == f"preset {preset}"
    assert loaded.model.ir_drop is None and loaded.model.validation == ()
    assert loaded.sha256 == file_sha256(path)
    prov = loaded.provenance
    assert (prov.kind, prov.schema_version) == (MODEL_KIND, MODEL_SCHEMA)
    assert prov.config_toml == to_toml(origin) and prov.config_key == config_key(origin)
    assert from_toml(PresetExport, prov.config_toml) == origin
    text = describe(loaded, ((256, 785),))
    assert f'origin       preset = "{preset}"; segment_ratio = 0.0; driver_ratio = 0.0' in text
    assert "IR drop      none (attenuation map = 1)" in text and "validation   none" in text


def test_full_model_round_trips(tmp_path: Path) -> None:
    """IR-drop model and validation table come back exactly (floats stored as float64)."""
    model = ArrayModel(
        rpu=dataclasses.replace(
            PRESETS["gokmen_vlasov_2016"](),
            update=dataclasses.replace(PRESETS["gokmen_vlasov_2016"]().update, bl=31),
        ),
        description="test model",
        source="calibrated from sim_data/none.h5",
        ir_drop=IRDrop.both(IRDropModel(segment_ratio=6e-9, driver_ratio=4.2e-7, drive_end="last")),
        validation=(
            ValidationCheck(name="read_rms", predicted=0.061, reference=0.06, tolerance=0.002),
            ValidationCheck(name="dw_min", predicted=1.2e-3, reference=1e-3, tolerance=1e-4),
        ),
    )
    path = save_model(tmp_path / "m.h5", model, origin=PresetExport(preset="floating_point"))
    loaded = load_model(path)
    assert loaded.model == model
    assert [c.passed for c in loaded.model.validation] == [True, False]
    text = describe(loaded, ((256, 785), (16384, 16384)))
    assert "calibrated from sim_data/none.h5" in text
    assert "read_rms: 0.061 / 0.06 (0.002) yes" in text and "dw_min: 0.0012 / 0.001" in text
    assert "tile 256 × 785: largest attenuation forward" in text
    # 6e-9·16384·16385 + 4.2e-7·16384 = 1.618
    assert "16384 × 16384: largest attenuation forward 1.62, backward 1.62 (beyond the" in text


def test_attenuation_is_none_without_ir_drop() -> None:
    assert PresetExport(preset="floating_point").build().attenuation(3, 4) is None
    m = PresetExport(preset="floating_point", segment_ratio=1e-3).build()
    att = m.attenuation(3, 4)
    assert att is not None
    assert m.ir_drop is not None
    np.testing.assert_array_equal(att, m.ir_drop.forward.attenuation(3, 4, "forward"))


def _raw(tmp_path: Path, tree: dict[str, Any], *, schema: int = MODEL_SCHEMA) -> Path:
    """A file written straight through the store, bypassing save_model's checks."""
    prov = store.Provenance(
        kind=MODEL_KIND, schema_version=schema, config_toml="", config_key="0" * 64
    )
    return store.save(tmp_path / "raw.h5", tree, prov)


def _good_tree() -> dict[str, Any]:
    return {
        "description": "d",
        "source": "s",
        "rpu_config_toml": to_toml(PRESETS["gokmen_vlasov_2016"]()),
    }


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no such file: .*absent\.h5"):
        load_model(tmp_path / "absent.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(StoreError, match=r"junk\.h5 is not a readable HDF5 file"):
        load_model(tmp_path / "junk.h5")
    hist = store.save(
        tmp_path / "history.h5",
        {"x": 1},
        store.Provenance(kind="history", schema_version=1, config_toml="", config_key=""),
    )
    with pytest.raises(StoreError, match=r"history\.h5 holds a 'history' file, expected 'model'"):
        load_model(hist)
    with pytest.raises(StoreError, match=r"raw\.h5: model schema version 3 is newer than"):
        load_model(_raw(tmp_path, _good_tree(), schema=MODEL_SCHEMA + 1))
    with pytest.raises(StoreError, match=r"raw\.h5: model schema version 0 is not valid"):
        load_model(_raw(tmp_path, _good_tree(), schema=0))
    tree = _good_tree()
    del tree["rpu_config_toml"]
    with pytest.raises(StoreError, match=r"raw\.h5: model file has no 'rpu_config_toml'"):
        load_model(_raw(tmp_path, tree))
    with pytest.raises(StoreError, match=r"raw\.h5: 'source' must be text, found int"):
        load_model(_raw(tmp_path, {**_good_tree(), "source": 3}))
    with pytest.raises(StoreError, match=r"raw\.h5: unknown entries weights in a schema-2"):
        load_model(_raw(tmp_path, {**_good_tree(), "weights": np.ones(3)}))


def test_malformed_rpu_config(tmp_path: Path) -> None:
    bad_toml = {**_good_tree(), "rpu_config_toml": "[update\nbl = 10"}
    with pytest.raises(ConfigError, match=r"raw\.h5: rpu_config_toml.*malformed TOML"):
        load_model(_raw(tmp_path, bad_toml))
    bad_value = {**_good_tree(), "rpu_config_toml": "[update]\nbl = 0\n"}
    with pytest.raises(ConfigError, match=r"raw\.h5: rpu_config_toml: bl = 0: must be an integer"):
        load_model(_raw(tmp_path, bad_value))
    unknown = {**_good_tree(), "rpu_config_toml": "[device]\ncolour = 1\n"}
    with pytest.raises(ConfigError, match=r"raw\.h5: rpu_config_toml: unknown field\(s\) device"):
        load_model(_raw(tmp_path, unknown))


def test_bad_ir_drop_and_validation(tmp_path: Path) -> None:
    neg = {**_good_tree(), "ir_drop": {"segment_ratio": -1e-9}}
    with pytest.raises(ConfigError, match=r"raw\.h5: ir_drop.segment_ratio = -1e-09: must be"):
        load_model(_raw(tmp_path, neg))
    end = {**_good_tree(), "ir_drop": {"segment_ratio": 1e-9, "drive_end": "middle"}}
    with pytest.raises(ConfigError, match=r"raw\.h5: ir_drop: drive_end = 'middle'"):
        load_model(_raw(tmp_path, end))
    flat = {**_good_tree(), "ir_drop": 0.5}
    with pytest.raises(StoreError, match=r"raw\.h5: ir_drop must be a group"):
        load_model(_raw(tmp_path, flat))
    ragged = {
        **_good_tree(),
        "validation": {
            "name": np.array(["a", "b"]),
            "predicted": np.ones(2),
            "reference": np.ones(1),
            "tolerance": np.ones(2),
        },
    }
    with pytest.raises(
        StoreError, match=r"raw\.h5: validation columns must be 1-d of equal length"
    ):
        load_model(_raw(tmp_path, ragged, schema=1))
    partial = {**_good_tree(), "validation": {"name": np.array(["a"])}}
    with pytest.raises(StoreError, match=r"raw\.h5: validation must hold exactly name"):
        load_model(_raw(tmp_path, partial, schema=1))
    twice = {
        **_good_tree(),
        "validation": {
            "name": np.array(["a", "a"]),
            "predicted": np.ones(2),
            "reference": np.ones(2),
            "tolerance": np.ones(2),
        },
    }
    with pytest.raises(ConfigError, match=r"raw\.h5: validation names repeat"):
        load_model(_raw(tmp_path, twice, schema=1))
    negtol = {**twice, "validation": {**twice["validation"], "name": np.array(["a", "b"])}}
    negtol["validation"]["tolerance"] = np.array([1.0, -1.0])
    with pytest.raises(ConfigError, match=r"raw\.h5: validation\[b\]\.tolerance = -1\.0"):
        load_model(_raw(tmp_path, negtol, schema=1))
    text = {**negtol, "validation": {**negtol["validation"], "predicted": np.array(["x", "y"])}}
    with pytest.raises(
        StoreError, match=r"raw\.h5: validation: column predicted: could not convert"
    ):
        load_model(_raw(tmp_path, text, schema=1))


def test_model_and_export_errors() -> None:
    rpu = PRESETS["floating_point"]()
    with pytest.raises(ConfigError, match="rpu = 'x': must be an RPUConfig"):
        ArrayModel(rpu="x", description="", source="")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="source = 1: must be text"):
        ArrayModel(rpu=rpu, description="", source=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ir_drop = 0\.1: must be an IRDrop or None"):
        ArrayModel(rpu=rpu, description="", source="", ir_drop=0.1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="validation check name = '': must be non-empty"):
        ValidationCheck(name="", predicted=0.0, reference=0.0, tolerance=0.0)
    with pytest.raises(ConfigError, match=r"validation\[x\]\.predicted = 'a': must be a number"):
        ValidationCheck(name="x", predicted="a", reference=0.0, tolerance=0.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="preset = 'nope': must be one of"):
        PresetExport(preset="nope")
    with pytest.raises(ConfigError, match=r"driver_ratio = 0\.001 needs segment_ratio > 0"):
        PresetExport(preset="floating_point", driver_ratio=1e-3)
    with pytest.raises(ConfigError, match=r"segment_ratio = -1\.0: must be >= 0"):
        PresetExport(preset="floating_point", segment_ratio=-1.0)


# --------------------------------------------------------------------------- training hookup


def test_rpu_configs_with_a_file_needs_its_config() -> None:
    cfg = TrainingConfig(
        model=ModelSpec(file="m.h5", settings=(Setting(path="update.bl", value=31),))
    )
    with pytest.raises(UnsupportedError, match=r"model.file = 'm.h5': pass the file's RPUConfig"):
        cfg.rpu_configs()
    base = PRESETS["gokmen_onen_haensch_2017"]()
    configs = cfg.rpu_configs(base)
    assert all(c.update.bl == 31 and c.device == base.device for c in configs)


def test_file_network_equals_preset_network(tmp_path: Path) -> None:
    """No IR-drop model: same weights, device parameters and generators as the preset."""
    path = export(tmp_path, "gokmen_vlasov_2016")
    settings = (Setting(path="device.n_devices", value=2, layers=(1,)),)
    by_file = TrainingConfig(model=ModelSpec(file=str(path), settings=settings))
    by_preset = TrainingConfig(model=ModelSpec(preset="gokmen_vlasov_2016", settings=settings))
    a = build_network(by_file, rng=np.random.default_rng(3))
    b = build_network(by_preset, rng=np.random.default_rng(3))
    assert [t.config for t in a.tiles] == [t.config for t in b.tiles]
    assert a.tiles[1].config.device.n_devices == 2
    sa, sb = a.get_state(), b.get_state()
    assert json.dumps(sa, default=lambda v: np.asarray(v).tolist()) == json.dumps(
        sb, default=lambda v: np.asarray(v).tolist()
    )


@pytest.mark.parametrize("network", ["fc", "cnn"])
def test_file_ir_drop_sets_every_tile_map(tmp_path: Path, network: str) -> None:
    path = export(tmp_path, "gokmen_vlasov_2016", ratio=6e-9)
    cfg = TrainingConfig(network=network, model=ModelSpec(file=str(path)))  # type: ignore[arg-type]
    net = build_network(cfg, rng=np.random.default_rng(0))
    ir = load_model(path).model.ir_drop
    assert ir is not None
    for tile in net.tiles:
        expected = ir.forward.attenuation(tile.out_size, tile.in_size, "forward")
        np.testing.assert_array_equal(tile.get_attenuation(), expected)
        assert tile.get_attenuation().min() < 1.0  # a real map, not the default ones


def test_training_refusals_name_the_file(tmp_path: Path) -> None:
    big = export(tmp_path, "gokmen_vlasov_2016", ratio=1e-5, name="big.h5")
    cfg = TrainingConfig(model=ModelSpec(file=str(big)))
    with pytest.raises(ConfigError, match=r"big\.h5: ir_drop/forward: .*256 × 785 tile: larg"):
        build_network(cfg, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"big\.h5: ir_drop/forward: .*256 × 785 tile: larg"):
        load_array_model(cfg)  # before any data is loaded
    fp = export(tmp_path, "floating_point")
    soft = Setting(path="device.soft_bounds", value=True)
    cfg = TrainingConfig(model=ModelSpec(file=str(fp), settings=(soft,)))
    with pytest.raises(ConfigError, match=r"floating_point\.h5: model.settings\[device.soft"):
        load_array_model(cfg)
    assert load_array_model(TrainingConfig()) is None


def test_pinned_sha256(tmp_path: Path) -> None:
    path = export(tmp_path, "gokmen_vlasov_2016")
    sha = file_sha256(path)
    pinned = TrainingConfig(model=ModelSpec(file=str(path), file_sha256=sha))
    loaded = load_array_model(pinned)
    assert loaded is not None and loaded.sha256 == sha
    # the pin is part of the config key: another file content, another sweep job
    other = TrainingConfig(model=ModelSpec(file=str(path), file_sha256="0" * 64))
    assert config_key(other) != config_key(pinned)
    with pytest.raises(StoreError, match=r"gokmen_vlasov_2016\.h5: sha256 .* differs from model"):
        load_array_model(other)
    with pytest.raises(ConfigError, match=r"model\.file_sha256 is set but model\.file is empty"):
        ModelSpec(file_sha256=sha)
    with pytest.raises(ConfigError, match=r"model\.file_sha256 = 'ABC': must be 64 lowercase hex"):
        ModelSpec(file="m.h5", file_sha256="ABC")
    with pytest.raises(ConfigError, match="must be 64 lowercase hex"):
        ModelSpec(file="m.h5", file_sha256=sha.upper())


# --------------------------------------------------------------------------- CLI


def test_cli_export_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "models" / "gv.h5"
    rc = cli.main(
        ["model", "export", "gokmen_vlasov_2016", "--out", str(out), "--ir-drop-ratio", "6e-9"]
    )
    assert rc == 0
    assert f"wrote {out} (preset gokmen_vlasov_2016; sha256" in capsys.readouterr().err
    loaded = load_model(out)
    assert loaded.model.rpu == PRESETS["gokmen_vlasov_2016"]()
    assert loaded.model.ir_drop == IRDrop.both(IRDropModel(segment_ratio=6e-9))
    assert cli.main(["model", "show", str(out), "--tile", "256x785"]) == 0
    shown = capsys.readouterr().out
    assert f"sha256       {loaded.sha256}" in shown
    assert "IR drop      both reads: segment ratio 6e-09, driver ratio 0" in shown
    # 6e-9·(256·257/2 + 785·786/2) = 2.048e-3, the same both ways (the sum is symmetric)
    assert "tile 256 × 785: largest attenuation forward 0.00205, backward 0.00205" in shown
    assert "dw_min = 0.001" in shown  # the RPUConfig's TOML
    assert cli.main(["model", "show", str(out)]) == 0
    assert shown.count("tile ") < capsys.readouterr().out.count("tile ")  # default: all tiles


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["model", "show", str(tmp_path / "none.h5")]) == 1
    assert "rpucircuit model: error: no such file" in capsys.readouterr().err
    out = tmp_path / "m.h5"
    assert cli.main(["model", "export", "floating_point", "--out", str(out)]) == 0
    assert cli.main(["model", "show", str(out), "--tile", "3by4"]) == 1
    assert "--tile '3by4': give OUTxIN" in capsys.readouterr().err
    assert cli.main(["model", "show", str(out), "--tile", "0x4"]) == 1
    assert "--tile '0x4': both sizes must be >= 1" in capsys.readouterr().err
    args = ["model", "export", "floating_point", "--out", str(out), "--ir-drop-driver-ratio", "1"]
    assert cli.main(args) == 1
    assert "needs segment_ratio > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["model", "export", "no_such_preset", "--out", str(out)])
    assert exc.value.code == 2
    assert "invalid choice: 'no_such_preset'" in capsys.readouterr().err


def test_shipped_models_are_current_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """models/*.h5 hold exactly what their documented export command writes, byte for byte
    (if this fails after a preset or format change, run `make models` and commit)."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    root = Path(__file__).resolve().parents[2] / "models"
    for name, ratio in (("gokmen_vlasov_2016", 6e-9), ("gokmen_onen_haensch_2017", 0.0)):
        loaded = load_model(root / f"{name}.h5")
        origin = PresetExport(preset=name, segment_ratio=ratio)
        assert loaded.model == origin.build()
        assert loaded.provenance.config_key == config_key(origin)
        fresh = save_model(tmp_path / f"{name}.h5", origin.build(), origin=origin)
        assert file_sha256(fresh) == loaded.sha256, f"models/{name}.h5 is stale: make models"


def test_export_is_reproducible_and_its_sha_pins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: every export wrote its creation time into the file, so re-running
    `make models` changed the sha256 (a run on the file then refused --resume and sweep
    caches missed), and the command printed 16 hex digits that model.file_sha256 refuses."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    shas = []
    for name in ("a.h5", "b.h5"):
        args = ["model", "export", "gokmen_vlasov_2016", "--out", str(tmp_path / name)]
        assert cli.main([*args, "--ir-drop-ratio", "6e-9"]) == 0
        shas.append(capsys.readouterr().err.strip().rsplit("sha256 ", 1)[1].rstrip(")"))
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    assert shas[0] == shas[1] == file_sha256(tmp_path / "a.h5")
    pinned = TrainingConfig(model=ModelSpec(file=str(tmp_path / "b.h5"), file_sha256=shas[0]))
    loaded = load_array_model(pinned)
    assert loaded is not None and loaded.sha256 == shas[0]
    assert "(reproducible: no creation time)" in describe(loaded)
    # with SOURCE_DATE_EPOCH the file records that date, and stays reproducible
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    c = export(tmp_path, "floating_point", name="c.h5").read_bytes()
    d = export(tmp_path, "floating_point", name="d.h5")
    assert d.read_bytes() == c
    assert "at 2023-11-14T22:13:20+00:00" in describe(load_model(d))


def test_rpu_config_type_is_what_the_file_builds(tmp_path: Path) -> None:
    loaded = load_model(export(tmp_path, "floating_point"))
    assert isinstance(loaded.model.rpu, RPUConfig)


# --------------------------------------------------------------------------- schema 2

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NOISE = NoiseModel(a=4e-4, b=2e-6)
"""σ² = a + b·N: σ(785) = √(4e-4 + 1.57e-3) = 0.04438, σ(26) = √(4.52e-4) = 0.02126."""


def calibrated_model() -> ArrayModel:
    """A model with every schema-2 part filled, as calibration would write it."""
    base = PRESETS["gokmen_vlasov_2016"]()
    return ArrayModel(
        rpu=base,
        description="calibrated test model",
        source="calibrated from sim_data/reference/characterization.h5",
        ir_drop=IRDrop(
            forward=IRDropModel(segment_ratio=6e-9, driver_ratio=4.2e-7),
            backward=IRDropModel(segment_ratio=8e-9),
        ),
        out_noise=NOISE,
        forward_input_transfer=InputTransfer(odd_coefficients=(0.98, 0.031, -0.002)),
        backward_input_transfer=InputTransfer(x=(-1.0, 0.0, 0.5, 1.0), f=(-0.9, 0.0, 0.48, 0.9)),
        parameters=(
            ModelParameter(
                name="segment_ratio",
                value=6.1e-9,
                unit="1",
                sources=("transfer/op_fwd_random_8", "transfer/op_fwd_random_16"),
                residual=0.012,
                tolerance=0.05,
                interval=(5.9e-9, 6.3e-9),
                origin="fitted",
                note="DC points; residual = relative rms",
            ),
            ModelParameter(
                name="out_res",
                value=1 / 510,
                unit="1",
                sources=("noise",),
                interval=(1 / 510, 1 / 510),
                origin="config",
                note="the ADC step is not observable",
            ),
        ),
        validation=(
            ValidationCheck(name="dw_min", predicted=1.02e-3, reference=1e-3, tolerance=1e-4),
            ValidationCheck(
                name="forward_read/fwd_random_64",
                case="transfer/fwd_random_64",
                quantity="forward_read",
                unit="% of alpha",
                rms_error=0.21,
                max_error=0.74,
                preset_rms_error=3.2,
                preset_max_error=7.9,
                tolerance=0.5,
            ),
            ValidationCheck(
                name="update/pulse_train_32",
                case="update/pulse_train_32",
                quantity="update",
                unit="% of dw_min",
                rms_error=2.5,
                max_error=6.0,
                tolerance=2.0,
            ),
        ),
        fit_report="# Fit report\n\n| parameter | value |\n|---|---|\n| segment_ratio | 6.1e-9 |\n",
        characterization=CharacterizationLink(
            path="sim_data/reference/characterization.h5", config_key="ab" * 32, sha256="0" * 64
        ),
    )


def test_schema2_round_trip_and_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every schema-2 part comes back equal (NaN figures included: a NaN reads back equal to
    the NaN written), and the same model writes the same bytes twice."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    model = calibrated_model()
    origin = PresetExport(preset="gokmen_vlasov_2016")
    a = save_model(tmp_path / "a.h5", model, origin=origin, ngspice_version="ngspice-42")
    b = save_model(tmp_path / "b.h5", model, origin=origin, ngspice_version="ngspice-42")
    assert a.read_bytes() == b.read_bytes()
    loaded = load_model(a)
    assert loaded.model == model
    assert loaded.provenance.schema_version == MODEL_SCHEMA == 2
    assert loaded.provenance.ngspice_version == "ngspice-42"
    assert [c.passed for c in loaded.model.validation] == [True, True, False]
    assert math.isnan(loaded.model.parameters[1].residual)
    tree, _ = store.load(a)
    assert sorted(tree) == [
        "characterization",
        "description",
        "fit_report",
        "input_transfer",
        "ir_drop",
        "out_noise",
        "parameters",
        "rpu_config_toml",
        "source",
        "validation",
    ]
    assert sorted(tree["ir_drop"]) == ["backward", "forward"]
    assert list(tree["parameters"]["sources"]) == [
        "transfer/op_fwd_random_8\ntransfer/op_fwd_random_16",
        "noise",
    ]
    np.testing.assert_array_equal(
        tree["input_transfer"]["forward"]["odd_coefficients"], [0.98, 0.031, -0.002]
    )


def test_schema2_describe(tmp_path: Path) -> None:
    path = save_model(
        tmp_path / "m.h5", calibrated_model(), origin=PresetExport(preset="floating_point")
    )
    text = describe(load_model(path), ((256, 785), (16, 26)), report=True)
    assert "IR drop      forward: segment ratio 6e-09, driver ratio 4.2e-07" in text
    assert "             backward: segment ratio 8e-09, driver ratio 0" in text
    assert "out noise    σ² = a + b·N, a = 0.0004 w², b = 2e-06 w²" in text
    # σ(785) = √(4e-4 + 2e-6·785) = 0.04438; σ(256) = √(9.12e-4) = 0.0302;
    # σ(26) = √(4.52e-4) = 0.02126; σ(16) = √(4.32e-4) = 0.02078
    assert "tile 256 × 785: σ forward 0.04438 (N = 785), backward 0.0302 (N = 256);" in text
    assert "tile 16 × 26: σ forward 0.02126 (N = 26), backward 0.02078 (N = 16);" in text
    assert (
        "  segment_ratio = 6.1e-09 ± 2e-10 [1] fitted; transfer/op_fwd_random_8, "
        "transfer/op_fwd_random_16" in text
    )
    assert "  out_res = 0.00196078 [1] config; noise" in text
    assert "  dw_min: 0.00102 / 0.001 (0.0001) yes" in text
    assert (
        "  forward_read/fwd_random_64 [transfer/fwd_random_64, % of alpha]: 0.21 / 0.74 | "
        "3.2 / 7.9 (0.5) yes" in text
    )
    assert (
        "  update/pulse_train_32 [update/pulse_train_32, % of dw_min]: 2.5 / 6 | - / - (2) NO"
        in text
    )
    assert "input curve  forward: odd polynomial 0.98, 0.031, -0.002" in text
    assert "input curve  backward: table of 4 points on [-1, 1]" in text
    assert (
        "calibrated   from sim_data/reference/characterization.h5 (sha256 0000000000000000…" in text
    )
    assert text.endswith("| segment_ratio | 6.1e-9 |")


def test_tile_model_per_shape_and_direction() -> None:
    model = calibrated_model()
    big, small = model.tile_model(256, 785), model.tile_model(16, 26)
    # independent reference: σ = √(a + b·N), N = in_size forward, out_size backward
    assert big.rpu.forward.out_noise == pytest.approx(math.sqrt(4e-4 + 2e-6 * 785), rel=1e-12)
    assert big.rpu.backward.out_noise == pytest.approx(math.sqrt(4e-4 + 2e-6 * 256), rel=1e-12)
    assert small.rpu.forward.out_noise == pytest.approx(math.sqrt(4e-4 + 2e-6 * 26), rel=1e-12)
    assert small.rpu.forward.out_noise < big.rpu.forward.out_noise
    # only out_noise changes
    assert dataclasses.replace(big.rpu.forward, out_noise=0.06) == model.rpu.forward
    assert big.rpu.device == model.rpu.device and big.rpu.update == model.rpu.update
    ir = model.ir_drop
    assert ir is not None and big.backward_attenuation is not None
    np.testing.assert_array_equal(big.forward_attenuation, ir.forward.attenuation(256, 785))
    np.testing.assert_array_equal(
        big.backward_attenuation, ir.backward.attenuation(256, 785, "backward")
    )
    assert big.forward_attenuation is not None
    assert not np.array_equal(big.forward_attenuation, big.backward_attenuation)
    # a perfect read keeps its config: floating point ignores out_noise
    fp = dataclasses.replace(model, rpu=PRESETS["floating_point"]())
    assert fp.rpu_config_for(256, 785) == fp.rpu
    # without a noise model every shape gets the file's RPUConfig itself
    plain = PresetExport(preset="gokmen_vlasov_2016").build()
    assert plain.rpu_config_for(16, 26) is plain.rpu
    assert plain.tile_model(16, 26).backward_attenuation is None
    with pytest.raises(ConfigError, match=r"direction = 'sideways': must be one of"):
        model.attenuation(2, 2, "sideways")  # type: ignore[arg-type]


def test_schema1_fixture_still_loads() -> None:
    """tests/unit/fixtures/model_schema1.h5 is models/gokmen_vlasov_2016.h5 as the schema-1
    writer made it (flat ir_drop/): it reads as the same model with that IR drop both ways."""
    loaded = load_model(FIXTURES / "model_schema1.h5")
    assert loaded.provenance.schema_version == 1
    origin = PresetExport(preset="gokmen_vlasov_2016", segment_ratio=6e-9)
    assert loaded.model == origin.build()
    assert loaded.model.ir_drop == IRDrop.both(IRDropModel(segment_ratio=6e-9))
    assert loaded.model.rpu_config_for(256, 785) == PRESETS["gokmen_vlasov_2016"]()
    assert "schema       model v1" in describe(loaded)


def test_schema1_refuses_schema2_entries(tmp_path: Path) -> None:
    tree = {**_good_tree(), "out_noise": {"a": 0.0, "b": 1e-6}}
    with pytest.raises(StoreError, match=r"raw\.h5: unknown entries out_noise in a schema-1 "):
        load_model(_raw(tmp_path, tree, schema=1))
    assert load_model(_raw(tmp_path, tree)).model.out_noise == NoiseModel(a=0.0, b=1e-6)


def test_noise_model_quadratic_term(tmp_path: Path) -> None:
    """σ² = a + b·N + c·N²: a schema-2 file without ``c`` means c = 0; with it, each tile
    gets σ of its own size from the quadratic (independent reference: the formula here)."""
    tree = {**_good_tree(), "out_noise": {"a": 4e-4, "b": 2e-6}}
    old = load_model(_raw(tmp_path, tree)).model
    assert old.out_noise == NoiseModel(a=4e-4, b=2e-6, c=0.0)
    assert old.rpu_config_for(256, 785).forward.out_noise == pytest.approx(
        math.sqrt(4e-4 + 2e-6 * 785), rel=1e-12
    )
    curved = NoiseModel(a=4e-4, b=2e-6, c=3e-10)
    model = dataclasses.replace(calibrated_model(), out_noise=curved)
    path = save_model(
        tmp_path / "curved.h5", model, origin=PresetExport(preset="gokmen_vlasov_2016")
    )
    back = load_model(path).model
    assert back.out_noise == curved
    cfg = back.rpu_config_for(256, 785)
    assert cfg.forward.out_noise == pytest.approx(
        math.sqrt(4e-4 + 2e-6 * 785 + 3e-10 * 785**2), rel=1e-12
    )
    assert cfg.backward.out_noise == pytest.approx(
        math.sqrt(4e-4 + 2e-6 * 256 + 3e-10 * 256**2), rel=1e-12
    )
    # conv1 (16 × 26) is quieter than FC1 (256 × 785) from the same file
    assert back.rpu_config_for(16, 26).forward.out_noise < cfg.forward.out_noise
    # a straight-line model writes no c: its file is what the writer made before c existed
    with h5py.File(
        save_model(
            tmp_path / "line.h5",
            calibrated_model(),
            origin=PresetExport(preset="gokmen_vlasov_2016"),
        ),
        "r",
    ) as f:
        assert sorted(f["out_noise"]) == ["a", "b"]
    with h5py.File(path, "r") as f:
        assert sorted(f["out_noise"]) == ["a", "b", "c"]
    assert "c = 3e-10 w²" in describe(load_model(path))


def _one_line(exc: pytest.ExceptionInfo[Exception], name: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and name in text, text


def test_truncated_files(tmp_path: Path) -> None:
    """A file cut short anywhere is refused with one StoreError line naming it (h5py's own
    OSError or KeyError never escapes)."""
    full = save_model(
        tmp_path / "full.h5", calibrated_model(), origin=PresetExport(preset="floating_point")
    )
    data = full.read_bytes()
    for keep in (0, 8, 512, 2048, len(data) // 2, len(data) - 16):
        cut = tmp_path / f"cut{keep}.h5"
        cut.write_bytes(data[:keep])
        with pytest.raises(StoreError) as exc:
            load_model(cut)
        _one_line(exc, f"cut{keep}.h5")


def test_damaged_files(tmp_path: Path) -> None:
    """Regression: a file with a block overwritten raised h5py's AttributeError (a dataset
    whose type it could not read) as a traceback. A 64-byte block every 1024 overwritten:
    the file loads (the damage hit unused or compressed bytes: the sha256 pin catches
    that) or is refused with one line naming it."""
    origin = PresetExport(preset="floating_point")
    data = save_model(tmp_path / "full.h5", calibrated_model(), origin=origin).read_bytes()
    refused = 0
    for start in range(0, len(data) - 64, 1024):
        damaged = bytearray(data)
        damaged[start : start + 64] = b"\xff" * 64
        path = tmp_path / "damaged.h5"
        path.write_bytes(bytes(damaged))
        try:
            load_model(path)
        except (StoreError, ConfigError) as exc:
            refused += 1
            assert "\n" not in str(exc) and str(exc).startswith(str(path)), str(exc)
    assert refused > 0


def test_foreign_hdf5_files(tmp_path: Path) -> None:
    import h5py

    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(StoreError, match=r"plain\.h5 is not an rpucircuit file") as exc:
        load_model(plain)
    _one_line(exc, "plain.h5")
    odd = tmp_path / "odd.h5"
    with h5py.File(odd, "w") as f:
        for name in ("config_toml", "config_key", "package_version", "ngspice_version"):
            f.attrs[name] = ""
        f.attrs["created_utc"] = ""
        f.attrs["rpucircuit_kind"] = "model"
        f.attrs["schema_version"] = "two"
    with pytest.raises(StoreError, match=r"odd\.h5: cannot read the model file") as exc:
        load_model(odd)
    _one_line(exc, "odd.h5")
    char = store.save(
        tmp_path / "char.h5",
        {"transfer": {"x": np.ones(2)}},
        store.Provenance(kind="characterization", schema_version=3, config_toml="", config_key=""),
    )
    with pytest.raises(StoreError, match=r"char\.h5 holds a 'characterization' file, expected"):
        load_model(char)


@pytest.mark.parametrize("entry", ["description", "source", "rpu_config_toml"])
def test_missing_required_entry(tmp_path: Path, entry: str) -> None:
    tree = _good_tree()
    del tree[entry]
    with pytest.raises(StoreError, match=rf"raw\.h5: model file has no '{entry}'"):
        load_model(_raw(tmp_path, tree))


def _schema2_tree(tmp_path: Path) -> dict[str, Any]:
    """A calibrated model's tree as save_model writes it, read back from the file."""
    origin = PresetExport(preset="floating_point")
    tree, _ = store.load(save_model(tmp_path / "good.h5", calibrated_model(), origin=origin))

    def writable(node: Any) -> Any:  # text columns come back as object arrays of str
        if isinstance(node, dict):
            return {k: writable(v) for k, v in node.items()}
        if isinstance(node, np.ndarray) and node.dtype == object:
            return node.astype(np.str_)
        return node

    out: dict[str, Any] = writable(tree)
    return out


SCHEMA2_ERRORS: list[tuple[str, Any, type[Exception], str]] = [
    (
        "parameters",
        {"name": np.array(["a"])},
        StoreError,
        r"raw\.h5: parameters must hold exactly name",
    ),
    (
        "parameters.origin",
        np.array(["guessed", "config"]),
        ConfigError,
        r"raw\.h5: parameters\[segment_ratio\]\.origin = 'guessed'",
    ),
    (
        "parameters.interval_low",
        np.array([1.0, 1 / 510]),
        ConfigError,
        r"raw\.h5: parameters\[segment_ratio\]\.interval = .*low <= high",
    ),
    (
        "parameters.name",
        np.array([3.0, 4.0]),
        StoreError,
        r"raw\.h5: parameters: column name must be text",
    ),
    (
        "validation.max_error",
        np.array([math.nan, 0.1, 6.0]),
        ConfigError,
        r"raw\.h5: validation\[forward_read/fwd_random_64\]: rms_error 0\.21 exceeds max_",
    ),
    (
        "validation",
        {
            "name": np.array(["a"]),
            "predicted": np.ones(1),
            "reference": np.ones(1),
            "tolerance": np.ones(1),
        },
        StoreError,
        r"raw\.h5: validation must hold exactly name, case, quantity",
    ),
    (
        "out_noise",
        {"a": 1e-4},
        StoreError,
        r"raw\.h5: out_noise must hold exactly a, b; found \['a'\]",
    ),
    (
        "out_noise",
        {"a": 1e-4, "b": -1e-6},
        ConfigError,
        r"raw\.h5: out_noise\.b = -1e-06: must be >= 0",
    ),
    (
        "out_noise",
        {"a": -1e-3, "b": 1e-6},
        ConfigError,
        r"raw\.h5: out_noise: a \+ b \+ c = .* < 0",
    ),
    (
        "out_noise",
        {"a": 1e-4, "b": 1e-6, "c": -1e-10},
        ConfigError,
        r"raw\.h5: out_noise\.c = -1e-10: must be >= 0",
    ),
    (
        "out_noise",
        {"a": 1e-4, "b": 1e-6, "d": 1e-10},
        StoreError,
        r"raw\.h5: out_noise must hold exactly a, b; found \['a', 'b', 'd'\]",
    ),
    (
        "ir_drop",
        {"forward": {"segment_ratio": 1e-9}},
        StoreError,
        r"raw\.h5: ir_drop must hold both forward and backward",
    ),
    (
        "ir_drop",
        {"forward": {"segment_ratio": 1e-9}, "backward": {"segment_ratio": 2.0}},
        ConfigError,
        r"raw\.h5: ir_drop/backward: segment_ratio = 2\.0: must lie in",
    ),
    (
        "input_transfer",
        {"forward": {"x": np.array([0.0, 0.0]), "f": np.zeros(2)}},
        ConfigError,
        r"raw\.h5: input_transfer/forward: input transfer table: x must be strictly",
    ),
    (
        "input_transfer",
        {"forward": {"odd_coefficients": np.ones(1), "x": np.ones(2)}},
        StoreError,
        r"raw\.h5: input_transfer/forward must hold odd_coefficients, or x and f",
    ),
    (
        "input_transfer",
        {"sideways": {"odd_coefficients": np.ones(1)}},
        StoreError,
        r"raw\.h5: input_transfer may hold forward and backward only",
    ),
    (
        "characterization",
        {"path": "c.h5", "config_key": "k", "sha256": "xyz"},
        ConfigError,
        r"raw\.h5: characterization\.sha256 = 'xyz': must be 64 lowercase hex",
    ),
    (
        "characterization",
        {"path": "c.h5"},
        StoreError,
        r"raw\.h5: characterization must hold exactly path, config_key, sha256",
    ),
    ("fit_report", 3, StoreError, r"raw\.h5: 'fit_report' must be text, found int"),
]


@pytest.mark.parametrize(
    ("entry", "value", "error", "match"),
    SCHEMA2_ERRORS,
    ids=[f"{e[0]}-{i}" for i, e in enumerate(SCHEMA2_ERRORS)],
)
def test_schema2_malformed_entries(
    tmp_path: Path, entry: str, value: Any, error: type[Exception], match: str
) -> None:
    """Each malformed schema-2 entry: one line, naming the file and the entry."""
    tree = _schema2_tree(tmp_path)
    group, _, column = entry.partition(".")
    if column:  # one column of a table
        tree[group][column] = value
    else:
        tree[group] = value
    with pytest.raises(error, match=match) as exc:
        load_model(_raw(tmp_path, tree))
    _one_line(exc, "raw.h5")


def test_record_errors() -> None:
    with pytest.raises(ConfigError, match="parameter name = '': must be non-empty text"):
        ModelParameter(name="", value=1.0, unit="1", interval=(1.0, 1.0), origin="config")
    with pytest.raises(ConfigError, match=r"parameters\[x\]\.value = nan: must be finite"):
        ModelParameter(name="x", value=math.nan, unit="1", interval=(0.0, 1.0), origin="fitted")
    with pytest.raises(ConfigError, match=r"parameters\[x\]\.sources: 'a\\nb' must not contain"):
        ModelParameter(
            name="x", value=1.0, unit="1", sources=("a\nb",), interval=(1.0, 1.0), origin="config"
        )
    with pytest.raises(ConfigError, match=r"parameters\[x\]\.tolerance = -1\.0: must be >= 0"):
        ModelParameter(
            name="x", value=1.0, unit="1", tolerance=-1.0, interval=(1.0, 1.0), origin="fitted"
        )
    with pytest.raises(
        ConfigError, match="input transfer: give either odd_coefficients or a table"
    ):
        InputTransfer()
    with pytest.raises(ConfigError, match=r"x \(3\) and f \(2\) must have the same length"):
        InputTransfer(x=(0.0, 0.5, 1.0), f=(0.0, 1.0))
    with pytest.raises(ConfigError, match=r"out_noise: n_devices = 0: must be an integer >= 1"):
        NOISE.sigma(0)
    with pytest.raises(ConfigError, match=r"ir_drop\.forward = 1: must be an IRDropModel"):
        IRDrop(forward=1, backward=IRDropModel(segment_ratio=0.0))  # type: ignore[arg-type]
    rpu = PRESETS["floating_point"]()
    with pytest.raises(ConfigError, match="parameters names repeat"):
        p = calibrated_model().parameters[0]
        ArrayModel(rpu=rpu, description="", source="", parameters=(p, p))
    with pytest.raises(ConfigError, match="validation: must be a tuple of ValidationCheck"):
        ArrayModel(rpu=rpu, description="", source="", validation=[1])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"out_noise = 0\.1: must be an NoiseModel or None"):
        ArrayModel(rpu=rpu, description="", source="", out_noise=0.1)  # type: ignore[arg-type]


def test_input_transfer_evaluates_its_documented_meaning() -> None:
    poly = InputTransfer(odd_coefficients=(0.9, 0.1))
    x = np.array([-1.0, -0.5, 0.0, 0.3, 1.0])
    np.testing.assert_allclose(poly(x), 0.9 * x + 0.1 * x**3, rtol=0, atol=1e-15)
    table = InputTransfer(x=(-1.0, 0.0, 1.0), f=(-0.8, 0.0, 0.9))
    np.testing.assert_allclose(
        table(np.array([-2.0, -0.5, 0.5, 2.0])), [-0.8, -0.4, 0.45, 0.9], rtol=0, atol=1e-15
    )


def test_parameter_from_calibration_record() -> None:
    """Calibration's FittedParameter converts field for field (the test may reach both
    paths; the model path itself imports no calibration)."""
    from rpucircuit.calibration.base import FittedParameter, config_parameter

    fitted = FittedParameter(
        name="out_noise_b",
        value=2e-6,
        unit="w^2",
        sources=("noise", "ktc"),
        residual=0.8,
        tolerance=3.0,
        interval=(1.5e-6, 2.5e-6),
        origin="fitted",
        note="weighted fit",
    )
    converted = parameter_from(fitted)
    assert dataclasses.asdict(converted) == dataclasses.asdict(fitted)
    cfg = parameter_from(config_parameter("out_res", 1 / 510, "1", ["noise"], "ADC step"))
    assert cfg.origin == "config" and math.isnan(cfg.residual) and cfg.sources == ("noise",)
    with pytest.raises(ConfigError, match="has no field 'name' of a model parameter"):
        parameter_from(object())


def test_check_characterization(tmp_path: Path) -> None:
    char = tmp_path / "char.h5"
    char.write_bytes(b"characterization bytes")
    link = CharacterizationLink(path=str(char), config_key="k", sha256=file_sha256(char))
    model = dataclasses.replace(calibrated_model(), characterization=link)
    loaded = load_model(
        save_model(tmp_path / "m.h5", model, origin=PresetExport(preset="floating_point"))
    )
    assert check_characterization(loaded) == char
    char.write_bytes(b"changed")
    with pytest.raises(
        StoreError, match=r"m\.h5: characterization file .*char\.h5 has sha256 .* calibrated from"
    ):
        check_characterization(loaded)
    with pytest.raises(StoreError, match=r"cannot read file .*moved\.h5"):
        check_characterization(loaded, tmp_path / "moved.h5")
    plain = load_model(export(tmp_path, "floating_point"))
    with pytest.raises(
        StoreError, match=r"floating_point\.h5: the model names no characterization"
    ):
        check_characterization(plain)


@pytest.mark.parametrize("network", ["fc", "cnn"])
def test_file_noise_model_gives_each_tile_its_sigma(tmp_path: Path, network: str) -> None:
    # no IR drop; no backward table curve, which training refuses (the tile applies odd
    # polynomials only: tests/unit/test_read_periphery.py)
    model = dataclasses.replace(calibrated_model(), ir_drop=None, backward_input_transfer=None)
    path = save_model(tmp_path / "m.h5", model, origin=PresetExport(preset="floating_point"))
    override = Setting(path="backward.out_noise", value=0.07, layers=(1,))
    cfg = TrainingConfig(network=network, model=ModelSpec(file=str(path), settings=(override,)))  # type: ignore[arg-type]
    net = build_network(cfg, rng=np.random.default_rng(0))
    for k, tile in enumerate(net.tiles):
        fwd = math.sqrt(NOISE.a + NOISE.b * tile.in_size)
        bwd = 0.07 if k == 1 else math.sqrt(NOISE.a + NOISE.b * tile.out_size)
        assert tile.config.forward.out_noise == pytest.approx(fwd, rel=1e-12)
        assert tile.config.backward.out_noise == pytest.approx(bwd, rel=1e-12)  # settings win
        np.testing.assert_array_equal(
            tile.get_attenuation(), np.ones((tile.out_size, tile.in_size))
        )


def test_file_per_direction_ir_sets_both_maps(tmp_path: Path) -> None:
    """Training gives each read its own map: the forward model's to the forward read, the
    backward model's to the backward read."""
    model = dataclasses.replace(calibrated_model(), backward_input_transfer=None)
    path = save_model(tmp_path / "m.h5", model, origin=PresetExport(preset="floating_point"))
    net = build_network(
        TrainingConfig(model=ModelSpec(file=str(path))), rng=np.random.default_rng(0)
    )
    fwd = IRDropModel(segment_ratio=6e-9, driver_ratio=4.2e-7)
    bwd = IRDropModel(segment_ratio=8e-9)
    for tile in net.tiles:
        shape = (tile.out_size, tile.in_size)
        np.testing.assert_array_equal(tile.get_attenuation(), fwd.attenuation(*shape))
        np.testing.assert_array_equal(
            tile.get_attenuation("backward"), bwd.attenuation(*shape, "backward")
        )


def test_cli_show_schema2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    origin = PresetExport(preset="floating_point")
    path = save_model(tmp_path / "cal.h5", calibrated_model(), origin=origin)
    assert cli.main(["model", "show", str(path), "--tile", "16x26"]) == 0
    shown = capsys.readouterr().out
    assert "tile 16 × 26: σ forward 0.02126 (N = 26), backward 0.02078 (N = 16);" in shown
    assert "tile 256 × 785" not in shown  # only the shapes asked for
    assert "parameters   name = value ± 95 % interval [unit] origin; sources" in shown
    assert "fit report   5 lines (show --report prints it)" in shown
    assert "| segment_ratio | 6.1e-9 |" not in shown
    assert cli.main(["model", "show", str(path), "--report"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("| segment_ratio | 6.1e-9 |")
