"""Stochastic pulsed updates (:func:`pulsed_update`), the exact floating-point update
(:func:`exact_update`) and the pulse-by-pulse reference (:func:`reference_update`).

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

from rpucircuit.model.kernels.batched import _pulsed_update_batch
from rpucircuit.model.kernels.halfselect import (
    _half_select_columns,
    _half_select_hard,
    _par_columns,
)
from rpucircuit.model.kernels.hsbatch import _half_select_batch
from rpucircuit.model.kernels.layout import (
    BWD_KEPT,
    BWD_STALE,
    DP_ATT_LINES,
    DP_BOUNDED,
    DP_BWD_ATT,
    DP_CTOC,
    DP_K,
    DP_SOFT,
    DP_USE_ATT,
    PAR_DOWN,
    PAR_UP,
    PAR_WMAX,
    PAR_WMIN,
    FloatArray,
    UIntArray,
)
from rpucircuit.model.kernels.pulses import (
    _C2C_BATCH,
    COPY_ANY,
    COPY_BOTH_LINES,
    COPY_BOTH_MAPS,
    COPY_FWD_LINES,
    COPY_FWD_MAP,
    COPY_SINGLE,
    _copy_mode,
    _half_select_element,
    _pulse_scales,
    _refresh_copies,
    _soft_step,
    _step_index,
)
from rpucircuit.model.kernels.reads import _all_finite
from rpucircuit.model.kernels.streams import (
    _ctz,
    _fill_normals,
    _padded,
    _popcount,
    _streams,
)

PHASES = ((1, 1), (1, -1), (-1, 1), (-1, -1))
"""Order of the four update phases (σ = sign of x, τ = sign of δ); direction a = −σ·τ."""


@numba.njit(cache=True, nogil=True)
def _lines_of(par: FloatArray, par_lines: FloatArray) -> FloatArray:  # pragma: no cover
    """``par_lines`` when it is :func:`~rpucircuit.model.kernels.layout.par_lines_of` of
    ``par`` (its shape matches), else that array built now (a caller without a tile's
    copy; float32, as that function builds it)."""
    n_dev, n_out, n_in, n_f = par.shape
    if par_lines.shape == (2, n_dev, n_out, n_f, n_in):
        return par_lines
    lines = np.empty((2, n_dev, n_out, n_f, n_in), dtype=np.float32)
    cols = _par_columns(lines)
    for dv in range(n_dev):
        for i in range(n_out):
            for j in range(n_in):
                for f in range(n_f):
                    lines[0, dv, i, f, j] = par[dv, i, j, f]
                    cols[dv, j, i, f] = par[dv, i, j, f]
    return lines


@numba.njit(cache=True, nogil=True, inline="always")
def _coincidence_rows(
    mode: int,
    dv: int,
    n_out: int,
    rmask: UIntArray,
    col_any: np.uint64,
    sd: Any,
    sx: Any,
    slot_cols: Any,
    slot_n: Any,
    par: FloatArray,
    ctoc: float,
    soft: bool,
    bounded: bool,
    w: FloatArray,
    wread: Any,
    att: FloatArray,
    use_att: bool,
    wread_b: Any,
    att_b: FloatArray,
    bwd: bool,
    al: FloatArray,
    zbuf: FloatArray,
    zpos: int,
    s: UIntArray,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """The k = 0 pulses of device ``dv`` in one sample of :func:`pulsed_update` (which
    see): every pulsing row meets slot t's column list in each slot t it pulses in.
    Returns (coincidences, the new position in the c2c buffer ``zbuf``).

    Inlined into the update, which calls it once per read-copy mode with that mode as a
    literal (:func:`~.pulses._refresh_copies`)."""
    n_coinc = 0
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
                dw = par[dv, i, j, _step_index(sg)]
                if ctoc > 0.0:
                    if zpos == _C2C_BATCH:
                        _fill_normals(zbuf, _C2C_BATCH, s)
                        zpos = 0
                    dw *= 1.0 + ctoc * zbuf[zpos]
                    zpos += 1
                v = w[dv, i, j]
                if soft:
                    v = _soft_step(v, dw, sg > 0, par[dv, i, j, PAR_WMAX], par[dv, i, j, PAR_WMIN])
                else:
                    v += sg * dw
                    if bounded:
                        v = min(max(v, par[dv, i, j, PAR_WMIN]), par[dv, i, j, PAR_WMAX])
                w[dv, i, j] = v
                _refresh_copies(mode, i, j, v, w, wread, att, use_att, wread_b, att_b, bwd, al)
    return n_coinc, zpos


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
    par_lines: FloatArray,
    dp: FloatArray,
    wread: FloatArray,
    att: FloatArray,
    wread_b: FloatArray,
    att_b: FloatArray,
    att_lines: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """``n`` sequential stochastic updates W ← W − lr·δᵀx (in expectation), in place.

    ``x`` (n, in), ``d`` (n, out); device weights ``w`` (n_dev, out, in), device parameters
    ``par`` (n_dev, out, in, PAR_LEN) and, for the half-select passes over whole rows and
    columns, the same laid out along both, ``par_lines`` (2, n_dev, out, PAR_LEN, in;
    float32, C order: :func:`~rpucircuit.model.kernels.layout.par_lines_of`; an empty one,
    as :func:`~rpucircuit.model.kernels.layout.no_par_lines` gives, makes the update build
    its own: the same result, slower; with k > 0 and bounds that are not soft those passes
    read the parameters from it, so ``par`` should hold float32 values, as a tile's do,
    :func:`~rpucircuit.model.kernels.layout.round_parameters`); ``wread`` (out, in) is
    refreshed for every touched element, and so is the backward read copy ``wread_b``
    (out, in, C order; weights times ``att_b``) when ``dp[DP_BWD_ATT]`` is set (else
    ``wread_b``/``att_b`` are unused); ``att_lines``: the maps' line terms
    (:func:`~rpucircuit.model.kernels.layout.att_lines_maps`), from which the updates of
    one-device tiles compute a map value instead of loading it when ``dp[DP_ATT_LINES]``
    is set (the same value; else unused).
    Rows are replicated per device (each device of a weight has its own row streams),
    column streams are shared. Returns the number of full coincidences, or −1
    (changing nothing) if ``x`` or ``d`` holds a NaN or infinity.

    Batches (n > 1) without half-select go to :func:`_pulsed_update_batch`, with
    half-select and hard bounds to :func:`~.hsbatch._half_select_batch` (a block of
    samples in one step per device far from its bounds). Otherwise sample by sample:
    column streams and the list of pulsing columns, each slot's column list, then per
    device the row streams and the pulses (coincidences only for k = 0; half-select with
    hard bounds: :mod:`.halfselect`, one draw per device and phase on the pulsing lines
    only; with soft bounds: pulse by pulse per device). These steps
    stay in this one function (the k = 0 pulses in :func:`_coincidence_rows`, which numba
    inlines): as functions of their own, called per sample and device, they made conv1's
    half-select update 10 % slower (measured), and the pulse block as a helper that is not
    inlined made updates 3-5x slower.
    """
    if not (_all_finite(x) and _all_finite(d)):
        return -1
    if x.shape[0] > 1 and dp[DP_K] == 0.0:
        return _pulsed_update_batch(
            x, d, lr, bl, um, dw_min, w, par, dp, wread, att, wread_b, att_b, att_lines, s
        )
    if x.shape[0] > 1 and dp[DP_SOFT] == 0.0:  # half-select, hard bounds: whole blocks
        return _half_select_batch(
            x, d, lr, bl, um, dw_min, w, par, _lines_of(par, par_lines), dp, wread, att,
            wread_b, att_b, s,
        )  # fmt: skip
    n_dev, n_out, n_in = w.shape
    k_on = dp[DP_K] != 0.0
    soft = dp[DP_SOFT] != 0.0
    hs_cols = n_in if k_on and not soft else 0  # per-column terms of the half-select phases
    hs_out = n_out if hs_cols else 0
    # the scratch arrays as views of three buffers, one per type: each allocation costs
    # more than its view (about 0.5 us per call of 20 allocations, measured)
    p_out, p_in, p_max = _padded(n_out), _padded(n_in), _padded(max(n_in, n_out))
    ubuf = np.empty(2 * n_in + p_out + p_in + p_max, dtype=np.uint64)
    cmask = ubuf[:n_in]
    rmask = ubuf[n_in : n_in + p_out]
    acm = ubuf[n_in + p_out : 2 * n_in + p_out]
    mbuf = ubuf[2 * n_in + p_out : 2 * n_in + p_out + p_in]
    thr = ubuf[2 * n_in + p_out + p_in :]
    cmask[:] = 0
    rmask[:] = 0
    ibuf = np.empty((4 + bl) * n_in + bl + n_out + hs_out, dtype=np.int64)
    acols = ibuf[:n_in]
    nz = ibuf[n_in : 2 * n_in]
    sx = ibuf[2 * n_in : 3 * n_in]
    all_cols = ibuf[3 * n_in : 4 * n_in]
    slot_cols = ibuf[4 * n_in : (4 + bl) * n_in].reshape((bl, n_in))
    slot_n = ibuf[(4 + bl) * n_in : (4 + bl) * n_in + bl]
    sd = ibuf[(4 + bl) * n_in + bl : (4 + bl) * n_in + bl + n_out]
    hs_rows = ibuf[(4 + bl) * n_in + bl + n_out :]  # pulsing, then silent rows
    sx[:] = 0
    slot_n[:] = 0
    sd[:] = 0
    if k_on:  # every column, for the half-select passes only
        for j in range(n_in):
            all_cols[j] = j
    fbuf = np.empty(n_in + n_out + 3 * hs_cols + 5 * hs_out + _C2C_BATCH)
    pbuf = fbuf[:n_in]
    qbuf = fbuf[n_in : n_in + n_out]
    f0 = n_in + n_out
    csgn = fbuf[f0 : f0 + hs_cols]
    cmean = fbuf[f0 + hs_cols : f0 + 2 * hs_cols]
    cspread = fbuf[f0 + 2 * hs_cols : f0 + 3 * hs_cols]
    hs_z = fbuf[f0 + 3 * hs_cols : f0 + 3 * hs_cols + 5 * hs_out].reshape((5, hs_out))
    zbuf = fbuf[f0 + 3 * hs_cols + 5 * hs_out :]  # c2c normals of coincidences, in order
    ctoc = dp[DP_CTOC]
    bounded = dp[DP_BOUNDED] != 0.0
    use_att = dp[DP_USE_ATT] != 0.0
    bwd = dp[DP_BWD_ATT] == BWD_KEPT  # a backward read copy to keep too
    lines = dp[DP_ATT_LINES] != 0.0
    mode = _copy_mode(n_dev, use_att, bwd, lines)  # how a changed device refreshes the copies
    k_val = dp[DP_K]
    hs_plines = _lines_of(par, par_lines) if hs_cols else par_lines
    zpos = _C2C_BATCH
    n_coinc = 0
    cxs, cds = _pulse_scales(x, d, lr, bl, dw_min, um)  # 0: the sample changes nothing
    for smp in range(x.shape[0]):
        cx = cxs[smp]
        cd = cds[smp]
        if cx == 0.0:
            continue
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
        for t in range(0 if k_on else bl):  # slot t's column list (k = 0), branch-free
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
                # one inlined copy per read-copy mode, each called with its literal mode
                # (numba inlines no call with *args), so the hot loop never tests the switches
                if mode == COPY_SINGLE:
                    n_c, zpos = _coincidence_rows(
                        COPY_SINGLE, dv, n_out, rmask, col_any, sd, sx, slot_cols, slot_n, par,
                        ctoc, soft, bounded, w, wread, att, use_att, wread_b, att_b, bwd,
                        att_lines, zbuf, zpos, s,
                    )  # fmt: skip
                elif mode == COPY_FWD_MAP:
                    n_c, zpos = _coincidence_rows(
                        COPY_FWD_MAP, dv, n_out, rmask, col_any, sd, sx, slot_cols, slot_n, par,
                        ctoc, soft, bounded, w, wread, att, use_att, wread_b, att_b, bwd,
                        att_lines, zbuf, zpos, s,
                    )  # fmt: skip
                elif mode == COPY_BOTH_MAPS:
                    n_c, zpos = _coincidence_rows(
                        COPY_BOTH_MAPS, dv, n_out, rmask, col_any, sd, sx, slot_cols, slot_n, par,
                        ctoc, soft, bounded, w, wread, att, use_att, wread_b, att_b, bwd,
                        att_lines, zbuf, zpos, s,
                    )  # fmt: skip
                elif mode == COPY_FWD_LINES:
                    n_c, zpos = _coincidence_rows(
                        COPY_FWD_LINES, dv, n_out, rmask, col_any, sd, sx, slot_cols, slot_n, par,
                        ctoc, soft, bounded, w, wread, att, use_att, wread_b, att_b, bwd,
                        att_lines, zbuf, zpos, s,
                    )  # fmt: skip
                elif mode == COPY_BOTH_LINES:
                    n_c, zpos = _coincidence_rows(
                        COPY_BOTH_LINES, dv, n_out, rmask, col_any, sd, sx, slot_cols, slot_n, par,
                        ctoc, soft, bounded, w, wread, att, use_att, wread_b, att_b, bwd,
                        att_lines, zbuf, zpos, s,
                    )  # fmt: skip
                else:
                    n_c, zpos = _coincidence_rows(
                        COPY_ANY, dv, n_out, rmask, col_any, sd, sx, slot_cols, slot_n, par,
                        ctoc, soft, bounded, w, wread, att, use_att, wread_b, att_b, bwd,
                        att_lines, zbuf, zpos, s,
                    )  # fmt: skip
                n_coinc += n_c
            elif not soft:  # half-select, hard bounds: the devices on pulsing lines
                if dv == 0:
                    _half_select_columns(x[smp], cmask, k_val, ctoc, csgn, cmean, cspread)
                n_coinc += _half_select_hard(
                    dv, rmask, d[smp], cmask, csgn, cmean, cspread, acols, n_ac, all_cols, k_val,
                    ctoc, w, wread, att, use_att, wread_b, att_b, bwd, att_lines, lines, s,
                    hs_plines, hs_rows, hs_z,
                )  # fmt: skip
            else:
                # half-select, soft bounds: every device on a pulsing row or column, pulse
                # by pulse
                for i in range(n_out):
                    rm = rmask[i]
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
                        _refresh_copies(
                            mode, i, j, v, w, wread, att, use_att, wread_b, att_b, bwd, att_lines
                        )
    return n_coinc


@numba.njit(cache=True, nogil=True)
def refresh_backward(w: FloatArray, att_b: FloatArray, wread_b: Any, dp: FloatArray) -> None:
    """Rebuild the backward read copy ``wread_b`` = (Σ devices of ``w``)·``att_b`` if it
    is stale (``dp[DP_BWD_ATT]`` :data:`BWD_STALE`), then mark it kept (``BWD_KEPT``): the
    same sum, in the same order, as the updates use when they keep it element by element,
    so a refreshed copy equals a kept one bit for bit."""
    if dp[DP_BWD_ATT] != BWD_STALE:
        return
    n_dev, n_out, n_in = w.shape
    for i in range(n_out):
        for j in range(n_in):
            total = 0.0
            for dd in range(n_dev):
                total += w[dd, i, j]
            wread_b[i, j] = total * att_b[i, j]
    dp[DP_BWD_ATT] = BWD_KEPT


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
    wread_b: FloatArray,
    att_b: FloatArray,
) -> int:  # pragma: no cover - compiled
    """W ← W − lr·δᵀx for each of the ``n`` rows in turn, split evenly over the devices;
    ``wread`` (and ``wread_b`` when ``dp[DP_BWD_ATT]``) refreshed as in :func:`pulsed_update`.

    Returns −1 (changing nothing) if ``x`` or ``d`` holds a NaN or infinity, else 0."""
    if not (_all_finite(x) and _all_finite(d)):
        return -1
    n_dev, n_out, n_in = w.shape
    bounded = dp[DP_BOUNDED] != 0.0
    use_att = dp[DP_USE_ATT] != 0.0
    bwd = dp[DP_BWD_ATT] == BWD_KEPT
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
            if bwd:
                brow = wread_b[i]
                arow_b = att_b[i]
                for j in range(n_in):
                    brow[j] = total[j] * arow_b[j]
    return 0


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
