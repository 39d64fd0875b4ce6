"""The half-select update of one sample on one device layer, hard bounds
(:func:`_half_select_hard`): cost proportional to the devices on pulsing lines, random
numbers drawn only for them.

Which pulses a device sees (see :mod:`.updates` for the phases): row i replays its stream
(mask r, n_r = |r| pulses) in the two phases (±, τ) with τ = sign(δ_i), column j (mask c,
n_c = |c|) in the two phases (σ, ±) with σ = sign(x_j). Phase (σ, τ) has direction
a = −σ·τ, so for a device on a pulsing row and a pulsing column

* X, phase (σ, τ), direction −σ·τ: |r ∧ c| coincidences (dw) and |r ⊕ c| lone pulses (k·dw);
* Y, phase (σ, −τ), direction +σ·τ: n_c lone column pulses;
* R, phase (−σ, τ), direction +σ·τ: n_r lone row pulses;

in the phase order (+,+), (+,−), (−,+), (−,−): R first when σ = −1, last when σ = +1, and
X before Y when τ = +1, after it when τ = −1. A silent column (no pulse, or x_j = 0) is
the case σ = +1, c = 0 (X is then the phase (+, τ) with n_r lone pulses, Y is empty). A
device on a silent row and a pulsing column sees only Y-like phases: (σ, +) in direction
−σ, then (σ, −) in direction +σ, n_c lone pulses each.

Within one phase every pulse a device sees has the same direction, so (as the per-device
path does) a phase's pulses are summed: n pulses of c2c-perturbed size dw·(1 + ctoc·z)
add up to dw·(n + ctoc·√n·Z) with Z standard normal (coincidences and lone pulses:
dw·(n_f + k·n_h) + dw·ctoc·√(n_f + k²·n_h)·Z), and the device is clipped to its bounds
once per phase. Z is a centred binomial: the popcount of 21 random bits minus 10.5, over
√(21/4), whose mean (0) and variance (1) are exact and whose kurtosis is 3 − 2/21; three
come from one SplitMix64 output of counter s[4] + i·in + j (every device its own counter,
so the loops vectorize and draw nothing for devices off the pulsing lines), and s[4]
advances by out·in per call.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from rpucircuit.model.kernels.layout import (
    ATT_B_COLS,
    ATT_B_ROWS,
    ATT_COLS,
    ATT_ROWS,
    PAR_DOWN,
    PAR_UP,
    PAR_WMAX,
    PAR_WMIN,
    FloatArray,
    UIntArray,
)
from rpucircuit.model.kernels.prefetch import prefetch_for_write
from rpucircuit.model.kernels.streams import _GAMMA, _mix_gamma, _popcount

_FIELD_BITS = 21
_FIELD_MASK = np.uint64((1 << _FIELD_BITS) - 1)
_FIELD_MEAN = _FIELD_BITS / 2.0
_FIELD_SCALE = 1.0 / np.sqrt(_FIELD_BITS / 4.0)
"""A field of 21 random bits gives the normal (popcount − 10.5)·√(4/21): mean 0, variance 1."""


@numba.njit(cache=True, nogil=True, inline="always")
def _binomial3(c: np.uint64) -> tuple[float, float, float]:  # pragma: no cover - compiled
    """Three independent centred-binomial normals (mean 0, variance 1, exact) from the
    SplitMix64 output of counter ``c``: bits 0–20, 21–41 and 42–62."""
    return _binomial3_gamma(c * _GAMMA)


@numba.njit(cache=True, nogil=True, inline="always")
def _binomial3_gamma(cg: np.uint64) -> tuple[float, float, float]:  # pragma: no cover
    """:func:`_binomial3` of the counter c for which ``cg`` = c·γ (the form a loop over
    consecutive counters keeps, :func:`~rpucircuit.model.kernels.streams._mix_gamma`)."""
    h = _mix_gamma(cg)
    z0 = (float(_popcount(h & _FIELD_MASK)) - _FIELD_MEAN) * _FIELD_SCALE
    z1 = (float(_popcount((h >> np.uint64(21)) & _FIELD_MASK)) - _FIELD_MEAN) * _FIELD_SCALE
    z2 = (float(_popcount((h >> np.uint64(42)) & _FIELD_MASK)) - _FIELD_MEAN) * _FIELD_SCALE
    return z0, z1, z2


@numba.njit(cache=True, nogil=True)
def binomial_normals(n: int, s: UIntArray) -> FloatArray:  # pragma: no cover - compiled
    """``n`` normals of the half-select generator (three per counter, counters from s[4],
    which advances by ⌈n/3⌉), for tests of the generator."""
    m = (n + 2) // 3
    out = np.empty(3 * m)
    base = s[4]
    for h in range(m):
        z0, z1, z2 = _binomial3(base + np.uint64(h))
        out[3 * h] = z0
        out[3 * h + 1] = z1
        out[3 * h + 2] = z2
    s[4] = base + np.uint64(m)
    return out[:n]


@numba.njit(cache=True, nogil=True, inline="always")
def _binomial1_gamma(cg: np.uint64) -> float:  # pragma: no cover - compiled
    """The first normal of :func:`_binomial3_gamma` of ``cg`` (bits 0–20)."""
    bits = float(_popcount(_mix_gamma(cg) & _FIELD_MASK))
    return float((bits - _FIELD_MEAN) * _FIELD_SCALE)


_ZMAX = 4.6
"""A bound on |Z|, for the largest move pulses can make (:mod:`.hsbatch`): the centred
binomial's largest value is 10.5·√(4/21) = 4.583."""

_PREFETCH_ROWS = 16
"""How many rows ahead the pass down a pulsing column prefetches its weights
(:func:`~.prefetch.prefetch_for_write`): 8 and 16 gained alike, 4 less (measured)."""

_DENSE_SHARE = 4
"""A silent row's pass runs over the whole row (:func:`_silent_row`) when more than one
column in this many pulses."""


@numba.njit(cache=True, nogil=True)
def _par_columns(par_lines: FloatArray) -> FloatArray:  # pragma: no cover - compiled
    """The column-by-column half of ``par_lines`` as a view (n_dev, in, out, PAR_LEN), as
    :func:`~rpucircuit.model.kernels.layout.par_columns` gives it to Python callers."""
    _, n_dev, n_out, n_f, n_in = par_lines.shape
    columns: FloatArray = par_lines[1].reshape((n_dev, n_in, n_out, n_f))
    return columns


@numba.njit(cache=True, nogil=True, inline="always")
def _fields(pf: FloatArray, j: int) -> tuple[float, float, float, float]:  # pragma: no cover
    """Device j's (up, down, w_min, w_max) from ``pf`` (PAR_LEN, in), a row of the float32
    copy :func:`~rpucircuit.model.kernels.layout.par_lines_of`, as float64 values, so all
    arithmetic on them is float64 as on ``par`` (numba's ``float()`` of a float32 stays
    float32: products of two such fields would round differently)."""
    return (
        np.float64(pf[PAR_UP, j]),
        np.float64(pf[PAR_DOWN, j]),
        np.float64(pf[PAR_WMIN, j]),
        np.float64(pf[PAR_WMAX, j]),
    )


@numba.njit(cache=True, nogil=True, inline="always")
def _clip(v: float, lo: float, hi: float) -> float:  # pragma: no cover - compiled
    return min(max(v, lo), hi)


@numba.njit(cache=True, nogil=True)
def _half_select_columns(
    x: FloatArray,
    cmask: UIntArray,
    k: float,
    ctoc: float,
    sgn: FloatArray,
    mean: FloatArray,
    spread: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Per column j of one sample: the sign σ_j its pulses use (+1 for a silent column),
    the mean k·n_c and the spread ctoc·k·√n_c of one phase of its lone pulses."""
    for j in range(cmask.shape[0]):
        cm = cmask[j]
        n_c = float(_popcount(cm))
        sgn[j] = -1.0 if (cm != 0 and x[j] < 0.0) else 1.0
        mean[j] = k * n_c
        spread[j] = ctoc * k * np.sqrt(n_c)


@numba.njit(cache=True, nogil=True, inline="always")
def _pulsing_device(
    v: float,
    up: float,
    down: float,
    lo: float,
    hi: float,
    nf: float,
    nh: float,
    sg: float,
    tau: float,
    cmean: float,
    cspread: float,
    rmean: float,
    rspread: float,
    k: float,
    ctoc: float,
    cg: np.uint64,
) -> float:  # pragma: no cover - compiled
    """New weight of a device on a pulsing row (direction sign ``tau``; ``rmean``,
    ``rspread``: k·n_r and ctoc·k·√n_r) whose column has sign ``sg`` and per-phase terms
    ``cmean``, ``cspread`` and meets the row in ``nf`` slots and not in ``nh``: the
    phases R, X, Y of the module docstring in time order, each clipped; normals from the
    counter c with c·γ = ``cg`` (:func:`_binomial3_gamma`)."""
    z0, z1, z2 = _binomial3_gamma(cg)
    ax = -sg * tau  # direction of X; Y and R go the other way
    step_x = up if ax > 0.0 else down
    step_o = down if ax > 0.0 else up
    dx = ax * step_x * (nf + k * nh + ctoc * np.sqrt(nf + k * k * nh) * z0)
    dy = -ax * step_o * (cmean + cspread * z1)
    dr = -ax * step_o * (rmean + rspread * z2)
    x_first = tau > 0.0  # X (the coincidence phase) before Y
    v = _clip(v + (dr if sg < 0.0 else 0.0), lo, hi)
    v = _clip(v + (dx if x_first else dy), lo, hi)
    v = _clip(v + (dy if x_first else dx), lo, hi)
    return _clip(v + (dr if sg > 0.0 else 0.0), lo, hi)


@numba.njit(cache=True, nogil=True, inline="always")
def _silent_steps(
    v: float,
    up: float,
    down: float,
    lo: float,
    hi: float,
    sg: float,
    cmean: float,
    cspread: float,
    z0: float,
    z1: float,
) -> float:  # pragma: no cover - compiled
    """New weight of a device on a silent row and a pulsing column (sign ``sg``, terms
    ``cmean``, ``cspread``): phase (σ, +) in direction −σ, then (σ, −) in direction +σ,
    n_c lone pulses each, each clipped; ``z0``, ``z1``: the two phases' normals (the
    first two of :func:`_binomial3` of the device's counter)."""
    first = down if sg > 0.0 else up
    second = up if sg > 0.0 else down
    v = _clip(v - sg * first * (cmean + cspread * z0), lo, hi)
    return _clip(v + sg * second * (cmean + cspread * z1), lo, hi)


@numba.njit(cache=True, nogil=True)
def _pulsing_row(
    wrow: FloatArray,
    pf: FloatArray,
    rm: np.uint64,
    tau: float,
    cmask: UIntArray,
    sgn: FloatArray,
    cmean: FloatArray,
    cspread: FloatArray,
    k: float,
    ctoc: float,
    row_base: np.uint64,
) -> None:  # pragma: no cover - compiled
    """Every device of a pulsing row (mask ``rm``, direction sign ``tau`` = sign(δ_i)):
    ``wrow`` (in,) its weights, ``pf`` (PAR_LEN, in) its parameters field by field
    (a row of :func:`~rpucircuit.model.kernels.layout.par_lines_of`).

    One pass without branches or calls updates the row: it vectorizes (AVX-512: popcounts,
    64-bit products, square roots on 8 devices at once). Read straight from the
    interleaved ``par`` the pass cost 8-10 ns per device (gathers); copying the row's
    parameters field by field first, 2.6 ns; from the tile's copy (``par_lines[0]``), about
    a third less again (measured on a 785-wide row)."""
    n_in = wrow.shape[0]
    n_r = float(_popcount(rm))
    rmean = k * n_r
    rspread = ctoc * k * np.sqrt(n_r)
    cg = row_base * _GAMMA  # (device j's counter row_base + j)·γ
    for j in range(n_in):
        cm = cmask[j]
        up, down, lo, hi = _fields(pf, j)
        wrow[j] = _pulsing_device(
            wrow[j], up, down, lo, hi, float(_popcount(rm & cm)), float(_popcount(rm ^ cm)),
            sgn[j], tau, cmean[j], cspread[j], rmean, rspread, k, ctoc, cg,
        )  # fmt: skip
        cg += _GAMMA


@numba.njit(cache=True, nogil=True)
def _silent_row(
    wrow: FloatArray,
    pf: FloatArray,
    cmask: UIntArray,
    sgn: FloatArray,
    cmean: FloatArray,
    cspread: FloatArray,
    row_base: np.uint64,
) -> None:  # pragma: no cover - compiled
    """The devices of a silent row on the pulsing columns, in one pass over the whole row
    (columns without pulses keep their weights; ``pf`` as for :func:`_pulsing_row`),
    vectorized as :func:`_pulsing_row` is: for rows where many columns pulse."""
    n_in = wrow.shape[0]
    cg = row_base * _GAMMA  # (device j's counter row_base + j)·γ
    for j in range(n_in):
        v = wrow[j]
        z0, z1, _ = _binomial3_gamma(cg)
        cg += _GAMMA
        up, down, lo, hi = _fields(pf, j)
        new = _silent_steps(v, up, down, lo, hi, sgn[j], cmean[j], cspread[j], z0, z1)
        wrow[j] = new if cmask[j] != 0 else v


@numba.njit(cache=True, nogil=True)
def _write_row(
    wrow: FloatArray,
    i: int,
    wread: Any,
    att: FloatArray,
    use_att: bool,
    wread_b: Any,
    att_b: FloatArray,
    bwd: bool,
) -> None:  # pragma: no cover - compiled
    """Read copies of row i of a one-device tile with row-major copies from its weights
    ``wrow``: (0.0 + weight) times the forward map when ``use_att`` into ``wread``, and
    times the backward map into ``wread_b`` when ``bwd`` (only then indexed: without a
    backward map it may be empty); one contiguous loop per case, so each vectorizes (the
    indexed :func:`_write_cols` cost 2-8 ns per device, this well under 1)."""
    n = wrow.shape[0]
    wr = wread[i]
    a = att[i]
    if use_att:
        for j in range(n):
            wr[j] = (wrow[j] + 0.0) * a[j]
    else:
        for j in range(n):
            wr[j] = wrow[j] + 0.0
    if bwd:
        wb = wread_b[i]
        ab = att_b[i]
        for j in range(n):
            wb[j] = (wrow[j] + 0.0) * ab[j]


_COL_BLOCK = 8
"""Columns per block of :func:`_write_rows_blocked` (one cache line of float64 weights)."""


@numba.njit(cache=True, nogil=True)
def _write_rows_blocked(
    rows: Any,
    n_rows: int,
    w0: FloatArray,
    wread: Any,
    att: FloatArray,
    use_att: bool,
    wread_b: Any,
    att_b: FloatArray,
    bwd: bool,
) -> None:  # pragma: no cover - compiled
    """Read copies of the whole rows ``rows[:n_rows]`` of a one-device tile (weights
    ``w0`` (out, in)) whose forward copy ``wread`` is column-major, as :func:`_write_row`
    computes them: a block of :data:`_COL_BLOCK` columns at a time over all the rows, so
    the copy's columns of one block (a few cache lines each) stay in the L1 cache while
    every row's weights are read a line at a time. Row by row, every element of a row
    fell in a cache line of its own (measured 880 → 560 µs per update of the FC network's
    first layer, column by column)."""
    n_in = w0.shape[1]
    for jb in range(0, n_in, _COL_BLOCK):
        je = min(jb + _COL_BLOCK, n_in)
        for ii in range(n_rows):
            i = rows[ii]
            for j in range(jb, je):
                total = w0[i, j] + 0.0
                wread[i, j] = total * att[i, j] if use_att else total
                if bwd:
                    wread_b[i, j] = total * att_b[i, j]


@numba.njit(cache=True, nogil=True)
def _write_cols(
    rows: Any,
    r0: int,
    r1: int,
    cols: Any,
    c0: int,
    c1: int,
    w: FloatArray,
    wread: Any,
    att: FloatArray,
    use_att: bool,
    wread_b: Any,
    att_b: FloatArray,
    bwd: bool,
) -> None:  # pragma: no cover - compiled
    """Read copies of the elements (rows[r0:r1]) × (cols[c0:c1]), the rows inside (the
    order of a column-major read copy): the device sum (0.0 + each device, in device
    order, as every update and refresh computes it), times the forward map when
    ``use_att``, and times the backward map into ``wread_b`` when ``bwd``."""
    n_dev = w.shape[0]
    for jj in range(c0, c1):
        j = cols[jj]
        for ii in range(r0, r1):
            i = rows[ii]
            total = 0.0
            for dd in range(n_dev):
                total += w[dd, i, j]
            wread[i, j] = total * att[i, j] if use_att else total
            if bwd:
                wread_b[i, j] = total * att_b[i, j]


@numba.njit(cache=True, nogil=True)
def _half_select_hard(
    dv: int,
    rmask: UIntArray,
    d: FloatArray,
    cmask: UIntArray,
    sgn: FloatArray,
    cmean: FloatArray,
    cspread: FloatArray,
    acols: Any,
    n_ac: int,
    all_cols: Any,
    k: float,
    ctoc: float,
    w: FloatArray,
    wread: Any,
    att: FloatArray,
    use_att: bool,
    wread_b: Any,
    att_b: FloatArray,
    bwd: bool,
    al: FloatArray,
    lines: bool,
    s: UIntArray,
    par_lines: FloatArray,
    rows: Any,
    zbuf: FloatArray,
) -> int:  # pragma: no cover - compiled
    """One sample's half-select pulses on device layer ``dv`` (hard bounds; module
    docstring): the pulsing rows (``rmask`` ≠ 0) over all their devices, the other rows'
    devices on the pulsing columns ``acols[:n_ac]``. ``sgn``, ``cmean``, ``cspread``:
    :func:`_half_select_columns` of this sample; ``all_cols``: 0, 1, …, in − 1. Keeps
    ``wread`` (and ``wread_b`` when ``bwd``) up to date for every changed device; returns
    the number of coincidences. ``par_lines``: ``par`` field by field within each row and
    column by column (:func:`~rpucircuit.model.kernels.layout.par_lines_of`), for the
    passes over whole rows and down the columns. Scratch: ``rows`` (out,) int64 (filled
    with the pulsing rows, then the silent ones from the end), ``zbuf`` (5, out). ``al``,
    ``lines``: the maps' line terms and ``dp[DP_ATT_LINES]`` (the pass down the pulsing
    columns then computes the map values instead of loading them, one cache line per
    device).

    Row by row, each in a branch-free loop of its own (:func:`_pulsing_row`,
    :func:`_silent_row`), then its read copies (:func:`_write_row`): one loop doing both,
    with the read-copy cases as branches, did not vectorize and cost 9-12 ns per device,
    the separate loops 2-3 ns (measured)."""
    n_dev, n_out, n_in = w.shape
    base = s[4]
    s[4] = base + np.uint64(n_out * n_in)
    n_coinc = 0
    n_p = 0
    n_s = 0
    for i in range(n_out):
        if rmask[i] != 0:
            rows[n_p] = i
            n_p += 1
        else:
            n_s += 1
            rows[n_out - n_s] = i
    col_major = wread.strides[0] < wread.strides[1]  # a column-major read copy
    # one device and a row-major read copy: each row's copies in contiguous loops
    row_copies = n_dev == 1 and not col_major
    for ii in range(n_p):
        i = rows[ii]
        rm = rmask[i]
        tau = 1.0 if d[i] > 0.0 else -1.0
        _pulsing_row(w[dv, i], par_lines[0, dv, i], rm, tau, cmask, sgn, cmean, cspread, k, ctoc,
                     base + np.uint64(i * n_in))  # fmt: skip
        if row_copies:
            _write_row(w[0, i], i, wread, att, use_att, wread_b, att_b, bwd)
        elif not col_major:
            _write_cols(rows, ii, ii + 1, all_cols, 0, n_in, w, wread, att, use_att, wread_b,
                        att_b, bwd)  # fmt: skip
        for jj in range(n_ac):
            n_coinc += int(_popcount(rm & cmask[acols[jj]]))
    if col_major and n_dev == 1:  # in blocks of columns: few cache lines at a time
        _write_rows_blocked(rows, n_p, w[0], wread, att, use_att, wread_b, att_b, bwd)
    elif col_major:  # column by column: each column of the read copy is contiguous
        _write_cols(rows, 0, n_p, all_cols, 0, n_in, w, wread, att, use_att, wread_b, att_b,
                    bwd)  # fmt: skip
    if n_ac == 0 or n_s == 0:
        return n_coinc
    if _DENSE_SHARE * n_ac > n_in:  # many pulsing columns: whole rows, vectorized
        for ii in range(n_out - n_s, n_out):
            i = rows[ii]
            _silent_row(w[dv, i], par_lines[0, dv, i], cmask, sgn, cmean, cspread,
                        base + np.uint64(i * n_in))  # fmt: skip
            if row_copies:
                _write_row(w[0, i], i, wread, att, use_att, wread_b, att_b, bwd)
            elif not col_major:
                _write_cols(rows, ii, ii + 1, all_cols, 0, n_in, w, wread, att, use_att,
                            wread_b, att_b, bwd)  # fmt: skip
        if col_major:
            _write_cols(rows, n_out - n_s, n_out, acols, 0, n_ac, w, wread, att, use_att,
                        wread_b, att_b, bwd)  # fmt: skip
        return n_coinc
    # few pulsing columns: column by column down the silent rows (a constant stride; row
    # by row the gaps between the pulsing columns vary and every device waited for its
    # cache lines: 16 against 5 ns per device). Intel's hardware prefetchers do not follow
    # a stride of a whole row, so the one-device loop prefetches the weights a few rows
    # ahead (the FC network at k = 0.1 on an Intel Xeon: 385-399 -> 354-372 us per
    # sample). A column's normals come first, in a loop of their own that vectorizes (in
    # the device loop the hashes ran one at a time: 20 % of this part on the FC network's
    # first tile, measured)
    s0 = n_out - n_s
    # The parameters come column by column (_par_columns), a column's devices one after
    # another: read from ``par``, each device cost a cache line of its own for them (the
    # FC network's first tile, replayed updates: 144 -> 88 us per update for this pass)
    pcols = _par_columns(par_lines)
    # One device: down every row of the column in index order, a pulsing row keeping its
    # weight (and rewriting the read copies it already holds, the same values), so the loop
    # has no index list and its read copies are written in the same loop (as a call per
    # column they cost more than the update on a conv1-sized tile); 9-10 % less time for
    # this pass on the FC network's first tile than down the silent rows through their
    # index list (measured). Several devices: down the silent rows, then their read copies.
    silent = zbuf[2]
    fmap = zbuf[3]  # the column's map values, forward and backward
    bmap = zbuf[4]
    wd = w[dv]  # the device layer's weights, for the prefetch
    if n_dev == 1:
        for i in range(n_out):
            silent[i] = 1.0
        for ii in range(s0):
            silent[rows[ii]] = 0.0
    for jj in range(n_ac):
        j = acols[jj]
        sg = sgn[j]
        cm_j = cmean[j]
        cs_j = cspread[j]
        pc = pcols[dv, j]
        cg0 = (base + np.uint64(j)) * _GAMMA  # (counter base + i·n_in + j)·γ at i = 0
        step = np.uint64(n_in) * _GAMMA  # and its step i → i + 1
        if n_dev > 1:
            for ii in range(n_s):
                z0, z1, _ = _binomial3_gamma(cg0 + np.uint64(rows[s0 + ii]) * step)
                zbuf[0, ii] = z0
                zbuf[1, ii] = z1
            for ii in range(s0, n_out):
                i = rows[ii]
                up, down = np.float64(pc[i, PAR_UP]), np.float64(pc[i, PAR_DOWN])
                lo, hi = np.float64(pc[i, PAR_WMIN]), np.float64(pc[i, PAR_WMAX])
                w[dv, i, j] = _silent_steps(
                    w[dv, i, j], up, down, lo, hi, sg, cm_j, cs_j, zbuf[0, ii - s0],
                    zbuf[1, ii - s0],
                )  # fmt: skip
            _write_cols(rows, n_out - n_s, n_out, acols, jj, jj + 1, w, wread, att, use_att,
                        wread_b, att_b, bwd)  # fmt: skip
            continue
        cg = cg0
        for i in range(n_out):
            z0, z1, _ = _binomial3_gamma(cg)
            cg += step
            zbuf[0, i] = z0
            zbuf[1, i] = z1
        # the column's map values in loops of their own: computed from the line terms (the
        # maps' values bit for bit) or loaded down the column
        if lines:
            fc = al[ATT_COLS, j]
            for i in range(n_out):
                fmap[i] = 1.0 - (al[ATT_ROWS, i] + fc)
            if bwd:
                bc = al[ATT_B_COLS, j]
                for i in range(n_out):
                    bmap[i] = 1.0 - (al[ATT_B_ROWS, i] + bc)
        else:
            if use_att:
                for i in range(n_out):
                    fmap[i] = att[i, j]
            if bwd:
                for i in range(n_out):
                    bmap[i] = att_b[i, j]
        for i in range(n_out):
            if i + _PREFETCH_ROWS < n_out:  # a row apart: farther than hardware prefetches
                prefetch_for_write(wd, i + _PREFETCH_ROWS, j)
            old = w[dv, i, j]
            up, down = np.float64(pc[i, PAR_UP]), np.float64(pc[i, PAR_DOWN])
            lo, hi = np.float64(pc[i, PAR_WMIN]), np.float64(pc[i, PAR_WMAX])
            new = _silent_steps(old, up, down, lo, hi, sg, cm_j, cs_j, zbuf[0, i], zbuf[1, i])
            v = new if silent[i] != 0.0 else old
            w[dv, i, j] = v
            wread[i, j] = (v + 0.0) * fmap[i] if use_att else v + 0.0
            if bwd:
                wread_b[i, j] = (v + 0.0) * bmap[i]
    return n_coinc
