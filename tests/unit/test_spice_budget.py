"""The SPICE budget belongs to the path that starts ngspice, not to the config.

Regression: building a ``CircuitConfig`` used to refuse any tile whose ngspice DC point would
be slow, so a nodal-only 1024 × 1024 read first needed ``tile.spice_limit_s = 1e12``
although no SPICE runs. Now the config takes any size, the nodal solver solves it, and
only the netlist builders (what makes a netlist for ngspice) refuse it, with the estimate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rpucircuit import cli
from rpucircuit.circuit import netlist as nl
from rpucircuit.circuit import nodal
from rpucircuit.config.tile import (
    CircuitConfig,
    LineConfig,
    TileConfig,
    gokmen_vlasov_2016,
    replace_tile,
)
from rpucircuit.errors import NetlistError

N = 1024


@pytest.fixture
def big() -> CircuitConfig:
    """Paper A's tile at 1024 × 1024, the SPICE limit left at its default."""
    cfg = gokmen_vlasov_2016(rows=N, cols=N)
    assert cfg.tile.spice_limit_s == TileConfig().spice_limit_s == 1800.0
    return cfg


def test_large_config_builds_without_raising_the_limit(big: CircuitConfig) -> None:
    assert (big.tile.rows, big.tile.cols) == (N, N)
    assert CircuitConfig(tile=TileConfig(rows=N, cols=N)).tile.rows == N


def test_nodal_solves_the_large_tile(big: CircuitConfig, rng: np.random.Generator) -> None:
    # Zero line and driver resistances: the solver merges each line into one node, so its
    # charges equal the ideal (G+ - G-)·u exactly up to the rounding of 1024-term sums
    # (~1e-13 relative); 1e-12 leaves room for that and nothing else. This keeps a full
    # 1024 × 1024 solve to about a second.
    zero = LineConfig(r_ohm_per_um=0.0, c_f_per_um=0.2e-15)
    cfg = replace_tile(big, row_line=zero, col_line=zero, r_driver_ohm=0.0)
    d = cfg.device
    gp = rng.uniform(d.g_off_s, d.g_on_s, (N, N))
    gn = rng.uniform(d.g_off_s, d.g_on_s, (N, N))
    x = rng.uniform(-1.0, 1.0, N)
    res = nodal.read(cfg, gp, gn, x, finite_gain=False)
    u = nl.input_volt_seconds(cfg, x)
    ideal = (gp - gn) @ u
    assert res.q_c.shape == (N,)
    np.testing.assert_allclose(res.q_c, ideal, rtol=0, atol=1e-12 * np.abs(ideal).max())


def test_nodal_solves_a_long_line_tile_with_line_resistance(rng: np.random.Generator) -> None:
    # 8 × 4096 with paper A's lines: ~139k ngspice nodes (estimated ~3 h), a 0.1 s nodal solve.
    cfg = gokmen_vlasov_2016(rows=8, cols=4096)
    with pytest.raises(NetlistError, match=r"too large to simulate \(op\)"):
        nl.build_read(cfg, np.ones((8, 4096)), np.ones((8, 4096)), np.zeros(4096), analysis="op")
    d = cfg.device
    g = rng.uniform(d.g_off_s, d.g_on_s, (8, 4096))
    res = nodal.read(cfg, g, np.full_like(g, d.g_off_s), np.ones(4096), finite_gain=False)
    # Every input at +1 and every weight >= 0: the IR drop only loses charge, and by at most
    # paper A's budget N·R_line/R_dev = 4096 · (4096 · 0.144 Ω)/24 MΩ ≈ 0.1 of it.
    assert np.all(res.q_c < res.q_ideal_c)
    assert np.all(res.q_c > 0.9 * res.q_ideal_c)


def test_netlist_builders_still_refuse_the_large_tile(big: CircuitConfig) -> None:
    g = np.full((N, N), big.device.g_mean_s)
    bits = np.zeros((N, big.periphery.bl), dtype=bool)
    expected = r"1024 × 1024: too large to simulate \({}\).*tile\.spice_limit_s = 1800 s.*nodal"
    with pytest.raises(NetlistError, match=expected.format("tran")):
        nl.build_read(big, g, g, np.zeros(N))
    with pytest.raises(NetlistError, match=expected.format("op")):
        nl.build_read(big, g, g, np.zeros(N), analysis="op")
    with pytest.raises(NetlistError, match=expected.format("update")):
        nl.build_update(big, g, bits, bits)
    # build_cycle checks before drawing (and allocating) the random conductances.
    for cycle, analysis in (("forward", "tran"), ("backward", "tran"), ("update", "update")):
        with pytest.raises(NetlistError, match=expected.format(analysis)):
            nl.build_cycle(big, cycle, rng=np.random.default_rng(0))  # type: ignore[arg-type]
    # One line of the tile is small enough for ngspice.
    assert nl.build_line(big).role("ends") == ("v(l0)", f"v(l{N - 1})")


def test_cli_refuses_the_large_tile_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path = tmp_path / "big.toml"
    cfg_path.write_text(f"[tile]\nrows = {N}\ncols = {N}\n", encoding="utf-8")
    out = tmp_path / "big.cir"
    assert cli.main(["netlist", str(cfg_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("rpucircuit netlist: error: tile.rows × tile.cols = 1024 × 1024")
    assert "raise tile.spice_limit_s explicitly" in err
    assert list(tmp_path.iterdir()) == [cfg_path]
