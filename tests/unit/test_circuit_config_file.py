"""One loader for circuit config files, used by ``rpucircuit netlist`` and ``characterize``.

Regression: ``netlist`` accepted a ``[circuit]`` table that ``characterize`` rejected as an
unknown table, so one file meant two things. Both commands now read circuits through
:func:`rpucircuit.config.tile.circuit_config_from_data`: the same file gives the same
config, and a wrong layout the same error, whichever command reads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rpucircuit import cli
from rpucircuit.circuit import characterize as ch
from rpucircuit.commands import netlist as netlist_cmd
from rpucircuit.config.base import config_key, parse_toml, to_toml
from rpucircuit.config.tile import (
    circuit_config_from_data,
    gokmen_vlasov_2016,
    load_circuit_config,
)
from rpucircuit.errors import ConfigError

FLAT = """\
[tile]
rows = 3
cols = 5
[tile.row_line]
r_ohm_per_um = 1.0
[device]
on_off_ratio = 4.0
"""
NESTED = FLAT.replace("[tile", "[circuit.tile").replace("[device", "[circuit.device")
CAMPAIGN = "[campaign]\ntransient_size = 4\n"


def _netlist_config(path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """The config ``rpucircuit netlist PATH`` builds its netlist from."""
    seen: list[object] = []
    real = netlist_cmd.build_cycle

    def spy(cfg: object, cycle: str, **kw: object) -> object:
        seen.append(cfg)
        return real(cfg, cycle, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(netlist_cmd, "build_cycle", spy)
    assert cli.main(["netlist", str(path), "--out", str(path.with_suffix(".cir"))]) == 0
    (got,) = seen
    return got


def _characterize_config(path: Path) -> object:
    """The circuit ``rpucircuit characterize PATH`` runs its campaign on."""
    return ch.load_spec(path.read_text(encoding="utf-8"), source=str(path)).circuit


@pytest.mark.parametrize(
    "text",
    [FLAT, NESTED, FLAT + CAMPAIGN, NESTED + CAMPAIGN],
    ids=["flat", "circuit", "flat+c", "circuit+c"],
)
def test_same_file_same_config_in_both_commands(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tile.toml"
    path.write_text(text, encoding="utf-8")
    via_netlist = _netlist_config(path, monkeypatch)
    via_characterize = _characterize_config(path)
    assert via_netlist == via_characterize
    assert config_key(via_netlist) == config_key(via_characterize)
    cfg = load_circuit_config(path, extra_tables=("campaign",))
    assert cfg == via_netlist
    # Given fields applied, the rest from the preset (nested tables field by field).
    assert (cfg.tile.rows, cfg.tile.cols, cfg.device.on_off_ratio) == (3, 5, 4.0)
    assert cfg.tile.row_line.r_ohm_per_um == 1.0
    assert cfg.tile.row_line.c_f_per_um == gokmen_vlasov_2016().tile.row_line.c_f_per_um
    assert cfg.periphery == gokmen_vlasov_2016().periphery


WRONG = [
    ("[tiles]\nrows = 3\n", r"unknown table \[tiles\]; a circuit config has tables"),
    ("[circuit.tiles]\nrows = 3\n", r"unknown table \[circuit\.tiles\]"),
    (NESTED + "[periphery]\nbl = 4\n", r"both \[circuit\] and top-level \[periphery\]"),
    ("circuit = 3\n", r"\[circuit\] must be a table"),
    ("tile = 3\n", r"\[tile\] must be a table"),
    ("[circuit]\ndevice = 3\n", r"\[circuit\.device\] must be a table"),
    ("[tile]\nrowz = 3\n", r"unknown field\(s\) tile\.rowz"),
    ("[circuit.tile]\nrowz = 3\n", r"unknown field\(s\) circuit\.tile\.rowz"),
    # The [specs] table (rpucircuit specs' figures of merit) is checked by every reader.
    ("[specs]\nbogus = 1\n", r"unknown field\(s\) specs\.bogus for SpecInputs"),
    ("[specs]\nsigma_w = 0\n", r"sigma_w = 0\.0: must lie in \(0, 10\]"),
    ("specs = 3\n", r"\[specs\] must be a table"),
]


@pytest.mark.parametrize(("text", "match"), WRONG)
def test_wrong_layout_same_error_in_both_commands(
    text: str, match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as from_loader:
        circuit_config_from_data(parse_toml(text), source=str(path), extra_tables=("campaign",))
    assert cli.main(["netlist", str(path)]) == 1
    netlist_err = capsys.readouterr().err
    assert cli.main(["characterize", str(path), "--out", str(tmp_path / "run")]) == 1
    characterize_err = capsys.readouterr().err
    message = str(from_loader.value)
    assert netlist_err == f"rpucircuit netlist: error: {message}\n"
    assert characterize_err == f"rpucircuit characterize: error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_specs_table_leaves_the_circuit_and_its_key_alone(tmp_path: Path) -> None:
    # A [specs] table is no part of the circuit: same config, same key as without it.
    path = tmp_path / "tile.toml"
    path.write_text(FLAT + "[specs]\ndigital_power_w = 2.0\n", encoding="utf-8")
    plain = circuit_config_from_data(parse_toml(FLAT))
    with_specs = load_circuit_config(path)
    assert with_specs == plain
    assert config_key(with_specs) == config_key(plain)


def test_no_file_is_the_preset() -> None:
    assert load_circuit_config(None) == gokmen_vlasov_2016()
    assert netlist_cmd.load_config(None) == ch.load_spec(None).circuit


def test_round_trip_of_a_written_config(tmp_path: Path) -> None:
    cfg = gokmen_vlasov_2016(rows=4, cols=2)
    path = tmp_path / "cfg.toml"
    path.write_text(to_toml(cfg), encoding="utf-8")
    assert load_circuit_config(path) == cfg


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_circuit_config(tmp_path / "missing.toml")
    assert isinstance(netlist_cmd.add_arguments, type(test_unreadable_file))
    parser = argparse.ArgumentParser()
    netlist_cmd.add_arguments(parser)
    assert parser.parse_args([]).config is None
