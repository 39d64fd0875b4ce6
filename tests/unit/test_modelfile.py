"""Array-model files: HDF5 round trips, every refusal, the training hookup, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

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
    IRDrop,
    PresetExport,
    ValidationCheck,
    file_sha256,
    load_model,
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
    with pytest.raises(StoreError, match=r"raw\.h5: validation columns must be 1-d of equal length"):
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
    with pytest.raises(StoreError, match=r"raw\.h5: validation: column predicted: could not convert"):
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
