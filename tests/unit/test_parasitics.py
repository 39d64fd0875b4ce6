"""TileParasitics: one record of a tile's line and driver resistances that both the nodal
solver (circuit path) and the closed-form IR-drop map (model path) are built from, and the
two agreeing to first order on the same record."""

from __future__ import annotations

import numpy as np
import pytest

from rpucircuit.circuit.nodal import parasitic_solver, solver_for
from rpucircuit.config.parasitics import TileParasitics
from rpucircuit.config.tile import LineConfig, gokmen_vlasov_2016, replace_tile
from rpucircuit.errors import ConfigError
from rpucircuit.model.irdrop import (
    IRDropModel,
    effective_weights,
    first_order_attenuation,
    max_attenuation,
    parasitic_attenuation,
    weight_drop,
)

# (rows, cols, r_seg_row, r_seg_col, r_driver) in units of R_mean (g_mean = 1 S): row and
# column lines differ, so a swapped orientation on either side shows.
SHAPES = [
    (4, 3, 1e-3, 2e-3, 0.0),
    (16, 12, 1e-4, 3e-4, 1e-3),
    (24, 20, 2e-4, 1e-4, 1e-3),
    (1, 7, 5e-3, 1e-3, 0.0),
    (9, 1, 1e-3, 5e-3, 3e-3),
    (32, 32, 1e-4, 1e-4, 4e-4),
]


def _par(rr: float, rc: float, rd: float) -> TileParasitics:
    return TileParasitics(r_seg_row_ohm=rr, r_seg_col_ohm=rc, r_driver_ohm=rd, g_mean_s=1.0)


def _nodal_matrix(
    par: TileParasitics, arrays: tuple[np.ndarray, ...], signs: tuple[float, ...], direction: str
) -> np.ndarray:
    """Charge of each output per unit input, tile orientation (rows, cols)."""
    solver = parasitic_solver(par, arrays, signs, direction=direction)  # type: ignore[arg-type]
    m = solver.charges(np.eye(solver.n_in))
    return np.asarray(m if direction == "forward" else m.T)


def test_from_circuit_is_paper_a_lines() -> None:
    cfg = gokmen_vlasov_2016()
    par = TileParasitics.from_circuit(cfg)
    # paper A: 0.36 Ω/µm at 0.4 µm pitch = 0.144 Ω a segment, R_mean 24 MΩ, 10 Ω drivers
    assert par.r_seg_row_ohm == pytest.approx(0.144, rel=1e-12)
    assert par.r_seg_col_ohm == pytest.approx(0.144, rel=1e-12)
    assert par.r_driver_ohm == pytest.approx(10.0, rel=1e-12)
    rho_in, rho_out, rho_d = par.ratios("forward")
    assert rho_in == pytest.approx(6e-9, rel=1e-9) and rho_out == pytest.approx(6e-9, rel=1e-9)
    assert rho_d == pytest.approx(10.0 / 24e6, rel=1e-9)
    # forward the columns are the input lines, backward the rows
    wide = replace_tile(cfg, row_line=LineConfig(r_ohm_per_um=1.0, c_f_per_um=0.2e-15))
    p = TileParasitics.from_circuit(wide)
    assert p.lines("forward") == (wide.tile.r_seg_col_ohm, wide.tile.r_seg_row_ohm)
    assert p.lines("backward") == (wide.tile.r_seg_row_ohm, wide.tile.r_seg_col_ohm)


def test_from_ratios_is_the_model_files_map() -> None:
    model = IRDropModel(segment_ratio=2e-4, driver_ratio=1e-3, drive_end="last")
    par = model.parasitics(r_mean_ohm=24e6)
    assert par.ratios("backward") == pytest.approx((2e-4, 2e-4, 1e-3), rel=1e-12)
    for direction in ("forward", "backward"):
        np.testing.assert_allclose(
            parasitic_attenuation(par, 12, 9, direction),
            first_order_attenuation(model, 12, 9, direction),
            rtol=1e-12,
        )


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize(("rows", "cols", "rr", "rc", "rd"), SHAPES)
def test_nodal_and_map_agree_on_the_mean_tile(
    rows: int, cols: int, rr: float, rc: float, rd: float, direction: str
) -> None:
    """Every device at G_mean: |nodal − (1 − a)| ≤ a_max², the map being the first-order
    term of the exact solution's series (measured 0.70–0.88 of a_max² here)."""
    par = _par(rr, rc, rd)
    exact = _nodal_matrix(par, (np.ones((rows, cols)),), (1.0,), direction)
    att = 1.0 - parasitic_attenuation(par, rows, cols, direction)  # type: ignore[arg-type]
    a_max = max_attenuation(par, rows, cols, direction)  # type: ignore[arg-type]
    assert a_max == pytest.approx(1.0 - att.min(), rel=1e-12)
    assert np.abs(exact - att).max() <= a_max**2
    assert np.abs(exact - 1.0).max() >= a_max - a_max**2  # it is first order


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize(("rows", "cols", "rr", "rc", "rd"), SHAPES)
def test_nodal_and_weight_map_agree_on_random_weights(
    rows: int, cols: int, rr: float, rc: float, rd: float, direction: str
) -> None:
    """A signed pair G± = G_mean·(1 ± u·W), W uniform in [−1, 1], u = 0.5: the first-order
    read with the weights' own line sums, ``W∘(1 − a) − B(W)``, meets the nodal solve within
    the second-order bound of devices up to (1 + u)·G_mean, (1 + u)²·a_max² (measured ≤ 1.33
    a_max²); the mean map alone misses by a first-order amount, several times more. The
    resistances are a tenth of the mean tile's cases, so that the second-order term is well
    below the first-order one on every shape (a_max 0.003–0.025)."""
    par = _par(rr / 10, rc / 10, rd / 10)
    u = 0.5
    w = np.random.default_rng(rows * 100 + cols).uniform(-1.0, 1.0, (rows, cols))
    exact = _nodal_matrix(par, (1.0 + u * w, 1.0 - u * w), (1.0, -1.0), direction) / (2.0 * u)
    a_max = max_attenuation(par, rows, cols, direction)  # type: ignore[arg-type]
    eff = effective_weights(par, w, direction)  # type: ignore[arg-type]
    err = np.abs(exact - eff).max()
    assert err <= (1.0 + u) ** 2 * a_max**2
    a = parasitic_attenuation(par, rows, cols, direction)  # type: ignore[arg-type]
    mean_map = w * (1.0 - a)
    assert np.abs(exact - mean_map).max() >= 2.0 * err


def test_weight_drop_of_the_mean_tile_is_the_map() -> None:
    """B(W) of a tile of ones is the mean map a itself (same double sums), for every end."""
    for drive in ("first", "last"):
        for sense in ("first", "last"):
            par = TileParasitics(
                r_seg_row_ohm=1e-3,
                r_seg_col_ohm=2e-3,
                r_driver_ohm=5e-4,
                g_mean_s=1.0,
                drive_end=drive,
                sense_end=sense,
            )
            for direction in ("forward", "backward"):
                np.testing.assert_allclose(
                    weight_drop(par, np.ones((7, 5)), direction),
                    parasitic_attenuation(par, 7, 5, direction),
                    rtol=1e-12,
                )


def test_solver_for_uses_the_circuit_parasitics() -> None:
    """solver_for(cfg) and parasitic_solver(from_circuit(cfg)) are the same network."""
    cfg = replace_tile(
        gokmen_vlasov_2016(rows=6, cols=5),
        row_line=LineConfig(r_ohm_per_um=3e4, c_f_per_um=0.2e-15),
        r_driver_ohm=2e3,
    )
    g = np.random.default_rng(3).uniform(1e-8, 7e-8, (2, 6, 5))
    x = np.linspace(-1.0, 1.0, 6)
    a = solver_for(cfg, g[0], g[1], direction="backward")
    b = parasitic_solver(
        TileParasitics.from_circuit(cfg), (g[0], g[1]), (1.0, -1.0), direction="backward"
    )
    np.testing.assert_allclose(a.charges(x), b.charges(x), rtol=1e-12)


def test_errors() -> None:
    with pytest.raises(ConfigError, match=r"r_seg_row_ohm = -1.*must be >= 0"):
        TileParasitics(r_seg_row_ohm=-1.0, r_seg_col_ohm=0.0, g_mean_s=1.0)
    with pytest.raises(ConfigError, match=r"g_mean_s = 0.*must be > 0"):
        TileParasitics(r_seg_row_ohm=0.0, r_seg_col_ohm=0.0, g_mean_s=0.0)
    with pytest.raises(ConfigError, match=r"drive_end = 'middle'"):
        TileParasitics(r_seg_row_ohm=0.0, r_seg_col_ohm=0.0, g_mean_s=1.0, drive_end="middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"segment_ratio = -1e-09"):
        TileParasitics.from_ratios(-1e-9)
    par = TileParasitics.from_ratios(1e-3, sense_end="first")
    with pytest.raises(ConfigError, match=r"nodal network drives each input line at its first"):
        parasitic_solver(par, (np.ones((2, 2)),), (1.0,))
    with pytest.raises(ConfigError, match=r"direction = 'up'"):
        par.ratios("up")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"w: shape \(3,\)"):
        weight_drop(par, np.ones(3))
