"""The batched pulsed update: ``n > 1`` sequential updates without half-select (a
convolution layer's patches), streams drawn for many samples at a time.
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
    BWD_KEPT,
    DP_ATT_LINES,
    DP_BOUNDED,
    DP_BWD_ATT,
    DP_CTOC,
    DP_SOFT,
    DP_USE_ATT,
    PAR_WMAX,
    PAR_WMIN,
    FloatArray,
    UIntArray,
)
from rpucircuit.model.kernels.pulses import (
    _C2C_BATCH,
    _copy_cases,
    _copy_mode,
    _line_map,
    _pulse_scales,
    _sign,
    _soft_step,
    _step_index,
)
from rpucircuit.model.kernels.streams import _ctz, _fill_normals, _padded, _popcount, _streams


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
    wread_b: FloatArray,
    att_b: FloatArray,
    att_lines: FloatArray,
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
    about the same (173 → 168 µs). The per-sample steps stay in this one function: as
    functions of their own (line compaction, slot lists, the two pair loops), called once
    per sample and device, they made conv1's update of 576 patches 17 % slower (272 →
    321 µs, measured), and the pulse block as a helper that is not
    inlined made updates 3-5x slower.
    """
    n, n_in = x.shape
    n_dev, n_out, _ = w.shape
    ctoc = dp[DP_CTOC]
    soft = dp[DP_SOFT] != 0.0
    bounded = dp[DP_BOUNDED] != 0.0
    use_att = dp[DP_USE_ATT] != 0.0
    bwd = dp[DP_BWD_ATT] == BWD_KEPT  # a backward read copy to keep too
    # how a changed device refreshes the read copies: an inner function, as in
    # conv.conv_update (which says why)
    c_single, c_lines, c_maps = _copy_cases(
        _copy_mode(n_dev, use_att, bwd, dp[DP_ATT_LINES] != 0.0)
    )

    def refresh(i: int, j: int, v: float) -> None:
        if c_single:
            wread[i, j] = v
        elif c_lines:
            total = v + 0.0
            wread[i, j] = total * _line_map(att_lines[ATT_ROWS, i], att_lines[ATT_COLS, j])
            if bwd:
                wread_b[i, j] = total * _line_map(
                    att_lines[ATT_B_ROWS, i], att_lines[ATT_B_COLS, j]
                )
        elif c_maps:
            total = v + 0.0
            wread[i, j] = total * att[i, j]
            if bwd:
                wread_b[i, j] = total * att_b[i, j]
        else:  # several devices (or a backward map alone): their sum
            total = 0.0
            for dd in range(n_dev):
                total += w[dd, i, j]
            wread[i, j] = total * att[i, j] if use_att else total
            if bwd:
                wread_b[i, j] = total * att_b[i, j]

    cxs, cds = _pulse_scales(x, d, lr, bl, dw_min, um)  # 0: the sample changes nothing
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
                                dw0 = par[dv, i, j, _step_index(sg)]
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
                                refresh(i, j, v)
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
                            dw0 = par[dv, i, j, _step_index(sg)]
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
                            refresh(i, j, v)
    return n_coinc
