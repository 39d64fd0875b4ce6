"""``rpucircuit netlist``: default config, a TOML config, each cycle's circuit, the seed,
self-contained output (libraries beside it), atomic writes, one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rpucircuit import cli
from rpucircuit.circuit.netlist import NETLIST_DIR
from rpucircuit.config.base import to_toml
from rpucircuit.config.tile import gokmen_vlasov_2016

ROWS, COLS = 2, 3
CFG = gokmen_vlasov_2016(rows=ROWS, cols=COLS)
CYCLES = ("forward", "backward", "update", "noise", "line")
LIBS = {
    "forward": ["rpu_devices.lib", "rpu_drivers.lib", "rpu_integrator.lib"],
    "backward": ["rpu_devices.lib", "rpu_drivers.lib", "rpu_integrator.lib"],
    "update": ["rpu_devices.lib"],
    "noise": ["rpu_integrator.lib"],
    "line": [],
}


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    path = tmp_path / "tile.toml"
    path.write_text(to_toml(CFG), encoding="utf-8")
    return path


def _netlist(cfg_path: Path, cycle: str, seed: int, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["netlist", str(cfg_path), "--cycle", cycle, "--seed", str(seed)]) == 0
    return capsys.readouterr().out


def _count(lines: list[str], pattern: str) -> int:
    return sum(1 for ln in lines if re.match(pattern, ln))


def _features(text: str) -> dict[str, int]:
    """How many of each kind of element and analysis a netlist holds, by its element lines."""
    lines = text.splitlines()
    return {
        "pulse drivers on columns": _count(lines, r"xdrv_[pm]c\d+ \S+ rpu_pulse_driver "),
        "pulse drivers on rows": _count(lines, r"xdrv_[pm]r\d+ \S+ rpu_pulse_driver "),
        "integrators": _count(lines, r"xint\d+ sum\d+ out\d+ rpu_integrator "),
        "devices as resistors": _count(lines, r"rd_[pm]_\d+(_\d+)? "),
        "row bit streams": _count(lines, r"vrow\d+ vr\d+ 0 dc 0\.0 pwl\("),
        "column bit streams": _count(lines, r"vcol\d+ vc\d+ 0 dc 0\.0 pwl\("),
        "update devices": _count(lines, r"xu_\d+_\d+ pr\d+_c\d+ pc\d+_r\d+ s\d+_\d+ rpu_update_"),
        "noise sources": _count(lines, r"vin0 vp0 0 dc 0\.0 ac 1\.0$"),
        "line step": _count(lines, r"vstep vs 0 dc 0\.0 pwl\("),
        "line segments": _count(lines, r"rs_l\d+ "),
        "tran": _count(lines, r"tran "),
        "noise analysis": _count(lines, r"noise v\(out0\) vin0 dec "),
    }


# What each cycle must contain, for a 2 × 3 paired tile; every other feature is absent.
EXPECTED = {
    # inputs on the 3 columns of both arrays, integrators on the 2 rows
    "forward": {
        "pulse drivers on columns": 2 * COLS,
        "integrators": ROWS,
        "devices as resistors": 2 * ROWS * COLS,
        "tran": 1,
    },
    # the transpose: inputs on the rows, integrators on the columns
    "backward": {
        "pulse drivers on rows": 2 * ROWS,
        "integrators": COLS,
        "devices as resistors": 2 * ROWS * COLS,
        "tran": 1,
    },
    # one array, a bit stream per line, an update subcircuit per device, no read periphery
    "update": {
        "row bit streams": ROWS,
        "column bit streams": COLS,
        "update devices": ROWS * COLS,
        "tran": 1,
    },
    # one output row: its 3 cross points in both arrays, one integrator, a .noise analysis
    "noise": {
        "integrators": 1,
        "devices as resistors": 2 * COLS,
        "noise sources": 1,
        "noise analysis": 1,
    },
    # one row line of 3 segments driven by a step
    "line": {"line step": 1, "line segments": COLS, "tran": 1},
}


def test_default_config_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["netlist"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("* rpucircuit forward read, 32x32 tile, tran\n")
    assert captured.out.endswith(".end\n")
    # Standard output holds the netlist only; where its libraries are goes to stderr.
    assert f"from {NETLIST_DIR}" in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize("cycle", CYCLES)
def test_cycle_option_selects_the_circuit(
    cycle: str, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    features = _features(_netlist(cfg_path, cycle, 3, capsys))
    want = {name: EXPECTED[cycle].get(name, 0) for name in features}
    assert features == want


@pytest.mark.parametrize("cycle", ["forward", "backward", "update", "noise"])
def test_seed_draws_the_devices(
    cycle: str, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three = _netlist(cfg_path, cycle, 3, capsys)
    assert _netlist(cfg_path, cycle, 3, capsys) == three  # same seed, same bytes
    four = _netlist(cfg_path, cycle, 4, capsys)

    def conductances(text: str) -> list[float]:
        # read and noise devices carry "device g = <S> S" comments, update devices g0=<S>
        found = re.findall(r"device g = (\S+) S|g0=(\S+)", text)
        return [float(a or b) for a, b in found]

    g3, g4 = conductances(three), conductances(four)
    n = {"forward": 2 * ROWS * COLS, "backward": 2 * ROWS * COLS, "update": ROWS * COLS}
    assert len(g3) == len(g4) == n.get(cycle, 2 * COLS)
    d = CFG.device
    assert all(d.g_off_s <= g <= d.g_on_s for g in g3 + g4)
    # Drawn from a continuous distribution: two seeds share no value.
    assert not set(g3) & set(g4)


def test_line_cycle_has_nothing_random(cfg_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _netlist(cfg_path, "line", 3, capsys) == _netlist(cfg_path, "line", 4, capsys)


@pytest.mark.parametrize("cycle", CYCLES)
def test_out_file_gets_its_libraries_beside_it(
    cycle: str, cfg_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / f"{cycle}.cir"
    argv = ["netlist", str(cfg_path), "--cycle", cycle, "--out", str(out), "--seed", "3"]
    assert cli.main(argv) == 0
    text = out.read_text(encoding="utf-8")
    assert text == _netlist(cfg_path, cycle, 3, capsys)
    includes = sorted(re.findall(r"^\.include (\S+)$", text, flags=re.MULTILINE))
    assert includes == LIBS[cycle]
    # exactly the netlist and the libraries it includes: no temporary file left behind
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, *includes])
    for name in includes:
        assert (out.parent / name).read_bytes() == (NETLIST_DIR / name).read_bytes()
    cli.main(argv)
    err = capsys.readouterr().err
    assert err.startswith(f"wrote {out} ({cycle}")
    assert all(name in err for name in includes)
    assert ("copied" in err) == bool(includes)


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
    assert err.startswith("rpucircuit netlist: error:")
    assert err.count("\n") == 1
    assert re.search(match, err)
    assert sorted(tmp_path.iterdir()) == [cfg_path]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--seed", "-5"], r"--seed = -5: must be an integer >= 0"),
        (["--out", "{tmp}/file.txt/net.cir"], r"File exists|Not a directory"),
    ],
)
def test_bad_arguments_give_one_line(
    argv: list[str], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file.txt").write_text("", encoding="utf-8")
    assert cli.main(["netlist", *(a.format(tmp=tmp_path) for a in argv)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("rpucircuit netlist: error: ")
    assert captured.err.count("\n") == 1
    assert re.search(match, captured.err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["netlist", str(tmp_path / "nope.toml")]) == 1
    assert "cannot read config file" in capsys.readouterr().err
