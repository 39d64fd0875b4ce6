"""HDF5 store: real files written, read back, atomically, with provenance."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from rpucircuit import store
from rpucircuit.errors import ConfigError, StoreError


def _prov() -> store.Provenance:
    return store.Provenance(
        kind="test", schema_version=3, config_toml="a = 1\n", config_key="k" * 64
    )


def test_round_trip(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
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


def _object_mtimes(path: Path) -> list[int]:
    """HDF5's own modification time of every object in a file (0 when not recorded)."""
    times: list[int] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _name, obj: times.append(h5py.h5o.get_info(obj.id).mtime))
    return times


def test_reproducible_save_is_byte_identical(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: every save carried the wall-clock time (created_utc and HDF5's per-object
    modification times), so a model file re-exported unchanged got another sha256."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tree = {"w": rng.normal(size=(4, 3)), "s": "text", "g": {"n": 3, "names": np.array(["a"])}}
    a = store.save(tmp_path / "a.h5", tree, _prov(), reproducible=True)
    b = store.save(tmp_path / "b.h5", tree, _prov(), reproducible=True)
    assert a.read_bytes() == b.read_bytes()
    # two saves within one second would match even with HDF5's clock in the file: prove
    # the clock is absent (an object's mtime is 0 when it was not recorded)
    assert _object_mtimes(a) == [0] * 5  # g, g/n, g/names, s, w
    assert store.read_provenance(a).created_utc == ""
    # a normal save records the time in created_utc only, never per object
    c = store.save(tmp_path / "c.h5", tree, _prov())
    assert store.read_provenance(c).created_utc.endswith("+00:00")
    assert _object_mtimes(c) == [0] * 5


def test_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    for reproducible in (False, True):
        path = store.save(tmp_path / "t.h5", {"a": 1}, _prov(), reproducible=reproducible)
        assert store.read_provenance(path).created_utc == "2023-11-14T22:13:20+00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "")  # empty counts as unset
    assert store.source_date() == ""
    for bad in ("soon", "-5", "1.5"):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", bad)
        with pytest.raises(ConfigError, match=r"SOURCE_DATE_EPOCH = .*: must be whole seconds"):
            store.save(tmp_path / "t.h5", {"a": 1}, _prov())
