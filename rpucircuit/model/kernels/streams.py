"""Random numbers of the compiled kernels: xoshiro256** and counter-based SplitMix64 words,
Gaussians (a 256-layer ziggurat, one at a time or in vectorized batches), packed Bernoulli
bit streams and bit counting.

The generator state is :data:`STATE_WORDS` uint64 words owned by a tile: 4 xoshiro256**
words (single draws, the ziggurat's rare rejections) and 1 counter of the SplitMix64
stream (bit streams and batches of normals). Every function takes it explicitly, so a
seed gives bit-exact results and a saved state resumes them.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba.core import types
from numba.extending import intrinsic

from rpucircuit.model.kernels.layout import FloatArray, UIntArray


def _popcount_intrinsic(typingctx: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """LLVM ctpop on a uint64: the number of set bits."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


_popcount: Any = intrinsic(_popcount_intrinsic)


def _ctz_intrinsic(typingctx: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """LLVM cttz on a nonzero uint64: the index of the lowest set bit."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


_ctz: Any = intrinsic(_ctz_intrinsic)


@numba.njit(cache=True, nogil=True, inline="always")
def _rotl(x: np.uint64, k: int) -> np.uint64:  # pragma: no cover - compiled
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@numba.njit(cache=True, nogil=True, inline="always")
def _next_u64(s: UIntArray) -> np.uint64:  # pragma: no cover - compiled
    """xoshiro256** (Blackman & Vigna 2018): one 64-bit output, state advanced in place."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@numba.njit(cache=True, nogil=True, inline="always")
def _uniform(s: UIntArray) -> float:  # pragma: no cover - compiled
    """Uniform double in [0, 1) with 53 random bits."""
    return float(_next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


_ZIG_LAYERS = 256
_ZIG_TAIL = 3.6541528853610088
"""Start R of the tail of the 256-layer normal ziggurat (Marsaglia & Tsang 2000)."""
_ZIG_AREA = 4.92867323399e-3
"""Common area V of each layer of the 256-layer normal ziggurat (Marsaglia & Tsang 2000)."""


def _ziggurat_tables() -> tuple[FloatArray, FloatArray, FloatArray]:
    """Layer edges X (257, X[256] = 0), ratios X[i+1]/X[i] (256) and the density
    exp(−X²/2) at each edge (257) of a 256-layer normal ziggurat.

    Marsaglia & Tsang (2000) with Doornik's (2005) independent-bits variant: a draw takes a
    layer index i and a signed uniform u ∈ [−1, 1) from disjoint bits and is accepted
    outright when |u| < X[i+1]/X[i] (98.9 % of draws for 256 layers); the rest (the
    top layer, the wedges and the tail beyond R) go through :func:`_normal_slow`.
    """
    c = _ZIG_LAYERS
    x = np.zeros(c + 1)
    f = np.exp(-0.5 * _ZIG_TAIL * _ZIG_TAIL)
    x[0] = _ZIG_AREA / f
    x[1] = _ZIG_TAIL
    for i in range(2, c):
        x[i] = np.sqrt(-2.0 * np.log(_ZIG_AREA / x[i - 1] + f))
        f = np.exp(-0.5 * x[i] * x[i])
    return x, x[1:] / x[:-1], np.exp(-0.5 * x * x)


_ZIG_X, _ZIG_R, _ZIG_F = _ziggurat_tables()
_ZIG_MASK = np.uint64(_ZIG_LAYERS - 1)


@numba.njit(cache=True, nogil=True, inline="always")
def _normal_slow(u: float, i: np.uint64, s: UIntArray) -> float:  # pragma: no cover - compiled
    """Rejection part of the ziggurat for a candidate (u, i) that failed the fast test
    (about 1.1 % of the draws); further uniforms come from the xoshiro256** words."""
    while True:
        if i == 0:  # tail beyond R (Marsaglia 1964)
            while True:
                xt = np.log(1.0 - _uniform(s)) / _ZIG_TAIL
                yt = np.log(1.0 - _uniform(s))
                if -2.0 * yt >= xt * xt:
                    break
            return float(xt - _ZIG_TAIL if u < 0.0 else _ZIG_TAIL - xt)
        x = u * _ZIG_X[i]
        # the point (x, y) uniform in layer i's rectangle lies under the density
        f1 = _ZIG_F[i + 1]
        if f1 + _uniform(s) * (_ZIG_F[i] - f1) < np.exp(-0.5 * x * x):
            return float(x)
        r = _next_u64(s)
        i = r & _ZIG_MASK
        u = float(r >> np.uint64(11)) * (2.0 / 9007199254740992.0) - 1.0
        if abs(u) < _ZIG_R[i]:
            return float(u * _ZIG_X[i])


@numba.njit(cache=True, nogil=True, inline="always")
def _normal(s: UIntArray) -> float:  # pragma: no cover - compiled
    """One standard normal from the xoshiro256** words: one 64-bit word (8 bits layer,
    53 bits value). For draws one at a time (the half-select update); batches use
    :func:`_fill_normals`."""
    r = _next_u64(s)
    i = r & _ZIG_MASK
    u = float(r >> np.uint64(11)) * (2.0 / 9007199254740992.0) - 1.0
    if abs(u) < _ZIG_R[i]:
        return float(u * _ZIG_X[i])
    return _normal_slow(u, i, s)


_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
STATE_WORDS = 5
"""Kernel generator state: 4 xoshiro256** words (single draws, ziggurat rejections) + 1
counter of the SplitMix64 stream (bit streams and batches of normals)."""


@numba.njit(cache=True, nogil=True, inline="always")
def _mix_gamma(z: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """The SplitMix64 output of the counter c for which ``z`` = c·γ (mod 2⁶⁴): its two
    multiply-xorshift rounds. A loop whose counter grows by a constant step can keep c·γ
    itself, growing by step·γ (the same value mod 2⁶⁴, so the same bits), and save the
    product c·γ per draw; compiled vector loops do not find that for themselves (they
    multiplied the counter out, e.g. j·n, and then by γ: three or four 64-bit products per
    draw instead of two, measured)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True, inline="always")
def _splitmix(c: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """SplitMix64 output for counter ``c`` (Steele, Lea & Flood 2014): a bijective mix of
    c·γ; consecutive counters give the SplitMix64 sequence."""
    return _mix_gamma(c * _GAMMA)


NORMAL_BLOCK = 16
"""Batches of normals come in whole blocks of this many (8 SplitMix64 outputs): buffers
for :func:`_fill_normals` hold :func:`normal_capacity` values."""


@numba.njit(cache=True, nogil=True, inline="always")
def normal_capacity(n: int) -> int:  # pragma: no cover - compiled
    """Buffer length :func:`_fill_normals` needs for ``n`` normals (``n`` rounded up to a
    multiple of :data:`NORMAL_BLOCK`)."""
    return (n + NORMAL_BLOCK - 1) // NORMAL_BLOCK * NORMAL_BLOCK


@numba.njit(cache=True, nogil=True, inline="always")
def _candidate(b: np.uint64) -> tuple[float, np.uint64]:  # pragma: no cover - compiled
    """Ziggurat candidate from a 32-bit word: layer i from bits 0–7, signed uniform
    u ∈ [−1, 1) from bits 8–31 (24 bits: far below any noise or c2c resolution)."""
    return float(b >> np.uint64(8)) * (2.0 / 16777216.0) - 1.0, b & _ZIG_MASK


@numba.njit(cache=True, nogil=True)
def _fill_normals(z: FloatArray, n: int, s: UIntArray) -> None:  # pragma: no cover - compiled
    """At least ``n`` standard normals into ``z`` (which holds ``normal_capacity(n)``).

    Counter-based, so the main loop vectorizes: value 2h and 2h+1 come from the high and
    low 32-bit halves of the SplitMix64 output of counter s[4] + h (each half one
    ziggurat candidate, :func:`_candidate`), and s[4] advances by ``normal_capacity(n)/2``.
    Candidates that fail the ziggurat's fast test are marked (NaN) and finished block by
    block with :func:`_normal_slow`, which draws its further uniforms from the xoshiro256**
    words. The counter is the one the bit streams use: every counter value serves once.
    About 1.7 ns per normal against 2.5 ns one at a time (numba 0.68, AMD EPYC).
    """
    base = s[4]
    n_cap = normal_capacity(n)
    n_hash = n_cap // 2
    low = np.uint64(0xFFFFFFFF)
    cg = base * _GAMMA  # (counter of hash h)·γ, h = 0, 1, ... (see _mix_gamma)
    for h in range(n_hash):
        r = _mix_gamma(cg)  # = _splitmix(base + h)
        cg += _GAMMA
        u1, i1 = _candidate(r >> np.uint64(32))
        u2, i2 = _candidate(r & low)
        z[2 * h] = u1 * _ZIG_X[i1] if abs(u1) < _ZIG_R[i1] else np.nan
        z[2 * h + 1] = u2 * _ZIG_X[i2] if abs(u2) < _ZIG_R[i2] else np.nan
    s[4] = base + np.uint64(n_hash)
    # the marked candidates in order, 64 values at a time: a bit mask of them, then its set
    # bits (about 1.6 % of the candidates fail; with a test per block of 16 and a branch per
    # value in the blocks with one, 25,664 normals took 39.4 µs, this way 36.2; Intel Xeon)
    one = np.uint64(1)
    n_full = n_cap // 64 * 64
    for g in range(0, n_cap, 64):
        m = np.uint64(0)
        if g < n_full:
            for q in range(64):
                m |= np.uint64(z[g + q] != z[g + q]) << np.uint64(q)
        else:
            for q in range(n_cap - g):
                m |= np.uint64(z[g + q] != z[g + q]) << np.uint64(q)
        while m:
            k = g + int(_ctz(m))
            m &= m - one
            r = _splitmix(base + np.uint64(k >> 1))
            u, i = _candidate(r & low if k & 1 else r >> np.uint64(32))
            z[k] = _normal_slow(u, i, s)


STREAM_PAD = 8
"""Stream buffers hold a multiple of this many lines: :func:`_streams` always works on whole
blocks of 8 (one AVX-512 vector of uint64, two AVX2 vectors), so its hash loop runs
vectorized for any line count; the padding lines get probability 0."""


@numba.njit(cache=True, nogil=True, inline="always")
def _padded(n: int) -> int:  # pragma: no cover - compiled
    """``n`` rounded up to a multiple of :data:`STREAM_PAD`."""
    return (n + STREAM_PAD - 1) // STREAM_PAD * STREAM_PAD


@numba.njit(cache=True, nogil=True, inline="always")
def _threshold(pj: float) -> np.uint64:  # pragma: no cover - compiled
    """A slot of probability ``pj`` fires when its 32-bit uniform word is below this:
    floor(pj·2³²), 2³² for pj ≥ 1 (always fires), 0 for pj ≤ 0 (never)."""
    return np.uint64(4294967296) if pj >= 1.0 else np.uint64(max(pj, 0.0) * 4294967296.0)


@numba.njit(cache=True, nogil=True, inline="always")
def _streams(
    p: FloatArray, n: int, bl: int, masks: UIntArray, thr: UIntArray, s: UIntArray
) -> None:  # pragma: no cover
    """``bl`` Bernoulli(p[j]) bits for each line j < n, packed into ``masks[j]`` (bit t = slot t).

    Counter-based: slot pair h (slots 2h and 2h+1) of line j takes the SplitMix64 output
    (Steele, Lea & Flood 2014) of counter s[4] + j·⌈bl/2⌉ + h; its top 32 bits decide slot
    2h and its low 32 bits slot 2h+1, each compared with floor(p·2³²) (:func:`_threshold`),
    so p is resolved to 2⁻³² and p ≥ 1 always fires. Two slots per hash halve the cost
    (the two halves of a SplitMix64 output are independent uniform words). No draw
    depends on another, so the loop over lines vectorizes; s[4] then advances by
    n·⌈bl/2⌉. ``masks`` and the scratch ``thr`` hold at least ``_padded(n)`` words: the
    loop runs over whole blocks of :data:`STREAM_PAD` lines, the padding lines with
    threshold 0 (no bit ever set), which leaves the draws of lines below ``n`` as they
    are. The draws are :func:`_stream_pairs`'s (every pair), which can also draw chosen
    slot pairs of chosen lines of such a call.
    """
    n_blk = _padded(n)
    for j in range(n_blk):
        masks[j] = 0
        thr[j] = 0
    for j in range(n):
        thr[j] = _threshold(p[j])
    base = s[4]
    n_pairs = (bl + 1) // 2
    _stream_pairs(thr, 0, n_blk, bl, base, (1 << n_pairs) - 1, masks)
    s[4] = base + np.uint64(n * n_pairs)


@numba.njit(cache=True, nogil=True, inline="always")
def _stream_pairs(
    thr: UIntArray, l0: int, l1: int, bl: int, base: np.uint64, pairs: int, masks: UIntArray
) -> None:  # pragma: no cover - compiled
    """The slots of the pairs h set in ``pairs`` (bit h: slots 2h and 2h+1) for lines
    l0 ≤ j < l1 of a :func:`_streams` call whose counter started at ``base`` and whose
    thresholds are ``thr``: OR-ed into ``masks[j]``, the very bits that call sets in those
    slots (its counters depend on the line and the pair only). A caller that will look at
    some slots only draws just those; the generator's state is not touched (the caller
    advances it past the whole call's counters)."""
    n_pairs = (bl + 1) // 2
    low = np.uint64(0xFFFFFFFF)
    zero = np.uint64(0)
    step = np.uint64(n_pairs) * _GAMMA  # counter step j → j + 1, times γ
    for h in range(n_pairs):
        if not (pairs >> h) & 1:
            continue
        bit0 = np.uint64(1) << np.uint64(2 * h)
        # an odd bl leaves the last pair's second slot unused: its bit is 0
        bit1 = (np.uint64(1) << np.uint64(2 * h + 1)) if 2 * h + 1 < bl else np.uint64(0)
        cg = (base + np.uint64(l0 * n_pairs + h)) * _GAMMA  # (counter of line l0)·γ
        # unsigned bounds: numba's negative-index wraparound on a signed j (from l0, not
        # 0) kept this loop from vectorizing (10.8 against 2.3 ns per line of 401)
        for j in range(np.uint64(l0), np.uint64(l1)):
            z = _mix_gamma(cg)  # = _splitmix(base + j·n_pairs + h)
            cg += step
            tj = thr[j]
            # selects, not hit·bit: a 64-bit product per slot costs as much as a hash round
            masks[j] |= (bit0 if (z >> np.uint64(32)) < tj else zero) | (
                bit1 if (z & low) < tj else zero
            )


def seed_state(rng: np.random.Generator) -> UIntArray:
    """Fresh kernel generator state (:data:`STATE_WORDS` words, none zero) drawn from ``rng``."""
    return rng.integers(1, 2**63, size=STATE_WORDS, dtype=np.uint64)


@numba.njit(cache=True, nogil=True)
def standard_normals(n: int, s: UIntArray) -> FloatArray:  # pragma: no cover
    """``n`` standard normal draws from the kernel generator (for tests of the generator)."""
    out = np.empty(normal_capacity(n))
    _fill_normals(out, n, s)
    return out[:n]


@numba.njit(cache=True, nogil=True)
def single_normals(n: int, s: UIntArray) -> FloatArray:  # pragma: no cover
    """``n`` standard normals drawn one at a time (:func:`_normal`, the half-select path's
    generator), for tests of that generator."""
    out = np.empty(n)
    for i in range(n):
        out[i] = _normal(s)
    return out


@numba.njit(cache=True, nogil=True)
def bit_streams(p: FloatArray, bl: int, s: UIntArray) -> UIntArray:  # pragma: no cover
    """Packed bit streams for probabilities ``p`` (for tests of the stream generator)."""
    n = p.shape[0]
    out = np.empty(_padded(n), dtype=np.uint64)
    _streams(p, n, bl, out, np.empty(_padded(n), dtype=np.uint64), s)
    return out[:n]


@numba.njit(cache=True, nogil=True)
def popcount(words: UIntArray) -> UIntArray:  # pragma: no cover - compiled
    """Number of set bits of each word."""
    out = np.empty(words.shape[0], dtype=np.uint64)
    for i in range(words.shape[0]):
        out[i] = _popcount(words[i])
    return out
