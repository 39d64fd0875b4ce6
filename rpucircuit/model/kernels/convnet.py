"""Compiled pieces of a convolutional network's training step (paper B's CNN): im2col,
col2im and max pooling, and the fused calls that :class:`rpucircuit.model.network.Network`
makes for conv → act → pool → conv → act → pool → flatten → linear → act → linear:

* :func:`conv_forward` — im2col of the image and the first conv tile's read;
* :func:`pool_conv_forward` — max pooling, im2col and the next conv tile's read;
* :func:`pool_dense_forward` — max pooling, flatten and the first linear tile's read;
* :func:`cnn_backward` — the last linear read, softmax, and every backward read, pooling
  and activation gradient down to the first conv layer's output gradient, and the tiles'
  updates; its two parts, :func:`cnn_backward_reads` and :func:`cnn_backward_updates`,
  are called one after the other where conv2's tile may hand its update to the update
  thread (the network then updates conv2 between them);
* :func:`cnn_train_steps` — whole training steps, sample after sample: the calls above
  with the activations between them (what the network runs unless conv2's half-select
  updates go to the update thread).

Where the network calls them one by one, it applies its activation layers between them;
those run the compiled activation kernel (:func:`~.dense.activation_forward`), as
:func:`cnn_train_steps` does. Each call makes the same kernel calls, on the same buffers,
in the same order per tile as the layer-by-layer path, so the results are bit-identical;
only the Python between them is gone. The plain references of the pieces
(:func:`~rpucircuit.model.layers.im2col_reference` and the others) live beside the layers.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from rpucircuit.model.kernels.conv import patch_update
from rpucircuit.model.kernels.dense import activation_backward, activation_forward, softmax
from rpucircuit.model.kernels.layout import (
    BWD_NONE,
    DP_BWD_ATT,
    UPD_BL,
    UPD_DW_MIN,
    UPD_EXACT,
    UPD_UM,
    FloatArray,
    UIntArray,
)
from rpucircuit.model.kernels.reads import read_batch
from rpucircuit.model.kernels.updates import exact_update, refresh_backward

IntArray = np.ndarray[Any, np.dtype[np.int64]]


# --------------------------------------------------------------------------- pieces


@numba.njit(cache=True, nogil=True)
def im2col(x: FloatArray, k: int, stride: int, cols: FloatArray) -> None:  # pragma: no cover
    """Fill ``cols[:, :k*k*C]`` with the patches of ``x`` (H, W, C); last column untouched.

    Channels-last makes each kernel row of a patch one contiguous run of ``k*C`` values.
    Runs of at most 8 values (a single-channel input: paper B's conv1, 5) are copied by a
    loop of 8 steps with a bound test, which the compiler unrolls: a loop of ``run``
    steps paid its setup on every one of conv1's 2,880 runs per image (12 → 5 µs per
    image, Intel Xeon, 2026-12-07). Longer runs are copied over unsigned bounds, so that
    the copy vectorizes (a signed offset keeps numba's negative-index wraparound in every
    access): paper B's conv2 patches 8.3 → 4.9 µs per image.
    """
    h_out = (x.shape[0] - k) // stride + 1
    w_out = (x.shape[1] - k) // stride + 1
    c = x.shape[2]
    run = k * c
    rows = x.reshape(x.shape[0], x.shape[1] * c)
    if run <= 8:
        step = stride * c
        p = 0
        for i in range(h_out):
            for di in range(k):
                src = rows[i * stride + di]
                off = di * run
                for j in range(w_out):
                    q = p + j
                    s0 = j * step
                    for t in range(8):
                        if t < run:
                            cols[q, off + t] = src[s0 + t]
            p += w_out
        return
    p = 0
    for i in range(h_out):
        for j in range(w_out):
            start = np.uint64(j * stride * c)
            col = cols[p]
            for di in range(k):
                src = rows[i * stride + di]
                off = np.uint64(di * run)
                for t in range(np.uint64(run)):
                    col[off + t] = src[start + t]
            p += 1


@numba.njit(cache=True, nogil=True)
def col2im(gcols: FloatArray, k: int, stride: int, dx: FloatArray) -> None:  # pragma: no cover
    """Scatter-add patch gradients ``gcols[:, :k*k*C]`` into ``dx`` (H, W, C), zeroed first
    (over unsigned bounds, as :func:`im2col`: paper B's conv2 12.1 → 4.4-4.8 µs per image)."""
    h_out = (dx.shape[0] - k) // stride + 1
    w_out = (dx.shape[1] - k) // stride + 1
    c = dx.shape[2]
    run = k * c
    rows = dx.reshape(dx.shape[0], dx.shape[1] * c)
    rows[:] = 0.0
    p = 0
    for i in range(h_out):
        for j in range(w_out):
            start = np.uint64(j * stride * c)
            gcol = gcols[p]
            for di in range(k):
                dst = rows[i * stride + di]
                off = np.uint64(di * run)
                for t in range(np.uint64(run)):
                    dst[start + t] += gcol[off + t]
            p += 1


@numba.njit(cache=True, nogil=True)
def maxpool(x: FloatArray, size: int, y: FloatArray, idx: IntArray) -> None:  # pragma: no cover
    """Max over ``size × size`` windows of ``x`` (H, W, C); ``idx`` gets the flat argmax.

    Windows are scanned in row-major order with a strict ``>``, so ties keep the first
    maximum; the channel loop is innermost (contiguous in channels-last layout).
    """
    h_out, w_out, c = y.shape
    w_in = x.shape[1]
    for i in range(h_out):
        for j in range(w_out):
            r0 = i * size
            s0 = j * size
            base = (r0 * w_in + s0) * c
            for ch in range(c):
                y[i, j, ch] = x[r0, s0, ch]
                idx[i, j, ch] = base + ch
            for di in range(size):
                for dj in range(size):
                    if di == 0 and dj == 0:
                        continue
                    flat = ((r0 + di) * w_in + s0 + dj) * c
                    for ch in range(c):
                        v = x[r0 + di, s0 + dj, ch]
                        if v > y[i, j, ch]:
                            y[i, j, ch] = v
                            idx[i, j, ch] = flat + ch


@numba.njit(cache=True, nogil=True)
def maxpool_backward(g: FloatArray, idx: IntArray, dx_flat: FloatArray) -> None:  # pragma: no cover
    """Route each output gradient to the input element that won the max."""
    dx_flat[:] = 0.0
    h_out, w_out, c = g.shape
    for i in range(h_out):
        for j in range(w_out):
            for ch in range(c):
                dx_flat[idx[i, j, ch]] += g[i, j, ch]


@numba.njit(cache=True, nogil=True)
def _backward_read(
    wread: Any,
    w: FloatArray,
    att_b: FloatArray,
    wread_b: Any,
    dp: FloatArray,
    d: FloatArray,
    z: FloatArray,
    io: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """A tile's backward read of ``d`` (n, out) into ``z`` (n, in), as
    :meth:`~rpucircuit.model.tile.AnalogTile.backward` makes it (its own read copy when
    the backward read has a map of its own)."""
    if dp[DP_BWD_ATT] != BWD_NONE:
        refresh_backward(w, att_b, wread_b, dp)
        return read_batch(wread_b.T, d, z, io, s)
    return read_batch(wread.T, d, z, io, s)


# --------------------------------------------------------------------------- fused calls


@numba.njit(cache=True, nogil=True)
def conv_forward(
    x: FloatArray,
    k: int,
    stride: int,
    patches: FloatArray,
    wread: Any,
    y: FloatArray,
    io: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """im2col of ``x`` (H, W, C) into ``patches`` (bias column kept) and the conv tile's
    forward read of them into ``y`` (n_pixels, out); 1 if ``x`` holds a NaN or infinity."""
    im2col(x, k, stride, patches)
    return read_batch(wread, patches, y, io, s)


@numba.njit(cache=True, nogil=True)
def pool_conv_forward(
    a: FloatArray,
    size: int,
    pooled: FloatArray,
    idx: IntArray,
    k: int,
    stride: int,
    patches: FloatArray,
    wread: Any,
    y: FloatArray,
    io: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """Max pooling of ``a`` into ``pooled`` (argmax in ``idx``), im2col into ``patches`` and
    the conv tile's forward read into ``y``; 1 if the read's input is not finite."""
    maxpool(a, size, pooled, idx)
    im2col(pooled, k, stride, patches)
    return read_batch(wread, patches, y, io, s)


@numba.njit(cache=True, nogil=True)
def pool_dense_forward(
    a: FloatArray,
    size: int,
    pooled: FloatArray,
    idx: IntArray,
    x: FloatArray,
    wread: Any,
    y: FloatArray,
    io: FloatArray,
    s: UIntArray,
) -> int:  # pragma: no cover - compiled
    """Max pooling of ``a`` into ``pooled``, flattened into the linear layer's input ``x``
    (in + 1,; bias entry kept) and its tile's forward read into ``y`` (1, out)."""
    maxpool(a, size, pooled, idx)
    flat = pooled.reshape(pooled.size)
    x[: flat.shape[0]] = flat
    return read_batch(wread, x.reshape((1, x.shape[0])), y, io, s)


@numba.njit(cache=True, nogil=True)
def _tile_update(
    x: FloatArray, d: FloatArray, lr: float, t: tuple[Any, ...]
) -> int:  # pragma: no cover - compiled
    """A tile's update from ``x`` (n, in) and ``d`` (n, out), the kernel call
    :meth:`~rpucircuit.model.tile.AnalogTile.update` makes in place (a conv layer's batch
    through :func:`~rpucircuit.model.kernels.conv.conv_update`); ``t``: the tile's
    (wread, w, par, dp, att, wread_b, att_b, state, fwd_io, bwd_io, upd,
    par_lines, att_lines). Negative if
    ``x`` or ``d`` holds a NaN or infinity (nothing changed)."""
    wread, w, par, dp, att, wread_b, att_b, st, _, _, upd, par_lines, att_lines = t
    if upd[UPD_EXACT] != 0.0:
        return exact_update(x, d, lr, w, par, dp, wread, att, wread_b, att_b)
    return patch_update(
        x, d, lr, int(upd[UPD_BL]), upd[UPD_UM] != 0.0, upd[UPD_DW_MIN],
        w, par, par_lines, dp, wread, att, wread_b, att_b, att_lines, st,
    )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _tile_backward(t: tuple[Any, ...], d: FloatArray, z: FloatArray) -> int:  # pragma: no cover
    """A tile's backward read of ``d`` (n, out) into ``z`` (n, in) (``t`` as for
    :func:`_tile_update`)."""
    wread, w, _, dp, _, wread_b, att_b, st, _, bwd_io, _, _, _ = t
    return _backward_read(wread, w, att_b, wread_b, dp, d, z, bwd_io, st)


UPDATE_OUT, UPDATE_FC1, UPDATE_CONV2, UPDATE_CONV1 = 1, 2, 4, 8
"""Bits of :func:`cnn_backward_updates`'s ``updates``: which tiles it updates."""
UPDATE_ALL = UPDATE_OUT | UPDATE_FC1 | UPDATE_CONV2 | UPDATE_CONV1


@numba.njit(cache=True, nogil=True)
def cnn_backward_reads(
    label: int,
    tiles: tuple[Any, ...],
    out: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    loss: tuple[FloatArray, FloatArray],
    act3: tuple[int, FloatArray, FloatArray],
    fc1: tuple[FloatArray, FloatArray, FloatArray],
    pool2: tuple[IntArray, FloatArray],
    act2: tuple[int, FloatArray, FloatArray],
    conv2: tuple[Any, ...],
) -> int:  # pragma: no cover - compiled
    """The first part of :func:`cnn_backward`: the output layer's read and softmax, and the
    backward reads of the output layer, fc1 and conv2 with the gradients between them (no
    update). Returns 0, or the 1-based number of the read whose input was not finite
    (nothing after it is computed)."""
    _, t_c2, t_f1, t_out = tiles
    x, y, d, z = out
    p, g = loss
    code3, y3, g3 = act3
    n3 = y3.shape[0]
    x[:n3] = y3
    if read_batch(t_out[0], x.reshape((1, x.shape[0])), y, t_out[8], t_out[7]):
        return 1
    softmax(y[0], p)
    g[:] = p
    g[label] -= 1.0
    d[:] = g
    if _tile_backward(t_out, d.reshape((1, d.shape[0])), z):
        return 2
    activation_backward(code3, y3, z[0, :n3], g3)
    _, d1, z1 = fc1
    d1[:] = g3
    if _tile_backward(t_f1, d1.reshape((1, d1.shape[0])), z1):
        return 3
    idx2, dx2 = pool2
    code2, y2, g2 = act2
    maxpool_backward(z1[0, : idx2.size].reshape(idx2.shape), idx2, dx2.reshape(dx2.size))
    activation_backward(code2, y2.reshape(y2.size), dx2.reshape(dx2.size), g2.reshape(g2.size))
    _, d2, z2, _, _, _ = conv2
    d2[:] = g2.reshape(d2.shape)
    if _tile_backward(t_c2, d2, z2):
        return 4
    return 0


@numba.njit(cache=True, nogil=True)
def cnn_backward_updates(
    lr: float,
    updates: int,
    tiles: tuple[Any, ...],
    out: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    fc1: tuple[FloatArray, FloatArray, FloatArray],
    conv2: tuple[Any, ...],
    pool1: tuple[IntArray, FloatArray],
    act1: tuple[int, FloatArray, FloatArray],
    conv1: tuple[FloatArray, FloatArray],
) -> int:  # pragma: no cover - compiled
    """The second part of :func:`cnn_backward`, after :func:`cnn_backward_reads`: the
    updates of the tiles whose bits (:data:`UPDATE_OUT`, ...) are set in ``updates``, and
    conv1's output gradient (col2im, pooling, activation) between conv2's and conv1's.
    Returns 0, or −1 if an update's input was not finite."""
    t_c1, t_c2, t_f1, t_out = tiles
    x, _, d, _ = out
    x_row, d_row = x.reshape((1, x.shape[0])), d.reshape((1, d.shape[0]))
    if updates & UPDATE_OUT and _tile_update(x_row, d_row, lr, t_out) < 0:
        return -1
    x1, d1, _ = fc1
    x1_row, d1_row = x1.reshape((1, x1.shape[0])), d1.reshape((1, d1.shape[0]))
    if updates & UPDATE_FC1 and _tile_update(x1_row, d1_row, lr, t_f1) < 0:
        return -1
    patches2, d2, z2, k2, stride2, dx_c2 = conv2
    if updates & UPDATE_CONV2 and _tile_update(patches2, d2, lr, t_c2) < 0:
        return -1
    col2im(z2, k2, stride2, dx_c2)
    idx1, dx1 = pool1
    code1, y1, g1 = act1
    maxpool_backward(dx_c2, idx1, dx1.reshape(dx1.size))
    activation_backward(code1, y1.reshape(y1.size), dx1.reshape(dx1.size), g1.reshape(g1.size))
    patches1, d_c1 = conv1
    d_c1[:] = g1.reshape(d_c1.shape)
    if updates & UPDATE_CONV1 and _tile_update(patches1, d_c1, lr, t_c1) < 0:
        return -1
    return 0


@numba.njit(cache=True, nogil=True)
def cnn_backward(
    label: int,
    lr: float,
    updates: int,
    tiles: tuple[Any, ...],
    out: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    loss: tuple[FloatArray, FloatArray],
    act3: tuple[int, FloatArray, FloatArray],
    fc1: tuple[FloatArray, FloatArray, FloatArray],
    pool2: tuple[IntArray, FloatArray],
    act2: tuple[int, FloatArray, FloatArray],
    conv2: tuple[Any, ...],
    pool1: tuple[IntArray, FloatArray],
    act1: tuple[int, FloatArray, FloatArray],
    conv1: tuple[FloatArray, FloatArray],
) -> int:  # pragma: no cover - compiled
    """From the last hidden activation to the first conv layer's output gradient, with the
    updates of the tiles set in ``updates`` (:data:`UPDATE_ALL`: every tile; the caller
    updates the others): :func:`cnn_backward_reads`, then :func:`cnn_backward_updates`, in
    one call.

    ``tiles``: per tile (conv1, conv2, fc1, out) its (wread, w, par, dp, att, wread_b,
    att_b, state, fwd_io, bwd_io, upd, par_lines, att_lines); ``out``: the output layer's
    (x, y, d, z), whose input ``x`` (bias entry kept) gets the last activation; ``loss``:
    the softmax buffers (p, g); ``act*``: (activation code, its output, its input gradient);
    ``fc1``: (x, d, z); ``pool*``: (argmax, input gradient); ``conv2``: (patches, d, z, k,
    stride, dx); ``conv1``: (patches, d). Each tile's reads come before its update, as on
    the layer path (the tiles are independent, so the order across tiles changes no bit).
    Returns 0, or the 1-based number of the read whose input was not finite (nothing after
    it is computed), or −1 if an update's was not.
    """
    code = cnn_backward_reads(label, tiles, out, loss, act3, fc1, pool2, act2, conv2)
    if code:
        return code
    return cnn_backward_updates(lr, updates, tiles, out, fc1, conv2, pool1, act1, conv1)


@numba.njit(cache=True, nogil=True)
def cnn_train_steps(
    x: FloatArray,
    labels: IntArray,
    lr: float,
    losses: FloatArray,
    geometry: tuple[int, int, int, int, int, int, int, int, int],
    sets: tuple[int, int],
    conv1_sets: tuple[FloatArray, FloatArray],
    conv2_sets: tuple[FloatArray, FloatArray],
    forward: tuple[Any, ...],
    tiles: tuple[Any, ...],
    out: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    loss: tuple[FloatArray, FloatArray],
    act3: tuple[int, FloatArray, FloatArray],
    fc1: tuple[FloatArray, FloatArray, FloatArray],
    pool2: tuple[IntArray, FloatArray],
    act2: tuple[int, FloatArray, FloatArray],
    conv2: tuple[FloatArray, FloatArray],
    pool1: tuple[IntArray, FloatArray],
    act1: tuple[int, FloatArray, FloatArray],
) -> tuple[int, int, int]:  # pragma: no cover - compiled
    """Whole training steps of paper B's CNN on the samples ``x[k]`` (n, H·W·C; float64,
    C order) with ``labels[k]``, one after another, in one call: per sample the calls the
    network's step makes (:func:`conv_forward`, conv1's activation,
    :func:`pool_conv_forward`, conv2's, :func:`pool_dense_forward`, fc1's,
    :func:`cnn_backward` with every update) on the same buffers, so the results are
    bit-identical to it; the cross-entropy of sample k before its step goes to
    ``losses[k]``. Each sample's call from Python, its argument checks and the activations
    between the calls cost about 45 µs per image (Intel Xeon, measured).

    ``geometry``: (H, W, C, conv1's kernel size and stride, pool1's size, conv2's kernel
    size and stride, pool2's size); ``sets``: the buffer set each conv layer used last
    (sample k uses set ``sets[i] ^ 1`` for even k, ``sets[i]`` for odd k, as the layers
    alternate them); ``conv*_sets``: (its patch sets (2, pixels, inputs + 1), its output
    gradient sets (2, pixels, out)); ``forward``: (conv1's read output, pool1's output
    and argmax, conv2's read output, pool2's output and argmax, fc1's input and read
    output); ``conv2``: (z, dx), conv2's backward read output and its input gradient; the
    rest as for :func:`cnn_backward`. Returns (−1, 0, 1), or (k, code, conv2) for a sample
    k whose read or update input was not finite (code as :func:`cnn_backward` returns it,
    1 for the forward reads; samples before k are done, k partly; ``conv2`` 0 if conv1's
    read failed, before conv2's buffer set for sample k was taken, else 1)."""
    h, w, c, k1, stride1, size1, k2, stride2, size2 = geometry
    y1, pooled1, idx1, y2, pooled2, idx2, x3, y3 = forward
    code1, h1, _ = act1
    code2, h2, _ = act2
    code3, h3, _ = act3
    z2, dx2 = conv2
    t_c1, t_c2, t_f1, _ = tiles
    for n in range(x.shape[0]):
        flip = 1 - (n & 1)
        s1, s2 = sets[0] ^ flip, sets[1] ^ flip
        patches1, d1 = conv1_sets[0][s1], conv1_sets[1][s1]
        patches2, d2 = conv2_sets[0][s2], conv2_sets[1][s2]
        img = x[n].reshape((h, w, c))
        if conv_forward(img, k1, stride1, patches1, t_c1[0], y1, t_c1[8], t_c1[7]):
            return n, 1, 0
        activation_forward(code1, y1.reshape(y1.size), h1.reshape(h1.size))
        if pool_conv_forward(
            h1, size1, pooled1, idx1, k2, stride2, patches2, t_c2[0], y2, t_c2[8], t_c2[7]
        ):
            return n, 1, 1
        activation_forward(code2, y2.reshape(y2.size), h2.reshape(h2.size))
        if pool_dense_forward(h2, size2, pooled2, idx2, x3, t_f1[0], y3, t_f1[8], t_f1[7]):
            return n, 1, 1
        activation_forward(code3, y3[0], h3)
        label = labels[n]
        code = cnn_backward(
            label, lr, UPDATE_ALL, tiles, out, loss, act3, fc1, pool2, act2,
            (patches2, d2, z2, k2, stride2, dx2), pool1, act1, (patches1, d1),
        )  # fmt: skip
        if code:
            return n, code, 1
        losses[n] = -np.log(max(loss[0][label], 1e-300))
    return -1, 0, 1
