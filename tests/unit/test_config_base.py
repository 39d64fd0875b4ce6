"""Config machinery: validation helpers, TOML round trip, stable keys, clear errors."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Literal

import pytest

from rpucircuit.config import base
from rpucircuit.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Inner:
    r_ohm: float = 1.0
    mode: Literal["time", "amplitude"] = "time"

    def __post_init__(self) -> None:
        base.check_positive("inner.r_ohm", self.r_ohm)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Outer:
    rows: int = 4
    name: str = "tile"
    flags: tuple[float, ...] = (0.5, 1.0)
    inner: Inner = dataclasses.field(default_factory=Inner)

    def __post_init__(self) -> None:
        base.check_int("rows", self.rows, 1, 4096)


def test_toml_round_trip_and_key_stable() -> None:
    cfg = Outer(rows=7, inner=Inner(r_ohm=2.5e6, mode="amplitude"))
    text = base.to_toml(cfg)
    back = base.from_toml(Outer, text)
    assert back == cfg
    assert base.config_key(back) == base.config_key(cfg)
    assert len(base.config_key(cfg)) == 64


def test_key_changes_with_any_value() -> None:
    a = Outer()
    b = dataclasses.replace(a, inner=Inner(r_ohm=1.0000000001))
    assert base.config_key(a) != base.config_key(b)


def test_int_widened_to_float() -> None:
    cfg = base.from_dict(Outer, {"inner": {"r_ohm": 3}})
    assert isinstance(cfg.inner.r_ohm, float)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"rows": 0}, r"rows = 0: must be an integer in \[1, 4096\]"),
        ({"rows": 2.5}, r"rows = 2.5: must be an integer"),
        ({"inner": {"r_ohm": -1.0}}, r"inner.r_ohm = -1.0: must be > 0"),
        ({"inner": {"r_ohm": math.nan}}, r"inner.r_ohm = nan: must be finite"),
        ({"inner": {"mode": "pwm"}}, r"inner.mode = 'pwm': must be one of"),
        ({"inner": {"r_ohn": 1.0}}, r"unknown field\(s\) inner.r_ohn"),
        ({"inner": 5}, r"inner = 5: must be a table"),
        ({"name": 3}, r"name = 3: must be a string"),
        ({"flags": "x"}, r"flags = 'x': must be a list"),
    ],
)
def test_bad_values_name_the_field(data: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        base.from_dict(Outer, data)


def test_malformed_toml_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"malformed TOML in cfg.toml"):
        base.from_toml(Outer, "rows = = 3", source="cfg.toml")


def test_missing_table_named() -> None:
    with pytest.raises(ConfigError, match=r"missing table \[tile\]"):
        base.from_toml(Outer, "rows = 3", source="x.toml", table="tile")


def test_range_and_choice_messages() -> None:
    with pytest.raises(ConfigError, match=r"k = 1.5: must lie in \(0, 1\)"):
        base.check_range("k", 1.5, 0.0, 1.0, lo_open=True, hi_open=True)
    with pytest.raises(ConfigError, match=r"x = True: must be a number"):
        base.check_finite("x", True)
    with pytest.raises(ConfigError, match=r"n = -1: must be >= 0"):
        base.check_nonnegative("n", -1)


def test_unreadable_file(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file"):
        base.read_toml_file("/nonexistent/cfg.toml")


def test_unreadable_kinds_of_file_are_one_line_errors(tmp_path: Path) -> None:
    binary = tmp_path / "cfg.toml"
    binary.write_bytes(b"\x89HDF\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError, match=r"cfg\.toml: not UTF-8 text \(byte 0\)"):
        base.read_toml_file(binary)
    with pytest.raises(ConfigError, match=r": a folder"):
        base.read_toml_file(tmp_path)
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(ConfigError, match=r"pipe\.toml: not a regular file"):
        base.read_toml_file(fifo)
