"""Activations, softmax and the fused training step of a fully connected network
(:func:`dense_train_step`), whose per-layer arguments :func:`dense_layer` packs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np

from rpucircuit.model.kernels.layout import (
    ACT_SIGMOID,
    ACT_TANH,
    UPD_BL,
    UPD_DW_MIN,
    UPD_EXACT,
    UPD_UM,
    FloatArray,
    KernelArrays,
    UIntArray,
)
from rpucircuit.model.kernels.reads import _all_finite, read_batch
from rpucircuit.model.kernels.updates import exact_update, pulsed_update

# --------------------------------------------------------------------------- activations


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
    dp: FloatArray
    att: FloatArray
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
        dp=arrays.dp,
        att=arrays.att,
        state=arrays.state,
        fwd_io=arrays.fwd_io,
        bwd_io=arrays.bwd_io,
        upd=arrays.upd,
    )


@numba.njit(cache=True, nogil=True)
def _dense_read(
    layer: Any, backward: bool, x: FloatArray, y: FloatArray
) -> int:  # pragma: no cover - compiled
    """One managed read of a dense layer, forward (``x`` in + 1 → ``y`` out) or backward."""
    xb = x.reshape((1, x.shape[0]))
    yb = y.reshape((1, y.shape[0]))
    io = layer.bwd_io if backward else layer.fwd_io
    if layer.col_major != backward:
        return read_batch(layer.wread.T, xb, yb, io, layer.state)
    return read_batch(layer.wread, xb, yb, io, layer.state)


@numba.njit(cache=True, nogil=True)
def _dense_update(layer: Any, wread: Any, lr: float) -> None:  # pragma: no cover - compiled
    """The update of one dense layer from its cached input and output gradient; ``wread``:
    the read copy in the tile's own orientation (out, in)."""
    xb = layer.x.reshape((1, layer.x.shape[0]))
    db = layer.d.reshape((1, layer.d.shape[0]))
    upd = layer.upd
    if upd[UPD_EXACT] != 0.0:
        exact_update(xb, db, lr, layer.w, layer.par, layer.dp, wread, layer.att)
    else:
        pulsed_update(
            xb, db, lr, int(upd[UPD_BL]), upd[UPD_UM] != 0.0, upd[UPD_DW_MIN],
            layer.w, layer.par, layer.dp, wread, layer.att, layer.state,
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
    label: int, lr: float, layers: Any, p: FloatArray, g: FloatArray
) -> float:  # pragma: no cover - compiled
    """One SGD step of a fully connected network on one sample, in one call.

    Exactly the calls the layer-by-layer path makes (:class:`rpucircuit.model.network.Network`
    with :class:`~rpucircuit.model.layers.AnalogLinear` and activation layers), in the same
    order per tile, so the result is bit-identical; only the Python overhead between them
    is gone. ``layers``: a tuple of :class:`DenseLayer`, first layer first (its ``x`` holds
    the sample); ``p``, ``g``: softmax output and loss gradient. Returns the cross-entropy
    before the step, or NaN (changing nothing) if the sample holds a NaN or infinity.
    """
    n_layers = len(layers)
    x0 = layers[0].x
    if not _all_finite(x0.reshape((1, x0.shape[0]))):
        return np.nan
    for li in range(n_layers):  # forward
        layer = layers[li]
        _dense_read(layer, False, layer.x, layer.y)
        if li + 1 < n_layers:
            activation_forward(layer.act, layer.y, layers[li + 1].x[: layer.y.shape[0]])
    softmax(layers[n_layers - 1].y, p)
    loss = -np.log(max(p[label], 1e-300))
    g[:] = p
    g[label] -= 1.0
    grad = g
    for li in range(n_layers - 1, -1, -1):  # backward and update, last layer first
        layer = layers[li]
        layer.d[:] = grad
        if li > 0:
            _dense_read(layer, True, layer.d, layer.z)
        if layer.col_major:
            _dense_update(layer, layer.wread.T, lr)
        else:
            _dense_update(layer, layer.wread, lr)
        if li > 0:
            below = layers[li - 1]
            n = below.y.shape[0]
            activation_backward(below.act, layer.x[:n], layer.z[:n], below.y)
            grad = below.y
    return float(loss)
