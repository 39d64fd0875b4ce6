"""The half-select update (kernels.halfselect) against the pulse-by-pulse reference, its
generator against the moments it promises, its read copies against the devices, and the
k = 0 update against stored hashes (it must stay bit-identical)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from rpucircuit.model import kernels
from rpucircuit.model.kernels import halfselect, hsbatch

_BOUND = 0.05
"""Device bounds ±0.05 in these tests: large steps reach them within one update."""


def _par(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Device parameters with 30 % d2d step spread and ±5 % up/down asymmetry."""
    gain = 1 + 0.3 * rng.standard_normal(shape)
    u = 0.05 * rng.standard_normal(shape)
    par = np.empty((*shape, kernels.PAR_LEN))
    par[..., kernels.PAR_UP] = 0.001 * gain * (1 + u)
    par[..., kernels.PAR_DOWN] = 0.001 * gain * (1 - u)
    par[..., kernels.PAR_WMAX] = _BOUND
    par[..., kernels.PAR_WMIN] = -_BOUND
    return par


def _tile_precision(par: np.ndarray, dp: np.ndarray) -> None:
    """Round ``par`` in place to float32 precision where a tile would (half-select without
    soft bounds: its updates read a float32 copy, :func:`kernels.round_parameters`)."""
    if kernels.needs_par_lines(dp):
        kernels.round_parameters(par)


def _dp(k: float, *, ctoc: float = 0.3, use_att: bool = False, bwd: bool = False) -> np.ndarray:
    dp = np.zeros(kernels.DP_LEN)
    dp[kernels.DP_CTOC] = ctoc
    dp[kernels.DP_K] = k
    dp[kernels.DP_BOUNDED] = 1.0
    dp[kernels.DP_USE_ATT] = float(use_att)
    dp[kernels.DP_BWD_ATT] = kernels.BWD_KEPT if bwd else kernels.BWD_NONE
    return dp


def _update(
    x: np.ndarray,
    d: np.ndarray,
    lr: float,
    w: np.ndarray,
    par: np.ndarray,
    dp: np.ndarray,
    s: np.ndarray,
    *,
    att: np.ndarray | None = None,
    att_b: np.ndarray | None = None,
    order: str = "C",
    dtype: type = np.float64,
) -> tuple[int, np.ndarray, np.ndarray]:
    """:func:`kernels.pulsed_update` (BL 10, update management, dw_min 0.001) with read
    copies built from ``w``, ``par`` rounded first where a tile would
    (:func:`_tile_precision`); returns (its result, wread, wread_b)."""
    _tile_precision(par, dp)
    shape = w.shape[1:]
    att = np.ones(shape) if att is None else att
    att_b = np.ones(shape) if att_b is None else att_b
    wread = np.asarray(w.sum(axis=0) * att, dtype=dtype, order=order)
    wread_b = np.asarray(w.sum(axis=0) * att_b, dtype=dtype)
    n = kernels.pulsed_update(
        np.atleast_2d(x), np.atleast_2d(d), lr, 10, True, 0.001, w, par,
        kernels.par_lines_of(par), dp, wread, att, wread_b, att_b, np.zeros((4, 0)), s,
    )  # fmt: skip
    return int(n), wread, wread_b


# --------------------------------------------------------------------------- generator


def test_binomial_normals_have_the_promised_moments(rng: np.random.Generator) -> None:
    """Centred binomial of 21 bits: mean 0, variance 1 (exact), kurtosis 3 − 2/21, 22
    values, independent fields; tolerances 5 standard errors at n = 3·10⁵."""
    n = 300_000
    z = kernels.binomial_normals(n, kernels.seed_state(rng))
    se = 1 / np.sqrt(n)
    assert abs(z.mean()) < 5 * se
    assert abs(z.var() - 1) < 5 * np.sqrt(2) * se  # SE of a variance: √(2/n)
    # SE of the kurtosis ≈ √(24/n) = 0.009
    assert abs(stats.kurtosis(z, fisher=False) - (3 - 2 / 21)) < 5 * np.sqrt(24 / n)
    lattice = z * np.sqrt(21 / 4) + 10.5
    np.testing.assert_allclose(lattice, np.round(lattice), rtol=0, atol=1e-9)
    assert len(np.unique(np.round(lattice))) <= 22
    for lag in (1, 2, 3):  # the three fields of one word, and neighbouring words
        assert abs(np.corrcoef(z[:-lag], z[lag:])[0, 1]) < 5 * se


def test_binomial_normals_are_reproducible_and_advance_the_counter(
    rng: np.random.Generator,
) -> None:
    s = kernels.seed_state(rng)
    a = kernels.binomial_normals(10, s.copy())
    s2 = s.copy()
    b = kernels.binomial_normals(10, s2)
    np.testing.assert_array_equal(a, b)
    assert s2[4] == s[4] + 4  # ⌈10/3⌉ counters
    assert np.array_equal(s2[:4], s[:4])  # the xoshiro words are not used


# --------------------------------------------------------------------------- statistics


def _case(
    rng: np.random.Generator, name: str
) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray, float]:
    """(shape, x, δ, lr) of a case that takes one of the half-select paths."""
    if name == "few-columns":  # at most 4 of 40 columns pulse: column-by-column pass
        x = np.zeros(40)
        x[[3, 17, 18, 39]] = [0.9, -0.6, 0.4, -1.0]
        d = rng.uniform(-1, 1, 8) * (rng.random(8) < 0.5)
        d[0], d[1] = 0.8, -0.7
        return (1, 8, 40), x, d, 0.03
    if name == "many-columns":  # nearly every column pulses: whole silent rows
        x = rng.uniform(0.5, 1.0, 12) * rng.choice([-1, 1], 12)
        d = rng.uniform(-1, 1, 6) * (rng.random(6) < 0.4)
        d[0] = 0.05  # a row that pulses rarely
        return (1, 6, 12), x, d, 0.05
    # two devices per weight (rows drawn per device, columns shared)
    x = rng.uniform(-1, 1, 10) * (rng.random(10) < 0.6)
    x[0] = 0.7
    d = rng.uniform(-1, 1, 5)
    return (2, 5, 10), x, d, 0.03


@pytest.mark.parametrize("name", ["few-columns", "many-columns", "two-devices"])
def test_half_select_matches_reference_statistically(rng: np.random.Generator, name: str) -> None:
    """Mean, spread and bound occupancy of every device's change after one update, fast
    path against :func:`kernels.reference_update` (pulse by pulse, c2c per pulse, clipped
    after every pulse), from weights spread up to the bounds."""
    shape, x, d, lr = _case(rng, name)
    par = _par(rng, shape)
    w0 = rng.uniform(-_BOUND, _BOUND, shape)
    w0[..., 0] = _BOUND - 0.0005  # half a step below the bound: clipping matters
    dp = _dp(0.2)
    s = kernels.seed_state(rng)
    reps = 700
    fast = np.empty((reps, *shape))
    ref = np.empty((reps, *shape))
    for t in range(reps):
        w = w0.copy()
        _update(x, d, lr, w, par, dp, s)
        fast[t] = w
        w = w0.copy()
        kernels.reference_update(x, d, lr, 10, True, 0.001, w, par, dp, rng)
        ref[t] = w
    df, dr = fast - w0, ref - w0
    touched = np.any(dr != 0, axis=0)
    assert np.array_equal(np.any(df != 0, axis=0), touched)  # the same devices move
    assert touched.mean() > 0.3
    sd = np.sqrt((df.var(axis=0) + dr.var(axis=0)) / reps) + 1e-12
    # 5 SE of the difference of two means over ≤ 320 devices: ~2e-4 false alarms
    assert np.all(np.abs(df.mean(axis=0) - dr.mean(axis=0)) < 5 * sd)
    moving = dr.std(axis=0) > 2e-4  # more than a fraction of a step: a spread to compare
    assert moving.sum() >= 0.2 * moving.size
    ratio = df.std(axis=0)[moving] / dr.std(axis=0)[moving]
    # SE of a std ≈ std/√(2N) = 2.7 % per side for N = 700, 3.8 % for the ratio; 20 % is
    # over 5 SE (a device pinned near a bound moves by rare, discrete events)
    assert np.all(np.abs(ratio - 1) < 0.2)
    assert abs(ratio.mean() - 1) < 0.03  # pooled over the devices
    at_f = np.mean(np.abs(fast) >= _BOUND - 1e-12, axis=0)
    at_r = np.mean(np.abs(ref) >= _BOUND - 1e-12, axis=0)
    se = np.sqrt((at_f * (1 - at_f) + at_r * (1 - at_r)) / reps) + 1e-9
    assert np.all(np.abs(at_f - at_r) < 5 * se)
    assert at_r.max() > 0.05  # the case does reach a bound


def test_cases_take_both_silent_row_passes() -> None:
    """The cases above reach both passes over the silent rows: column by column (few
    pulsing columns) and whole rows (more than one column in _DENSE_SHARE pulses)."""
    rng = np.random.default_rng(1)
    for name, dense in (("few-columns", False), ("many-columns", True)):
        shape, x, d, lr = _case(rng, name)
        c = np.sqrt(lr / (10 * 0.001))
        m = np.sqrt(np.abs(d).max() / np.abs(x).max())
        p_col = 1 - (1 - np.minimum(c * m * np.abs(x), 1)) ** 10  # P(the column pulses)
        expected = p_col.sum()
        if dense:
            assert expected > 2 * shape[2] / halfselect._DENSE_SHARE
        else:
            assert np.count_nonzero(x) * halfselect._DENSE_SHARE <= shape[2]


def test_half_select_deterministic_phases_with_a_bound() -> None:
    """p = q = 1, no c2c: the phases in time order, each clipped. A coinciding pair
    (x > 0, δ > 0) sees X = (+,+) down first, then Y and R up: from half a step above
    w_min it is clipped at w_min and then rises by 2k·BL·up."""
    k, bl, dw = 0.2, 10, 0.001
    par = np.empty((1, 1, 1, kernels.PAR_LEN))
    par[..., kernels.PAR_UP] = dw
    par[..., kernels.PAR_DOWN] = dw
    par[..., kernels.PAR_WMAX] = _BOUND
    par[..., kernels.PAR_WMIN] = -_BOUND
    w = np.full((1, 1, 1), -_BOUND + 0.0005)
    s = kernels.seed_state(np.random.default_rng(3))
    n, wread, _ = _update(np.array([0.5]), np.array([0.5]), 100.0, w, par, _dp(k, ctoc=0.0), s)
    assert n == bl
    # down by BL·dw = 0.01 → clipped at −0.05; up by k·BL·dw twice (Y, then R): +0.004
    # (the bound and step at float32 precision, as _update rounds them)
    lo, up = par[0, 0, 0, kernels.PAR_WMIN], par[0, 0, 0, kernels.PAR_UP]
    assert lo == np.float32(-_BOUND) and up == np.float32(dw)
    np.testing.assert_allclose(w[0, 0, 0], lo + 2 * k * bl * up, rtol=0, atol=1e-15)
    assert wread[0, 0] == w[0, 0, 0]


def _batch_case(
    rng: np.random.Generator, name: str
) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray, float]:
    """(shape, x (n, in), δ (n, out), lr) of a batch that takes the batched path. Column 0
    has x < 0 and every δ < 0, so it coincides last, in phase (−, −), downwards: its
    devices start near w_min and end many samples at it (clipped) or just above."""
    if name == "patches":  # a conv layer's patches: most inputs nonzero
        shape, n, lr = (1, 5, 10), 6, 0.02
    elif name == "two-blocks":  # more samples than one block holds
        shape, n, lr = (1, 3, 4), hsbatch._BLOCK + 6, 0.004
    else:  # two devices per weight
        shape, n, lr = (2, 4, 8), 4, 0.02
    n_out, n_in = shape[1:]
    x = rng.uniform(-1, 1, (n, n_in)) * (rng.random((n, n_in)) < 0.6)
    x[:, 0] = -rng.uniform(0.3, 1.0, n)
    d = -rng.uniform(0.1, 1, (n, n_out)) * (rng.random((n, n_out)) < 0.8)
    return shape, x, d, lr


@pytest.mark.parametrize("name", ["patches", "two-blocks", "two-devices"])
def test_half_select_batch_matches_reference_statistically(
    rng: np.random.Generator, name: str
) -> None:
    """A batch of samples in one call (a block in one step per device far from the
    bounds, sample by sample near them) against :func:`kernels.reference_update` sample
    after sample: mean, spread and bound occupancy of every device after the batch. The
    batch of two blocks (70 samples) is checked against the single-sample kernel instead
    (which the tests above check against the reference), at the same statistical power:
    70 reference calls per repetition would take minutes."""
    shape, x, d, lr = _batch_case(rng, name)
    par = _par(rng, shape)
    w0 = rng.uniform(-_BOUND, _BOUND, shape)
    w0[..., 0] = 0.0005 - _BOUND  # half a step above w_min: the near path
    w0[..., 1] = 0.0  # far from both bounds: the one-step path
    dp = _dp(0.2)
    s = kernels.seed_state(rng)
    s_ref = kernels.seed_state(rng)
    reps = 700
    fast = np.empty((reps, *shape))
    ref = np.empty((reps, *shape))
    for t in range(reps):
        w = w0.copy()
        _update(x, d, lr, w, par, dp, s)
        fast[t] = w
        w = w0.copy()
        for row in range(x.shape[0]):
            if name == "two-blocks":
                _update(x[row], d[row], lr, w, par, dp, s_ref)
            else:
                kernels.reference_update(x[row], d[row], lr, 10, True, 0.001, w, par, dp, rng)
        ref[t] = w
    df, dr = fast - w0, ref - w0
    touched = np.any(dr != 0, axis=0)
    assert np.array_equal(np.any(df != 0, axis=0), touched)
    assert touched.mean() > 0.5
    sd = np.sqrt((df.var(axis=0) + dr.var(axis=0)) / reps) + 1e-12
    assert np.all(np.abs(df.mean(axis=0) - dr.mean(axis=0)) < 5 * sd)
    moving = dr.std(axis=0) > 2e-4
    assert moving.sum() >= 0.2 * moving.size
    ratio = df.std(axis=0)[moving] / dr.std(axis=0)[moving]
    # SE of the ratio 3.8 % at N = 700 for a normal change; a device whose change hinges
    # on a few pulses has a heavy-tailed one (measured: 1.20 at N = 600 for a device
    # that gives 1.02 at N = 3000), so 25 % per device and 3 % pooled
    assert np.all(np.abs(ratio - 1) < 0.25)
    assert abs(ratio.mean() - 1) < 0.03
    at_f = np.mean(np.abs(fast) >= _BOUND - 1e-12, axis=0)
    at_r = np.mean(np.abs(ref) >= _BOUND - 1e-12, axis=0)
    se = np.sqrt((at_f * (1 - at_f) + at_r * (1 - at_r)) / reps) + 1e-9
    assert np.all(np.abs(at_f - at_r) < 5 * se)
    assert at_r.max() > 0.05


def test_half_select_batch_draws_the_pulses_of_single_samples(
    rng: np.random.Generator,
) -> None:
    """A batch draws the streams and counters that single-sample calls draw: the same
    coincidence count and generator state after it, and every device near a bound (here
    those starting at w_min, where any pulse reaches it) ends bit for bit where the
    single-sample calls leave it; far devices (here at 0) differ only in their c2c draws."""
    shape = (2, 6, 12)
    par = _par(rng, shape)
    w0 = np.zeros(shape)
    w0[:, :, :6] = -_BOUND  # at w_min: near for any block with pulses
    x = rng.uniform(-1, 1, (9, 12)) * (rng.random((9, 12)) < 0.6)
    x[3] = 0.0  # a sample without pulses
    d = rng.uniform(-1, 1, (9, 6))
    dp = _dp(0.2)
    s0 = kernels.seed_state(rng)
    w_batch, s_batch = w0.copy(), s0.copy()
    n_batch, _, _ = _update(x, d, 0.05, w_batch, par, dp, s_batch)
    w_single, s_single = w0.copy(), s0.copy()
    n_single = sum(_update(x[t], d[t], 0.05, w_single, par, dp, s_single)[0] for t in range(9))
    assert n_batch == n_single > 0
    np.testing.assert_array_equal(s_batch, s_single)
    np.testing.assert_array_equal(w_batch[:, :, :6], w_single[:, :, :6])
    assert np.any(w_batch[:, :, :6] != -_BOUND)  # they did move
    assert not np.array_equal(w_batch[:, :, 6:], w_single[:, :, 6:])  # one step each


def test_far_step_has_the_phases_mean_and_variance(rng: np.random.Generator) -> None:
    """Far from the bounds the batch moves a device in one step whose mean and variance
    are those of the phases' sum (module docstring of kernels.hsbatch): p = q = 1 and a
    known pulse count per device, against the closed form, over many repetitions."""
    k, ctoc, bl, dw = 0.2, 0.3, 10, 0.001
    shape = (1, 2, 3)
    par = np.empty((*shape, kernels.PAR_LEN))
    par[..., kernels.PAR_UP] = dw * 1.1
    par[..., kernels.PAR_DOWN] = dw * 0.9
    par[..., kernels.PAR_WMAX] = 1.0
    par[..., kernels.PAR_WMIN] = -1.0
    x = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, 0.0]])  # column 2 never pulses
    d = np.array([[1.0, 0.0], [-1.0, 0.0]])  # row 1 never pulses
    lr = 1.0  # with update management p = q = 1: every stream pulses in all slots
    reps = 4000
    s = kernels.seed_state(rng)
    moves = np.empty((reps, *shape[1:]))
    for t in range(reps):
        w = np.zeros(shape)
        _update(x, d, lr, w, par, _dp(k, ctoc=ctoc), s)
        moves[t] = w[0]
    up, down = dw * 1.1, dw * 0.9
    # per sample: nf = BL coincidences on (pulsing row, pulsing column), lone BL on each line
    expected_mean = np.zeros(shape[1:])
    expected_var = np.zeros(shape[1:])
    for smp in range(2):
        for i in range(2):
            for j in range(3):
                n_r = bl if d[smp, i] != 0 else 0
                n_c = bl if x[smp, j] != 0 else 0
                nf = min(n_r, n_c)
                lone = n_r + n_c
                if n_r == 0 and n_c == 0:
                    continue
                a = -np.sign(x[smp, j]) * np.sign(d[smp, i]) if nf else 0.0
                fp, fm = (nf, 0) if a > 0 else (0, nf)
                expected_mean[i, j] += up * ((1 - 2 * k) * fp + k * lone) - down * (
                    (1 - 2 * k) * fm + k * lone
                )
                expected_var[i, j] += ctoc**2 * (
                    up**2 * ((1 - 2 * k**2) * fp + k**2 * lone)
                    + down**2 * ((1 - 2 * k**2) * fm + k**2 * lone)
                )
    se = np.sqrt(expected_var / reps)
    assert np.all(np.abs(moves.mean(axis=0) - expected_mean) < 5 * se + 1e-15)
    on = expected_var > 0
    # SE of a variance ≈ var·√(2/n) = 2.2 % at n = 4000
    np.testing.assert_allclose(moves.var(axis=0)[on], expected_var[on], rtol=0.12)
    assert np.all(moves[:, ~on] == 0.0)


def test_half_select_batch_keeps_read_copies_and_resumes(rng: np.random.Generator) -> None:
    """The batched path rewrites both read copies (F or C order, float32) as the device
    sum times its map, and the same state gives the same weights, state and copies."""
    for order in ("C", "F"):
        shape = (2, 6, 9)
        par = _par(rng, shape)
        w0 = rng.uniform(-0.02, 0.02, shape)
        att = 1 - 0.01 * rng.random(shape[1:])
        att_b = 1 - 0.01 * rng.random(shape[1:])
        x = rng.uniform(-1, 1, (5, 9)) * (rng.random((5, 9)) < 0.5)
        d = rng.uniform(-1, 1, (5, 6))
        s0 = kernels.seed_state(rng)
        dp = _dp(0.1, use_att=True, bwd=True)
        runs = []
        for _ in range(2):
            w, s = w0.copy(), s0.copy()
            _, wread, wread_b = _update(
                x, d, 0.05, w, par, dp, s, att=att, att_b=att_b, order=order, dtype=np.float32
            )
            runs.append((w, s, wread, wread_b))
        w, s, wread, wread_b = runs[0]
        assert not np.array_equal(w, w0)
        for a, b in zip(runs[0], runs[1], strict=True):
            np.testing.assert_array_equal(a, b)
        assert s[4] > s0[4]
        total = 0.0 + w[0] + w[1]
        np.testing.assert_array_equal(wread, (total * att).astype(np.float32))
        np.testing.assert_array_equal(wread_b, (total * att_b).astype(np.float32))


# --------------------------------------------------------------------------- read copies


@pytest.mark.parametrize(("order", "n_dev"), [("F", 1), ("C", 2), ("F", 2)])
def test_half_select_keeps_both_read_copies(
    rng: np.random.Generator, order: str, n_dev: int
) -> None:
    """After half-select updates on both silent-row passes, the forward read copy (C or
    F order, float32) is the device sum times the forward map and the backward copy the
    sum times the backward map, element for element (the same float operations)."""
    for n_in, density in ((60, 0.05), (16, 1.0)):  # few / many pulsing columns
        shape = (n_dev, 9, n_in)
        par = _par(rng, shape)
        w = rng.uniform(-0.02, 0.02, shape)
        att = 1 - 0.01 * rng.random(shape[1:])
        att_b = 1 - 0.01 * rng.random(shape[1:])
        x = rng.uniform(-1, 1, (3, n_in)) * (rng.random((3, n_in)) < density)
        x[:, 0] = 0.5
        d = rng.uniform(-1, 1, (3, 9))
        s = kernels.seed_state(rng)
        dp = _dp(0.1, use_att=True, bwd=True)
        w_start = w.copy()
        _, wread, wread_b = _update(
            x, d, 0.05, w, par, dp, s, att=att, att_b=att_b, order=order, dtype=np.float32
        )
        assert not np.array_equal(w, w_start)
        total = 0.0 + w[0]
        for dd in range(1, n_dev):
            total = total + w[dd]
        np.testing.assert_array_equal(wread, (total * att).astype(np.float32))
        np.testing.assert_array_equal(wread_b, (total * att_b).astype(np.float32))


def test_half_select_is_deterministic_and_resumes_from_the_state(
    rng: np.random.Generator,
) -> None:
    """The same state gives the same weights, single samples and batches alike; a run of
    calls stopped after any call and resumed from copies of its weights and state ends
    where the unbroken run ends (the state carries everything between calls)."""
    shape = (1, 7, 20)
    par = _par(rng, shape)
    w0 = rng.uniform(-0.02, 0.02, shape)
    x = rng.uniform(-1, 1, (6, 20))
    d = rng.uniform(-1, 1, (6, 7))
    dp = _dp(0.1)
    s0 = kernels.seed_state(rng)
    calls = [(x[:1], d[:1]), (x[1:4], d[1:4]), (x[4:5], d[4:5]), (x[5:], d[5:])]

    def run(w: np.ndarray, s: np.ndarray, part: list[tuple[np.ndarray, np.ndarray]]) -> None:
        for xb, db in part:
            _update(xb, db, 0.03, w, par, dp, s)

    runs = []
    for _ in range(2):
        w, s = w0.copy(), s0.copy()
        run(w, s, calls)
        runs.append((w, s))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], w0)
    for stop in range(1, len(calls)):
        w, s = w0.copy(), s0.copy()
        run(w, s, calls[:stop])
        w, s = w.copy(), s.copy()  # what a checkpoint keeps
        run(w, s, calls[stop:])
        np.testing.assert_array_equal(w, runs[0][0])
        np.testing.assert_array_equal(s, runs[0][1])


# --------------------------------------------------------------------------- k = 0 unchanged


def _update_digest(
    rng: np.random.Generator,
    par: np.ndarray,
    w: np.ndarray,
    k: float,
    draw: Callable[[], tuple[np.ndarray, np.ndarray]],
    *,
    ir: bool,
    steps: int,
    lr: float,
    order: str = "C",
) -> str:
    """sha256 (16 hex digits) of the weights, float32 read copies (forward copy in
    ``order``) and generator state after ``steps`` updates of ``draw()``'s (x, δ) from
    ``w``, with the IR-drop maps (drawn from ``rng``) or none; the counts of coincidences
    hashed too."""
    shape = w.shape[1:]
    att = 1 - 0.01 * rng.random(shape) if ir else np.ones(shape)
    att_b = 1 - 0.01 * rng.random(shape) if ir else np.ones(shape)
    dp = _dp(k, use_att=ir, bwd=ir)
    _tile_precision(par, dp)
    s = kernels.seed_state(rng)
    wread = np.asarray(w.sum(axis=0) * att, dtype=np.float32, order=order)
    wread_b = np.asarray(w.sum(axis=0) * att_b, dtype=np.float32)
    h = hashlib.sha256()
    for _ in range(steps):
        x, d = draw()
        c = kernels.pulsed_update(
            x, d, lr, 10, True, 0.001, w, par, kernels.par_lines_of(par), dp, wread, att,
            wread_b, att_b, np.zeros((4, 0)), s,
        )  # fmt: skip
        h.update(np.int64(c).tobytes())
    for a in (w, wread, wread_b, s):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _k0_digest(*, ir: bool, batch: bool) -> str:
    """:func:`_update_digest` of 40 k = 0 updates from a fixed seed (single samples, or
    batches of 8 as a conv layer makes)."""
    rng = np.random.default_rng(2016)
    shape = (1, 24, 50)
    par = _par(rng, shape)
    w = rng.uniform(-0.03, 0.03, shape)
    n = 8 if batch else 1

    def draw() -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-1, 1, (n, 50)) * (rng.random((n, 50)) < 0.4)
        return x, rng.uniform(-0.2, 0.2, (n, 24))

    return _update_digest(rng, par, w, 0.0, draw, ir=ir, steps=40, lr=0.02)


@pytest.mark.parametrize(
    ("ir", "batch", "digest"),
    [
        (False, False, "1de435a09e63506d"),
        (True, False, "a44f9334dcc99fc4"),
        (False, True, "f9e735d4dfe12d66"),
        (True, True, "5d5ad82860933c39"),
    ],
)
def test_k0_update_is_bit_identical_to_the_stored_digest(
    ir: bool, batch: bool, digest: str
) -> None:
    """The k = 0 update (sample by sample, and batched) with and without IR-drop maps
    gives the weights it gave when the half-select path was rewritten: a changed digest
    means the k = 0 random stream or arithmetic changed, which breaks the bit-exact
    reproduction of earlier runs (IEEE arithmetic without fast-math: platform-independent)."""
    assert _k0_digest(ir=ir, batch=batch) == digest


# --------------------------------------------------------------------------- k > 0 pinned


def _hs_digest(shape: tuple[int, int, int], n: int, density: float, ir: bool, order: str) -> str:
    """:func:`_update_digest` of 30 half-select updates (k = 0.1, hard bounds with d2d
    spread) from a fixed seed: ``n`` samples per call (n > 1: the block path of conv
    layers), inputs nonzero with probability ``density``."""
    rng = np.random.default_rng(7)
    par = _par(rng, shape)
    spread = (1 + 0.3 * rng.standard_normal((2, *shape))).clip(0.1)
    par[..., kernels.PAR_WMAX] = _BOUND * spread[0]
    par[..., kernels.PAR_WMIN] = -_BOUND * spread[1]
    w = rng.uniform(-0.04, 0.04, shape)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-1, 1, (n, shape[2])) * (rng.random((n, shape[2])) < density)
        d = rng.uniform(-0.3, 0.3, (n, shape[1])) * (rng.random((n, shape[1])) < 0.5)
        return x, d

    return _update_digest(rng, par, w, 0.1, draw, ir=ir, steps=30, lr=0.05, order=order)


@pytest.mark.parametrize(
    ("shape", "n", "density", "ir", "order", "digest"),
    [
        # few pulsing columns: the silent rows column by column; column-major read copy
        ((1, 64, 200), 1, 0.1, False, "F", "36c12d3bdb67e3ee"),
        # most columns pulse: the silent rows' passes over whole rows
        ((1, 64, 200), 1, 0.9, False, "C", "bdf5eee2789c9aec"),
        ((1, 64, 200), 1, 0.1, True, "C", "c85c28961a2e60e9"),  # both IR-drop maps
        ((2, 32, 80), 1, 0.3, False, "C", "c7e5046d4beb1345"),  # two devices per weight
        # two devices, few pulsing columns: the silent rows column by column, both copies
        ((2, 64, 200), 1, 0.1, False, "F", "438e92a8e0c706f0"),
        ((2, 64, 200), 1, 0.1, True, "C", "66acc1434dda354b"),
        ((1, 16, 26), 20, 0.3, False, "C", "422341a78e8f2649"),  # conv1-like blocks
        ((1, 16, 26), 20, 0.3, True, "C", "15559b6d5dcda9f7"),
    ],
)
def test_half_select_update_is_bit_identical_to_the_stored_digest(
    shape: tuple[int, int, int], n: int, density: float, ir: bool, order: str, digest: str
) -> None:
    """The half-select update (k = 0.1) in each of its paths gives the weights it gave
    before its parameters were read from a tile's copies along the rows and columns
    (:func:`kernels.par_lines_of`) and its column normals were drawn ahead: a changed digest
    means a changed random stream or arithmetic, which breaks the bit-exact reproduction
    of earlier runs and of resumed ones. (The digests were taken with the parameters at
    float32 precision, as tiles with half-select hold them since the copies became
    float32; the float64 copies of the code before gave the same digests from them.)"""
    assert _hs_digest(shape, n, density, ir, order) == digest


def test_half_select_builds_the_line_ordered_parameters_it_is_not_given(
    rng: np.random.Generator,
) -> None:
    """A caller without a tile's copy along the lines (an empty one, as kernels.no_par_lines
    gives) gets the update a tile gets, bit for bit, single samples and blocks alike: the
    copy the kernel builds equals :func:`kernels.par_lines_of` (both halves), and sparse
    inputs and half-silent rows make single samples take the pass down the pulsing
    columns, which reads the column half."""
    from rpucircuit.model.kernels.updates import _lines_of

    shape = (2, 12, 200)
    par = _par(rng, shape)
    kernels.round_parameters(par)  # as a tile with half-select holds them
    built = _lines_of(par, kernels.no_par_lines(par))
    np.testing.assert_array_equal(built, kernels.par_lines_of(par))
    down = kernels.PAR_DOWN
    assert built.dtype == np.float32
    assert kernels.par_columns(built)[1, 150, 7, down] == par[1, 7, 150, down]
    w0 = rng.uniform(-0.02, 0.02, shape)
    dp = _dp(0.1)
    s0 = kernels.seed_state(rng)
    for n in (1, 5):
        x = rng.uniform(-1, 1, (n, 200)) * (rng.random((n, 200)) < 0.05)
        d = rng.uniform(-1, 1, (n, 12)) * (rng.random((n, 12)) < 0.5)
        out = []
        for rows in (kernels.par_lines_of(par), kernels.no_par_lines(par)):
            w, s = w0.copy(), s0.copy()
            wread = w.sum(axis=0)
            ones = np.ones(shape[1:])
            kernels.pulsed_update(
                x, d, 0.05, 10, True, 0.001, w, par, rows, dp, wread, ones, wread, ones,
                np.zeros((4, 0)), s,
            )  # fmt: skip
            out.append((w, wread, s))
        assert not np.array_equal(out[0][0], w0)
        for a, b in zip(out[0], out[1], strict=True):
            np.testing.assert_array_equal(a, b)
