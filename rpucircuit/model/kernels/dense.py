"""Activations, softmax and the fused training step of a fully connected network
(:func:`dense_train_step`, and :func:`dense_train_steps` for samples one after another):
:func:`dense_layer` packs one layer's arguments from its tile, :func:`dense_network`
gathers the layers into the step's one argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numba
import numpy as np

from rpucircuit.model.kernels.layout import (
    ACT_SIGMOID,
    ACT_TANH,
    BWD_NONE,
    DP_BWD_ATT,
    UPD_BL,
    UPD_DW_MIN,
    UPD_EXACT,
    UPD_UM,
    FloatArray,
    KernelArrays,
    UIntArray,
)
from rpucircuit.model.kernels.reads import _all_finite, _float_of_bits, read_batch
from rpucircuit.model.kernels.updates import exact_update, pulsed_update, refresh_backward

# --------------------------------------------------------------------------- activations

_TANH_CLAMP = 22.0
"""tanh(a) rounds to 1 for a ≥ 19.07 (1 − tanh(a) ≈ 2e^(−2a) below 2⁻⁵⁴, half a unit below
1), so :func:`_tanh` clamps |x| here (keeping 2^k of its reduction a normal number); from
about 18.7 on it returns 1 (m rounds to −1), one unit above the exact rounding there."""
_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
"""ln 2 = _LN2_HI + _LN2_LO, the high part with its last 32 bits zero, so k·_LN2_HI is
exact for the |k| ≤ 64 of :func:`_tanh` (Cody and Waite's reduction)."""
_EXPM1_C = tuple(1.0 / math.factorial(n) for n in range(2, 14))
"""Taylor coefficients 1/n! (n = 2 … 13) of expm1(r) = r + r²·(1/2! + r/3! + …): for
|r| ≤ ln 2 / 2 the first term left out, r¹³/14!, is below 10⁻¹⁷ of expm1(r)."""
(_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13) = _EXPM1_C


@numba.njit(cache=True, nogil=True, inline="always")
def _tanh(x: float) -> float:  # pragma: no cover - compiled
    """tanh(x) in straight-line float64 arithmetic, so a loop of it vectorizes (libm's
    ``tanh``, which numba calls for ``np.tanh``, took 14.6 ns per value; this, 1.5 ns on
    AVX-512, about numpy's speed). Within 2 units in the last place of the exact value
    (4 million values against an 80-bit reference: 71 % correctly rounded, 97.8 % within
    one unit; glibc's ``tanh``: at most 2, numpy's: 1), odd (tanh(−0) = −0), ±1 at ±∞,
    NaN for NaN; the same bits on every CPU (no fused multiply-add, no table).

    With a = min(|x|, 22): m = expm1(−2a) through −2a = k·ln 2 + r, |r| ≤ ln 2 / 2,
    expm1(r) by its Taylor polynomial and m = 2^k·expm1(r) + (2^k − 1); then
    tanh(a) = −m / (2 + m), which keeps full relative accuracy for small a, where
    1 − e^(−2a) would cancel. The caller's loop needs ``error_model="numpy"``: numba's
    default checks the division for zero, and that branch keeps the loop scalar."""
    a = abs(x)
    a = a if a < _TANH_CLAMP else _TANH_CLAMP
    y = -2.0 * a
    kf = np.rint(y * _INV_LN2)
    r = (y - kf * _LN2_HI) - kf * _LN2_LO
    q = _C13
    q = _C12 + r * q
    q = _C11 + r * q
    q = _C10 + r * q
    q = _C9 + r * q
    q = _C8 + r * q
    q = _C7 + r * q
    q = _C6 + r * q
    q = _C5 + r * q
    q = _C4 + r * q
    q = _C3 + r * q
    q = _C2 + r * q
    p = r + (r * r) * q
    scale = _float_of_bits((np.int64(kf) + np.int64(1023)) << np.int64(52))  # 2^k
    m = scale * p + (scale - 1.0)
    t = math.copysign(-m / (2.0 + m), x)
    return t if x == x else x


@numba.njit(cache=True, nogil=True, error_model="numpy")
def activation_forward(code: int, x: FloatArray, y: FloatArray) -> None:  # pragma: no cover
    """y = f(x) element-wise on 1-D arrays: sigmoid 1/(1 + exp(−x)), tanh
    (:func:`_tanh`), or a copy.

    The one implementation of the activations, used by the layers and by the fused
    network steps alike (so both give bit-identical results)."""
    if code == ACT_SIGMOID:
        for i in range(x.shape[0]):
            y[i] = 1.0 / (1.0 + np.exp(-x[i]))
    elif code == ACT_TANH:
        for i in range(x.shape[0]):
            y[i] = _tanh(x[i])
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


class DenseLayer(NamedTuple):
    """Everything :func:`dense_train_step` needs of one fully connected layer: its buffers
    and its tile's live kernel arrays. Build it with :func:`dense_layer`."""

    act: int
    """Activation code after this layer (``ACT_*``; the last layer feeds the softmax)."""
    col_major: bool
    """Whether the tile's read copy is column-major (``wread`` below is then its transpose)."""
    x: FloatArray
    """Input buffer (in + 1,), bias last = 1; the first layer's holds the sample."""
    y: FloatArray
    """Raw output (out,)."""
    d: FloatArray
    """Output gradient (out,)."""
    z: FloatArray
    """Input gradient scratch (in + 1,)."""
    wread: np.ndarray[Any, Any]
    """The tile's read copy as a C-contiguous array: itself, or its transpose (in, out)."""
    w: FloatArray
    par: FloatArray
    par_lines: FloatArray
    dp: FloatArray
    att: FloatArray
    wread_b: np.ndarray[Any, Any]
    """The tile's backward read copy (out, in) (its own map; (0, 0) without one)."""
    att_b: FloatArray
    att_lines: FloatArray
    state: UIntArray
    fwd_io: FloatArray
    bwd_io: FloatArray
    upd: FloatArray


def dense_layer(arrays: KernelArrays, *, act: int, x: FloatArray, d: FloatArray) -> DenseLayer:
    """The :class:`DenseLayer` of a tile (``arrays``: its
    :meth:`~rpucircuit.model.tile.AnalogTile.kernel_arrays`) whose layer reads its input
    from ``x`` (in + 1,) and keeps its output gradient in ``d`` (out,); the raw output and
    input gradient scratch are allocated here."""
    col = not arrays.wread.flags.c_contiguous
    n_out, n_in = arrays.wread.shape
    return DenseLayer(
        act=int(act),
        col_major=col,
        x=x,
        y=np.zeros(n_out),
        d=d,
        z=np.zeros(n_in),
        wread=arrays.wread.T if col else arrays.wread,
        w=arrays.w,
        par=arrays.par,
        par_lines=arrays.par_lines,
        dp=arrays.dp,
        att=arrays.att,
        wread_b=arrays.wread_b,
        att_b=arrays.att_b,
        att_lines=arrays.att_lines,
        state=arrays.state,
        fwd_io=arrays.fwd_io,
        bwd_io=arrays.bwd_io,
        upd=arrays.upd,
    )


class DenseNet(NamedTuple):
    """The argument of :func:`dense_train_step`: every layer's :class:`DenseLayer` field
    gathered across the layers (field[l] is layer l's; the compiled step indexes these
    tuples and arrays by layer, which costs nothing, where a tuple of per-layer structs
    is copied on every index), and the softmax buffers. Build it with
    :func:`dense_network`."""

    act: np.ndarray[Any, np.dtype[np.int64]]
    col_major: np.ndarray[Any, np.dtype[np.bool_]]
    upd: FloatArray
    """(n_layers, UPD_LEN)."""
    x: tuple[FloatArray, ...]
    y: tuple[FloatArray, ...]
    d: tuple[FloatArray, ...]
    z: tuple[FloatArray, ...]
    wread: tuple[np.ndarray[Any, Any], ...]
    w: tuple[FloatArray, ...]
    par: tuple[FloatArray, ...]
    par_lines: tuple[FloatArray, ...]
    dp: tuple[FloatArray, ...]
    att: tuple[FloatArray, ...]
    wread_b: tuple[np.ndarray[Any, Any], ...]
    att_b: tuple[FloatArray, ...]
    att_lines: tuple[FloatArray, ...]
    state: tuple[UIntArray, ...]
    fwd_io: tuple[FloatArray, ...]
    bwd_io: tuple[FloatArray, ...]
    p: FloatArray
    """Softmax output (n_classes,)."""
    g: FloatArray
    """Loss gradient (n_classes,)."""


def dense_network(layers: Sequence[DenseLayer], *, p: FloatArray, g: FloatArray) -> DenseNet:
    """The :class:`DenseNet` of ``layers`` (first layer first) with the softmax buffers
    ``p`` and ``g``; the arrays are shared, not copied."""
    return DenseNet(
        act=np.array([lay.act for lay in layers], dtype=np.int64),
        col_major=np.array([lay.col_major for lay in layers], dtype=np.bool_),
        upd=np.stack([lay.upd for lay in layers]),
        x=tuple(lay.x for lay in layers),
        y=tuple(lay.y for lay in layers),
        d=tuple(lay.d for lay in layers),
        z=tuple(lay.z for lay in layers),
        wread=tuple(lay.wread for lay in layers),
        w=tuple(lay.w for lay in layers),
        par=tuple(lay.par for lay in layers),
        par_lines=tuple(lay.par_lines for lay in layers),
        dp=tuple(lay.dp for lay in layers),
        att=tuple(lay.att for lay in layers),
        wread_b=tuple(lay.wread_b for lay in layers),
        att_b=tuple(lay.att_b for lay in layers),
        att_lines=tuple(lay.att_lines for lay in layers),
        state=tuple(lay.state for lay in layers),
        fwd_io=tuple(lay.fwd_io for lay in layers),
        bwd_io=tuple(lay.bwd_io for lay in layers),
        p=p,
        g=g,
    )


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
    ``col_major``, its transpose (in, out) (both C-contiguous). Takes single arrays, not
    the :class:`DenseNet`: a struct argument is passed field by field, hundreds of words
    per call."""
    xb = x.reshape((1, x.shape[0]))
    yb = y.reshape((1, y.shape[0]))
    if col_major != backward:
        return read_batch(wr.T, xb, yb, io, s)
    return read_batch(wr, xb, yb, io, s)


@numba.njit(cache=True, nogil=True)
def _dense_update(
    x: FloatArray,
    d: FloatArray,
    lr: float,
    upd: FloatArray,
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
) -> None:  # pragma: no cover - compiled
    """The update of one dense layer from its input ``x`` and output gradient ``d`` (``upd``:
    its row of update parameters; ``wread`` in the tile's own orientation (out, in))."""
    xb = x.reshape((1, x.shape[0]))
    db = d.reshape((1, d.shape[0]))
    if upd[UPD_EXACT] != 0.0:
        exact_update(xb, db, lr, w, par, dp, wread, att, wread_b, att_b)
    else:
        pulsed_update(
            xb, db, lr, int(upd[UPD_BL]), upd[UPD_UM] != 0.0, upd[UPD_DW_MIN],
            w, par, par_lines, dp, wread, att, wread_b, att_b, att_lines, s,
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
def dense_train_step(label: int, lr: float, net: Any) -> float:  # pragma: no cover - compiled
    """One SGD step of a fully connected network on one sample, in one call.

    Exactly the calls the layer-by-layer path makes (:class:`rpucircuit.model.network.Network`
    with :class:`~rpucircuit.model.layers.AnalogLinear` and activation layers), in the same
    order per tile, so the result is bit-identical; only the Python overhead between them
    is gone. ``net``: a :class:`DenseNet` (layer 0's input buffer holds the sample).
    Returns the cross-entropy before the step, or NaN (changing nothing) if the sample
    holds a NaN or infinity.
    """
    # the fields once, as locals: the loops below then index plain tuples
    acts, col_major, upd, p, g = net.act, net.col_major, net.upd, net.p, net.g
    xs, ys, ds, zs, wreads = net.x, net.y, net.d, net.z, net.wread
    ws, pars, dps, atts, states = net.w, net.par, net.dp, net.att, net.state
    plines = net.par_lines
    wread_bs, att_bs, att_ls = net.wread_b, net.att_b, net.att_lines
    fwd_ios, bwd_ios = net.fwd_io, net.bwd_io
    n_layers = len(ws)
    if not _all_finite(xs[0].reshape((1, xs[0].shape[0]))):
        return np.nan
    for li in range(n_layers):  # forward
        _dense_read(wreads[li], col_major[li], False, xs[li], ys[li], fwd_ios[li], states[li])
        if li + 1 < n_layers:
            n = ys[li].shape[0]
            activation_forward(acts[li], ys[li], xs[li + 1][:n])
    softmax(ys[n_layers - 1], p)
    loss = -np.log(max(p[label], 1e-300))
    g[:] = p
    g[label] -= 1.0
    grad = g
    for li in range(n_layers - 1, -1, -1):  # backward and update, last layer first
        ds[li][:] = grad
        if li > 0:
            if dps[li][DP_BWD_ATT] != BWD_NONE:  # the backward map's own read copy (out, in)
                refresh_backward(ws[li], att_bs[li], wread_bs[li], dps[li])
                _dense_read(wread_bs[li], False, True, ds[li], zs[li], bwd_ios[li], states[li])
            else:
                _dense_read(wreads[li], col_major[li], True, ds[li], zs[li], bwd_ios[li],
                            states[li])  # fmt: skip
        if col_major[li]:
            _dense_update(xs[li], ds[li], lr, upd[li], ws[li], pars[li], plines[li], dps[li],
                          wreads[li].T, atts[li], wread_bs[li], att_bs[li], att_ls[li],
                          states[li])  # fmt: skip
        else:
            _dense_update(xs[li], ds[li], lr, upd[li], ws[li], pars[li], plines[li], dps[li],
                          wreads[li], atts[li], wread_bs[li], att_bs[li], att_ls[li],
                          states[li])  # fmt: skip
        if li > 0:
            n = ys[li - 1].shape[0]
            activation_backward(acts[li - 1], xs[li][:n], zs[li][:n], ys[li - 1])
            grad = ys[li - 1]
    return float(loss)


@numba.njit(cache=True, nogil=True)
def dense_train_steps(
    x: Any, labels: Any, lr: float, x_in: FloatArray, net: Any, losses: FloatArray
) -> int:  # pragma: no cover - compiled
    """:func:`dense_train_step` on the samples ``x[k]`` (n, in; float32 or float64) with
    ``labels[k]`` (int64) one after another (mini-batch 1), each first copied into layer
    0's input ``x_in`` (its first ``in`` entries, the bias entry kept) as
    :meth:`~rpucircuit.model.layers.AnalogLinear.load_input` does: bit-identical to n
    calls. ``losses[k]`` gets sample k's loss. Returns −1, or the index of the first
    sample holding a NaN or infinity (it and the samples after it change nothing).

    One call for many samples, because a call from Python costs more than the kernels of
    a small network: the arguments are unpacked field by field on every call, and the
    interpreter's code and data between two calls come back from memory (paper A's network:
    about 106 against 75 µs per sample, Intel Xeon, 2026-12-07)."""
    n_in = x.shape[1]
    for k in range(x.shape[0]):
        for j in range(n_in):
            x_in[j] = x[k, j]
        loss = dense_train_step(labels[k], lr, net)
        if loss != loss:  # NaN: a sample that is not finite (changing nothing)
            return k
        losses[k] = loss
    return -1
