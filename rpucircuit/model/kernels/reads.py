"""Managed analog reads: DAC, matrix-vector products, output noise, bound and ADC, with
noise and bound management (:func:`read_batch`), and their plain reference
(:func:`reference_read`). The parameter vector ``io`` comes from
:func:`rpucircuit.model.kernels.layout.pack_io`.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba.core import types
from numba.extending import intrinsic

from rpucircuit.model.kernels.layout import (
    IO_BM,
    IO_BM_MAX,
    IO_GAIN,
    IO_INP_BOUND,
    IO_INP_STEP,
    IO_NM,
    IO_NOISE,
    IO_OUT_BOUND,
    IO_OUT_STEP,
    IO_PERFECT,
    IO_TF,
    IO_TF_TERMS,
    FloatArray,
    UIntArray,
)
from rpucircuit.model.kernels.streams import _fill_normals, normal_capacity


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


_TIE_MARGIN = 1e-8
"""How close (in quantization steps) to a rounding tie a quotient computed by multiplying
with a reciprocal may come before the DAC (:func:`_dac_rows`) recomputes it by division. The
reciprocal form is off from the divided one by a few units in the last place (< 1e-15
relative), i.e. < 1e-9 steps below :data:`_FAST_LEVELS` levels: far inside the margin."""
_FAST_LEVELS = 1e6
""":func:`_dac_rows` multiplies by a reciprocal only while the clip bound is at most
this many steps (so the error of the reciprocal form stays far below :data:`_TIE_MARGIN`)."""


@numba.njit(cache=True, nogil=True, inline="always")
def _quantize_exact(v: float, divisor: float, bound: float, step: float) -> float:
    """rint(clip(v / divisor, ±bound) / step)·step, by division (the definition)."""
    u = min(max(v / divisor, -bound), bound)
    return float(np.rint(u / step) * step)


@numba.njit(cache=True, nogil=True)
def _dac_rows(
    xf: FloatArray,
    xqf: FloatArray,
    m: int,
    scale: FloatArray,
    factor: float,
    k0: int,
    k1: int,
    bound: float,
    step: float,
) -> None:  # pragma: no cover - compiled
    """DAC of rows k0 ≤ k < k1 of a batch of rows of length ``m``, flattened (``xf``,
    ``xqf``: the C-order batch and its DAC'd copy as 1-D arrays), each row divided by
    ``scale[k]·factor``: xq[k] = rint(clip(x[k] / divisor, ±bound) / step)·step (step 0:
    no quantization), bit-identical to :func:`_quantize_exact` but without a division per
    element; a row whose scale is 0 (noise management of an all-zero input) becomes zeros.

    The quotient u = x / divisor / step only decides which level rint picks, and rint
    changes its result only at half-integers. So u is taken as x·c with c =
    (1/divisor)·(1/step) (a few ulp off the divided quotient) and clipped to ±B, B =
    bound/step (as the clipped quotient is); where it lies within :data:`_TIE_MARGIN` of a
    half-integer (a near tie; also the rare value clipped near a B that is itself near a
    tie), the element is recomputed by division; so is every element where the
    reciprocal form does not apply (a huge number of levels, an overflowing reciprocal).
    Two divisions per element were a third of paper B's conv2 forward read (64 × 401).

    One call per batch (a bound-management re-read: one row), its loops over the rows and
    their elements calling nothing that takes an array: a function with array arguments
    inlined into the row loop of :func:`read_batch` (or a row view made there) made numba
    count references on every row, an atomic increment and decrement per array, 7 % of
    paper B's CNN step in all (perf samples in numba's NRT_incref/NRT_decref, Intel Xeon,
    2026-12-07). The element loops run over unsigned bounds on the flat arrays: from the
    signed start k·m, numba's negative-index wraparound stayed in every access and the
    loop did not vectorize (in a compiled loop over the rows, 64 × 401: 20 → 6.4 µs, 576 ×
    26: 31 → 16 µs; paper B's conv2 forward read 63 → 50 µs per image)."""
    lim = 0.5 - _TIE_MARGIN
    for k in range(k0, k1):
        base = np.uint64(k * m)
        end = np.uint64(k * m + m)
        if not scale[k] > 0.0:
            for t in range(base, end):
                xqf[t] = 0.0
            continue
        divisor = scale[k] * factor
        if step > 0.0:
            big = bound / step
            c = (1.0 / divisor) * (1.0 / step)
            if big <= _FAST_LEVELS and c < np.inf:
                n_tie = 0
                for t in range(base, end):
                    u = xf[t] * c
                    u = u if u < big else big
                    u = u if u > -big else -big
                    r = np.rint(u)
                    n_tie += int(abs(u - r) > lim)
                    xqf[t] = r * step
                if n_tie:
                    for t in range(base, end):
                        u = min(max(xf[t] * c, -big), big)
                        if abs(u - np.rint(u)) > lim:
                            xqf[t] = _quantize_exact(xf[t], divisor, bound, step)
            else:
                for t in range(base, end):
                    xqf[t] = _quantize_exact(xf[t], divisor, bound, step)
            continue
        for t in range(base, end):
            v = xf[t] / divisor
            v = v if v < bound else bound
            xqf[t] = v if v > -bound else -bound


@numba.njit(cache=True, nogil=True)
def _transfer_rows(
    xq: FloatArray, io: FloatArray, scale: FloatArray, k0: int, k1: int
) -> None:  # pragma: no cover - compiled
    """Input transfer curve on the DAC'd rows k0 ≤ k < k1 whose scale is not 0 (the others
    are zeros, and f(0) = 0), in place: x ← inp_bound·f(x/inp_bound) = x·g(u²), u =
    x/inp_bound, f(u) = u·g(u²), g(t) = Σ c_m·t^m (Horner); only called when the curve has
    terms. Term by term over each row (in scratch of the row's length), so each pass
    vectorizes: an element-by-element Horner loop with a per-element division made paper
    B's conv1 read (576 × 26, float32) 38 % slower than without a curve, this form 9 %
    (measured on the shared 2-core machine, 2026-12-06). One call per batch, for the reason
    :func:`_dac_rows` gives."""
    n_tf = int(io[IO_TF_TERMS])
    inv = 1.0 / io[IO_INP_BOUND]
    n = xq.shape[1]
    top = io[IO_TF + n_tf - 1]
    t = np.empty(n)
    acc = np.empty(n)
    for k in range(k0, k1):
        if not scale[k] > 0.0:
            continue
        for j in range(n):
            u = xq[k, j] * inv
            t[j] = u * u
            acc[j] = top
        for m in range(n_tf - 2, -1, -1):
            c = io[IO_TF + m]
            for j in range(n):
                acc[j] = acc[j] * t[j] + c
        for j in range(n):
            xq[k, j] = xq[k, j] * acc[j]


@numba.njit(cache=True, nogil=True)
def _adc_rows(
    raw: FloatArray,
    z: FloatArray,
    z0: int,
    y: FloatArray,
    io: FloatArray,
    scale: FloatArray,
    factor: float,
    k0: int,
    k1: int,
    hits: Any,
) -> None:  # pragma: no cover - compiled
    """Read gain, output noise σ·z, bound and ADC on raw output rows k0 ≤ k < k1 (``raw``
    and ``y`` C-contiguous, (n, out)); y[k] = the result × ``scale[k]·factor`` (undoing
    the input scaling), and hits[k] = whether row k hit the bound. Row k's noise is
    z[z0 + (k − k0)·out :], ``z`` standard normals (unused without noise). A row whose scale
    is 0 reads zeros (noise management: an all-zero input) and no hit.

    No draw inside, so the loops vectorize. A gain of exactly 1 (the default) skips the
    multiply: the old path, bit for bit. The ADC level comes from a reciprocal, near ties
    by division (bit-identical, as in :func:`_dac_rows`): a division per element was a
    quarter of paper B's conv2 backward read (64 × 401). One call per batch, on the flat
    arrays over unsigned bounds, for the reasons :func:`_dac_rows` gives: the clip as two
    selects (equal to min/max for every non-NaN value, signed zeros and ±bound included),
    where min/max left the loop scalar. Row views in a loop over the rows cost numba's
    reference counting per row; this form took 5.7 against 8.4 µs for 576 rows of 16
    and 10.8 against 14.4 µs for 64 rows of 401 (compiled loops, Intel Xeon, 2026-12-07)."""
    sigma = io[IO_NOISE]
    bound = io[IO_OUT_BOUND]
    step = io[IO_OUT_STEP]
    gain = io[IO_GAIN]
    n_o = raw.shape[1]
    rf = raw.reshape(-1)
    yf = y.reshape(-1)
    fast = bound > 0.0 and step > 0.0 and bound / step <= _FAST_LEVELS
    c = 1.0 / step if fast else 0.0
    lim = 0.5 - _TIE_MARGIN
    for k in range(k0, k1):
        base = np.uint64(k * n_o)
        end = np.uint64(k * n_o + n_o)
        zoff = np.uint64(z0 + (k - k0) * n_o) - base  # z index = t + zoff (mod 2⁶⁴)
        if scale[k] == 0.0:  # noise management of an all-zero vector: nothing to read
            for t in range(base, end):
                yf[t] = 0.0
            hits[k] = False
            continue
        mult = scale[k] * factor
        hit = 0
        if fast:
            n_tie = 0
            for t in range(base, end):
                v = float(rf[t])
                if gain != 1.0:
                    v *= gain
                if sigma > 0.0:
                    v += sigma * z[t + zoff]
                hit |= int(v >= bound) | int(v <= -bound)
                v = v if v < bound else bound
                v = v if v > -bound else -bound
                u = v * c
                r = np.rint(u)
                n_tie += int(abs(u - r) > lim)
                yf[t] = (r * step) * mult
            if n_tie:
                for t in range(base, end):
                    v = float(rf[t])
                    if gain != 1.0:
                        v *= gain
                    if sigma > 0.0:
                        v += sigma * z[t + zoff]
                    v = min(max(v, -bound), bound)
                    u = v * c
                    if abs(u - np.rint(u)) > lim:
                        yf[t] = (np.rint(v / step) * step) * mult
        else:
            for t in range(base, end):
                v = float(rf[t])
                if gain != 1.0:
                    v *= gain
                if sigma > 0.0:
                    v += sigma * z[t + zoff]
                if bound > 0.0:
                    hit |= int(v >= bound) | int(v <= -bound)
                    v = min(max(v, -bound), bound)
                    if step > 0.0:
                        v = np.rint(v / step) * step
                yf[t] = v * mult
        hits[k] = hit != 0


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
    elif n == 1:
        # C-contiguous (c, r): out[k, b] = Σ_a m[a, b]·xq[k, a], one row of m per nonzero
        # input (a zero input adds exactly nothing): sparse inputs (MNIST pixels, conv1
        # patches, max-pooled error maps) cost only their nonzero entries
        m = w.T
        out[0, :] = 0.0
        for a in range(c):
            xa = xq[0, a]
            if xa != 0.0:
                for b2 in range(r):
                    out[0, b2] += m[a, b2] * xa
    else:
        # the same sums over a list of each vector's nonzero inputs, made without a
        # branch: the test per input above is unpredictable on sparse inputs, and a batch
        # of short rows pays its mispredictions on every one (paper B's conv1, 576
        # patches of 26 inputs into 16 outputs: 24 → 17 µs per image; its conv2 backward
        # read, 64 error vectors of 32 into 401: 15 → 12 µs; Intel Xeon, 2026-12-07)
        m = w.T
        nz = np.empty(c, dtype=np.int64)
        for k in range(n):
            cnt = 0
            for a in range(c):
                nz[cnt] = a
                cnt += int(xq[k, a] != 0.0)
            out[k, :] = 0.0
            for q in range(cnt):
                a = nz[q]
                xa = xq[k, a]
                for b2 in range(r):
                    out[k, b2] += m[a, b2] * xa


def _bits_intrinsic(typingctx: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """The bits of a float64 as an int64 (an LLVM bitcast: no conversion, no instruction)."""
    sig = types.int64(types.float64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


def _float_intrinsic(typingctx: Any, b: Any) -> Any:  # pragma: no cover - compiled
    """The float64 whose bits are an int64 (the inverse bitcast of :func:`_bits`)."""
    sig = types.float64(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


_bits: Any = intrinsic(_bits_intrinsic)
_float_of_bits: Any = intrinsic(_float_intrinsic)
_MAGNITUDE = np.int64(0x7FFFFFFFFFFFFFFF)
"""Every bit of a float64 but its sign: bits & this = the bits of its absolute value."""


@numba.njit(cache=True, nogil=True)
def _absmax(a: FloatArray, out: FloatArray) -> None:  # pragma: no cover - compiled
    """out[k] = max |a[k, :]| (0 for an empty row) for every row of a finite 2-D array
    (its callers check that first). One call per batch, not per row.

    On the bits: for floats that are not NaN, |u| ≤ |v| exactly when the bits of |u|, read
    as a nonnegative int64 (the sign bit cleared), are ≤ those of |v|, so the maximum of
    those integers is the bits of max |a| (−0.0 gives +0.0, as abs does). An integer
    maximum vectorizes as a plain reduction, where a floating-point one does not without
    flags that assume away NaN (and with them ran slower here). The same result bit for
    bit as a loop over abs(): paper B's conv2 patches (64 × 401) 7-8 → 2.5-3.5 µs, conv1's
    (576 × 26) 3.2 → 2.1 µs, against four interleaved float maxima (Intel Xeon,
    2026-12-07)."""
    n = a.shape[1]
    for k in range(a.shape[0]):
        m = np.int64(0)
        for j in range(n):
            b = _bits(a[k, j]) & _MAGNITUDE
            m = b if b > m else m
        out[k] = _float_of_bits(m)


@numba.njit(cache=True, nogil=True)
def _rereads(
    w: FloatArray,
    xf: FloatArray,
    xq: FloatArray,
    raw: FloatArray,
    y: FloatArray,
    io: FloatArray,
    s: UIntArray,
    scale: FloatArray,
    hits: Any,
) -> None:  # pragma: no cover - compiled
    """Bound management for :func:`read_batch`: each row k whose read hit the output bound
    (``hits[k]``) is read again with its input scaled down by 2, 4, … (up to
    ``io[IO_BM_MAX]``) until it no longer does, each time with fresh noise, in row order.
    A function of its own, called only when some row hit: an array variable reassigned in
    the loop over the rows (the re-reads' noise buffer, made on the first re-read) cost
    numba's reference counting on every row of every read."""
    n, n_in = xq.shape
    n_out = y.shape[1]
    bm_max = io[IO_BM_MAX]
    in_bound = io[IO_INP_BOUND]
    in_step = io[IO_INP_STEP]
    curve = io[IO_TF_TERMS] > 0.0
    noisy = io[IO_NOISE] > 0.0
    z = np.empty(normal_capacity(n_out) if noisy else 0)
    xqf = xq.reshape(-1)
    for k in range(n):
        hit = hits[k]
        factor = 1.0
        while hit and factor < bm_max:
            factor *= 2.0
            _dac_rows(xf, xqf, n_in, scale, factor, k, k + 1, in_bound, in_step)
            if curve:
                _transfer_rows(xq, io, scale, k, k + 1)
            _mvm(w, xq[k : k + 1], raw[k : k + 1])
            if noisy:  # a fresh read: fresh noise
                _fill_normals(z, n_out, s)
            _adc_rows(raw, z, 0, y, io, scale, factor, k, k + 1, hits)
            hit = hits[k]


@numba.njit(cache=True, nogil=True)
def read_batch(
    w: FloatArray, x: FloatArray, y: FloatArray, io: FloatArray, s: UIntArray
) -> int:  # pragma: no cover - compiled
    """Managed analog read of each row of ``x`` (n, in) through ``w`` (out, in) into ``y``.

    ``w`` (C- or F-contiguous: the transposed view for the backward read) may be float32
    (reads whose noise floor is far above float32 rounding); ``x`` and ``y`` are float64.
    ``io`` is the parameter vector laid out by the ``IO_*`` indices. Every vector gets its
    own noise and management. The input transfer curve (``io[IO_TF_TERMS]`` > 0) acts on
    the DAC'd input, the read gain on the MVM's output before noise, bound and ADC; a
    perfect read applies neither (an exact MVM, as :class:`IOConfig` says).
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
    n_out = y.shape[1]
    # every vector's noise drawn in one batch up front (all-zero vectors' draws unused),
    # so the noise is the generator's sequence row after row
    noisy = io[IO_NOISE] > 0.0
    z = np.empty(normal_capacity(n * n_out) if noisy else 0)
    if noisy:
        _fill_normals(z, n * n_out, s)
    scale = np.ones(n)
    if nm:
        _absmax(x, scale)
    in_bound = io[IO_INP_BOUND]
    in_step = io[IO_INP_STEP]
    n_in = x.shape[1]
    xf = x.ravel()  # a view of a C-order x (else a copy): _dac_rows says why flat
    xqf = xq.reshape(-1)
    _dac_rows(xf, xqf, n_in, scale, 1.0, 0, n, in_bound, in_step)
    if io[IO_TF_TERMS] > 0.0:  # an input transfer curve (f(0) = 0: zeros stay zero)
        _transfer_rows(xq, io, scale, 0, n)
    _mvm(w, xq, raw)
    # every row's ADC, then the bound-management re-reads of the rows that hit the bound:
    # a re-read changes only its own row and is the only draw, so the result and the
    # generator's sequence are those of finishing each row before the next
    yc = np.ascontiguousarray(y)  # y itself if C-contiguous (else a copy, written back)
    hits = np.empty(n, dtype=np.bool_)
    _adc_rows(raw, z, 0, yc, io, scale, 1.0, 0, n, hits)
    if bm and hits.any():
        _rereads(w, xf, xq, raw, yc, io, s, scale, hits)
    if yc.ctypes.data != y.ctypes.data:
        y[:, :] = yc
    return 0


def reference_transfer(u: FloatArray, io: FloatArray) -> FloatArray:
    """The input transfer curve f of ``io`` on normalized inputs ``u`` (numpy, power by
    power; the identity when the curve has no terms)."""
    n_tf = int(io[IO_TF_TERMS])
    if n_tf == 0:
        return u
    out = np.zeros_like(u)
    for m in range(n_tf):
        out = out + io[IO_TF + m] * u ** (2 * m + 1)
    return out


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
        if io[IO_TF_TERMS] > 0:
            xq = io[IO_INP_BOUND] * reference_transfer(xq / io[IO_INP_BOUND], io)
        y = io[IO_GAIN] * (w @ xq)
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
