"""Nodal solver vs a plain dense nodal solve written independently here, and vs W·x."""

from __future__ import annotations

import numpy as np
import pytest

from rpucircuit.circuit import nodal
from rpucircuit.config.tile import gokmen_vlasov_2016, input_volt_seconds, replace_tile
from rpucircuit.errors import ConfigError


def dense_reference(
    g_pos: np.ndarray,
    g_neg: np.ndarray,
    u: np.ndarray,
    r_in: float,
    r_out: float,
    r_drv: float,
    g_int: float | None,
) -> np.ndarray:
    """Charges of a forward read by a dense solve with every node explicit.

    Nodes: for each array, driver node d_j, column nodes c_{j,i}, row nodes r_{i,j}; the
    summing nodes S_i (grounded when g_int is None). Sources are Norton-converted: a driver
    of volt-seconds ±u_j behind r_drv injects ±u_j/r_drv into d_j.
    """
    rows, cols = g_pos.shape
    names: dict[tuple[object, ...], int] = {}

    def node(*key: object) -> int:
        return names.setdefault(key, len(names))

    edges: list[tuple[int, int, float]] = []  # -1 = ground
    inject: dict[int, float] = {}
    for a, (g, sign) in enumerate(((g_pos, 1.0), (g_neg, -1.0))):
        for j in range(cols):
            d = node("d", a, j)
            edges.append((d, -1, 1.0 / r_drv))
            inject[d] = inject.get(d, 0.0) + sign * u[j] / r_drv
            prev = d
            for i in range(rows):
                c = node("c", a, j, i)
                edges.append((prev, c, 1.0 / r_in))
                prev = c
        for i in range(rows):
            for j in range(cols):
                r = node("r", a, i, j)
                nxt = node("r", a, i, j + 1) if j + 1 < cols else (node("s", i) if g_int else -1)
                edges.append((r, nxt, 1.0 / r_out))
                edges.append((node("c", a, j, i), r, g[i, j]))
    if g_int:
        for i in range(rows):
            edges.append((node("s", i), -1, g_int))
    n = len(names)
    mat = np.zeros((n, n))
    for p, q, g in edges:
        mat[p, p] += g
        if q >= 0:
            mat[q, q] += g
            mat[p, q] -= g
            mat[q, p] -= g
    rhs = np.zeros(n)
    for k, v in inject.items():
        rhs[k] = v
    v = np.linalg.solve(mat, rhs)
    q = np.zeros(rows)
    for a, g in enumerate((g_pos, g_neg)):
        for i in range(rows):
            for j in range(cols):
                q[i] += g[i, j] * (v[names[("c", a, j, i)]] - v[names[("r", a, i, j)]])
    return q


def _random_tile(rng: np.random.Generator, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    d = gokmen_vlasov_2016().device
    return (
        rng.uniform(d.g_off_s, d.g_on_s, (rows, cols)),
        rng.uniform(d.g_off_s, d.g_on_s, (rows, cols)),
    )


@pytest.mark.parametrize("g_int", [None, 3e-6])
def test_matches_dense_solve(rng: np.random.Generator, g_int: float | None) -> None:
    rows, cols = 5, 7
    gp, gn = _random_tile(rng, rows, cols)
    # Large line resistances so that the IR drop is a visible 1-10 % effect.
    r_in, r_out, r_drv = 2e4, 3e4, 1e4
    u = rng.uniform(-1, 1, cols) * 80e-9
    solver = nodal.NodalSolver(
        (gp, gn),
        (1.0, -1.0),
        r_seg_in_ohm=r_in,
        r_seg_out_ohm=r_out,
        r_driver_ohm=r_drv,
        g_int_s=g_int,
    )
    q = solver.charges(u)
    ref = dense_reference(gp, gn, u, r_in, r_out, r_drv, g_int)
    ideal = (gp - gn) @ u
    assert np.max(np.abs(q - ideal)) > 1e-3 * np.max(np.abs(ideal))  # the test has teeth
    # Two exact solves of one linear system in double precision: 1e-9 of full scale.
    assert np.allclose(q, ref, rtol=0, atol=1e-9 * np.max(np.abs(ref)))
    # Many input vectors at once reuse the factorization and give the same columns.
    u2 = np.stack([u, -2 * u, 0 * u], axis=1)
    q2 = solver.charges(u2)
    assert np.allclose(q2[:, 0], q, rtol=1e-12, atol=0)
    assert np.allclose(q2[:, 1], -2 * q, rtol=1e-12, atol=0)
    assert np.all(q2[:, 2] == 0)


@pytest.mark.parametrize("g_int", [None, 3e-6])
def test_cg_matches_direct(rng: np.random.Generator, g_int: float | None) -> None:
    gp, gn = _random_tile(rng, 9, 6)
    u = rng.uniform(-1, 1, (6, 3)) * 80e-9
    kw = {"r_seg_in_ohm": 2e4, "r_seg_out_ohm": 3e4, "r_driver_ohm": 1e4, "g_int_s": g_int}
    direct = nodal.NodalSolver((gp, gn), (1.0, -1.0), method="direct", **kw)  # type: ignore[arg-type]
    cg = nodal.NodalSolver((gp, gn), (1.0, -1.0), method="cg", **kw)  # type: ignore[arg-type]
    assert cg.method == "cg" and direct.method == "direct"
    q_d, q_c = direct.charges(u), cg.charges(u)
    assert cg.cg_iterations > 0
    # CG stops at a relative residual of 1e-13: charges agree to 1e-9 of full scale.
    assert np.allclose(q_c, q_d, rtol=0, atol=1e-9 * np.max(np.abs(q_d)))
    with pytest.raises(ConfigError, match="method = 'lu'"):
        nodal.NodalSolver((gp, gn), (1.0, -1.0), method="lu", **kw)  # type: ignore[arg-type]


def test_zero_resistance_is_exactly_wx(rng: np.random.Generator) -> None:
    gp, gn = _random_tile(rng, 4, 6)
    u = rng.uniform(-1, 1, 6) * 80e-9
    solver = nodal.NodalSolver(
        (gp, gn), (1.0, -1.0), r_seg_in_ohm=0.0, r_seg_out_ohm=0.0, r_driver_ohm=0.0
    )
    # No resistance anywhere: every device sees exactly ±u; rounding only.
    assert np.allclose(solver.charges(u), (gp - gn) @ u, rtol=1e-12, atol=1e-30)


def test_zero_line_resistance_with_driver(rng: np.random.Generator) -> None:
    """r_seg = 0 merges each line into one node: input line j of array a sits at
    s_a·u_j·g_d/(g_d + Σ_i g_a[i, j]) (a divider), the output lines at ground."""
    gp, gn = _random_tile(rng, 3, 4)
    u = rng.uniform(-1, 1, 4) * 80e-9
    g_d = 1 / 2e5
    solver = nodal.NodalSolver(
        (gp, gn), (1.0, -1.0), r_seg_in_ohm=0.0, r_seg_out_ohm=0.0, r_driver_ohm=2e5
    )
    v_p = u * g_d / (g_d + gp.sum(axis=0))
    v_m = -u * g_d / (g_d + gn.sum(axis=0))
    ref = gp @ v_p + gn @ v_m
    assert np.max(np.abs(ref - (gp - gn) @ u)) > 1e-3 * np.max(np.abs(ref))  # visible drop
    # Closed form vs one sparse solve: rounding only.
    assert np.allclose(solver.charges(u), ref, rtol=0, atol=1e-12 * np.max(np.abs(ref)))


def test_finite_gain_single_device() -> None:
    """One device g into a summing node with conductance g_int: Q = u·g·g_int/(g + g_int)."""
    g, g_int, u = np.array([[4e-8]]), 1e-6, 1e-7
    solver = nodal.NodalSolver(
        (g,), (1.0,), r_seg_in_ohm=0.0, r_seg_out_ohm=0.0, r_driver_ohm=0.0, g_int_s=g_int
    )
    q = solver.charges(np.array([u]))
    assert q[0] == pytest.approx(u * 4e-8 * g_int / (4e-8 + g_int), rel=1e-12)


def test_read_backward_is_transpose(rng: np.random.Generator) -> None:
    cfg = replace_tile(gokmen_vlasov_2016(rows=6, cols=4), r_driver_ohm=5e3)
    gp, gn = _random_tile(rng, 6, 4)
    x = rng.uniform(-1, 1, 6)
    back = nodal.read(cfg, gp, gn, x, direction="backward", finite_gain=False)
    u = input_volt_seconds(cfg, x)
    ref = dense_reference(gp.T.copy(), gn.T.copy(), u, 0.144, 0.144, 5e3 + 0.0, None)
    # dense_reference puts the driver node before one input segment like the netlist.
    assert np.allclose(back.q_c, ref, rtol=0, atol=1e-9 * np.max(np.abs(ref)))
    assert np.allclose(back.q_ideal_c, (gp - gn).T @ u, rtol=1e-12, atol=0)
    fin = nodal.read(cfg, gp, gn, x, direction="backward", finite_gain=True)
    # Finite gain: V_out = -Q·A0/((1+A0)·C_int) and Q is slightly below the ideal-ground Q.
    a0 = cfg.periphery.a0
    assert np.allclose(fin.v_out_v, -fin.q_c * a0 / (1 + a0) / cfg.c_int_f, rtol=1e-12, atol=0)
    assert np.allclose(fin.i_mean_a, fin.q_c / 80e-9, rtol=1e-12, atol=0)
    assert np.allclose(fin.q_c, back.q_c, rtol=1e-3, atol=0)


def test_integrator_conductance_formula() -> None:
    # Series of 1/(2π·GBW·C) and t/(2(1+A0)C), evaluated by hand for C = 100 fF, A0 = 1e4,
    # GBW = 1 GHz, t = 80 ns: 1591.549 Ω + 40 Ω.
    r = 1 / (2 * np.pi * 1e9 * 1e-13) + 8e-8 / (2 * 10001 * 1e-13)
    assert nodal.integrator_conductance(1e-13, 1e4, 1e9, 8e-8) == pytest.approx(1 / r, rel=1e-14)


def test_errors(rng: np.random.Generator) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    gp, gn = _random_tile(rng, 2, 3)
    with pytest.raises(ConfigError, match="g_neg = None: a paired tile"):
        nodal.solver_for(cfg, gp, None)
    with pytest.raises(ConfigError, match=r"g_pos: shape \(3, 2\) must be \(2, 3\)"):
        nodal.solver_for(cfg, gp.T, gn)
    with pytest.raises(ConfigError, match=r"g_neg: shape"):
        nodal.solver_for(cfg, gp, gn[:1])
    with pytest.raises(ConfigError, match="direction = 'sideways'"):
        nodal.solver_for(cfg, gp, gn, direction="sideways")  # type: ignore[arg-type]
    single = replace_tile(cfg, paired=False)
    with pytest.raises(ConfigError, match=r"g_neg given but tile\.paired = false"):
        nodal.solver_for(single, gp, gn)
    with pytest.raises(ConfigError, match="conductances must be finite and > 0"):
        nodal.solver_for(cfg, -gp, gn)
    with pytest.raises(ConfigError, match="not a numeric array"):
        nodal.solver_for(cfg, "abc", gn)
    with pytest.raises(ConfigError, match="must be"):
        nodal.solver_for(cfg, np.ones(3), gn)
    with pytest.raises(ConfigError, match=r"r_seg_in_ohm = -1.0"):
        nodal.NodalSolver((gp,), (1.0,), r_seg_in_ohm=-1.0, r_seg_out_ohm=0, r_driver_ohm=0)
    with pytest.raises(ConfigError, match=r"g_int_s = 0\.0"):
        nodal.NodalSolver(
            (gp,), (1.0,), r_seg_in_ohm=1, r_seg_out_ohm=1, r_driver_ohm=1, g_int_s=0.0
        )
    with pytest.raises(ConfigError, match="equal length"):
        nodal.NodalSolver((gp,), (), r_seg_in_ohm=1, r_seg_out_ohm=1, r_driver_ohm=1)
    with pytest.raises(ConfigError, match="all arrays must have shape"):
        nodal.NodalSolver((gp, gp[:, :2]), (1, -1), r_seg_in_ohm=1, r_seg_out_ohm=1, r_driver_ohm=1)
    solver = nodal.solver_for(cfg, gp, gn)
    with pytest.raises(ConfigError, match=r"u: shape \(2,\) must be \(3,\)"):
        solver.charges(np.ones(2))
    with pytest.raises(ConfigError, match="u: contains non-finite"):
        solver.charges(np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ConfigError, match=r"\|x\| <= 1"):
        nodal.read(cfg, gp, gn, np.array([2.0, 0.0, 0.0]))
