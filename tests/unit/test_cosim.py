"""The [cosim] table, the spot-check hook's pure parts and the training loop's epoch hooks
(no simulator: the circuit runs are in tests/sim/test_cosim_sim.py)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rpucircuit.calibration import cosim
from rpucircuit.config import rpu
from rpucircuit.config.base import from_dict
from rpucircuit.config.training import CosimConfig, TrainingConfig
from rpucircuit.errors import ConfigError
from rpucircuit.training.hooks import add_rows
from rpucircuit.training.loop import train


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"every_epochs": 0}, r"cosim.every_epochs = 0: must be an integer >= 1"),
        ({"layers": [1, 1]}, r"cosim.layers = \[1, 1\]: repeated"),
        ({"layers": [-1]}, r"cosim.layers\[0\] = -1"),
        ({"layers": [3]}, r"cosim.layers = \[3\]: the fc network has analog layers 0..2"),
        ({"block_rows": 0}, r"cosim.block_rows = 0: must be an integer in \[1, 64\]"),
        ({"block_cols": 65}, r"cosim.block_cols = 65: must be an integer in \[1, 64\]"),
        ({"block_offset": [3]}, r"cosim.block_offset = \[3\]: must be \[row, column\]"),
        ({"block_offset": [0, -2]}, r"cosim.block_offset\[1\] = -2"),
        ({"time_limit_s": 0}, r"cosim.time_limit_s = 0.0: must be > 0"),
        ({"time_limit_s": "long"}, r"cosim.time_limit_s = 'long': must be a number"),
        ({"op": False, "tran": False, "nodal": False}, r"op, tran and nodal are all false"),
        ({"tran": 1}, r"cosim.tran = 1: must be true or false"),
        ({"nodal_max_devices": 0}, r"cosim.nodal_max_devices = 0"),
        ({"block_size": 8}, r"unknown field\(s\) cosim.block_size"),
    ],
)
def test_bad_cosim_values_are_refused_naming_the_field(table: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_dict(TrainingConfig, {"network": "fc", "cosim": table})


def test_cosim_table_defaults_and_key() -> None:
    """No table: no checks, and the config's key is the one it had before the table
    existed (None fields are left out of the canonical form)."""
    cfg = from_dict(TrainingConfig, {"cosim": {}})
    assert cfg.cosim == CosimConfig()
    assert (cfg.cosim.block_rows, cfg.cosim.block_cols, cfg.cosim.block_offset) == (32, 32, (0, 0))
    assert TrainingConfig().cosim is None


def test_hook_refuses_what_the_layers_or_the_circuit_cannot_take(tmp_path: Path) -> None:
    cfg = TrainingConfig(network="cnn", cosim=CosimConfig(block_offset=(20, 0)))
    with pytest.raises(ConfigError, match=r"analog layer 0 has a 16 × 26 tile"):
        cosim.build_hook(cfg)
    missing = TrainingConfig(cosim=CosimConfig(circuit_file=str(tmp_path / "none.toml")))
    with pytest.raises(ConfigError, match=r"cosim.circuit_file: cannot read config file"):
        cosim.build_hook(missing)
    unpaired = tmp_path / "unpaired.toml"
    unpaired.write_text("[tile]\npaired = false\n")
    cfg = TrainingConfig(cosim=CosimConfig(circuit_file=str(unpaired)))
    with pytest.raises(ConfigError, match=r"tile.paired = false; the spot checks need a pair"):
        cosim.build_hook(cfg)


def test_blocks_are_cut_at_the_layer_edge_and_every_layer_is_the_default() -> None:
    hook = cosim.build_hook(TrainingConfig(network="cnn", cosim=CosimConfig(block_offset=(8, 4))))
    assert hook.layers == (0, 1, 2, 3)  # conv layers too
    assert hook.blocks[0] == cosim.Block(8, 4, 8, 22)  # 16 × 26 tile
    assert hook.blocks[2] == cosim.Block(8, 4, 32, 32)  # 128 × 513 tile
    assert hook.blocks[3] == cosim.Block(8, 4, 2, 32)  # 10 × 129 tile


def test_checks_run_every_n_epochs_and_after_the_last() -> None:
    hook = cosim.build_hook(TrainingConfig(epochs=5, cosim=CosimConfig(every_epochs=2)))
    assert [e for e in range(1, 6) if hook.due(e, 5)] == [2, 4, 5]


def test_behavioral_read_is_one_noise_free_pass_of_the_periphery(rng: np.random.Generator) -> None:
    """Against the periphery written out by hand: DAC step inp_res·2·inp_bound, clip at
    ±out_bound, ADC step out_res·2·out_bound (paper A: 2/126 and 24/510); no noise, no
    management (the ×s of noise management is the caller's, in normalized units)."""
    io = rpu.gokmen_vlasov_2016().forward
    w = rng.uniform(-0.6, 0.6, (6, 9)) * 10
    w[0] = 6.0  # an output beyond the bound
    x = rng.uniform(0.5, 1.0, 9)
    step_in, step_out = 2 / 126, 24 / 510
    y = np.clip(w @ (np.rint(x / step_in) * step_in), -12, 12)
    y = np.rint(y / step_out) * step_out
    got = cosim.behavioral_read(w, io, x)
    np.testing.assert_allclose(got, y, rtol=0, atol=1e-12)  # float rounding of the sums
    assert np.any(np.abs(got) == 12)


def test_input_scale_pick_vector_and_differences() -> None:
    io = rpu.gokmen_vlasov_2016().forward
    assert cosim.input_scale(io, np.array([0.5, -2.0])) == 2.0
    assert cosim.input_scale(io, np.zeros(3)) == 1.0
    assert cosim.input_scale(rpu.floating_point().forward, np.array([0.5, -2.0])) == 1.0
    patches = np.array([[9.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 3.0, 0.0]])
    np.testing.assert_array_equal(cosim.pick_vector(patches, cosim.Block(0, 1, 1, 2)), patches[2])
    rms, worst = cosim.differences_pct(np.array([1.0, -1.0]), np.array([0.0, 0.0]), 4.0)
    assert (rms, worst) == (25.0, 25.0)
    assert all(math.isnan(v) for v in cosim.differences_pct(np.zeros(0), np.zeros(0), 1.0))


def test_hook_records_a_failure_instead_of_raising() -> None:
    """The layer inputs fail, or a layer has none: rows with status failed, no exception."""
    hook = cosim.build_hook(TrainingConfig(epochs=2, cosim=CosimConfig(layers=(0, 2))))

    def broken() -> tuple[None, ...]:
        raise RuntimeError("no inputs today")

    ctx = SimpleNamespace(epoch=2, last_epoch=2, layer_inputs=broken, network=None)
    rows = hook(ctx)
    assert rows is not None and rows["status"] == ["failed", "failed"]
    assert rows["layer"] == [0, 2] and "no inputs today" in rows["message"][0]
    assert set(rows) == set(cosim.COLUMNS)
    ctx = SimpleNamespace(
        epoch=2, last_epoch=2, layer_inputs=lambda: (None, None, None), network=None
    )
    rows = hook(ctx)
    assert rows is not None and rows["message"] == ["not a linear or conv layer"] * 2
    hook_every2 = cosim.build_hook(TrainingConfig(epochs=4, cosim=CosimConfig(every_epochs=2)))
    assert hook_every2(SimpleNamespace(epoch=1, last_epoch=4)) is None


def test_train_refuses_a_bad_hook_before_loading_data() -> None:
    cfg = TrainingConfig(n_train=10, n_test=10, epochs=1)
    with pytest.raises(ConfigError, match=r"epoch hook name 'test_error'"):
        train(cfg, None, epoch_hooks={"test_error": lambda ctx: None}, progress=False)
    with pytest.raises(ConfigError, match=r"epoch hook 'x' = 3: must be callable"):
        train(cfg, None, epoch_hooks={"x": 3}, progress=False)  # type: ignore[dict-item]


def test_hook_rows_must_keep_their_columns() -> None:
    records: dict[str, dict[str, list[Any]]] = {}
    add_rows(records, "h", {"a": [1, 2], "b": ["x", "y"]})
    add_rows(records, "h", {"a": np.array([3]), "b": ["z"]})
    assert records == {"h": {"a": [1, 2, 3], "b": ["x", "y", "z"]}}
    with pytest.raises(ConfigError, match=r"same columns every epoch"):
        add_rows(records, "h", {"a": [4]})
    with pytest.raises(ConfigError, match=r"need equal lengths"):
        add_rows(records, "g", {"a": [1], "b": [1, 2]})
