"""HDF5 store: real files written, read back, atomically, with provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rpucircuit import store
from rpucircuit.errors import StoreError


def _prov() -> store.Provenance:
    return store.Provenance(
        kind="test", schema_version=3, config_toml="a = 1\n", config_key="k" * 64
    )


def test_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    tree = {
        "weights": rng.normal(size=(5, 7)),
        "n": 42,
        "label": "forward",
        "names": np.array(["a", "bb"]),
        "case": {"x": np.arange(3, dtype=np.int32), "deep": {"y": 1.5}},
    }
    path = store.save(tmp_path / "out.h5", tree, _prov())
    back, prov = store.load(path, kind="test", schema_version=3)
    np.testing.assert_array_equal(back["weights"], tree["weights"])  # exact: float64 stored
    assert back["n"] == 42
    assert back["label"] == "forward"
    assert list(back["names"]) == ["a", "bb"]
    np.testing.assert_array_equal(back["case"]["x"], [0, 1, 2])
    assert back["case"]["deep"]["y"] == 1.5
    assert prov.config_toml == "a = 1\n"
    assert prov.created_utc.endswith("+00:00")
    assert store.read_provenance(path) == prov


def test_kind_and_version_checked(tmp_path: Path) -> None:
    path = store.save(tmp_path / "f.h5", {"a": 1}, _prov())
    with pytest.raises(StoreError, match=r"holds a 'test' file, expected 'model'"):
        store.load(path, kind="model")
    with pytest.raises(StoreError, match=r"schema version 3; this rpucircuit reads version 4"):
        store.load(path, schema_version=4)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bad.h5"
    with pytest.raises(StoreError, match=r"cannot store object arrays"):
        store.save(target, {"obj": np.array([object()], dtype=object)}, _prov())
    assert list(tmp_path.iterdir()) == []


def test_not_hdf5(tmp_path: Path) -> None:
    p = tmp_path / "x.h5"
    p.write_text("hello")
    with pytest.raises(StoreError, match=r"not a readable HDF5 file"):
        store.load(p)
    with pytest.raises(StoreError, match=r"no such file"):
        store.load(tmp_path / "missing.h5")
