"""Training from a model file: same run as the preset it was exported from, provenance,
resume with an IR-drop model, and a changed file refused on resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rpucircuit import cli, store
from rpucircuit.config.training import ModelSpec, Setting, TrainingConfig
from rpucircuit.errors import StoreError
from rpucircuit.model.modelfile import PresetExport, file_sha256, save_model
from rpucircuit.training.data import Mnist
from rpucircuit.training.loop import train

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
