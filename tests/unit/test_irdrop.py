"""First-order IR-drop attenuation map against the independent nodal solve of the tile."""

from __future__ import annotations

import numpy as np
import pytest

from rpucircuit.circuit.nodal import solver_for
from rpucircuit.config.tile import LineConfig, gokmen_vlasov_2016, replace_tile
from rpucircuit.errors import ConfigError
from rpucircuit.model.irdrop import (
    MAX_ATTENUATION,
    IRDropModel,
    first_order_attenuation,
    from_tree,
    line_drop,
    to_tree,
)

R_MEAN_OHM = 24e6  # the circuit preset's mean device resistance
PITCH_UM = 0.4  # the circuit preset's cross-point pitch


def nodal_map(
    rows: int, cols: int, rho: float, rho_d: float, direction: str
) -> tuple[np.ndarray, float]:
    """Exact read matrix of an unpaired tile with every device at G_mean, normalized by
    G_mean, in tile orientation (rows, cols): M[i, j] = charge of output i per unit input j.

    Built through :func:`rpucircuit.circuit.nodal.solver_for` from a circuit config, so the driven
    and sensed line ends are the ones our netlists use."""
    cfg = gokmen_vlasov_2016(rows=rows, cols=cols)
    line = LineConfig(r_ohm_per_um=rho * R_MEAN_OHM / PITCH_UM, c_f_per_um=0.2e-15)
    cfg = replace_tile(
        cfg, row_line=line, col_line=line, r_driver_ohm=rho_d * R_MEAN_OHM, paired=False
    )
    assert cfg.device.r_mean_ohm == R_MEAN_OHM and cfg.tile.pitch_um == PITCH_UM
    g = cfg.device.g_mean_s
    solver = solver_for(cfg, np.full((rows, cols), g), None, direction=direction)  # type: ignore[arg-type]
    n_in = cols if direction == "forward" else rows
    m = solver.charges(np.eye(n_in)) / g  # (n_out, n_in) of this direction
    return (m if direction == "forward" else m.T), g


CASES = [
    (4, 3, 1e-3, 0.0),
    (8, 5, 1e-3, 3e-3),
    (16, 12, 1e-4, 0.0),
    (16, 12, 1e-3, 2e-3),
    (1, 7, 5e-3, 0.0),
    (9, 1, 5e-3, 3e-3),
    (24, 20, 2e-4, 1e-3),
]


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize(("rows", "cols", "rho", "rho_d"), CASES)
def test_map_matches_nodal_to_second_order(
    rows: int, cols: int, rho: float, rho_d: float, direction: str
) -> None:
    """|exact − (1 − a)| ≤ a_max²: the closed form is the first-order term of the exact
    solution's series in ρ, so what it leaves out is the second-order term, at most a_max²
    (measured: 0.70–0.91 of a_max² over these cases; a driver alone gives the geometric
    series 1/(1 + a), whose second-order term is exactly a²)."""
    model = IRDropModel(segment_ratio=rho, driver_ratio=rho_d)
    att = model.attenuation(rows, cols, direction)  # type: ignore[arg-type]
    exact, _ = nodal_map(rows, cols, rho, rho_d, direction)
    a_max = model.max_attenuation(rows, cols, direction)  # type: ignore[arg-type]
    assert a_max == pytest.approx(float((1.0 - att).max()), rel=1e-12)  # same closed form
    err = np.abs(exact - att).max()
    assert err <= a_max**2
    # and it really is first order: without the map the error is a_max itself (up to the
    # same second-order term)
    assert np.abs(exact - 1.0).max() >= a_max - a_max**2


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_line_ends_flip_the_map(direction: str) -> None:
    """Driving from the other end (or sensing at the other end) mirrors the nodal solution
    of our netlists' geometry along that line; the map follows within a_max²."""
    rows, cols, rho = 10, 7, 1e-3
    exact, _ = nodal_map(rows, cols, rho, 0.0, direction)
    in_axis = 0 if direction == "forward" else 1  # position along an input line
    out_axis = 1 - in_axis
    for drive, sense, flip in (
        ("last", "last", (in_axis,)),
        ("first", "first", (out_axis,)),
        ("last", "first", (0, 1)),
    ):
        model = IRDropModel(segment_ratio=rho, drive_end=drive, sense_end=sense)  # type: ignore[arg-type]
        att = model.attenuation(rows, cols, direction)  # type: ignore[arg-type]
        a_max = model.max_attenuation(rows, cols, direction)  # type: ignore[arg-type]
        assert np.abs(np.flip(exact, axis=flip) - att).max() <= a_max**2


def test_line_drop_is_the_sum_it_stands_for() -> None:
    # D(p; n) = sum over the segments up to p of the devices beyond them (exact integers)
    for n in (1, 2, 5, 13):
        ref = [sum(n - s for s in range(p + 1)) for p in range(n)]
        np.testing.assert_array_equal(line_drop(n), ref)


def test_paper_a_ir_drop_budget() -> None:
    """Paper A sizes R_mean = 24 MΩ so that a 4096 × 4096 tile keeps its IR drop near 0.1
    (N²·r_seg/R_mean); the closed form's worst device, ρ·N·(N + 1), is that budget."""
    model = IRDropModel(segment_ratio=0.36 * 0.4 / 24e6)
    n = 4096
    a_max = model.max_attenuation(n, n)
    assert a_max == pytest.approx(model.segment_ratio * n * (n + 1), rel=1e-12)
    assert a_max == pytest.approx(0.1, abs=0.001)  # 0.1007: the paper's "≈ 0.1"


def test_zero_ratio_is_no_attenuation() -> None:
    att = IRDropModel(segment_ratio=0.0).attenuation(3, 4)
    np.testing.assert_array_equal(att, np.ones((3, 4)))


def test_tree_round_trip() -> None:
    model = IRDropModel(segment_ratio=2e-7, driver_ratio=1e-6, drive_end="last", sense_end="first")
    assert from_tree(to_tree(model), where="x") == model


def test_errors() -> None:
    with pytest.raises(ConfigError, match=r"segment_ratio = -1e-06: must lie in \[0, 1\]"):
        IRDropModel(segment_ratio=-1e-6)
    with pytest.raises(ConfigError, match="segment_ratio = nan: must be finite"):
        IRDropModel(segment_ratio=float("nan"))
    with pytest.raises(ConfigError, match=r"driver_ratio = 2.0: must lie in \[0, 1\]"):
        IRDropModel(segment_ratio=0.0, driver_ratio=2.0)
    with pytest.raises(ConfigError, match="drive_end = 'middle': must be one of"):
        IRDropModel(segment_ratio=0.0, drive_end="middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sense_end = 'x': must be one of"):
        IRDropModel(segment_ratio=0.0, sense_end="x")  # type: ignore[arg-type]
    model = IRDropModel(segment_ratio=1e-5)
    with pytest.raises(ConfigError, match=r"256 × 785 tile: largest first-order attenuation 3.41"):
        model.attenuation(256, 785)
    assert model.max_attenuation(256, 785) > MAX_ATTENUATION
    with pytest.raises(ConfigError, match="direction = 'sideways'"):
        first_order_attenuation(model, 2, 2, "sideways")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="out_size = 0: must be an integer >= 1"):
        model.attenuation(0, 2)
    with pytest.raises(ConfigError, match="where: unknown field"):
        from_tree({"segment_ratio": 1e-6, "color": "red"}, where="where")
    with pytest.raises(ConfigError, match=r"f\.h5: ir_drop: segment_ratio missing"):
        from_tree({"driver_ratio": 0.0}, where="f.h5: ir_drop")
    with pytest.raises(ConfigError, match="w: segment_ratio = 'big' must be a number"):
        from_tree({"segment_ratio": "big"}, where="w")
    with pytest.raises(ConfigError, match=r"w.segment_ratio = -0.5: must be >= 0"):
        from_tree({"segment_ratio": -0.5}, where="w")
    with pytest.raises(ConfigError, match=r"w: segment_ratio = 3.0: must lie in"):
        from_tree({"segment_ratio": 3.0}, where="w")
