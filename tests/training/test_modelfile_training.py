"""Training from a model file: same run as the preset it was exported from, provenance,
resume with an IR-drop model, a changed file refused on resume, and a schema-2 file's noise
model giving each tile the σ of its own size."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from rpucircuit import cli, store
from rpucircuit.config.rpu import gokmen_vlasov_2016
from rpucircuit.config.training import ModelSpec, Setting, TrainingConfig
from rpucircuit.errors import StoreError
from rpucircuit.model import kernels
from rpucircuit.model.irdrop import IRDropModel
from rpucircuit.model.modelfile import (
    ArrayModel,
    IRDrop,
    NoiseModel,
    PresetExport,
    file_sha256,
    save_model,
)
from rpucircuit.model.tile import AnalogTile
from rpucircuit.training.data import Mnist
from rpucircuit.training.loop import build_network, train

pytestmark = pytest.mark.training

SETTINGS = (
    Setting(path="update.bl", value=31),
    Setting(path="device.n_devices", value=2, layers=(1,)),
)


def export(path: Path, preset: str, ratio: float = 0.0) -> Path:
    origin = PresetExport(preset=preset, segment_ratio=ratio)
    return save_model(path, origin.build(), origin=origin)


def small(model: ModelSpec, **kw: object) -> TrainingConfig:
    return TrainingConfig(
        network="fc",
        epochs=2,
        lr=0.1,
        n_train=300,
        n_test=200,
        seed=4,
        model=model,
        **kw,  # type: ignore[arg-type]
    )


def test_file_run_is_bit_identical_to_preset_run(mnist: Mnist, tmp_path: Path) -> None:
    """An exported preset without IR drop builds the very same tiles: every loss, every test
    error and the final weights agree exactly (same seed, same generators, same kernels)."""
    path = export(tmp_path / "gv.h5", "gokmen_vlasov_2016")
    by_file = train(
        small(ModelSpec(file=str(path), settings=SETTINGS)),
        tmp_path / "f",
        data=mnist,
        progress=False,
    )
    by_preset = train(
        small(ModelSpec(preset="gokmen_vlasov_2016", settings=SETTINGS)),
        None,
        data=mnist,
        progress=False,
    )
    for key in ("train_loss", "test_error"):
        np.testing.assert_array_equal(by_file.history[key], by_preset.history[key])
    for a, b in zip(by_file.network.tiles, by_preset.network.tiles, strict=True):
        np.testing.assert_array_equal(a.get_weights(), b.get_weights())
    assert by_file.history["test_error"][-1] < 0.9  # it learned something (chance: 90 %)
    # provenance: the history and the checkpoint name the file and its sha256
    sha = file_sha256(path)
    assert by_file.model_file["sha256"] == sha and by_preset.model_file == {}
    for name in ("history.h5", "checkpoint.h5"):
        tree, _ = store.load(tmp_path / "f" / name)
        assert tree["model_file"]["path"] == str(path)
        assert tree["model_file"]["sha256"] == sha
        assert tree["model_file"]["source"] == "preset gokmen_vlasov_2016"


def test_ir_drop_run_resumes_bit_exactly(mnist: Mnist, tmp_path: Path) -> None:
    """With an IR-drop model (every tile attenuated): killed after epoch 1 and resumed ends
    exactly where the unbroken run ends; a changed file is refused on resume."""
    path = export(tmp_path / "ir.h5", "gokmen_vlasov_2016", ratio=1e-7)
    cfg = small(ModelSpec(file=str(path)))
    whole = train(cfg, tmp_path / "whole", data=mnist, progress=False)
    assert all(t.get_attenuation().min() < 1.0 for t in whole.network.tiles)
    train(cfg, tmp_path / "split", data=mnist, progress=False, stop_after=1)
    # re-exporting the same model (as `make models` does) leaves the file's bytes, and so
    # its sha256, as they were: the resume accepts it
    export(path, "gokmen_vlasov_2016", ratio=1e-7)
    resumed = train(cfg, tmp_path / "split", data=mnist, progress=False, resume=True)
    assert resumed.epochs_run == 1
    for key in ("train_loss", "test_error"):
        np.testing.assert_array_equal(resumed.history[key], whole.history[key])
    for a, b in zip(resumed.network.tiles, whole.network.tiles, strict=True):
        np.testing.assert_array_equal(a.get_weights(), b.get_weights())
        np.testing.assert_array_equal(a.get_attenuation(), b.get_attenuation())
    # the same config, but the file now holds another model: resuming would mix two models
    train(cfg, tmp_path / "changed", data=mnist, progress=False, stop_after=1)
    export(path, "gokmen_vlasov_2016", ratio=2e-7)
    with pytest.raises(StoreError, match=r"checkpoint\.h5 was written with model file .*ir\.h5"):
        train(cfg, tmp_path / "changed", data=mnist, progress=False, resume=True)


def test_cli_train_resolves_model_file_against_working_folder(
    mnist: Mnist,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``model.file`` relative to the working folder, not to the config file's folder (the
    ``mnist`` fixture fills the cache the command reads)."""
    work = tmp_path / "work"
    export(work / "models" / "gv.h5", "gokmen_vlasov_2016", ratio=6e-9)
    conf_dir = tmp_path / "configs"
    conf_dir.mkdir()
    cfg_file = conf_dir / "run.toml"
    cfg_file.write_text(
        'network = "fc"\nepochs = 1\nn_train = 100\nn_test = 50\n[model]\nfile = "models/gv.h5"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(work)
    assert cli.main(["train", str(cfg_file), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    tree, _ = store.load(tmp_path / "run" / "history.h5", kind="history")
    assert tree["model_file"]["path"] == "models/gv.h5"
    assert tree["model_file"]["resolved_path"] == str(work / "models" / "gv.h5")
    monkeypatch.chdir(conf_dir)  # from the config's own folder the file is not found
    out2 = str(tmp_path / "run2")
    capsys.readouterr()
    assert cli.main(["train", str(cfg_file), "--out", out2, "--no-progress"]) == 1
    assert "rpucircuit train: error: no such file: models/gv.h5" in capsys.readouterr().err


NOISE = NoiseModel(a=4e-4, b=2e-6)
"""σ² = a + b·N: forward σ(N = 785) = 0.04438, σ(N = 26) = 0.02126."""


def noise_model_file(path: Path) -> Path:
    """Paper A's model without an ADC (out_res = 0, so two reads of the same input differ by
    the output noise alone), the noise model above, and a backward IR drop that differs."""
    base = gokmen_vlasov_2016()
    rpu = dataclasses.replace(
        base,
        forward=dataclasses.replace(base.forward, out_res=0.0),
        backward=dataclasses.replace(base.backward, out_res=0.0),
    )
    model = ArrayModel(
        rpu=rpu,
        description="noise-model test",
        source="test",
        out_noise=NOISE,
        ir_drop=IRDrop(
            forward=IRDropModel(segment_ratio=1e-7), backward=IRDropModel(segment_ratio=2e-7)
        ),
    )
    return save_model(path, model, origin=PresetExport(preset="gokmen_vlasov_2016"))


def measured_sigma(tile: AnalogTile, n: int) -> float:
    """σ of the forward read's output noise from n pairs of reads of the same inputs:
    std(y1 − y2)/√2 (max|x| = 1, so noise management leaves the noise's scale alone)."""
    x = np.random.default_rng(7).uniform(0.0, 1.0, (n, tile.in_size))
    x[:, 0] = 1.0
    diff = tile.forward(x) - tile.forward(x)
    return float(np.std(diff) / math.sqrt(2.0))


@pytest.mark.parametrize("network", ["fc", "cnn"])
def test_ir_drop_line_terms_train_exactly_as_the_maps(
    mnist: Mnist, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, network: str
) -> None:
    """Training from an IR-drop model gives each tile its maps with their line terms (the
    updates then compute the map values instead of loading them); the run is bit for bit
    the run with the maps alone (the model file made to offer no terms)."""
    path = export(tmp_path / "ir.h5", "gokmen_vlasov_2016", ratio=1e-7)
    cfg = dataclasses.replace(
        small(ModelSpec(file=str(path))), network=network, epochs=1, n_train=60, n_test=20
    )
    with_terms = train(cfg, None, data=mnist, progress=False)
    for tile in with_terms.network.tiles:
        assert tile.kernel_arrays().dp[kernels.DP_ATT_LINES] == 1.0
    monkeypatch.setattr(ArrayModel, "attenuation_lines", lambda self, out_size, in_size: None)
    maps_only = train(cfg, None, data=mnist, progress=False)
    for tile in maps_only.network.tiles:
        assert tile.kernel_arrays().dp[kernels.DP_ATT_LINES] == 0.0
    np.testing.assert_array_equal(with_terms.history["train_loss"], maps_only.history["train_loss"])
    for a, b in zip(with_terms.network.tiles, maps_only.network.tiles, strict=True):
        ka, kb = a.kernel_arrays(), b.kernel_arrays()
        assert ka.att.min() < 1.0  # an attenuated tile
        for name in ("w", "wread", "wread_b", "att", "att_b", "state"):
            np.testing.assert_array_equal(getattr(ka, name), getattr(kb, name))


def test_schema2_noise_model_gives_each_tile_its_sigma(mnist: Mnist, tmp_path: Path) -> None:
    """From one file: the FC network's 256 × 785 tile reads with σ(785), the CNN's 16 × 26
    conv1 tile with the smaller σ(26), measured on the trained and built tiles' reads; every
    tile gets the forward IR-drop map of its own shape."""
    path = noise_model_file(tmp_path / "noise.h5")
    fc = train(small(ModelSpec(file=str(path))), None, data=mnist, progress=False)
    assert fc.history["test_error"][-1] < 0.9  # it learned something (chance: 90 %)
    for tile in fc.network.tiles:
        assert tile.config.forward.out_noise == math.sqrt(NOISE.a + NOISE.b * tile.in_size)
        assert tile.config.backward.out_noise == math.sqrt(NOISE.a + NOISE.b * tile.out_size)
        expected = IRDropModel(segment_ratio=1e-7).attenuation(tile.out_size, tile.in_size)
        np.testing.assert_array_equal(tile.get_attenuation(), expected)
    cnn = build_network(
        TrainingConfig(network="cnn", model=ModelSpec(file=str(path))),
        rng=np.random.default_rng(1),
    )
    big, conv1 = fc.network.tiles[0], cnn.tiles[0]
    assert (big.out_size, big.in_size, conv1.out_size, conv1.in_size) == (256, 785, 16, 26)
    # 125,000 and 64,000 differences: the std's relative standard error is 1/√(2·samples)
    # ≤ 0.3 %, so 3 % is 10 standard errors
    sigma_big = measured_sigma(big, 500)
    sigma_small = measured_sigma(conv1, 4000)
    assert sigma_big == pytest.approx(math.sqrt(NOISE.a + NOISE.b * 785), rel=0.03)
    assert sigma_small == pytest.approx(math.sqrt(NOISE.a + NOISE.b * 26), rel=0.03)
    assert sigma_small < 0.6 * sigma_big  # 0.02126 against 0.04438
