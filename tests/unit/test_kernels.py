"""Compiled kernels against formulas and against their plain reference implementations."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import pytest
from scipy import stats

from rpucircuit.config import rpu
from rpucircuit.model import kernels
from rpucircuit.model.kernels import batched, reads, streams
from rpucircuit.model.tile import io_vector


def _params(
    shape: tuple[int, int, int],
    *,
    up: float = 0.001,
    down: float = 0.001,
    wmax: float = np.inf,
    wmin: float = -np.inf,
) -> np.ndarray:
    par = np.empty((*shape, kernels.PAR_LEN))
    par[..., kernels.PAR_UP] = up
    par[..., kernels.PAR_DOWN] = down
    par[..., kernels.PAR_WMAX] = wmax
    par[..., kernels.PAR_WMIN] = wmin
    return par


def _dp(*, ctoc: float = 0.0, k: float = 0.0, soft: bool = False, bounded: bool = True):
    dp = np.zeros(kernels.DP_LEN)
    dp[kernels.DP_CTOC] = ctoc
    dp[kernels.DP_K] = k
    dp[kernels.DP_SOFT] = float(soft)
    dp[kernels.DP_BOUNDED] = float(bounded)
    return dp


_NO_BWD = (np.zeros((0, 0)), np.zeros((0, 0)))
"""``wread_b``, ``att_b`` of a tile without a backward map of its own (unused)."""
_NO_LINES = np.zeros((4, 0))
"""``att_lines`` of a tile whose maps have no line terms (unused)."""


def _tile_precision(par: np.ndarray, dp: np.ndarray) -> None:
    """Round ``par`` in place to float32 precision where a tile would (half-select without
    soft bounds: its updates read a float32 copy, :func:`kernels.round_parameters`)."""
    if kernels.needs_par_lines(dp):
        kernels.round_parameters(par)


def _fast(x, d, lr, bl, um, w, par, dp, s) -> int:  # type: ignore[no-untyped-def]
    xb, db = np.atleast_2d(x).astype(float), np.atleast_2d(d).astype(float)
    _tile_precision(par, dp)
    wread = w.sum(axis=0)
    att = np.ones(w.shape[1:])
    lines = kernels.no_par_lines(par)
    return int(
        kernels.pulsed_update(
            xb, db, lr, bl, um, 0.001, w, par, lines, dp, wread, att, *_NO_BWD, _NO_LINES, s
        )
    )


# --------------------------------------------------------------------------- generator


@pytest.mark.parametrize("draw", [kernels.standard_normals, kernels.single_normals])
def test_kernel_normals_are_standard(rng: np.random.Generator, draw: Any) -> None:
    """Both generators: batches (counter-based, 24-bit candidates) and single draws."""
    s = kernels.seed_state(rng)
    z = draw(200_000, s)
    # 5 standard errors: mean SE = 1/sqrt(N) = 0.0022; std SE = 1/sqrt(2N) = 0.0016
    assert abs(z.mean()) < 5 * 0.0022
    assert abs(z.std() - 1.0) < 5 * 0.0016
    # tail mass beyond 2 sigma: 0.0455 (normal table), binomial SE 0.00047
    assert abs(np.mean(np.abs(z) > 2.0) - 0.0455) < 5 * 0.00047
    # beyond the ziggurat's tail start R = 3.65: P(|z| > 3.7) = 2.16e-4, SE 3.3e-5
    assert abs(np.mean(np.abs(z) > 3.7) - 2.16e-4) < 5 * 3.3e-5
    # the top layer (|z| < X[255] = 0.215), always decided by the slow path:
    # P(|z| < 0.2152) = 0.1704 (normal table), SE 0.00084
    assert abs(np.mean(np.abs(z) < 0.2152) - 0.1704) < 5 * 0.00084
    # whole distribution: Kolmogorov-Smirnov distance below the 1 % critical value 1.63/√N
    assert stats.kstest(z, "norm").statistic < 1.63 / np.sqrt(z.size)


def test_kernel_generator_is_reproducible(rng: np.random.Generator) -> None:
    s = kernels.seed_state(rng)
    s2 = s.copy()
    np.testing.assert_array_equal(kernels.standard_normals(7, s), kernels.standard_normals(7, s2))
    np.testing.assert_array_equal(s, s2)
    # a batch takes whole blocks: the counter advances by half the rounded-up count
    before = int(s[4])
    kernels.standard_normals(17, s)
    assert int(s[4]) - before == kernels.normal_capacity(17) // 2 == 16
    # consecutive batches never reuse a counter value: no draw repeats
    z = np.concatenate([kernels.standard_normals(n, s) for n in (5, 16, 33, 1000)])
    assert np.unique(z).size == z.size


def _plain_normals(n: int, s: np.ndarray) -> np.ndarray:
    """A plain Python reference of the batch draw (``streams._fill_normals``): the
    SplitMix64 output of counter s[4] + h in Python integers, its high and low 32-bit
    halves as ziggurat candidates 2h and 2h + 1, the counter advanced past them, then the
    candidates that fail the fast test finished by the compiled slow path in index order
    (it draws its further uniforms from the xoshiro words)."""
    mask = (1 << 64) - 1
    cap = kernels.normal_capacity(n)
    base = int(s[4])
    z = np.empty(cap)
    failed = []
    for k in range(cap):
        c = ((base + k // 2) * 0x9E3779B97F4A7C15) & mask
        c = ((c ^ (c >> 30)) * 0xBF58476D1CE4E5B9) & mask
        c = ((c ^ (c >> 27)) * 0x94D049BB133111EB) & mask
        c ^= c >> 31
        b = c >> 32 if k % 2 == 0 else c & 0xFFFFFFFF
        u, i = (b >> 8) * (2.0 / 16777216.0) - 1.0, b & 0xFF
        if abs(u) < streams._ZIG_R[i]:
            z[k] = u * streams._ZIG_X[i]
        else:
            failed.append((k, u, i))
    s[4] = np.uint64(base + cap // 2)
    for k, u, i in failed:
        z[k] = streams._normal_slow(u, np.uint64(i), s)
    return z[:n]


@pytest.mark.parametrize("n", [1, 16, 63, 64, 65, 1000, 5000])
def test_batch_normals_equal_a_plain_reference(rng: np.random.Generator, n: int) -> None:
    """The vectorized batch draw, its failed candidates found by bit masks of 64, equals
    the plain reference bit for bit (values and generator state), for sizes around the
    masks' width."""
    s = kernels.seed_state(rng)
    s_ref = s.copy()
    got = kernels.standard_normals(n, s)
    np.testing.assert_array_equal(got, _plain_normals(n, s_ref))
    np.testing.assert_array_equal(s, s_ref)


def test_popcount_matches_python() -> None:
    words = np.array([0, 1, 3, 2**63, 2**64 - 1, 0x0F0F_F0F0_1234_5678], dtype=np.uint64)
    expected = [bin(int(v)).count("1") for v in words]
    np.testing.assert_array_equal(kernels.popcount(words), expected)


@pytest.mark.parametrize("bl", [1, 7, 10, 64])
def test_bit_streams_have_probability_p(rng: np.random.Generator, bl: int) -> None:
    s = kernels.seed_state(rng)
    p = np.repeat([0.0, 0.05, 0.5, 0.93, 1.0], 4000)
    masks = kernels.bit_streams(p, bl, s)
    counts = kernels.popcount(masks).astype(float).reshape(5, 4000)
    for row, prob in zip(counts, (0.0, 0.05, 0.5, 0.93, 1.0), strict=True):
        se = np.sqrt(bl * prob * (1 - prob) / 4000)  # binomial SE of the mean count
        assert abs(row.mean() - bl * prob) <= 5 * se + 1e-12
    if bl < 64:  # no bit beyond the stream length
        assert np.all(masks >> np.uint64(bl) == 0)


_M64 = (1 << 64) - 1


def _splitmix64(c: int) -> int:
    """SplitMix64 (Steele, Lea & Flood 2014) output for counter ``c``, in Python integers."""
    z = (c * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def test_splitmix64_reference_gives_the_published_sequence() -> None:
    """The reference above is SplitMix64: seeded with 0, the generator's first two outputs
    are 0xE220A8397B1DCDAF and 0x6E789E6AA1B965F4 (counters 1 and 2)."""
    assert _splitmix64(1) == 0xE220A8397B1DCDAF
    assert _splitmix64(2) == 0x6E789E6AA1B965F4


@pytest.mark.parametrize("bl", [1, 2, 7, 10, 31, 64])
@pytest.mark.parametrize("n", [1, 8, 13])
def test_bit_streams_equal_the_counter_reference(rng: np.random.Generator, bl: int, n: int) -> None:
    """The kernel's bit streams bit for bit against the documented scheme in plain Python:
    slot pair h of line j takes the SplitMix64 output of counter s[4] + j·⌈bl/2⌉ + h, its
    high 32 bits decide slot 2h and its low 32 bits slot 2h + 1, each fires when below
    floor(p·2³²), and s[4] advances by n·⌈bl/2⌉. Pins the generator against rewrites of
    its loops (they must keep every bit: runs reproduce from their seeds)."""
    s = kernels.seed_state(rng)
    p = rng.choice([0.0, 1e-9, 0.03, 0.5, 0.97, 1.0, 1.7], size=n)
    p[: min(n, 3)] = rng.random(min(n, 3))
    base = int(s[4])
    masks = kernels.bit_streams(p, bl, s)
    n_pairs = (bl + 1) // 2
    assert int(s[4]) == base + n * n_pairs
    for j in range(n):
        thr = 1 << 32 if p[j] >= 1.0 else int(p[j] * 2.0**32)
        expected = 0
        for h in range(n_pairs):
            z = _splitmix64(base + j * n_pairs + h)
            expected |= int((z >> 32) < thr) << (2 * h)
            if 2 * h + 1 < bl:
                expected |= int((z & 0xFFFFFFFF) < thr) << (2 * h + 1)
        assert int(masks[j]) == expected, (j, p[j])


@numba.njit
def _pairs_of(thr: np.ndarray, l0: int, l1: int, bl: int, base: int, pairs: int) -> np.ndarray:
    masks = np.zeros(thr.shape[0], dtype=np.uint64)
    streams._stream_pairs(thr, l0, l1, bl, np.uint64(base), pairs, masks)
    return masks


@pytest.mark.parametrize("bl", [1, 7, 10])
def test_stream_pairs_draw_the_same_bits_in_their_slots(rng: np.random.Generator, bl: int) -> None:
    """Drawing chosen slot pairs of a range of lines (as the convolutions' update does for
    the slots its rows use) gives exactly the bits of the whole call in those slots, and
    none elsewhere, for line ranges that start anywhere."""
    n = 40
    s = kernels.seed_state(rng)
    base = int(s[4])
    p = rng.uniform(0.0, 0.6, n)
    p[[4, 11, 20]] = [0.0, 1.0, 1.7]  # never fires, always fires (p ≥ 1)
    full = kernels.bit_streams(p, bl, s)
    thr = np.array([1 << 32 if v >= 1.0 else int(v * 2.0**32) for v in p], dtype=np.uint64)
    n_pairs = (bl + 1) // 2
    for l0, l1 in [(0, n), (3, 17), (17, 18), (9, 9)]:
        for pairs in range(1, 1 << n_pairs):
            slots = sum(3 << (2 * h) for h in range(n_pairs) if pairs >> h & 1)
            got = _pairs_of(thr, l0, l1, bl, base, pairs)
            want = np.zeros(n, dtype=np.uint64)
            want[l0:l1] = full[l0:l1] & np.uint64(slots & ((1 << bl) - 1))
            assert got.tolist() == want.tolist(), (l0, l1, pairs)


def test_binomial_normals_equal_the_counter_reference(rng: np.random.Generator) -> None:
    """The half-select generator: normal 3h + f is (popcount of bits 21f to 21f + 20 of
    SplitMix64(s[4] + h) − 10.5) / √(21/4), the counter and bits in plain Python integers;
    the half-select passes draw each device's normals this way."""
    s = kernels.seed_state(rng)
    base = int(s[4])
    z = kernels.binomial_normals(30, s)
    for k in range(30):
        bits = (_splitmix64(base + k // 3) >> (21 * (k % 3))) & ((1 << 21) - 1)
        assert z[k] == (bin(bits).count("1") - 10.5) * (1.0 / np.sqrt(21 / 4)), k


def test_batch_normals_take_their_candidates_from_the_counter_reference(
    rng: np.random.Generator,
) -> None:
    """Every normal of a batch that the ziggurat's fast test accepts equals the value the
    documented scheme gives in plain Python: value 2h and 2h + 1 from the high and low 32
    bits of SplitMix64(s[4] + h), each a candidate of layer bits 0-7 and signed uniform
    u = (bits 8-31)·2⁻²³ − 1, accepted as u·X[layer] when |u| < R[layer] (the tables are
    the module's). The rest go through the slow path; most values must be checked here."""
    from rpucircuit.model.kernels.streams import _ZIG_R, _ZIG_X

    s = kernels.seed_state(rng)
    base = int(s[4])
    n = 1000
    z = kernels.standard_normals(n, s)
    checked = 0
    for k in range(n):
        r = _splitmix64(base + k // 2)
        b = r >> 32 if k % 2 == 0 else r & 0xFFFFFFFF
        u = float(b >> 8) * (2.0 / 16777216.0) - 1.0
        layer = b & 0xFF
        if abs(u) < _ZIG_R[layer]:
            assert z[k] == u * _ZIG_X[layer], k
            checked += 1
    assert checked > 0.9 * n


@pytest.mark.parametrize("bl", [7, 10])
def test_bit_stream_slots_are_independent(rng: np.random.Generator, bl: int) -> None:
    """Each slot fires with p and slots are pairwise independent, in particular the two
    slots (2h, 2h+1) that share one SplitMix64 output (its high and low 32 bits)."""
    s = kernels.seed_state(rng)
    n, prob = 20000, 0.3
    masks = kernels.bit_streams(np.full(n, prob), bl, s)
    bits = (masks[:, None] >> np.arange(bl, dtype=np.uint64)) & np.uint64(1)
    bits = bits.astype(float)  # (n, bl)
    se1 = np.sqrt(prob * (1 - prob) / n)  # binomial SE of one slot's firing rate
    assert np.all(np.abs(bits.mean(axis=0) - prob) <= 5 * se1)
    joint = bits.T @ bits / n  # P(slot a and slot b)
    se2 = np.sqrt(prob**2 * (1 - prob**2) / n)  # binomial SE of a pair's joint rate
    off = ~np.eye(bl, dtype=bool)
    assert np.all(np.abs(joint[off] - prob**2) <= 5 * se2)


# --------------------------------------------------------------------------- reads


@pytest.mark.parametrize(
    "io",
    [
        rpu.perfect_io(),
        rpu.IOConfig(out_noise=0.0),
        # normalized outputs here reach 2.6: a bound of 2 makes bound management re-read
        rpu.IOConfig(out_noise=0.0, out_bound=2.0, bound_management=True, bm_max_factor=4.0),
        rpu.IOConfig(out_noise=0.0, noise_management=False, bound_management=False),
        rpu.IOConfig(out_noise=0.0, noise_management=False, out_bound=2.0, inp_res=0.02),
    ],
)
def test_read_batch_matches_reference_without_noise(
    rng: np.random.Generator, io: rpu.IOConfig
) -> None:
    w = rng.normal(0.0, 0.4, (9, 30))
    x = rng.uniform(-1.5, 1.5, (6, 30))
    x[2] = 0.0
    iov = io_vector(io)
    s = kernels.seed_state(rng)
    y = np.empty((6, 9))
    kernels.read_batch(w, x, y, iov, s)
    yt = np.empty((6, 9))
    kernels.read_batch(np.ascontiguousarray(w.T).T, x, yt, iov, s)  # F-ordered weights
    ref = np.array([kernels.reference_read(w, xi, iov, rng) for xi in x])
    # same arithmetic up to BLAS summation order: 1e-12 absolute on outputs of size ~5
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(yt, ref, rtol=0, atol=1e-12)


def test_bound_management_rereads_what_the_bound_clipped(rng: np.random.Generator) -> None:
    """Without quantization or noise: rows whose outputs reach the bound are re-read at
    half the input until none does (up to bm_max_factor), so they come out as the exact
    MVM, where the same read without management is clipped; other rows are untouched."""
    common = {"out_noise": 0.0, "out_bound": 2.0, "inp_res": 0.0, "out_res": 0.0}
    managed = io_vector(rpu.IOConfig(bound_management=True, bm_max_factor=4.0, **common))
    clipped = io_vector(rpu.IOConfig(bound_management=False, **common))
    w = rng.normal(0.0, 0.4, (9, 30))
    x = rng.uniform(-1.5, 1.5, (40, 30))
    s = kernels.seed_state(rng)
    y_bm, y_clip = np.empty((40, 9)), np.empty((40, 9))
    kernels.read_batch(w, x, y_bm, managed, s)
    kernels.read_batch(w, x, y_clip, clipped, s)
    exact = x @ w.T
    peak = np.abs(exact).max(axis=1) / np.abs(x).max(axis=1)  # largest normalized output
    hit = peak >= 2.0
    # the bound is reached by some rows, not all, and a factor of 4 brings every row back
    assert 5 <= hit.sum() <= 35 and peak.max() < 2.0 * 4.0
    # MVM summation order only: 1e-12 absolute on outputs of size ~5
    np.testing.assert_allclose(y_bm, exact, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y_clip[~hit], exact[~hit], rtol=0, atol=1e-12)
    # clipped rows: the outputs beyond the bound sit at bound·max|x| and differ from exact
    bound_out = 2.0 * np.abs(x).max(axis=1, keepdims=True)
    over = (np.abs(exact) >= bound_out) & hit[:, None]
    np.testing.assert_allclose(np.abs(y_clip[over]), np.broadcast_to(bound_out, over.shape)[over])
    assert np.all(np.abs(y_clip[over] - y_bm[over]) > 1e-3)


def test_bound_management_reread_draws_fresh_noise(rng: np.random.Generator) -> None:
    """A re-read is a new analog read: its output noise is a fresh draw, not the noise
    that pushed the first read over the bound.

    One output whose noise-free normalized value is y0 = 0.95 under bound 1, noise σ =
    0.1: the first read hits the bound when ξ ≥ 0.5 (P = 0.31) and is then re-read at half
    the input, y = 2·(y0/2 + σ·ξ'), which never hits again. With fresh noise
    E[y] = y0 + σ·E[ξ; ξ < 0.5] + 0 = y0 − σ·φ(0.5) = 0.9148; reusing ξ would give
    y0 − σ·φ(0.5) + 2σ·φ(0.5) = 0.9852 (the selected ξ > 0.5 has a positive mean).
    """
    sigma, y0, n = 0.1, 0.95, 40_000
    io = rpu.IOConfig(out_noise=sigma, out_bound=1.0, inp_res=0.0, out_res=0.0, bm_max_factor=4.0)
    w = np.array([[y0, 0.0, 0.0]])
    x = np.tile([1.0, 0.5, -0.3], (n, 1))  # max|x| = 1: normalized = output units
    y = np.empty((n, 1))
    kernels.read_batch(w, x, y, io_vector(io), kernels.seed_state(rng))
    expected = y0 - sigma * stats.norm.pdf(0.5)
    # per-read std ≤ 2σ = 0.2, so the SE of the mean is ≤ 0.2/√N = 0.001; 5 SE: 0.005,
    # far below the 0.07 that reused noise would add
    assert abs(y.mean() - expected) < 5 * 0.2 / np.sqrt(n)
    ref = np.array([kernels.reference_read(w, x[0], io_vector(io), rng) for _ in range(4000)])
    assert abs(ref.mean() - expected) < 5 * 0.2 / np.sqrt(4000)  # the reference agrees
    # re-reads happened: outputs above the bound, which only a re-read can give
    # (P = P(ξ ≥ 0.5)·P(ξ' > 0.25) = 0.31·0.40 = 0.12)
    assert np.mean(y > 1.0) > 0.05


def test_read_batch_noise_matches_reference_statistics(rng: np.random.Generator) -> None:
    io = rpu.IOConfig(out_noise=0.1, inp_res=0.0, out_res=0.0, bound_management=False)
    iov = io_vector(io)
    w = rng.normal(0.0, 0.2, (5, 8))
    x = rng.uniform(-0.5, 0.5, 8)
    s = kernels.seed_state(rng)
    n = 20_000
    y = np.empty((n, 5))
    kernels.read_batch(w, np.tile(x, (n, 1)), y, iov, s)
    ref = np.array([kernels.reference_read(w, x, iov, rng) for _ in range(4000)])
    scale = np.max(np.abs(x))  # noise management: noise sigma * max|x| in output units
    # std SE ~ sigma/sqrt(2N): 0.5 % (fast) and 1.1 % (reference); 5 SE bounds
    np.testing.assert_allclose((y - w @ x).std(axis=0), 0.1 * scale, rtol=0.025)
    np.testing.assert_allclose((ref - w @ x).std(axis=0), 0.1 * scale, rtol=0.06)


# --------------------------------------------------------------------------- updates


def test_update_per_coincidence_count_mean_and_variance(rng: np.random.Generator) -> None:
    """1x1 tile: given the coincidence count n, Δw = dw·n·(1 + ctoc·ξ/√n) in distribution."""
    s = kernels.seed_state(rng)
    ctoc, dw, bl = 0.3, 0.001, 10
    par = _params((1, 1, 1), up=1.2 * dw, down=0.8 * dw)
    dp = _dp(ctoc=ctoc, bounded=False)
    lr = 0.25 * bl * dw  # C = 0.5: p = q = 0.5 for |x| = |d| = 1
    by_count: dict[int, list[float]] = {}
    for sign in (1.0, -1.0):  # x·d > 0 moves down with 0.8·dw, x·d < 0 moves up with 1.2·dw
        for _ in range(6000):
            w = np.zeros((1, 1, 1))
            n = _fast([1.0], [sign], lr, bl, False, w, par, dp, s)
            by_count.setdefault(int(sign) * n, []).append(float(w[0, 0, 0]))
    checked = 0
    for key, vals in by_count.items():
        n, v = abs(key), np.asarray(vals)
        if n == 0:
            assert np.all(v == 0.0)
            continue
        if v.size < 200:
            continue
        step = -0.8 * dw if key > 0 else 1.2 * dw
        mean, sd = step * n, abs(step) * ctoc * np.sqrt(n)
        assert abs(v.mean() - mean) < 5 * sd / np.sqrt(v.size)  # 5 standard errors
        assert abs(v.std() / sd - 1.0) < 5 / np.sqrt(2 * v.size)  # normal: SE of std
        checked += 1
    assert checked >= 6


def test_update_expectation_and_variance_per_element(rng: np.random.Generator) -> None:
    """Ideal device: E[Δw] = −lr·δ·x and Var = dw²·BL·pq(1 − pq) (binomial coincidences)."""
    s = kernels.seed_state(rng)
    bl, dw, lr = 10, 0.001, 0.01
    x = np.array([0.9, -0.4, 0.0, 0.2])
    d = np.array([0.5, -0.8, 0.3])
    par = _params((1, 3, 4))
    dp = _dp(bounded=False)
    n = 20_000
    samples = np.empty((n, 3, 4))
    for t in range(n):
        w = np.zeros((1, 3, 4))
        _fast(x, d, lr, bl, True, w, par, dp, s)
        samples[t] = w[0]
    c = np.sqrt(lr / (bl * dw))
    m = np.sqrt(np.max(np.abs(d)) / np.max(np.abs(x)))
    pq = np.outer(np.minimum(c * np.abs(d) / m, 1), np.minimum(c * m * np.abs(x), 1))
    var = dw**2 * bl * pq * (1 - pq)
    mean = samples.mean(axis=0)
    expected = -lr * np.outer(d, x)
    se = np.sqrt(var / n) + 1e-30
    assert np.all(np.abs(mean - expected) < 5 * se)
    nz = var > 0
    # sample variance of a Poisson-like count: relative SE about sqrt((1 + 3λ)/(λ N))
    lam = bl * pq[nz]
    rel_se = np.sqrt((1 + 3 * lam) / (lam * n))
    assert np.all(np.abs(samples.var(axis=0)[nz] / var[nz] - 1) < 5 * rel_se)
    assert np.all(samples[:, :, 2] == 0.0)  # x = 0: the column never pulses


def _run_both(
    rng: np.random.Generator,
    *,
    k: float,
    soft: bool,
    w0: np.ndarray,
    par: np.ndarray,
    x: np.ndarray,
    d: np.ndarray,
    lr: float,
    reps: int,
    ctoc: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    s = kernels.seed_state(rng)
    dp = _dp(ctoc=ctoc, k=k, soft=soft, bounded=True)
    fast = np.empty((reps, *w0.shape))
    ref = np.empty((reps, *w0.shape))
    for t in range(reps):
        w = w0.copy()
        _fast(x, d, lr, 10, True, w, par, dp, s)
        fast[t] = w
        w = w0.copy()
        kernels.reference_update(x, d, lr, 10, True, 0.001, w, par, dp, rng)
        ref[t] = w
    return fast, ref


def _device_par(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    gain = 1 + 0.3 * rng.standard_normal(shape)
    u = 0.05 * rng.standard_normal(shape)
    return _params(shape, up=0.0, down=0.0, wmax=0.0, wmin=0.0) + np.stack(
        [0.001 * gain * (1 + u), 0.001 * gain * (1 - u), 0.05 + 0 * gain, -0.05 + 0 * gain],
        axis=-1,
    )


@pytest.mark.parametrize(
    ("k", "soft", "n_dev"), [(0.0, False, 1), (0.3, False, 1), (0.2, True, 1), (0.3, False, 2)]
)
def test_fast_update_matches_reference_statistically(
    rng: np.random.Generator, k: float, soft: bool, n_dev: int
) -> None:
    """k = 0, half-select (pulsing rows run phase by phase over the whole row, vectorized;
    silent rows device by device), soft bounds, two devices per weight."""
    shape = (n_dev, 3, 4)
    par = _device_par(rng, shape)
    w0 = rng.uniform(-0.02, 0.02, shape)
    x = np.array([0.8, -0.5, 0.0, 0.3])
    d = np.array([0.6, -0.9, 0.2])
    reps = 2500
    fast, ref = _run_both(rng, k=k, soft=soft, w0=w0, par=par, x=x, d=d, lr=0.01, reps=reps)
    df, dr = fast - w0, ref - w0
    sd = np.sqrt((df.var(axis=0) + dr.var(axis=0)) / reps) + 1e-12
    assert np.all(np.abs(df.mean(axis=0) - dr.mean(axis=0)) < 5 * sd)  # 5 SE of the difference
    # spread: SE of a std ~ std/sqrt(2N) = 1.4 % per side for N = 2500 (more for discrete
    # counts), difference of two: 2 %; 12 % is about 6 of those
    moving = dr.std(axis=0) > 1e-6
    ratio = df.std(axis=0)[moving] / dr.std(axis=0)[moving]
    assert np.all(np.abs(ratio - 1) < 0.12)
    if k == 0.0:
        assert np.all(df[..., 2] == 0.0) and np.all(dr[..., 2] == 0.0)


def test_fast_update_matches_reference_at_the_bound(rng: np.random.Generator) -> None:
    """Devices 1.5 steps below w_max pushed up hard: same saturation fraction."""
    shape = (1, 3, 4)
    par = _params(shape, wmax=0.05, wmin=-0.05)
    w0 = np.full(shape, 0.05 - 0.0015)
    x = np.array([0.8, 0.5, 0.3, 1.0])
    d = -np.array([0.6, 0.9, 0.2])  # −δ·x > 0: every coincidence moves up
    reps = 2000
    fast, ref = _run_both(rng, k=0.0, soft=False, w0=w0, par=par, x=x, d=d, lr=0.05, reps=reps)
    sat_f = np.mean(fast == 0.05, axis=0)
    sat_r = np.mean(ref == 0.05, axis=0)
    se = np.sqrt((sat_f * (1 - sat_f) + sat_r * (1 - sat_r)) / reps) + 1e-9
    assert np.all(np.abs(sat_f - sat_r) < 5 * se)  # 5 binomial SE
    assert sat_f.max() > 0.3  # the test does reach the bound
    assert np.all(fast <= 0.05) and np.all(ref <= 0.05)


def _batch_case(
    rng: np.random.Generator, n_dev: int, n_out: int, n_in: int, sparse: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Device parameters, start weights and a batch of 6 samples (x, δ) for the batched
    update; ``sparse``: most inputs and errors zero (image patches, pooled errors)."""
    shape = (n_dev, n_out, n_in)
    par = _device_par(rng, shape)
    w0 = rng.uniform(-0.04, 0.04, shape)
    x = rng.uniform(-1.0, 1.0, (6, n_in))
    d = rng.uniform(-1.0, 1.0, (6, n_out))
    if sparse:
        x *= rng.random(x.shape) < 0.3
        d *= rng.random(d.shape) < 0.4
        x[:, 0] = 0.7  # every sample keeps a pulsing column and row (bias-like)
        d[:, 0] = -0.5
    return par, w0, x, d


@pytest.mark.parametrize(
    ("n_dev", "n_out", "n_in", "sparse", "soft", "k"),
    [
        (1, 3, 4, True, False, 0.0),  # few pulsing pairs: each pair tested directly
        (1, 12, 16, False, False, 0.0),  # many: slot lists; dense stream draws
        (2, 12, 16, True, False, 0.0),  # two devices per weight, sparse stream draws
        (1, 3, 4, False, True, 0.0),  # soft bounds
        # half-select (k != 0), hard bounds: kernels.hsbatch (one step per device far
        # from its bounds, sample by sample near them); soft bounds: pulse by pulse
        (1, 3, 4, True, False, 0.2),
        (1, 12, 16, False, False, 0.1),
        (2, 12, 16, True, False, 0.3),  # two devices per weight
        (1, 3, 4, False, True, 0.2),  # soft bounds: pulse by pulse per device
    ],
)
def test_batched_update_matches_sequential_reference(
    rng: np.random.Generator,
    n_dev: int,
    n_out: int,
    n_in: int,
    sparse: bool,
    soft: bool,
    k: float,
) -> None:
    """n > 1 updates in one call (k = 0: :func:`batched._pulsed_update_batch`, a conv
    layer's patches; k != 0 with hard bounds: :func:`hsbatch._half_select_batch`; with
    soft bounds: sample by sample) against the pulse-by-pulse reference applied sample
    after sample: the same mean and spread of every device's change, and of how many sit
    at a bound."""
    par, w0, x, d = _batch_case(rng, n_dev, n_out, n_in, sparse)
    dp = _dp(ctoc=0.3, k=k, soft=soft, bounded=True)
    _tile_precision(par, dp)
    s = kernels.seed_state(rng)
    reps = 800
    fast = np.empty((reps, *w0.shape))
    ref = np.empty((reps, *w0.shape))
    lr = 0.03  # large steps: devices reach the ±0.05 bounds
    att = np.ones(w0.shape[1:])
    pairs = 0
    for t in range(reps):
        w = w0.copy()
        wread = w.sum(axis=0)
        pairs += kernels.pulsed_update(
            x, d, lr, 10, True, 0.001, w, par, kernels.par_lines_of(par), dp, wread, att,
            *_NO_BWD, _NO_LINES, s,
        )  # fmt: skip
        np.testing.assert_allclose(wread, w.sum(axis=0), rtol=0, atol=1e-15)  # kept in step
        fast[t] = w
        w = w0.copy()
        for r in range(x.shape[0]):
            kernels.reference_update(x[r], d[r], lr, 10, True, 0.001, w, par, dp, rng)
        ref[t] = w
    assert pairs > 0
    df, dr = fast - w0, ref - w0
    sd = np.sqrt((df.var(axis=0) + dr.var(axis=0)) / reps) + 1e-12
    # 5 SE of the difference of two means, over a few hundred devices: ~1e-4 false alarms
    assert np.all(np.abs(df.mean(axis=0) - dr.mean(axis=0)) < 5 * sd)
    # spread of the devices that move by more than one step (a device pinned at a bound
    # moves rarely: its spread is a count of a few rare events, far from normal)
    moving = dr.std(axis=0) > 1e-3
    assert moving.sum() >= 0.3 * moving.size
    ratio = df.std(axis=0)[moving] / dr.std(axis=0)[moving]
    # SE of a std ≈ std/√(2N) = 2.5 % per side for N = 800, 3.5 % for the ratio: 20 % is
    # over 5 SE (the sequential single-sample path reaches 11 % on the largest case)
    assert np.all(np.abs(ratio - 1) < 0.2)
    # pooled over the moving devices: 3 %, or 5 SE where few devices move (the 3 × 4 case
    # has 5-10, whose pooled SE is 1.1-1.6 %: 3 % would be under 3 SE)
    assert abs(ratio.mean() - 1) < max(0.03, 5 * 0.035 / np.sqrt(moving.sum()))
    at_f = np.mean(np.abs(fast) >= 0.05 - 1e-12, axis=0)  # the common device bound ±0.05
    at_r = np.mean(np.abs(ref) >= 0.05 - 1e-12, axis=0)
    se = np.sqrt((at_f * (1 - at_f) + at_r * (1 - at_r)) / reps) + 1e-9
    assert np.all(np.abs(at_f - at_r) < 5 * se)


def test_batched_update_takes_both_coincidence_paths(rng: np.random.Generator) -> None:
    """The cases above reach both of the batched update's coincidence loops: the pulsing
    (row, column) pairs of a sample are at most _DIRECT_PAIRS in the small case and
    above it in the large one (counted here from the same streams' statistics)."""
    for n_out, n_in, few in ((3, 4, True), (12, 16, False)):
        _, _, x, d = _batch_case(rng, 1, n_out, n_in, sparse=n_out == 3)
        c = np.sqrt(0.03 / (10 * 0.001))
        m = np.sqrt(np.abs(d).max(axis=1) / np.abs(x).max(axis=1))
        p_col = 1 - (1 - np.minimum(c * m[:, None] * np.abs(x), 1)) ** 10  # P(column pulses)
        p_row = 1 - (1 - np.minimum(c / m[:, None] * np.abs(d), 1)) ** 10
        expected_pairs = p_col.sum(axis=1) * p_row.sum(axis=1)
        if few:
            assert expected_pairs.max() <= batched._DIRECT_PAIRS
        else:
            assert expected_pairs.min() > 2 * batched._DIRECT_PAIRS


def test_half_select_deterministic_formula() -> None:
    """p = q = 1, no c2c: every slot pulses; both implementations give the exact formula.

    Coinciding pair: a·BL·step(a) − 2k·BL·step(−a); a line whose partner is silent gets
    k·BL pulses up and k·BL down (net k·BL·(up − down)); a silent pair nothing.
    """
    k, bl, dw, u = 0.2, 10, 0.001, 0.1
    up, down = dw * (1 + u), dw * (1 - u)
    par = _params((1, 3, 4), up=up, down=down)
    dp = _dp(k=k, bounded=False)
    x = np.array([0.5, -0.5, 0.0, 0.5])
    d = np.array([0.5, -0.5, 0.0])
    lr = 100.0  # C·|x| ≫ 1: probabilities clip at 1
    rng = np.random.default_rng(5)
    s = kernels.seed_state(rng)
    w_fast = np.zeros((1, 3, 4))
    n = _fast(x, d, lr, bl, False, w_fast, par, dp, s)
    w_ref = np.zeros((1, 3, 4))
    kernels.reference_update(x, d, lr, bl, False, dw, w_ref, par, dp, rng)
    up, down = par[0, 0, 0, kernels.PAR_UP], par[0, 0, 0, kernels.PAR_DOWN]  # _fast rounded
    assert (up, down) == (np.float32(dw * (1 + u)), np.float32(dw * (1 - u)))
    expected = np.zeros((3, 4))
    for i in range(3):
        for j in range(4):
            if d[i] != 0 and x[j] != 0:
                a = -np.sign(x[j]) * np.sign(d[i])
                same, other = (up, down) if a > 0 else (down, up)
                expected[i, j] = a * bl * (same - 2 * k * other)
            elif d[i] != 0 or x[j] != 0:
                expected[i, j] = k * bl * (up - down)
    assert n == 6 * bl
    # float summation of at most 60 steps of 1e-3: 1e-15 absolute
    np.testing.assert_allclose(w_fast[0], expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(w_ref[0], expected, rtol=0, atol=1e-15)


def test_linear_device_cancels_the_mean_update(rng: np.random.Generator) -> None:
    """k = 0.5: net mean a·dw·n_c·(1 − 2k) = 0 for every element (paper A's linear failure).
    Without c2c the phases cancel exactly in every cycle; with it (30 %) each cycle moves
    the devices by about dw·0.3·√n, and the mean still cancels."""
    shape = (1, 3, 4)
    par = _params(shape)
    w0 = np.zeros(shape)
    x = np.array([0.8, -0.5, 0.0, 0.3])
    d = np.array([0.6, -0.9, 0.2])
    reps = 2000
    fast, ref = _run_both(
        rng, k=0.5, soft=False, w0=w0, par=par, x=x, d=d, lr=0.01, reps=reps, ctoc=0.3
    )
    for res in (fast, ref):
        se = res.std(axis=0) / np.sqrt(reps) + 1e-12
        assert np.all(np.abs(res.mean(axis=0)) < 5 * se)
        assert res.std() > 1e-4  # the devices are disturbed, just not on average


def test_soft_bounds_deterministic_steps() -> None:
    """n up-pulses from w0: w_n = w_max − (w_max − w0)·(1 − dw/w_max)^n (aihwkit soft bounds)."""
    wmax, dw, w0, bl = 0.6, 0.01, 0.3, 7
    par = _params((1, 1, 1), up=dw, down=dw, wmax=wmax, wmin=-wmax)
    dp = _dp(soft=True)
    rng = np.random.default_rng(0)
    s = kernels.seed_state(rng)
    w = np.full((1, 1, 1), w0)
    _fast([1.0], [-1.0], 100.0, bl, False, w, par, dp, s)
    expected = wmax - (wmax - w0) * (1 - dw / wmax) ** bl
    w_ref = np.full((1, 1, 1), w0)
    kernels.reference_update(
        np.array([1.0]), np.array([-1.0]), 100.0, bl, False, dw, w_ref, par, dp, rng
    )
    assert w[0, 0, 0] == pytest.approx(expected, rel=1e-14)  # 7 float steps
    assert w_ref[0, 0, 0] == pytest.approx(expected, rel=1e-14)


def test_exact_update_is_sgd_and_clips() -> None:
    w = np.zeros((2, 2, 3))
    par = _params((2, 2, 3), wmax=0.01, wmin=-0.01)
    dp = _dp()
    wread = np.zeros((2, 3))
    x = np.array([[1.0, -2.0, 0.5]])
    d = np.array([[0.1, -0.3]])
    kernels.exact_update(x, d, 0.05, w, par, dp, wread, np.ones((2, 3)), *_NO_BWD)
    expected = np.clip(-0.05 * np.outer(d[0], x[0]) / 2, -0.01, 0.01)
    np.testing.assert_allclose(w[0], expected, rtol=0, atol=1e-17)
    np.testing.assert_allclose(wread, 2 * expected, rtol=0, atol=1e-17)


def test_column_major_read_skips_zero_inputs_exactly(rng: np.random.Generator) -> None:
    """The column-major MVM adds one weight column per nonzero input and skips the zeros
    (sparse images, pooled error maps): the result equals the dense reference."""
    w = rng.normal(0.0, 0.4, (9, 40))
    x = rng.uniform(-1.0, 1.0, (5, 40))
    x[rng.random(x.shape) < 0.8] = 0.0  # MNIST-like: ~80 % exact zeros
    x[1, :3] = 1e-4  # below half a DAC step: quantizes to 0 and is skipped too
    x[3] = 0.0  # an all-zero vector reads exactly 0 under noise management
    iov = io_vector(rpu.IOConfig(out_noise=0.0))
    y = np.empty((5, 9))
    kernels.read_batch(np.asfortranarray(w), x, y, iov, kernels.seed_state(rng))
    ref = np.array([kernels.reference_read(w, xi, iov, rng) for xi in x])
    # same arithmetic up to summation order: 1e-12 absolute on outputs of size ~3
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    assert np.all(y[3] == 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_major_mvm_blocks_and_remainders(rng: np.random.Generator, dtype: type) -> None:
    """The register-blocked dot products (4 vectors × 4 rows, then 1 × 4, then single
    dots) against numpy for every mix of full blocks and remainders."""
    for n, r in [(1, 1), (1, 7), (3, 4), (4, 4), (5, 9), (9, 32), (8, 3)]:
        w = rng.normal(0.0, 0.4, (r, 37)).astype(dtype)
        xq = rng.uniform(-1.0, 1.0, (n, 37)).astype(dtype)
        out = np.empty((n, r), dtype=dtype)
        reads._mvm(w, xq, out)
        ref = xq.astype(np.float64) @ w.astype(np.float64).T
        # summation order only: 37 terms of size <= 0.4·1, float32 eps 6e-8 -> 1e-5
        tol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(out, ref, rtol=0, atol=tol, err_msg=f"n={n} r={r}")


def test_absmax_equals_numpy_on_awkward_values(rng: np.random.Generator) -> None:
    """Row maxima of |a| taken on the bits equal numpy's exactly, on the values where an
    integer reading of the bits could go wrong: signed zeros, infinities, the smallest
    subnormal and the largest float, rows of one sign, all-zero and empty rows, and a
    strided (non-contiguous) view."""
    tiny = np.nextafter(0.0, 1.0)
    big = np.finfo(np.float64).max
    a = rng.normal(0.0, 1.0, (7, 37))
    a[0] = -0.0
    a[1, :] = -np.abs(a[1])  # all negative: the maximum magnitude is a negative value's
    a[2, 5] = -np.inf
    a[3, :] = -tiny
    a[3, 30] = tiny
    a[4, 11] = -big
    a[5, :] = 0.0
    a[5, 36] = -1e-300
    for arr in (a, a[:, ::3], a[::2], np.asfortranarray(a), np.empty((3, 0))):
        out = np.full(arr.shape[0], np.nan)
        reads._absmax(arr, out)
        ref = np.abs(arr).max(axis=1) if arr.shape[1] else np.zeros(arr.shape[0])
        assert out.view(np.int64).tolist() == ref.view(np.int64).tolist()


@pytest.mark.parametrize("code", [kernels.ACT_SIGMOID, kernels.ACT_TANH, kernels.ACT_NONE])
def test_activation_kernels_match_formulas(rng: np.random.Generator, code: int) -> None:
    x = rng.normal(0.0, 3.0, 50)
    g = rng.normal(size=50)
    y = np.empty(50)
    gin = np.empty(50)
    kernels.activation_forward(code, x, y)
    kernels.activation_backward(code, y, g, gin)
    ref = {kernels.ACT_SIGMOID: 1 / (1 + np.exp(-x)), kernels.ACT_TANH: np.tanh(x)}.get(code, x)
    # the derivative from the kernel's own y: near saturation 1 − y² cancels, and the ulp or
    # two between the kernel's and numpy's exp/tanh would dominate it
    dref = {kernels.ACT_SIGMOID: y * (1 - y), kernels.ACT_TANH: 1 - y**2}.get(code, 1.0)
    # libm and the kernel's tanh vs numpy's SIMD exp/tanh may differ by an ulp or two
    np.testing.assert_allclose(y, ref, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(gin, dref * g, rtol=1e-13, atol=1e-16)


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Units in the last place between float64 arrays (their bits as ordered integers)."""
    ia, ib = a.view(np.int64), b.view(np.int64)
    least = np.int64(np.iinfo(np.int64).min)
    ia = np.where(ia < 0, least - ia, ia)
    ib = np.where(ib < 0, least - ib, ib)
    return np.abs(ia - ib)


def test_tanh_kernel_is_within_two_units_in_the_last_place(rng: np.random.Generator) -> None:
    """The activations' own tanh (straight-line arithmetic, so its loop vectorizes) against
    tanh in 80-bit extended precision rounded to float64 (x86's long double; where long
    double has no more bits than float64, the platform's tanh with two units more), over
    the whole range: large, moderate, small and subnormal magnitudes."""
    n = 200_000
    signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    x = np.concatenate(
        [
            rng.uniform(-25.0, 25.0, n),
            rng.uniform(-1.0, 1.0, n),
            signs * 10.0 ** rng.uniform(-310.0, 1.4, n),
            [19.1, 22.0, 23.0, 700.0, 1e308, 5e-324, np.log(3.0) / 2, np.log(2.0) / 2],
        ]
    )
    y = np.empty_like(x)
    kernels.activation_forward(kernels.ACT_TANH, x, y)
    if np.finfo(np.longdouble).nmant >= 63:
        ref, tol = np.tanh(x.astype(np.longdouble)).astype(np.float64), 2
    else:  # pragma: no cover - platforms without extended precision
        ref, tol = np.tanh(x), 4
    err = _ulps(y, ref)
    assert err.max() <= tol, x[np.argmax(err)]
    assert (err == 0).mean() > 0.6  # most values correctly rounded
    assert y[-8:-3].tolist() == [1.0] * 5  # from 19.1 on, where tanh rounds to 1: exactly 1
    assert y[-3] == 5e-324  # tanh(x) = x below 2^-27 (the smallest subnormal too)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan])
    out = np.empty(5)
    kernels.activation_forward(kernels.ACT_TANH, special, out)
    assert out[:4].tolist() == [0.0, -0.0, 1.0, -1.0] and np.isnan(out[4])
    assert np.signbit(out[1]) and not np.signbit(out[0])


def test_read_noise_is_the_kernel_generator_sequence(rng: np.random.Generator) -> None:
    """A read draws its noise in one batch (``_fill_normals``) before the loop: the noise
    must be exactly the generator's sequence, row after row, and leave the same state
    behind (so resume and bit-identity tests keep their meaning)."""
    io = rpu.IOConfig(
        out_noise=0.1, out_bound=0.0, inp_res=0.0, noise_management=False, bound_management=False
    )
    w = rng.normal(0.0, 0.3, (7, 12))
    x = rng.uniform(-1.0, 1.0, (400, 12))  # 2,800 draws: ≈ 36 take the ziggurat's slow path
    s = kernels.seed_state(rng)
    s_ref = s.copy()
    y = np.empty((400, 7))
    kernels.read_batch(w, x, y, io_vector(io), s)
    z = kernels.standard_normals(400 * 7, s_ref).reshape(400, 7)
    # the noise is added to the exact MVM: only the MVM's summation order differs (1e-12)
    np.testing.assert_allclose(y - x @ w.T, 0.1 * z, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(s, s_ref)
