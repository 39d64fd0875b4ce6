"""Compiled kernels of the behavioral RPU tile, each beside a plain reference implementation.

Fast path (numba, ``cache=True``, ``nogil=True``; fast-math flags only where an order-free
sum or maximum of checked-finite values lets a loop vectorize: ``_mvm``, ``_absmax``):

* :func:`read_batch` — a managed, noisy MVM of ``n`` vectors (noise management, DAC,
  output noise, bound, ADC, bound management) in one call;
* :func:`pulsed_update` — ``n`` sequential stochastic pulsed updates in one call: bit
  streams packed into uint64 words, per-slot lists of pulsing rows and columns, work
  proportional to the number of coincidences (half-select: to the pulsing lines);
* :func:`exact_update` — the expected update applied directly (floating-point preset).

Random numbers inside the kernels come from a counter-based SplitMix64 stream (bit
streams, and Gaussians in batches by a 256-layer ziggurat: read noise, c2c variation) and a
xoshiro256** generator (single Gaussians, the ziggurat's rare rejections) whose 5-word state
lives in an array owned by the tile, seeded from a ``numpy.random.Generator``: results are
bit-exact for a seed and resumable from a saved state.

Reference path (plain numpy, slow and obvious): :func:`reference_read` and
:func:`reference_update`; the latter applies every pulse slot of every phase in time order
over the whole array. Tests compare fast against reference statistically.

Update model (see docs/model-api.md): the update of one (x, δ) pair runs in four phases
``(σ, τ)`` = (+,+), (+,−), (−,+), (−,−). In phase (σ, τ) the columns j with sign(x_j) = σ
replay their bit streams at amplitude −a·V_S/2 and the rows i with sign(δ_i) = τ at
+a·V_S/2, where a = −σ·τ is the phase's update direction (the SGD sign of −δ·x). A device
whose row and column pulse in the same slot sees a·V_S and changes by a·dw; a device whose
row or column alone pulses sees a·V_S/2 and changes by a·k·dw. Within one phase every pulse
an element sees has the same direction.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba.core import types
from numba.extending import intrinsic

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
UIntArray = np.ndarray[Any, np.dtype[np.uint64]]

# io parameter vector layout (float64), shared by read_batch and reference_read
IO_PERFECT, IO_INP_BOUND, IO_INP_STEP, IO_NOISE, IO_OUT_BOUND, IO_OUT_STEP = 0, 1, 2, 3, 4, 5
IO_NM, IO_BM, IO_BM_MAX = 6, 7, 8
IO_LEN = 9

PHASES = ((1, 1), (1, -1), (-1, 1), (-1, -1))
"""Order of the four update phases (σ = sign of x, τ = sign of δ); direction a = −σ·τ."""


# --------------------------------------------------------------------------- random numbers


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
def _splitmix(c: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """SplitMix64 output for counter ``c`` (Steele, Lea & Flood 2014): a bijective mix of
    c·γ; consecutive counters give the SplitMix64 sequence."""
    z = c * _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


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
    for h in range(n_hash):
        r = _splitmix(base + np.uint64(h))
        u1, i1 = _candidate(r >> np.uint64(32))
        u2, i2 = _candidate(r & low)
        z[2 * h] = u1 * _ZIG_X[i1] if abs(u1) < _ZIG_R[i1] else np.nan
        z[2 * h + 1] = u2 * _ZIG_X[i2] if abs(u2) < _ZIG_R[i2] else np.nan
    s[4] = base + np.uint64(n_hash)
    for b0 in range(0, n_cap, NORMAL_BLOCK):
        bad = 0
        for k in range(b0, b0 + NORMAL_BLOCK):
            bad |= int(z[k] != z[k])
        if bad:
            for k in range(b0, b0 + NORMAL_BLOCK):
                if z[k] != z[k]:
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
def _streams(
    p: FloatArray, n: int, bl: int, masks: UIntArray, thr: UIntArray, s: UIntArray
) -> None:  # pragma: no cover
    """``bl`` Bernoulli(p[j]) bits for each line j < n, packed into ``masks[j]`` (bit t = slot t).

    Counter-based: slot pair h (slots 2h and 2h+1) of line j takes the SplitMix64 output
    (Steele, Lea & Flood 2014) of counter s[4] + j·⌈bl/2⌉ + h; its top 32 bits decide slot
    2h and its low 32 bits slot 2h+1, each compared with floor(p·2³²), so p is resolved to
    2⁻³² and p ≥ 1 always fires. Two slots per hash halve the cost (the two halves of a
    SplitMix64 output are independent uniform words). No draw depends on another, so the
    loop over lines vectorizes; s[4] then advances by n·⌈bl/2⌉. ``masks`` and the scratch
    ``thr`` hold at least ``_padded(n)`` words: the loop runs over whole blocks of
    :data:`STREAM_PAD` lines, the padding lines with threshold 0 (no bit ever set), which
    leaves the draws of lines below ``n`` as they are.
    """
    n_blk = _padded(n)
    for j in range(n_blk):
        masks[j] = 0
        thr[j] = 0
    for j in range(n):
        pj = p[j]
        thr[j] = np.uint64(4294967296) if pj >= 1.0 else np.uint64(max(pj, 0.0) * 4294967296.0)
    base = s[4]
    n_pairs = (bl + 1) // 2
    low = np.uint64(0xFFFFFFFF)
    for h in range(n_pairs):
        bit0 = np.uint64(1) << np.uint64(2 * h)
        # an odd bl leaves the last pair's second slot unused: its bit is 0
        bit1 = (np.uint64(1) << np.uint64(2 * h + 1)) if 2 * h + 1 < bl else np.uint64(0)
        for j in range(n_blk):
            z = _splitmix(base + np.uint64(j * n_pairs + h))
            tj = thr[j]
            hit0 = np.uint64((z >> np.uint64(32)) < tj)
            hit1 = np.uint64((z & low) < tj)
            masks[j] |= (hit0 * bit0) | (hit1 * bit1)
    s[4] = base + np.uint64(n * n_pairs)


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


# --------------------------------------------------------------------------- reads


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _all_finite(x: FloatArray) -> bool:  # pragma: no cover - compiled
    """True if no element of the 2-D array ``x`` is NaN or infinite.

    Only ``reassoc``: the sum of the x·0 terms may be taken in any order (so it
    vectorizes), and a NaN term makes any order's sum NaN; no flag assumes NaN away."""
    acc = 0.0
    if x.flags.c_contiguous:  # one flat loop (short rows vectorize badly)
        flat = x.reshape(x.size)
        for j in range(flat.shape[0]):
            acc += flat[j] * 0.0
        return acc == 0.0
    for k in range(x.shape[0]):
        for j in range(x.shape[1]):
            acc += x[k, j] * 0.0  # NaN for NaN or ±inf, else 0
    return acc == 0.0


@numba.njit(cache=True, nogil=True)
def all_finite(x: FloatArray) -> bool:  # pragma: no cover - compiled
    """True if no element of the 2-D array ``x`` is NaN or infinite (callable from Python)."""
    return _all_finite(x)


@numba.njit(cache=True, nogil=True, inline="always")
def _dac_row(
    x: FloatArray, k: int, xq: FloatArray, bound: float, step: float, divisor: float
) -> None:  # pragma: no cover - compiled
    """DAC of row k: xq[k] = quantize(clip(x[k] / divisor, ±bound)) (step 0: no quantization).

    Row-indexed rather than on row views: a view per row of a conv layer's hundreds of
    short rows cost more than the row's arithmetic."""
    for j in range(x.shape[1]):
        v = min(max(x[k, j] / divisor, -bound), bound)
        if step > 0.0:
            v = np.rint(v / step) * step
        xq[k, j] = v


@numba.njit(cache=True, nogil=True, inline="always")
def _adc_row(
    raw: FloatArray,
    k: int,
    z: FloatArray,
    z0: int,
    y: FloatArray,
    io: FloatArray,
    mult: float,
) -> bool:  # pragma: no cover - compiled
    """Output noise σ·z[z0 + i] (``z`` standard normals), bound and ADC on raw output row k;
    y[k] = the result × ``mult`` (undoing the input scaling). True if the row hit the
    bound. No draw inside, so the loop vectorizes."""
    sigma = io[IO_NOISE]
    bound = io[IO_OUT_BOUND]
    step = io[IO_OUT_STEP]
    hit = 0
    for i in range(raw.shape[1]):
        v = float(raw[k, i])
        if sigma > 0.0:
            v += sigma * z[z0 + i]
        if bound > 0.0:
            hit |= int(v >= bound) | int(v <= -bound)
            v = min(max(v, -bound), bound)
            if step > 0.0:
                v = np.rint(v / step) * step
        y[k, i] = v * mult
    return hit != 0


_SUM_FLAGS = {"reassoc", "contract"}
"""The only fast-math flags used, and only by :func:`_mvm`: a dot product's terms may be
summed in any order with fused multiply-adds (as every BLAS does), so the loops vectorize;
no flag that assumes away NaN or infinity."""


@numba.njit(cache=True, nogil=True, fastmath=_SUM_FLAGS)
def _mvm_dots(w: FloatArray, xq: FloatArray, out: FloatArray) -> None:  # pragma: no cover
    """out[k, i] = w[i] · xq[k] for C-contiguous w (r, c): dot products in register
    blocks of 4 vectors × 4 weight rows (16 accumulators: each loaded weight and input
    serves four products, where one dot product at a time loads two values per
    multiply-add and is load-bound), then 1 vector × 4 rows, then single dots. Paper B's
    conv2 read (64 × 401 through 32 × 401, float32): 34 → 13 µs."""
    r, c = w.shape
    n = xq.shape[0]
    k = 0
    while k + 4 <= n:
        i = 0
        while i + 4 <= r:
            x0, x1, x2, x3 = xq[k, 0], xq[k + 1, 0], xq[k + 2, 0], xq[k + 3, 0]
            w0, w1, w2, w3 = w[i, 0], w[i + 1, 0], w[i + 2, 0], w[i + 3, 0]
            a00, a01, a02, a03 = w0 * x0, w1 * x0, w2 * x0, w3 * x0
            a10, a11, a12, a13 = w0 * x1, w1 * x1, w2 * x1, w3 * x1
            a20, a21, a22, a23 = w0 * x2, w1 * x2, w2 * x2, w3 * x2
            a30, a31, a32, a33 = w0 * x3, w1 * x3, w2 * x3, w3 * x3
            for j in range(1, c):
                x0, x1, x2, x3 = xq[k, j], xq[k + 1, j], xq[k + 2, j], xq[k + 3, j]
                w0, w1, w2, w3 = w[i, j], w[i + 1, j], w[i + 2, j], w[i + 3, j]
                a00 += w0 * x0
                a01 += w1 * x0
                a02 += w2 * x0
                a03 += w3 * x0
                a10 += w0 * x1
                a11 += w1 * x1
                a12 += w2 * x1
                a13 += w3 * x1
                a20 += w0 * x2
                a21 += w1 * x2
                a22 += w2 * x2
                a23 += w3 * x2
                a30 += w0 * x3
                a31 += w1 * x3
                a32 += w2 * x3
                a33 += w3 * x3
            out[k, i], out[k, i + 1], out[k, i + 2], out[k, i + 3] = a00, a01, a02, a03
            out[k + 1, i], out[k + 1, i + 1], out[k + 1, i + 2], out[k + 1, i + 3] = (
                a10, a11, a12, a13,
            )  # fmt: skip
            out[k + 2, i], out[k + 2, i + 1], out[k + 2, i + 2], out[k + 2, i + 3] = (
                a20, a21, a22, a23,
            )  # fmt: skip
            out[k + 3, i], out[k + 3, i + 1], out[k + 3, i + 2], out[k + 3, i + 3] = (
                a30, a31, a32, a33,
            )  # fmt: skip
            i += 4
        for kk in range(k, k + 4):
            for i2 in range(i, r):
                acc = w[i2, 0] * xq[kk, 0]
                for j in range(1, c):
                    acc += w[i2, j] * xq[kk, j]
                out[kk, i2] = acc
        k += 4
    for kk in range(k, n):
        i = 0
        while i + 4 <= r:
            x0 = xq[kk, 0]
            a0, a1, a2, a3 = w[i, 0] * x0, w[i + 1, 0] * x0, w[i + 2, 0] * x0, w[i + 3, 0] * x0
            for j in range(1, c):
                x0 = xq[kk, j]
                a0 += w[i, j] * x0
                a1 += w[i + 1, j] * x0
                a2 += w[i + 2, j] * x0
                a3 += w[i + 3, j] * x0
            out[kk, i], out[kk, i + 1], out[kk, i + 2], out[kk, i + 3] = a0, a1, a2, a3
            i += 4
        for i2 in range(i, r):
            acc = w[i2, 0] * xq[kk, 0]
            for j in range(1, c):
                acc += w[i2, j] * xq[kk, j]
            out[kk, i2] = acc


@numba.njit(cache=True, nogil=True, fastmath=_SUM_FLAGS)
def _mvm(w: FloatArray, xq: FloatArray, out: FloatArray) -> None:  # pragma: no cover
    """out[k] = w · xq[k] for each row k; w (r, c) C- or F-contiguous (the transposed view
    of the weights for the backward read), xq (n, c) and out (n, r) of w's dtype.

    Plain loops rather than BLAS: as fast as single-threaded BLAS at these sizes, and never
    multi-threaded, so batch-1 training cannot be slowed by BLAS threads fighting other
    processes for the cores (OpenBLAS threading made small conv reads 100x slower on a
    busy 2-core machine)."""
    r, c = w.shape
    n = xq.shape[0]
    if w.flags.c_contiguous:
        _mvm_dots(w, xq, out)
    else:
        # C-contiguous (c, r): out[k, b] = Σ_a m[a, b]·xq[k, a], one row of m per nonzero
        # input (a zero input adds exactly nothing): sparse inputs (MNIST pixels, conv1
        # patches, max-pooled error maps) cost only their nonzero entries
        m = w.T
        for k in range(n):
            out[k, :] = 0.0
            for a in range(c):
                xa = xq[k, a]
                if xa != 0.0:
                    for b2 in range(r):
                        out[k, b2] += m[a, b2] * xa


@numba.njit(cache=True, nogil=True, fastmath={"nnan", "ninf", "reassoc", "nsz"})
def _absmax(a: FloatArray, out: FloatArray) -> None:  # pragma: no cover - compiled
    """out[k] = max |a[k, :]| (0 for an empty row) for every row of a finite 2-D array
    (its callers check that first, so the no-NaN/inf flags hold; a maximum is exact in
    any order, so the loop vectorizes). One call per batch, not per row."""
    for k in range(a.shape[0]):
        m = 0.0
        for j in range(a.shape[1]):
            m = max(m, abs(a[k, j]))
        out[k] = m


@numba.njit(cache=True, nogil=True)
def read_batch(
    w: FloatArray, x: FloatArray, y: FloatArray, io: FloatArray, s: UIntArray
) -> int:  # pragma: no cover - compiled
    """Managed analog read of each row of ``x`` (n, in) through ``w`` (out, in) into ``y``.

    ``w`` (C- or F-contiguous: the transposed view for the backward read) may be float32
    (reads whose noise floor is far above float32 rounding); ``x`` and ``y`` are float64.
    ``io`` is the parameter vector laid out by the ``IO_*`` indices. Every vector gets its
    own noise and management.
    Returns 1 (and reads nothing) if ``x`` holds a NaN or infinity, else 0.
    """
    n = x.shape[0]
    if not _all_finite(x):
        return 1
    xq = np.empty(x.shape, dtype=w.dtype)
    raw = np.empty(y.shape, dtype=w.dtype)
    if io[IO_PERFECT] != 0.0:
        xq[:, :] = x
        _mvm(w, xq, raw)
        y[:, :] = raw
        return 0
    nm = io[IO_NM] != 0.0
    bm = io[IO_BM] != 0.0
    bm_max = io[IO_BM_MAX]
    n_out = y.shape[1]
    # every vector's noise drawn in one batch up front (all-zero vectors' draws unused),
    # so the noise is the generator's sequence row after row
    noisy = io[IO_NOISE] > 0.0
    z = np.empty(normal_capacity(n * n_out) if noisy else 0)
    z_again = z[:0]  # a bound-management re-read's noise: allocated on the first one
    if noisy:
        _fill_normals(z, n * n_out, s)
    scale = np.ones(n)
    if nm:
        _absmax(x, scale)
    in_bound = io[IO_INP_BOUND]
    in_step = io[IO_INP_STEP]
    for k in range(n):
        if scale[k] > 0.0:
            _dac_row(x, k, xq, in_bound, in_step, scale[k])
        else:
            for j in range(x.shape[1]):
                xq[k, j] = 0.0
    _mvm(w, xq, raw)
    for k in range(n):
        sk = scale[k]
        if sk == 0.0:  # noise management of an all-zero vector: nothing to read
            for i in range(n_out):
                y[k, i] = 0.0
            continue
        hit = _adc_row(raw, k, z, k * n_out, y, io, sk)
        factor = 1.0
        while bm and hit and factor < bm_max:
            factor *= 2.0
            _dac_row(x, k, xq, in_bound, in_step, sk * factor)
            _mvm(w, xq[k : k + 1], raw[k : k + 1])
            if noisy:  # a fresh read: fresh noise
                if z_again.shape[0] == 0:
                    z_again = np.empty(normal_capacity(n_out))
                _fill_normals(z_again, n_out, s)
            hit = _adc_row(raw, k, z_again, 0, y, io, sk * factor)
    return 0


def reference_read(
    w: FloatArray, x: FloatArray, io: FloatArray, rng: np.random.Generator
) -> FloatArray:
    """Plain numpy reference of :func:`read_batch` for one vector ``x`` (in,)."""
    if io[IO_PERFECT]:
        return np.asarray(w @ x, dtype=np.float64)
    scale = float(np.max(np.abs(x))) if io[IO_NM] else 1.0
    if scale == 0.0:
        return np.zeros(w.shape[0])
    factor = 1.0
    while True:
        xq = np.clip(x / (scale * factor), -io[IO_INP_BOUND], io[IO_INP_BOUND])
        if io[IO_INP_STEP] > 0:
            xq = np.rint(xq / io[IO_INP_STEP]) * io[IO_INP_STEP]
        y = w @ xq
        if io[IO_NOISE] > 0:
            y = y + io[IO_NOISE] * rng.standard_normal(y.shape[0])
        hit = False
        if io[IO_OUT_BOUND] > 0:
            hit = bool(np.any(np.abs(y) >= io[IO_OUT_BOUND]))
            y = np.clip(y, -io[IO_OUT_BOUND], io[IO_OUT_BOUND])
            if io[IO_OUT_STEP] > 0:
                y = np.rint(y / io[IO_OUT_STEP]) * io[IO_OUT_STEP]
        if io[IO_BM] and hit and factor < io[IO_BM_MAX]:
            factor *= 2.0
            continue
        return np.asarray(y * scale * factor, dtype=np.float64)


# --------------------------------------------------------------------------- updates

# device parameter vector layout (float64), shared by pulsed_update and reference_update
DP_CTOC, DP_K, DP_SOFT, DP_BOUNDED, DP_USE_ATT = 0, 1, 2, 3, 4
DP_LEN = 5

# per-device parameter array layout: par[dv, i, j, PAR_*] (one cache line per device)
PAR_UP, PAR_DOWN, PAR_WMAX, PAR_WMIN = 0, 1, 2, 3
PAR_LEN = 4

_SQRT_TABLE = np.sqrt(np.arange(4 * 64 + 1, dtype=np.float64))


@numba.njit(cache=True, nogil=True, inline="always")
def _soft_step(v: float, dw: float, up: bool, hi: float, lo: float) -> float:  # pragma: no cover
    """One soft-bounds pulse: up steps scale by (1 − w/w_max), down by (1 − w/w_min)."""
    if up:
        v += dw * (1.0 - v / hi) if hi > 0.0 else 0.0
    else:
        v -= dw * (1.0 - v / lo) if lo < 0.0 else 0.0
    return min(max(v, lo), hi)


@numba.njit(cache=True, nogil=True, inline="always")
def _half_select_element(
    v: float,
    rm: np.uint64,
    cm: np.uint64,
    sd: int,
    sx: int,
    up: float,
    down: float,
    hi: float,
    lo: float,
    k: float,
    ctoc: float,
    soft: bool,
    bounded: bool,
    s: UIntArray,
) -> float:  # pragma: no cover - compiled
    """New weight of one device after all pulses it sees in one update (half-select model).

    Phases in order (σ, τ) = (+,+), (+,−), (−,+), (−,−), direction a = −σ·τ; the row takes
    part when sign(δ) = τ, the column when sign(x) = σ. Coincidences change it by a·dw, lone
    pulses by a·k·dw. Hard bounds: the same-direction steps of one phase are summed into
    one Gaussian draw and clipped once (exact in distribution, except that a single step
    made negative by c2c at a bound would leave the bound in the reference). Soft bounds:
    pulse by pulse, full pulses first.
    """
    for ph in range(4):
        sig = 1 if ph < 2 else -1
        tau = 1 if ph % 2 == 0 else -1
        row_in = rm != 0 and sd == tau
        col_in = cm != 0 and sx == sig
        if not (row_in or col_in):
            continue
        if row_in and col_in:
            n_full = int(_popcount(rm & cm))
            n_half = int(_popcount(rm ^ cm))
        elif row_in:
            n_full = 0
            n_half = int(_popcount(rm))
        else:
            n_full = 0
            n_half = int(_popcount(cm))
        a_up = sig * tau < 0
        step = up if a_up else down
        if soft:
            for idx in range(n_full + n_half):
                dw = step if idx < n_full else step * k
                if ctoc > 0.0:
                    dw *= 1.0 + ctoc * _normal(s)
                v = _soft_step(v, dw, a_up, hi, lo)
            continue
        delta = step * (n_full + k * n_half)
        if ctoc > 0.0:
            delta += step * ctoc * np.sqrt(n_full + k * k * n_half) * _normal(s)
        v = v + delta if a_up else v - delta
        if bounded:
            v = min(max(v, lo), hi)
    return v


@numba.njit(cache=True, nogil=True)
def _half_select_row(
    dv: int,
    i: int,
    rm: np.uint64,
    tau_i: int,
    cmask: UIntArray,
    sx: Any,
    acols: Any,
    n_ac: int,
    k: float,
    ctoc: float,
    bounded: bool,
    w: FloatArray,
    par: FloatArray,
    wread: Any,
    att: FloatArray,
    use_att: bool,
    zrow: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """One update's half-select pulses on pulsing row i (hard bounds), phase by phase, as
    :func:`_half_select_element` applies them per device; returns the coincidences.

    The row takes part in the two phases with τ = sign(δ_i): there every device of the row
    sees pulses (coincidences where its column also takes part, lone row pulses elsewhere),
    so those phases run over the whole row in one vectorized loop with a batch of c2c
    normals (:func:`_fill_normals`). In the two other phases only the pulsing columns with
    σ = sign(x_j) act (lone column pulses), one by one. Each device thus gets its phases in
    the order (+,+), (+,−), (−,+), (−,−), each summed into one step and clipped, exactly as
    the per-device path does; only the random numbers differ.
    """
    n_in = cmask.shape[0]
    n_dev = w.shape[0]
    single = n_dev == 1 and not use_att
    k2 = k * k
    pc_rm = int(_popcount(rm))
    n_coinc = 0
    for ph in range(4):
        sig = 1 if ph < 2 else -1
        tau = 1 if ph % 2 == 0 else -1
        a_up = sig * tau < 0
        pidx = PAR_UP if a_up else PAR_DOWN
        sgn = 1.0 if a_up else -1.0
        if tau == tau_i:  # the row pulses: every device of the row, vectorized
            if ctoc > 0.0:
                _fill_normals(zrow, n_in, s)
            for j in range(n_in):
                cmj = cmask[j]
                colin = int(cmj != 0) & int(sx[j] == sig)
                nf = int(_popcount(rm & cmj)) * colin
                nh = int(_popcount(rm ^ cmj)) * colin + pc_rm * (1 - colin)
                n_coinc += nf
                step = par[dv, i, j, pidx]
                delta = step * (nf + k * nh)
                if ctoc > 0.0:
                    delta += step * ctoc * np.sqrt(nf + k2 * nh) * zrow[j]
                v = w[dv, i, j] + sgn * delta
                if bounded:
                    v = min(max(v, par[dv, i, j, PAR_WMIN]), par[dv, i, j, PAR_WMAX])
                w[dv, i, j] = v
                if single:
                    wread[i, j] = v
                else:
                    total = 0.0
                    for dd in range(n_dev):
                        total += w[dd, i, j]
                    wread[i, j] = total * att[i, j] if use_att else total
            continue
        for jj in range(n_ac):  # the row is silent: lone pulses of the phase's columns
            j = acols[jj]
            if sx[j] != sig:
                continue
            nh = int(_popcount(cmask[j]))
            step = par[dv, i, j, pidx]
            delta = step * k * nh
            if ctoc > 0.0:
                delta += step * ctoc * np.sqrt(k2 * nh) * _normal(s)
            v = w[dv, i, j] + sgn * delta
            if bounded:
                v = min(max(v, par[dv, i, j, PAR_WMIN]), par[dv, i, j, PAR_WMAX])
            w[dv, i, j] = v
            if single:
                wread[i, j] = v
            else:
                total = 0.0
                for dd in range(n_dev):
                    total += w[dd, i, j]
                wread[i, j] = total * att[i, j] if use_att else total
    return n_coinc


_C2C_BATCH = 512
"""Cycle-to-cycle normals of coincidences are drawn this many at a time (a multiple of
:data:`NORMAL_BLOCK`); a call's unused remainder is dropped."""


@numba.njit(cache=True, nogil=True, inline="always")
def _sign(v: float) -> int:  # pragma: no cover - compiled
    """−1, 0 or +1, branch-free (signs of activations defeat the branch predictor)."""
    return int(v > 0.0) - int(v < 0.0)


@numba.njit(cache=True, nogil=True)
def _batch_streams(
    v: FloatArray,
    k0: int,
    k1: int,
    scale: FloatArray,
    bl: int,
    s: UIntArray,
    pk: FloatArray,
    pos: Any,
    packed: UIntArray,
    thr: UIntArray,
    out: UIntArray,
) -> None:  # pragma: no cover - compiled
    """Bit streams for rows k0 ≤ k < k1 of ``v`` (n, m) into ``out`` (index (k − k0)·m + j)
    with probabilities min(scale[k]·|v[k, j]|, 1), drawn in one :func:`_streams` call:
    over the nonzero elements only when most are zero (image patches, max-pooled errors;
    zero elements, and rows with scale 0, then get no draws), else over all of them (zero
    elements get probability 0: no pulses). ``pk``, ``pos`` (int64), ``packed``, ``thr``
    and ``out`` hold at least ``_padded((k1 − k0)·m)`` entries."""
    m = v.shape[1]
    n_nz = 0
    for k in range(k0, k1):
        for j in range(m):
            n_nz += int(v[k, j] != 0.0)
    if 2 * n_nz > (k1 - k0) * m:  # mostly nonzero: draw for every element, no compaction
        for k in range(k0, k1):
            sc = scale[k]
            for j in range(m):
                pk[(k - k0) * m + j] = min(sc * abs(v[k, j]), 1.0)
        _streams(pk, (k1 - k0) * m, bl, out, thr, s)
        return
    cnt = 0
    for k in range(k0, k1):
        sc = scale[k]
        if sc == 0.0:
            continue
        for j in range(m):  # branch-free compaction of the nonzero elements
            val = v[k, j]
            pos[cnt] = (k - k0) * m + j
            pk[cnt] = min(sc * abs(val), 1.0)
            cnt += int(val != 0.0)
    _streams(pk, cnt, bl, packed, thr, s)
    for t in range((k1 - k0) * m):
        out[t] = 0
    for t in range(cnt):
        out[pos[t]] = packed[t]


_DIRECT_PAIRS = 64
"""With at most this many (pulsing row, pulsing column) pairs in a sample, each pair is
tested directly; above it, slot lists (conv2's hundreds of pulsing columns)."""

_BATCH_LINES = 4096
""":func:`_pulsed_update_batch` draws the streams of as many samples at a time as have
about this many input lines (at least one sample): its scratch stays in the L1/L2 caches
and in malloc's heap (buffers above 128 KiB are mapped afresh by every call, and their
page faults cost more than the update; measured 350 vs 65 µs for conv2's 64 patches)."""


@numba.njit(cache=True, nogil=True)
def _pulsed_update_batch(
    x: FloatArray,
    d: FloatArray,
    lr: float,
    bl: int,
    um: bool,
    dw_min: float,
    w: FloatArray,
    par: FloatArray,
    dp: FloatArray,
    wread: FloatArray,
    att: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """:func:`pulsed_update` of n > 1 sequential updates without half-select (k = 0), as
    a convolution layer does one per patch: the same model, organized for many short
    updates.

    The bit streams depend on (x, δ) only, never on the weights, so every sample's streams
    are drawn first, a chunk of samples at a time (:data:`_BATCH_LINES`), in one
    :func:`_batch_streams` call for the columns and one per device for the rows. Then
    sample by sample, in order: the pulsing columns and the rows that meet one of them;
    with few such (row, column) pairs (≤ :data:`_DIRECT_PAIRS`) each row is ANDed with
    each pulsing column, else the column lists of the slots those rows use are built
    (once per sample) and each row walks its slots (as :func:`pulsed_update` does).
    Either way every device gets its pulses of one update one after the other, and its
    updates in sample order: the order that matters for k = 0 (devices do not interact;
    within one update a device's pulses share one direction). Returns the number of
    coincidences.

    Measured on paper B's conv1 (576 patches of 26 inputs, 16 kernels): 129 → 92 µs per
    image against :func:`pulsed_update`'s sample-by-sample streams; conv2 (64 × 401, 32)
    about the same (173 → 168 µs).
    """
    n, n_in = x.shape
    n_dev, n_out, _ = w.shape
    ctoc = dp[DP_CTOC]
    soft = dp[DP_SOFT] != 0.0
    bounded = dp[DP_BOUNDED] != 0.0
    use_att = dp[DP_USE_ATT] != 0.0
    single = n_dev == 1 and not use_att  # wread mirrors w[0] element by element
    c = np.sqrt(lr / (bl * dw_min))
    xmaxs = np.empty(n)
    dmaxs = np.empty(n)
    _absmax(x, xmaxs)
    _absmax(d, dmaxs)
    cxs = np.zeros(n)  # 0: the sample changes nothing
    cds = np.zeros(n)
    for k in range(n):
        if xmaxs[k] > 0.0 and dmaxs[k] > 0.0 and lr > 0.0:
            m = np.sqrt(dmaxs[k] / xmaxs[k]) if um else 1.0
            cxs[k] = c * m
            cds[k] = c / m
    chunk = max(1, _BATCH_LINES // max(n_in, n_out))
    cap = _padded(chunk * max(n_in, n_out))
    pk = np.empty(cap)
    pos = np.empty(cap, dtype=np.int64)
    packed = np.empty(cap, dtype=np.uint64)
    thr = np.empty(cap, dtype=np.uint64)
    cm = np.empty(cap, dtype=np.uint64)
    rms = np.empty((n_dev, cap), dtype=np.uint64)
    acols = np.empty(n_in, dtype=np.int64)
    acm = np.empty(n_in, dtype=np.uint64)
    arows = np.empty(n_out, dtype=np.int64)
    arm = np.empty(n_out, dtype=np.uint64)
    slot_cols = np.empty((bl, n_in), dtype=np.int64)
    slot_n = np.zeros(bl, dtype=np.int64)
    zbuf = np.empty(_C2C_BATCH)
    zpos = _C2C_BATCH
    n_coinc = 0
    for k0 in range(0, n, chunk):
        k1 = min(k0 + chunk, n)
        _batch_streams(x, k0, k1, cxs, bl, s, pk, pos, packed, thr, cm)
        for dv in range(n_dev):
            _batch_streams(d, k0, k1, cds, bl, s, pk, pos, packed, thr, rms[dv])
        for k in range(k0, k1):
            if cxs[k] == 0.0:
                continue
            kc = k - k0
            n_ac = 0
            col_any = np.uint64(0)
            for j in range(n_in):  # branch-free compaction of the pulsing columns
                mj = cm[kc * n_in + j]
                acols[n_ac] = j
                acm[n_ac] = mj
                n_ac += int(mj != 0)
                col_any |= mj
            if col_any == 0:
                continue
            built = np.uint64(0)  # slots whose column list is built for this sample
            for dv in range(n_dev):
                n_ar = 0
                for i in range(n_out):
                    rm = rms[dv, kc * n_out + i] & col_any  # a row pulse without columns: no-op
                    arows[n_ar] = i
                    arm[n_ar] = rm
                    n_ar += int(rm != 0)
                if n_ar * n_ac <= _DIRECT_PAIRS:
                    for ii in range(n_ar):
                        i = arows[ii]
                        rm = arm[ii]
                        a_row = -_sign(d[k, i])  # direction a = −sign(δ_i)·sign(x_j)
                        for jj in range(n_ac):
                            both = rm & acm[jj]
                            if both != 0:
                                j = acols[jj]
                                sg = a_row * _sign(x[k, j])
                                n_p = int(_popcount(both))
                                n_coinc += n_p
                                # --- n_p pulses on one device (the block is repeated
                                # below, inline: a helper call costs more than a pulse)
                                dw0 = par[dv, i, j, (1 - sg) >> 1]  # PAR_UP 0, PAR_DOWN 1
                                v = w[dv, i, j]
                                for _ in range(n_p):
                                    dw = dw0
                                    if ctoc > 0.0:
                                        if zpos == _C2C_BATCH:
                                            _fill_normals(zbuf, _C2C_BATCH, s)
                                            zpos = 0
                                        dw *= 1.0 + ctoc * zbuf[zpos]
                                        zpos += 1
                                    if soft:
                                        v = _soft_step(
                                            v, dw, sg > 0, par[dv, i, j, PAR_WMAX],
                                            par[dv, i, j, PAR_WMIN],
                                        )  # fmt: skip
                                    else:
                                        v += sg * dw
                                        if bounded:
                                            v = min(
                                                max(v, par[dv, i, j, PAR_WMIN]),
                                                par[dv, i, j, PAR_WMAX],
                                            )
                                w[dv, i, j] = v
                                if single:
                                    wread[i, j] = v
                                else:
                                    total = 0.0
                                    for dd in range(n_dev):
                                        total += w[dd, i, j]
                                    wread[i, j] = total * att[i, j] if use_att else total
                    continue
                need = np.uint64(0)  # slots some pulsing row of this device meets
                for ii in range(n_ar):
                    need |= arm[ii]
                missing = need & ~built
                built |= missing
                while missing != 0:  # slot t's column list, branch-free, in column order
                    t = _ctz(missing)
                    missing &= missing - np.uint64(1)
                    n_t = 0
                    for jj in range(n_ac):
                        slot_cols[t, n_t] = acols[jj]
                        n_t += int((acm[jj] >> np.uint64(t)) & np.uint64(1))
                    slot_n[t] = n_t
                for ii in range(n_ar):
                    i = arows[ii]
                    bits = arm[ii]
                    a_row = -_sign(d[k, i])
                    while bits != 0:
                        t = _ctz(bits)
                        bits &= bits - np.uint64(1)
                        n_coinc += slot_n[t]
                        for jj in range(slot_n[t]):
                            j = slot_cols[t, jj]
                            sg = a_row * _sign(x[k, j])
                            n_p = 1
                            # --- the same pulse block as above (kept inline: hot loop)
                            dw0 = par[dv, i, j, (1 - sg) >> 1]  # PAR_UP = 0, PAR_DOWN = 1
                            v = w[dv, i, j]
                            for _ in range(n_p):
                                dw = dw0
                                if ctoc > 0.0:
                                    if zpos == _C2C_BATCH:
                                        _fill_normals(zbuf, _C2C_BATCH, s)
                                        zpos = 0
                                    dw *= 1.0 + ctoc * zbuf[zpos]
                                    zpos += 1
                                if soft:
                                    v = _soft_step(
                                        v, dw, sg > 0, par[dv, i, j, PAR_WMAX],
                                        par[dv, i, j, PAR_WMIN],
                                    )  # fmt: skip
                                else:
                                    v += sg * dw
                                    if bounded:
                                        v = min(
                                            max(v, par[dv, i, j, PAR_WMIN]), par[dv, i, j, PAR_WMAX]
                                        )
                            w[dv, i, j] = v
                            if single:
                                wread[i, j] = v
                            else:
                                total = 0.0
                                for dd in range(n_dev):
                                    total += w[dd, i, j]
                                wread[i, j] = total * att[i, j] if use_att else total
    return n_coinc


@numba.njit(cache=True, nogil=True)
def pulsed_update(
    x: FloatArray,
    d: FloatArray,
    lr: float,
    bl: int,
    um: bool,
    dw_min: float,
    w: FloatArray,
    par: FloatArray,
    dp: FloatArray,
    wread: FloatArray,
    att: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """``n`` sequential stochastic updates W ← W − lr·δᵀx (in expectation), in place.

    ``x`` (n, in), ``d`` (n, out); device weights ``w`` (n_dev, out, in), device parameters
    ``par`` (n_dev, out, in, PAR_LEN); ``wread`` (out, in) is refreshed for every touched
    element. Rows are replicated per device (each device of a weight has its own row
    streams), column streams are shared. Returns the number of full coincidences, or −1
    (changing nothing) if ``x`` or ``d`` holds a NaN or infinity.
    """
    if not (_all_finite(x) and _all_finite(d)):
        return -1
    if x.shape[0] > 1 and dp[DP_K] == 0.0:
        return _pulsed_update_batch(x, d, lr, bl, um, dw_min, w, par, dp, wread, att, s)
    n_dev, n_out, n_in = w.shape
    c = np.sqrt(lr / (bl * dw_min))
    k_on = dp[DP_K] != 0.0
    soft = dp[DP_SOFT] != 0.0
    cmask = np.zeros(n_in, dtype=np.uint64)
    rmask = np.zeros(_padded(n_out), dtype=np.uint64)
    acols = np.empty(n_in, dtype=np.int64)
    acm = np.empty(n_in, dtype=np.uint64)
    nz = np.empty(n_in, dtype=np.int64)
    pbuf = np.empty(n_in)
    qbuf = np.empty(n_out)
    mbuf = np.empty(_padded(n_in), dtype=np.uint64)
    thr = np.empty(_padded(max(n_in, n_out)), dtype=np.uint64)
    slot_cols = np.empty((bl, n_in), dtype=np.int64)
    slot_n = np.zeros(bl, dtype=np.int64)
    sx = np.zeros(n_in, dtype=np.int64)
    sd = np.zeros(n_out, dtype=np.int64)
    ctoc = dp[DP_CTOC]
    bounded = dp[DP_BOUNDED] != 0.0
    use_att = dp[DP_USE_ATT] != 0.0
    single = n_dev == 1 and not use_att  # wread mirrors w[0] element by element
    k_val = dp[DP_K]
    all_cols = np.arange(n_in)
    zrow = np.empty(normal_capacity(n_in) if k_on else 0)  # c2c normals of a half-select row
    zbuf = np.empty(_C2C_BATCH)  # c2c normals of coincidences, consumed in order
    zpos = _C2C_BATCH
    n_coinc = 0
    xmaxs = np.empty(x.shape[0])
    dmaxs = np.empty(x.shape[0])
    _absmax(x, xmaxs)
    _absmax(d, dmaxs)
    for smp in range(x.shape[0]):
        xmax = xmaxs[smp]
        dmax = dmaxs[smp]
        if xmax == 0.0 or dmax == 0.0 or lr == 0.0:
            continue
        m = np.sqrt(dmax / xmax) if um else 1.0
        cx = c * m
        cd = c / m
        # columns: streams for the nonzero inputs only, then the list of active columns
        # branch-free: the signs of activations are unpredictable to the branch predictor
        n_nz = 0
        for j in range(n_in):
            v = x[smp, j]
            sx[j] = int(v > 0.0) - int(v < 0.0)
            cmask[j] = 0
            nz[n_nz] = j  # kept only if v != 0 (the next write lands on the same slot)
            pbuf[n_nz] = min(cx * abs(v), 1.0)
            n_nz += int(v != 0.0)
        _streams(pbuf, n_nz, bl, mbuf, thr, s)
        n_ac = 0
        col_any = np.uint64(0)  # slots in which at least one column pulses
        for jj in range(n_nz):  # branch-free compaction of the pulsing columns
            mj = mbuf[jj]
            j = nz[jj]
            cmask[j] = mj
            acols[n_ac] = j
            acm[n_ac] = mj
            n_ac += int(mj != 0)
            col_any |= mj
        for t in range(bl):  # slot t's column list, branch-free, in column order
            n_t = 0
            if (col_any >> np.uint64(t)) & np.uint64(1):
                for jj in range(n_ac):
                    slot_cols[t, n_t] = acols[jj]
                    n_t += int((acm[jj] >> np.uint64(t)) & np.uint64(1))
            slot_n[t] = n_t
        for i in range(n_out):
            v = d[smp, i]
            sd[i] = int(v > 0.0) - int(v < 0.0)
        for dv in range(n_dev):
            for i in range(n_out):
                qbuf[i] = min(cd * abs(d[smp, i]), 1.0)
            _streams(qbuf, n_out, bl, rmask, thr, s)
            if not k_on:
                # Only coincidences change devices: in slot t a pulsing row meets every
                # column of slot t's column list. Row by row (one row's devices are
                # contiguous in memory), and within a row slot by slot, so every device
                # gets its pulses in time order (the reference's order; one element's
                # pulses all share one phase and devices do not interact for k = 0); the
                # work is proportional to the number of coincidences.
                # c2c draws come from a buffer filled in batches (_fill_normals)
                for i in range(n_out):
                    bits = rmask[i] & col_any  # a row pulse in a slot without columns: no-op
                    a_row = -sd[i]  # direction a = −sign(x_j)·sign(δ_i) = a_row·sign(x_j)
                    while bits != 0:
                        t = _ctz(bits)
                        bits &= bits - np.uint64(1)
                        n_coinc += slot_n[t]
                        for jj in range(slot_n[t]):
                            j = slot_cols[t, jj]
                            sg = a_row * sx[j]  # +1 up, −1 down
                            dw = par[dv, i, j, (1 - sg) >> 1]  # PAR_UP = 0, PAR_DOWN = 1
                            if ctoc > 0.0:
                                if zpos == _C2C_BATCH:
                                    _fill_normals(zbuf, _C2C_BATCH, s)
                                    zpos = 0
                                dw *= 1.0 + ctoc * zbuf[zpos]
                                zpos += 1
                            v = w[dv, i, j]
                            if soft:
                                v = _soft_step(
                                    v, dw, sg > 0, par[dv, i, j, PAR_WMAX], par[dv, i, j, PAR_WMIN]
                                )
                            else:
                                v += sg * dw
                                if bounded:
                                    v = min(
                                        max(v, par[dv, i, j, PAR_WMIN]), par[dv, i, j, PAR_WMAX]
                                    )
                            w[dv, i, j] = v
                            if single:
                                wread[i, j] = v
                            else:
                                total = 0.0
                                for dd in range(n_dev):
                                    total += w[dd, i, j]
                                wread[i, j] = total * att[i, j] if use_att else total
            else:
                # half-select: every device on a pulsing row or a pulsing column
                for i in range(n_out):
                    rm = rmask[i]
                    if rm != 0 and not soft:
                        n_coinc += _half_select_row(
                            dv, i, rm, sd[i], cmask, sx, acols, n_ac, k_val, ctoc, bounded,
                            w, par, wread, att, use_att, zrow, s,
                        )  # fmt: skip
                        continue
                    if rm == 0:
                        cols, n_cols = acols, n_ac  # a silent row: only pulsing columns
                    else:
                        cols, n_cols = all_cols, n_in
                    for jj in range(n_cols):
                        j = cols[jj]
                        n_coinc += int(_popcount(rm & cmask[j]))
                        v = _half_select_element(
                            w[dv, i, j], rm, cmask[j], sd[i], sx[j],
                            par[dv, i, j, PAR_UP], par[dv, i, j, PAR_DOWN],
                            par[dv, i, j, PAR_WMAX], par[dv, i, j, PAR_WMIN],
                            k_val, ctoc, soft, bounded, s,
                        )  # fmt: skip
                        w[dv, i, j] = v
                        if single:
                            wread[i, j] = v
                        else:
                            total = 0.0
                            for dd in range(n_dev):
                                total += w[dd, i, j]
                            wread[i, j] = total * att[i, j] if use_att else total
    return n_coinc


@numba.njit(cache=True, nogil=True)
def exact_update(
    x: FloatArray,
    d: FloatArray,
    lr: float,
    w: FloatArray,
    par: FloatArray,
    dp: FloatArray,
    wread: FloatArray,
    att: FloatArray,
) -> int:  # pragma: no cover - compiled
    """W ← W − lr·δᵀx for each of the ``n`` rows in turn, split evenly over the devices.

    Returns −1 (changing nothing) if ``x`` or ``d`` holds a NaN or infinity, else 0."""
    if not (_all_finite(x) and _all_finite(d)):
        return -1
    n_dev, n_out, n_in = w.shape
    bounded = dp[DP_BOUNDED] != 0.0
    use_att = dp[DP_USE_ATT] != 0.0
    share = lr / n_dev
    total = np.empty(n_in)
    for smp in range(x.shape[0]):
        xs = x[smp]
        for i in range(n_out):
            di = d[smp, i] * share
            if di == 0.0:
                continue
            total[:] = 0.0
            for dv in range(n_dev):
                wrow = w[dv, i]
                if bounded:
                    prow = par[dv, i]
                    for j in range(n_in):
                        v = wrow[j] - di * xs[j]
                        wrow[j] = min(max(v, prow[j, PAR_WMIN]), prow[j, PAR_WMAX])
                else:
                    for j in range(n_in):
                        wrow[j] -= di * xs[j]
                for j in range(n_in):
                    total[j] += wrow[j]
            rrow = wread[i]
            if use_att:
                arow = att[i]
                for j in range(n_in):
                    rrow[j] = total[j] * arow[j]
            else:
                for j in range(n_in):
                    rrow[j] = total[j]
    return 0


# --------------------------------------------------------------------------- activations

ACT_NONE, ACT_SIGMOID, ACT_TANH = 0, 1, 2
"""Activation codes of :func:`activation_forward` / :func:`dense_train_step`."""


@numba.njit(cache=True, nogil=True)
def activation_forward(code: int, x: FloatArray, y: FloatArray) -> None:  # pragma: no cover
    """y = f(x) element-wise on 1-D arrays: sigmoid 1/(1 + exp(−x)), tanh, or a copy.

    The one implementation of the activations, used by the layers and by the fused
    network step alike (so both give bit-identical results)."""
    if code == ACT_SIGMOID:
        for i in range(x.shape[0]):
            y[i] = 1.0 / (1.0 + np.exp(-x[i]))
    elif code == ACT_TANH:
        for i in range(x.shape[0]):
            y[i] = np.tanh(x[i])
    else:
        for i in range(x.shape[0]):
            y[i] = x[i]


@numba.njit(cache=True, nogil=True)
def activation_backward(
    code: int, y: FloatArray, grad_out: FloatArray, grad_in: FloatArray
) -> None:  # pragma: no cover
    """grad_in = f′·grad_out from the activation's output y: sigmoid (1 − y)·y, tanh 1 − y²."""
    if code == ACT_SIGMOID:
        for i in range(y.shape[0]):
            grad_in[i] = (1.0 - y[i]) * y[i] * grad_out[i]
    elif code == ACT_TANH:
        for i in range(y.shape[0]):
            grad_in[i] = (1.0 - y[i] * y[i]) * grad_out[i]
    else:
        for i in range(y.shape[0]):
            grad_in[i] = grad_out[i]


# --------------------------------------------------------------------------- fused network step

# per-layer update parameters, row l of dense_train_step's ``upd`` (float64)
UPD_BL, UPD_UM, UPD_DW_MIN, UPD_EXACT = 0, 1, 2, 3
UPD_LEN = 4


@numba.njit(cache=True, nogil=True)
def _dense_read(
    wr: Any,
    col_major: bool,
    backward: bool,
    x: FloatArray,
    y: FloatArray,
    io: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """One managed read of a dense layer; ``wr`` is the read copy (out, in) or, when
    ``col_major``, its transpose (in, out) (both C-contiguous)."""
    xb = x.reshape((1, x.shape[0]))
    yb = y.reshape((1, y.shape[0]))
    if col_major != backward:
        return read_batch(wr.T, xb, yb, io, s)
    return read_batch(wr, xb, yb, io, s)


@numba.njit(cache=True, nogil=True)
def _dense_update(
    xb: FloatArray,
    db: FloatArray,
    lr: float,
    upd: FloatArray,
    w: FloatArray,
    par: FloatArray,
    dp: FloatArray,
    wread: Any,
    att: FloatArray,
    s: UIntArray,
) -> None:  # pragma: no cover - compiled
    """The update of one dense layer (``upd``: its row of update parameters)."""
    if upd[UPD_EXACT] != 0.0:
        exact_update(xb, db, lr, w, par, dp, wread, att)
    else:
        pulsed_update(
            xb, db, lr, int(upd[UPD_BL]), upd[UPD_UM] != 0.0, upd[UPD_DW_MIN],
            w, par, dp, wread, att, s,
        )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def softmax(z: FloatArray, p: FloatArray) -> None:  # pragma: no cover - compiled
    """p = exp(z − max z) / Σ exp(z − max z) (one pass each for max, exp and scale)."""
    zmax = z[0]
    for i in range(1, z.shape[0]):
        if z[i] > zmax:
            zmax = z[i]
    total = 0.0
    for i in range(z.shape[0]):
        e = np.exp(z[i] - zmax)
        p[i] = e
        total += e
    inv = 1.0 / total
    for i in range(z.shape[0]):
        p[i] *= inv


@numba.njit(cache=True, nogil=True)
def dense_train_step(
    label: int,
    lr: float,
    acts: Any,
    col_major: Any,
    upd: FloatArray,
    xs: Any,
    ys: Any,
    ds: Any,
    zs: Any,
    p: FloatArray,
    g: FloatArray,
    wreads: Any,
    ws: Any,
    pars: Any,
    dps: Any,
    atts: Any,
    states: Any,
    fwd_ios: Any,
    bwd_ios: Any,
) -> float:  # pragma: no cover - compiled
    """One SGD step of a fully connected network on one sample, in one call.

    Exactly the calls the layer-by-layer path makes (:class:`rpucircuit.model.network.Network`
    with :class:`~rpucircuit.model.layers.AnalogLinear` and activation layers), in the same order
    per tile, so the result is bit-identical; only the Python overhead between them is
    gone. Layer l: input buffer ``xs[l]`` (in + 1, bias last = 1; ``xs[0]`` holds the
    sample), raw output ``ys[l]``, output gradient ``ds[l]``, input gradient scratch
    ``zs[l]`` (in + 1), read copy ``wreads[l]`` (transposed when ``col_major[l]``), the
    tile's kernel arrays, ``acts[l]`` the activation after it (the last layer feeds the
    softmax). ``p``, ``g``: softmax output and loss gradient. Returns the cross-entropy
    before the step, or NaN (changing nothing) if the sample holds a NaN or infinity.
    """
    n_layers = len(ws)
    if not _all_finite(xs[0].reshape((1, xs[0].shape[0]))):
        return np.nan
    for li in range(n_layers):
        _dense_read(wreads[li], col_major[li], False, xs[li], ys[li], fwd_ios[li], states[li])
        if li + 1 < n_layers:
            n = ys[li].shape[0]
            activation_forward(acts[li], ys[li], xs[li + 1][:n])
    z = ys[n_layers - 1]
    softmax(z, p)
    loss = -np.log(max(p[label], 1e-300))
    g[:] = p
    g[label] -= 1.0
    grad = g
    for li in range(n_layers - 1, -1, -1):
        ds[li][:] = grad
        if li > 0:
            _dense_read(wreads[li], col_major[li], True, ds[li], zs[li], bwd_ios[li], states[li])
        xb = xs[li].reshape((1, xs[li].shape[0]))
        db = ds[li].reshape((1, ds[li].shape[0]))
        if col_major[li]:
            _dense_update(xb, db, lr, upd[li], ws[li], pars[li], dps[li], wreads[li].T, atts[li],
                          states[li])  # fmt: skip
        else:
            _dense_update(xb, db, lr, upd[li], ws[li], pars[li], dps[li], wreads[li], atts[li],
                          states[li])  # fmt: skip
        if li > 0:
            n = ys[li - 1].shape[0]
            activation_backward(acts[li - 1], xs[li][:n], zs[li][:n], ys[li - 1])
            grad = ys[li - 1]
    return float(loss)


def reference_update(
    x: FloatArray,
    d: FloatArray,
    lr: float,
    bl: int,
    um: bool,
    dw_min: float,
    w: FloatArray,
    par: FloatArray,
    dp: FloatArray,
    rng: np.random.Generator,
) -> None:
    """Plain pulse-by-pulse reference of :func:`pulsed_update` for one (x, δ) pair.

    Draws every bit of every stream, then walks the four phases and, inside each, the BL
    time slots in order; in each slot every device sees its row and column voltages and
    changes by one full (coincidence) or half-select (k) step with its own c2c draw, then
    is clipped to its bounds. Updates ``w`` (n_dev, out, in) in place.
    """
    n_dev, n_out, _ = w.shape
    dw_up, dw_down = par[..., PAR_UP], par[..., PAR_DOWN]
    wmax, wmin = par[..., PAR_WMAX], par[..., PAR_WMIN]
    ctoc, k = dp[DP_CTOC], dp[DP_K]
    soft, bounded = bool(dp[DP_SOFT]), bool(dp[DP_BOUNDED])
    xmax, dmax = float(np.max(np.abs(x))), float(np.max(np.abs(d)))
    if xmax == 0.0 or dmax == 0.0 or lr == 0.0:
        return
    c = np.sqrt(lr / (bl * dw_min))
    m = np.sqrt(dmax / xmax) if um else 1.0
    p = np.minimum(c * m * np.abs(x), 1.0)
    q = np.minimum(c / m * np.abs(d), 1.0)
    col_bits = rng.random((bl, x.shape[0])) < p  # (slot, column)
    row_bits = rng.random((n_dev, bl, n_out)) < q  # (device, slot, row)
    sx, sd = np.sign(x), np.sign(d)
    for dv in range(n_dev):
        for sig, tau in PHASES:
            a = -sig * tau
            for t in range(bl):
                row_on = row_bits[dv, t] & (sd == tau)
                col_on = col_bits[t] & (sx == sig)
                full = np.outer(row_on, col_on)
                half = np.logical_xor.outer(row_on, col_on)
                amp = full + k * half
                if not np.any(amp):
                    continue
                step = dw_up[dv] if a > 0 else dw_down[dv]
                dw = step * amp * (1.0 + ctoc * rng.standard_normal(amp.shape))
                cur = w[dv]
                if soft:
                    bound = wmax[dv] if a > 0 else wmin[dv]
                    usable = bound != 0.0
                    ratio = np.divide(cur, bound, out=np.zeros_like(cur), where=usable)
                    dw = dw * np.where(usable, 1.0 - ratio, 0.0)
                cur = cur + a * dw
                if bounded:
                    cur = np.clip(cur, wmin[dv], wmax[dv])
                w[dv] = cur
