"""``rpucircuit netlist``: default config, a TOML config, each cycle, atomic output, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rpucircuit import cli
from rpucircuit.config.base import to_toml
from rpucircuit.config.tile import gokmen_vlasov_2016


def test_default_config_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["netlist"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("* rpucircuit forward read, 32x32 tile, tran\n")
    assert out.endswith(".end\n")


@pytest.mark.parametrize("cycle", ["forward", "backward", "update", "noise", "line"])
def test_each_cycle_from_toml_to_file(cycle: str, tmp_path: Path) -> None:
    cfg_path = tmp_path / "tile.toml"
    cfg_path.write_text(to_toml(gokmen_vlasov_2016(rows=2, cols=3)), encoding="utf-8")
    out = tmp_path / "out" / f"{cycle}.cir"
    assert (
        cli.main(["netlist", str(cfg_path), "--cycle", cycle, "--out", str(out), "--seed", "3"])
        == 0
    )
    text = out.read_text(encoding="utf-8")
    assert text.endswith(".end\n")
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp file left
    # The same seed gives the same netlist.
    again = tmp_path / "again.cir"
    cli.main(["netlist", str(cfg_path), "--cycle", cycle, "--out", str(again), "--seed", "3"])
    assert again.read_text(encoding="utf-8") == text


def test_circuit_table_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "run.toml"
    body = to_toml(gokmen_vlasov_2016(rows=2, cols=2)).replace("[tile", "[circuit.tile")
    body = body.replace("[device", "[circuit.device").replace("[periphery", "[circuit.periphery")
    cfg_path.write_text(body, encoding="utf-8")
    assert cli.main(["netlist", str(cfg_path)]) == 0
    assert "2x2 tile" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[tile\nrows = 2", "malformed TOML"),
        ("[tile]\nrows = -2\n", "rows = -2"),
        ("[device]\nr_mean_ohm = 0.0\n", "r_mean_ohm = 0.0: must be > 0"),
        ("[device]\non_off_ratio = 1.0\n", "on_off_ratio = 1.0"),
        ("[tile]\nrows = 1024\ncols = 1024\n", "too large to simulate"),
        ("[tile]\nname = 'x;.control'\n", r"unknown field\(s\) tile.name"),
    ],
)
def test_bad_config_fails_before_simulation(
    text: str, match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path = tmp_path / "bad.toml"
    cfg_path.write_text(text, encoding="utf-8")
    out = tmp_path / "net.cir"
    assert cli.main(["netlist", str(cfg_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "rpucircuit netlist: error:" in err
    assert re.search(match, err)
    assert not out.exists()


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["netlist", str(tmp_path / "nope.toml")]) == 1
    assert "cannot read config file" in capsys.readouterr().err
