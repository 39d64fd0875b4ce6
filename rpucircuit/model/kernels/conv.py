"""The batched pulsed update of a convolution tile (:func:`conv_update`: one stochastic
update per patch, k = 0), bit-identical to the general batched update
(:func:`rpucircuit.model.kernels.batched._pulsed_update_batch`, which stays the reference
it is tested against) and organized for sparse patches and errors.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from rpucircuit.model.kernels.batched import _BATCH_LINES, _DIRECT_PAIRS
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
    DP_K,
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
from rpucircuit.model.kernels.reads import _all_finite
from rpucircuit.model.kernels.streams import (
    _ctz,
    _fill_normals,
    _padded,
    _popcount,
    _stream_pairs,
    _streams,
    _threshold,
)
from rpucircuit.model.kernels.updates import pulsed_update

_PAIR_LINES = 32
"""A chunk of :func:`conv_update` draws its column streams sample by sample, in the slot
pairs each sample's rows pulse in, from this many column lines per sample on average
(fewer: all at once)."""


@numba.njit(cache=True, nogil=True)
def _line_probs(
    v: FloatArray,
    k0: int,
    k1: int,
    scale: FloatArray,
    pk: FloatArray,
    idx: Any,
    start: Any,
) -> bool:  # pragma: no cover - compiled
    """The lines of rows k0 ≤ k < k1 of ``v`` (n, m) that draw bit streams, with their
    probabilities min(scale[k]·|v[k, j]|, 1), chosen exactly as
    :func:`rpucircuit.model.kernels.batched._batch_streams` chooses them (the same lines
    in the same order, so the same counters), but left compacted: line t (start[k − k0]
    ≤ t < start[k − k0 + 1]) is element j = idx[t] of row k, its probability pk[t].
    Mostly nonzero rows: every element is a line; else only the nonzero elements of rows
    with a nonzero scale. Returns True in the first case, where ``idx`` is left unwritten
    (line t is element t − start[k − k0]). ``pk`` and ``idx`` hold ``_padded((k1 −
    k0)·m)`` entries, ``start`` k1 − k0 + 1."""
    m = v.shape[1]
    n_nz = 0
    for k in range(k0, k1):
        for j in range(m):
            n_nz += int(v[k, j] != 0.0)
    # the probabilities' clip to 1 as a select (min() for every finite value: v is)
    if 2 * n_nz > (k1 - k0) * m:  # mostly nonzero: every element draws
        for k in range(k0, k1):
            sc = scale[k]
            base = (k - k0) * m
            start[k - k0] = base
            for j in range(m):
                p = sc * abs(v[k, j])
                pk[base + j] = p if p < 1.0 else 1.0
        start[k1 - k0] = (k1 - k0) * m
        return True
    cnt = 0
    if m <= 64:
        # short rows: a mask of the row's nonzero elements (a vector loop), then its set
        # bits in order, so the work goes to the nonzero elements only (paper B's conv1,
        # patches of 26 inputs and 16 errors, a fifth and a quarter nonzero: 16.3 → 11.2
        # and 11.6 → 7.0 µs per image, against a branch-free compaction over every
        # element; Intel Xeon, 2026-12-07)
        one = np.uint64(1)
        for k in range(k0, k1):
            start[k - k0] = cnt
            sc = scale[k]
            if sc == 0.0:
                continue
            nz = np.uint64(0)
            for j in range(m):
                nz |= np.uint64(v[k, j] != 0.0) << np.uint64(j)
            while nz != 0:
                j = _ctz(nz)
                nz &= nz - one
                p = sc * abs(v[k, j])
                idx[cnt] = j
                pk[cnt] = p if p < 1.0 else 1.0
                cnt += 1
        start[k1 - k0] = cnt
        return False
    for k in range(k0, k1):
        start[k - k0] = cnt
        sc = scale[k]
        if sc == 0.0:
            continue
        for j in range(m):  # branch-free compaction of the nonzero elements
            val = v[k, j]
            idx[cnt] = j
            p = sc * abs(val)
            pk[cnt] = p if p < 1.0 else 1.0
            cnt += int(val != 0.0)
    start[k1 - k0] = cnt
    return False


@numba.njit(cache=True, nogil=True)
def _line_streams(
    v: FloatArray,
    k0: int,
    k1: int,
    scale: FloatArray,
    bl: int,
    s: UIntArray,
    pk: FloatArray,
    idx: Any,
    masks: UIntArray,
    thr: UIntArray,
    start: Any,
) -> bool:  # pragma: no cover - compiled
    """:func:`_line_probs`, then every line's bit stream into ``masks[t]`` (one
    :func:`~.streams._streams` call over them, which advances the generator); ``masks``
    and ``thr`` hold as many entries as ``pk``."""
    full = _line_probs(v, k0, k1, scale, pk, idx, start)
    _streams(pk, start[k1 - k0], bl, masks, thr, s)
    return full


@numba.njit(cache=True, nogil=True)
def _column_pairs(
    cthr: UIntArray,
    cstart: Any,
    rms: UIntArray,
    rstart: Any,
    k0: int,
    k1: int,
    bl: int,
    base: np.uint64,
    cm: UIntArray,
    pairs: Any,
) -> None:  # pragma: no cover - compiled
    """The column streams of a chunk of samples k0 ≤ k < k1 (lines from
    :func:`_line_probs`, their thresholds ``cthr``, counters from ``base``), each sample's
    in the slot pairs its rows pulse in (any device: ``rms``, lines ``rstart``), into
    ``cm``; ``pairs[k − k0]`` gets those pairs (bit h: slots 2h and 2h + 1; 0 for a sample
    without row pulses, whose columns stay 0)."""
    n_pairs = (bl + 1) // 2
    for kc in range(k1 - k0):
        row_slots = np.uint64(0)
        for dv in range(rms.shape[0]):
            for t in range(rstart[kc], rstart[kc + 1]):
                row_slots |= rms[dv, t]
        pk = 0
        for h in range(n_pairs):
            pk |= int((row_slots >> np.uint64(2 * h)) & np.uint64(3) != 0) << h
        pairs[kc] = pk
        for t in range(np.uint64(cstart[kc]), np.uint64(cstart[kc + 1])):
            cm[t] = 0
        if pk:
            _stream_pairs(cthr, cstart[kc], cstart[kc + 1], bl, base, pk, cm)


@numba.njit(cache=True, nogil=True)
def conv_update(
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
    """``n`` sequential stochastic pulsed updates without half-select (k = 0), one per
    patch of a convolution layer: bit-identical to
    :func:`rpucircuit.model.kernels.batched._pulsed_update_batch` (what
    :func:`~rpucircuit.model.kernels.pulsed_update` runs for them), with the same streams,
    pulses and c2c draws in the same order, organized for sparse patches and errors.

    The streams of a chunk of samples stay compacted (:func:`_line_streams`: only the
    lines that drew, sample by sample) instead of being scattered into a full (sample,
    line) table, so a sample's pulsing columns and rows are found among its nonzero inputs
    and errors only (paper B's conv1: about a fifth of each 26-input patch, a quarter of
    the 16 errors): no zero-filled table, no scatter, no pass over every line of every
    sample. Measured (AMD EPYC, shared 2-core machine, minimum of 30 images): conv1's
    update 100 → 90 µs per image, conv2's unchanged. (Scattering the slot column lists
    from the pulsing columns' bits instead of gathering them slot by slot made conv2's
    update 7 % slower: the gather is branch-free.) Long patches (chunks of at least
    :data:`_PAIR_LINES` column lines per sample on average) draw their column streams
    later, sample by sample, in the slot pairs the sample's rows pulse in
    (:func:`_column_pairs`; the same bits, see the comment in the loop). Returns the
    number of coincidences, or −1 (changing nothing) if ``x`` or ``d`` holds a NaN or
    infinity.
    """
    if not (_all_finite(x) and _all_finite(d)):
        return -1
    n, n_in = x.shape
    n_dev, n_out, _ = w.shape
    ctoc = dp[DP_CTOC]
    soft = dp[DP_SOFT] != 0.0
    bounded = dp[DP_BOUNDED] != 0.0
    use_att = dp[DP_USE_ATT] != 0.0
    bwd = dp[DP_BWD_ATT] == BWD_KEPT  # a backward read copy to keep too
    # how a changed device refreshes the read copies, the mode tested at run time here (one
    # compiled copy of the loops per mode, as pulsed_update's k = 0 loop has, took 50 s more
    # to compile), as pulses._refresh_copies computes it but in an inner function, which
    # numba inlines using this scope's arrays: through _refresh_copies, whose arguments
    # are reference-counted on every call, conv2's update was twice as slow
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
    thr = np.empty(cap, dtype=np.uint64)
    cthr = np.empty(cap, dtype=np.uint64)  # the columns' thresholds, kept for the chunk
    cm = np.empty(cap, dtype=np.uint64)
    cidx = np.empty(cap, dtype=np.int64)
    cstart = np.empty(chunk + 1, dtype=np.int64)
    rms = np.empty((n_dev, cap), dtype=np.uint64)
    ridx = np.empty(cap, dtype=np.int64)
    rstart = np.empty(chunk + 1, dtype=np.int64)
    acols = np.empty(n_in, dtype=np.int64)
    acm = np.empty(n_in, dtype=np.uint64)
    arows = np.empty(n_out, dtype=np.int64)
    arm = np.empty(n_out, dtype=np.uint64)
    slot_cols = np.empty((bl, n_in), dtype=np.int64)
    slot_n = np.zeros(bl, dtype=np.int64)
    zbuf = np.empty(_C2C_BATCH)
    zpos = _C2C_BATCH
    n_coinc = 0
    n_pairs = (bl + 1) // 2
    all_pairs = (1 << n_pairs) - 1
    cpairs = np.empty(chunk, dtype=np.int64)  # each sample's drawn slot pairs
    for k0 in range(0, n, chunk):
        k1 = min(k0 + chunk, n)
        c_all = _line_probs(x, k0, k1, cxs, pk, cidx, cstart)
        n_c = cstart[k1 - k0]
        # The reference draws the chunk's column streams, then its row streams. With long
        # patches (conv2: 401 inputs) the columns' counters are only reserved here (the
        # rows' come after them, as there), and each sample's column streams are drawn
        # later in the slot pairs its pulsing rows use only: the other slots meet no row
        # pulse (bit-identical, the counters being positional; about a quarter of conv2's
        # column hashes saved: its update 213-218 → 184-193 µs per image, Intel Xeon). Short
        # ones (conv1's few nonzero inputs) draw all at once: by pairs, conv1's update
        # took 194 against 130 µs.
        by_pairs = n_c >= _PAIR_LINES * (k1 - k0)
        c_base = s[4]
        if by_pairs:
            for t in range(n_c):
                cthr[t] = _threshold(pk[t])
            s[4] = c_base + np.uint64(n_c * n_pairs)
        else:
            _streams(pk, n_c, bl, cm, thr, s)
        r_all = False
        for dv in range(n_dev):  # each device the same lines (ridx, rstart), its own bits
            r_all = _line_streams(d, k0, k1, cds, bl, s, pk, ridx, rms[dv], thr, rstart)
        if by_pairs:
            _column_pairs(cthr, cstart, rms, rstart, k0, k1, bl, c_base, cm, cpairs)
        else:
            cpairs[: k1 - k0] = all_pairs
        for k in range(k0, k1):
            if cxs[k] == 0.0:
                continue
            kc = k - k0
            pairs = cpairs[kc]
            if pairs == 0:
                continue  # drawn by pairs, no row pulse: no coincidence
            r0 = rstart[kc]
            r1 = rstart[kc + 1]
            c0 = cstart[kc]
            c1 = cstart[kc + 1]
            n_ac = 0
            col_any = np.uint64(0)
            for t in range(c0, c1):  # branch-free: the pulsing columns
                mj = cm[t]
                acols[n_ac] = t - c0 if c_all else cidx[t]
                acm[n_ac] = mj
                n_ac += int(mj != 0)
                col_any |= mj
            if col_any == 0:
                continue
            built = np.uint64(0)  # slots whose column list is built for this sample
            for dv in range(n_dev):
                n_ar = 0
                for t in range(r0, r1):
                    # a row pulse without columns: no-op (rows pulse only in the drawn
                    # pairs, so col_any is the reference's there)
                    rm = rms[dv, t] & col_any
                    arows[n_ar] = t - r0 if r_all else ridx[t]
                    arm[n_ar] = rm
                    n_ar += int(rm != 0)
                if n_ar > 0 and n_ar * n_ac <= _DIRECT_PAIRS and pairs != all_pairs:
                    # the choice of path counts every pulsing column, in any slot: draw
                    # the other pairs too (the slot lists already built stay the same)
                    _stream_pairs(cthr, c0, c1, bl, c_base, all_pairs & ~pairs, cm)
                    pairs = all_pairs
                    n_ac = 0
                    for t in range(c0, c1):
                        mj = cm[t]
                        acols[n_ac] = t - c0 if c_all else cidx[t]
                        acm[n_ac] = mj
                        n_ac += int(mj != 0)
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


@numba.njit(cache=True, nogil=True)
def patch_update(
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
    att_lines: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """:func:`~rpucircuit.model.kernels.pulsed_update` (same arguments, same result bit for
    bit), with the batches it gives the general batched update (n > 1, k = 0: a conv
    layer's patches) run by :func:`conv_update`."""
    if x.shape[0] > 1 and dp[DP_K] == 0.0:
        return conv_update(
            x, d, lr, bl, um, dw_min, w, par, dp, wread, att, wread_b, att_b, att_lines, s
        )
    return pulsed_update(
        x, d, lr, bl, um, dw_min, w, par, par_lines, dp, wread, att, wread_b, att_b, att_lines, s
    )
