"""The half-select update of a batch of samples (a convolution layer's patches), hard
bounds (:func:`_half_select_batch`): one step per device for a block of samples where no
bound is within reach, phase by phase and sample by sample only for the devices near one.

Why one step is enough. Over the samples of a block, a device (i, j) on the same phases
as in :mod:`.halfselect` collects, in each sample, ``nf`` coincidences and ``|r ⊕ c|``
lone pulses in the direction a of its coincidence phase, and ``n_r + n_c`` lone pulses
in the other direction. With up and down steps u, d, writing NF₊ and NF₋ for its
coincidences in the up and down direction over the block and L = Σ (n_r + n_c) for its
row's and column's pulses (the lone pulses' count: it only depends on the row and on the
column, ``L_i + L_j``), the sum of all its steps has

* mean u·((1 − 2k)·NF₊ + k·L) − d·((1 − 2k)·NF₋ + k·L),
* variance ctoc²·(u²·((1 − 2k²)·NF₊ + k²·L) + d²·((1 − 2k²)·NF₋ + k²·L)),

(|r ⊕ c| = n_r + n_c − 2·nf), and no phase moves it by more than
max(u, d)·(nf + k·(|r ⊕ c| + n_r + n_c))·(1 + Z_max·ctoc) (as in
:func:`_far_row`). When the bounds are farther than the sum of those over the block, no
clip can happen and the device's new weight is the old one plus that mean plus one normal
of that variance: the sample-by-sample result in distribution. The coincidences are few
(a k = 0 update's work: every pulsing row against the block's pulsing columns);
everything else is per row and per column, so a block costs one pass over the tile
instead of one per sample.

Blocks hold :data:`_BLOCK` samples at most, so the reach stays small against the bounds
(paper B's CNN after 400 MNIST images at k = 0.1, estimated from the expected pulse
counts: 4 % of conv1's devices near a bound per block of 64 of its 576 patches, 0.2 % of
conv2's for its 64 patches).

Random numbers: sample by sample the bit streams and counters are drawn as
:func:`~rpucircuit.model.kernels.pulsed_update` draws them for single samples (column
streams, then each device layer's row streams and its out·in half-select counters from
s[4]), so a batch sees the pulses its samples would see one call at a time, and a device
near a bound gets the very normals (counters ``base_t + i·in + j`` of its sample t,
:func:`~rpucircuit.model.kernels.halfselect._binomial3`) and so the very result it would
get there. A far device's one normal is the first of its counter in the block's first
sample with pulses (it uses no other of the block's counters).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from rpucircuit.model.kernels.halfselect import (
    _ZMAX,
    _binomial1_gamma,
    _binomial3_gamma,
    _clip,
    _fields,
    _pulsing_device,
    _silent_steps,
)
from rpucircuit.model.kernels.layout import (
    BWD_KEPT,
    DP_BWD_ATT,
    DP_CTOC,
    DP_K,
    DP_USE_ATT,
    PAR_DOWN,
    PAR_UP,
    PAR_WMAX,
    PAR_WMIN,
    FloatArray,
    UIntArray,
)
from rpucircuit.model.kernels.pulses import _pulse_scales
from rpucircuit.model.kernels.streams import _GAMMA, _padded, _popcount, _streams

_BLOCK = 64
"""Samples per block of :func:`_half_select_batch`."""


@numba.njit(cache=True, nogil=True)
def _far_row(
    wrow: FloatArray,
    pf: FloatArray,
    l_row: float,
    l_col: FloatArray,
    nfp: FloatArray,
    nfm: FloatArray,
    k: float,
    ctoc: float,
    row_base: np.uint64,
    near: Any,
) -> int:  # pragma: no cover - compiled
    """One row of devices over a block (module docstring): ``l_row`` + ``l_col[j]`` lone
    pulses, ``nfp``/``nfm`` (in,) coincidences up/down; moves every touched device whose
    bounds are out of reach in one step, marks the touched others in ``near`` (uint8) and
    returns their number. ``pf`` (PAR_LEN, in): the row's parameters field by field, so
    the pass vectorizes (see :func:`~rpucircuit.model.kernels.halfselect._pulsing_row`)."""
    n_in = wrow.shape[0]
    c1 = 1.0 - 2.0 * k
    c2 = 1.0 - 2.0 * k * k
    k2 = k * k
    zfac = 1.0 + _ZMAX * ctoc
    n_near = 0
    cg = row_base * _GAMMA  # (device j's counter row_base + j)·γ
    for j in range(n_in):
        v = wrow[j]
        up, down, lo, hi = _fields(pf, j)  # float64 values of the float32 copy
        lone = l_row + l_col[j]
        fp = nfp[j]
        fm = nfm[j]
        mean = up * (c1 * fp + k * lone) - down * (c1 * fm + k * lone)
        var = up * up * (c2 * fp + k2 * lone) + down * down * (c2 * fm + k2 * lone)
        reach = max(up, down) * (c1 * (fp + fm) + 2.0 * k * lone) * zfac
        z = _binomial1_gamma(cg)
        cg += _GAMMA
        new = _clip(v + (mean + ctoc * np.sqrt(var) * z), lo, hi)
        far = (v - reach >= lo) & (v + reach <= hi)
        touched = (lone + fp + fm) > 0.0
        wrow[j] = new if (far & touched) else v
        near[j] = np.uint8(touched & (not far))
        n_near += int(touched & (not far))
    return n_near


@numba.njit(cache=True, nogil=True)
def _near_device(
    v: float,
    up: float,
    down: float,
    lo: float,
    hi: float,
    i: int,
    j: int,
    x: FloatArray,
    d: FloatArray,
    k0: int,
    k1: int,
    cm: UIntArray,
    rm: UIntArray,
    k: float,
    ctoc: float,
    bases: UIntArray,
) -> float:  # pragma: no cover - compiled
    """Device (i, j) near a bound through the block's samples k0 ≤ t < k1 in order, phase
    by phase (:func:`~rpucircuit.model.kernels.halfselect._pulsing_device` on a pulsing
    row, :func:`~rpucircuit.model.kernels.halfselect._silent_steps` on a pulsing column
    of a silent row); ``cm``, ``rm``: the block's column and row masks; normals of sample
    t from counter ``bases[t − k0] + i·in + j``."""
    n_in = x.shape[1]
    n_out = d.shape[1]
    own = np.uint64(i * n_in + j)
    for t in range(k0, k1):
        kc = t - k0
        c_m = cm[kc * n_in + j]
        r_m = rm[kc * n_out + i]
        if c_m == 0 and r_m == 0:
            continue
        n_c = float(_popcount(c_m))
        sg = -1.0 if (c_m != 0 and x[t, j] < 0.0) else 1.0
        cmean = k * n_c
        cspread = ctoc * k * np.sqrt(n_c)
        cg = (bases[kc] + own) * _GAMMA  # (the device's counter in sample t)·γ
        if r_m == 0:
            z0, z1, _ = _binomial3_gamma(cg)
            v = _silent_steps(v, up, down, lo, hi, sg, cmean, cspread, z0, z1)
            continue
        n_r = float(_popcount(r_m))
        tau = 1.0 if d[t, i] > 0.0 else -1.0
        v = _pulsing_device(
            v, up, down, lo, hi, float(_popcount(r_m & c_m)), float(_popcount(r_m ^ c_m)),
            sg, tau, cmean, cspread, k * n_r, ctoc * k * np.sqrt(n_r), k, ctoc, cg,
        )  # fmt: skip
    return v


@numba.njit(cache=True, nogil=True)
def _write_all(
    w: FloatArray,
    wread: Any,
    att: FloatArray,
    use_att: bool,
    wread_b: Any,
    att_b: FloatArray,
    bwd: bool,
) -> None:  # pragma: no cover - compiled
    """Every read copy element from the device weights, as every update computes it (the
    device sum 0.0 + each device in device order, times the map when ``use_att``; the
    backward copy when ``bwd``), in the memory order of ``wread``."""
    n_dev, n_out, n_in = w.shape
    if wread.strides[0] < wread.strides[1]:  # column-major: down the columns
        for j in range(n_in):
            for i in range(n_out):
                total = 0.0
                for dd in range(n_dev):
                    total += w[dd, i, j]
                wread[i, j] = total * att[i, j] if use_att else total
                if bwd:
                    wread_b[i, j] = total * att_b[i, j]
        return
    for i in range(n_out):
        for j in range(n_in):
            total = 0.0
            for dd in range(n_dev):
                total += w[dd, i, j]
            wread[i, j] = total * att[i, j] if use_att else total
            if bwd:
                wread_b[i, j] = total * att_b[i, j]


@numba.njit(cache=True, nogil=True)
def _half_select_batch(
    x: FloatArray,
    d: FloatArray,
    lr: float,
    bl: int,
    um: bool,
    dw_min: float,
    w: FloatArray,
    par: FloatArray,
    par_lines: FloatArray,
    dp: FloatArray,
    wread: Any,
    att: FloatArray,
    wread_b: Any,
    att_b: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """:func:`~rpucircuit.model.kernels.pulsed_update` of n > 1 samples with half-select
    and hard bounds (module docstring), finite inputs: per block of samples, the column
    streams and each device layer's row streams sample by sample, the lone pulses per row
    and column, the coincidences by direction, then one pass per row
    (:func:`_far_row`, reading the row's parameters from ``par_lines[0]``, ``par`` field
    by field within each row) and the near devices sample by sample (:func:`_near_device`);
    the read copies are rewritten once at the end. Returns the number of coincidences."""
    n, n_in = x.shape
    n_dev, n_out, _ = w.shape
    k = dp[DP_K]
    ctoc = dp[DP_CTOC]
    use_att = dp[DP_USE_ATT] != 0.0
    bwd = dp[DP_BWD_ATT] == BWD_KEPT
    cxs, cds = _pulse_scales(x, d, lr, bl, dw_min, um)
    blk = min(n, _BLOCK)
    pbuf = np.empty(n_in)
    qbuf = np.empty(n_out)
    nz = np.empty(n_in, dtype=np.int64)
    mbuf = np.empty(_padded(n_in), dtype=np.uint64)
    rbuf = np.empty(_padded(n_out), dtype=np.uint64)
    thr = np.empty(_padded(max(n_in, n_out)), dtype=np.uint64)
    cm = np.zeros(blk * n_in, dtype=np.uint64)  # the block's column masks, (sample, column)
    rms = np.zeros((n_dev, blk * n_out), dtype=np.uint64)  # row masks per device layer
    bases = np.zeros((n_dev, blk), dtype=np.uint64)  # each sample's half-select counters
    acols = np.empty(n_in, dtype=np.int64)
    acm = np.empty(n_in, dtype=np.uint64)
    l_col = np.empty(n_in)
    l_row = np.empty(n_out)
    nfp = np.zeros((n_out, n_in))
    nfm = np.zeros((n_out, n_in))
    near = np.empty(n_in, dtype=np.uint8)
    size = np.uint64(n_out * n_in)
    n_coinc = 0
    for k0 in range(0, n, blk):
        k1 = min(k0 + blk, n)
        nb = k1 - k0
        first = -1  # the block's first sample with pulses
        for kc in range(nb):  # the streams and counters of single-sample updates, in order
            t = k0 + kc
            cx = cxs[t]
            cm[kc * n_in : (kc + 1) * n_in] = 0
            rms[:, kc * n_out : (kc + 1) * n_out] = 0
            if cx == 0.0:
                continue
            first = kc if first < 0 else first
            n_nz = 0
            for j in range(n_in):  # branch-free compaction of the nonzero inputs
                v = x[t, j]
                nz[n_nz] = j
                pbuf[n_nz] = min(cx * abs(v), 1.0)
                n_nz += int(v != 0.0)
            _streams(pbuf, n_nz, bl, mbuf, thr, s)
            for jj in range(n_nz):
                cm[kc * n_in + nz[jj]] = mbuf[jj]
            cd = cds[t]
            for dv in range(n_dev):
                for i in range(n_out):
                    qbuf[i] = min(cd * abs(d[t, i]), 1.0)
                _streams(qbuf, n_out, bl, rbuf, thr, s)
                for i in range(n_out):
                    rms[dv, kc * n_out + i] = rbuf[i]
                bases[dv, kc] = s[4]
                s[4] += size
        if first < 0:
            continue
        l_col[:] = 0.0
        for kc in range(nb):
            for j in range(n_in):
                l_col[j] += float(_popcount(cm[kc * n_in + j]))
        for dv in range(n_dev):
            rm = rms[dv]
            l_row[:] = 0.0
            for kc in range(nb):
                for i in range(n_out):
                    l_row[i] += float(_popcount(rm[kc * n_out + i]))
            for kc in range(nb):  # coincidences by direction: pulsing rows × pulsing columns
                t = k0 + kc
                n_ac = 0
                for j in range(n_in):  # branch-free compaction of the pulsing columns
                    mj = cm[kc * n_in + j]
                    acols[n_ac] = j
                    acm[n_ac] = mj
                    n_ac += int(mj != 0)
                if n_ac == 0:
                    continue
                for i in range(n_out):
                    r_m = rm[kc * n_out + i]
                    if r_m == 0:
                        continue
                    tau = 1.0 if d[t, i] > 0.0 else -1.0
                    for jj in range(n_ac):
                        both = r_m & acm[jj]
                        if both != 0:
                            j = acols[jj]
                            nf = float(_popcount(both))
                            n_coinc += int(nf)
                            if x[t, j] * tau < 0.0:  # direction a = −σ·τ > 0: up
                                nfp[i, j] += nf
                            else:
                                nfm[i, j] += nf
            far_base = bases[dv, first]
            for i in range(n_out):
                wrow = w[dv, i]
                n_near = _far_row(
                    wrow, par_lines[0, dv, i], l_row[i], l_col, nfp[i], nfm[i], k, ctoc,
                    far_base + np.uint64(i * n_in), near,
                )  # fmt: skip
                if n_near > 0:
                    prow = par[dv, i]
                    for j in range(n_in):
                        if near[j]:
                            wrow[j] = _near_device(
                                wrow[j], prow[j, PAR_UP], prow[j, PAR_DOWN], prow[j, PAR_WMIN],
                                prow[j, PAR_WMAX], i, j, x, d, k0, k1, cm, rm, k, ctoc,
                                bases[dv],
                            )  # fmt: skip
                nfp[i, :] = 0.0
                nfm[i, :] = 0.0
    _write_all(w, wread, att, use_att, wread_b, att_b, bwd)
    return n_coinc
