"""Analog network layers for mini-batch-1 training on RPU tiles (papers A and B).

Every layer has ``forward(x) -> y``, ``backward(grad_out) -> grad_in`` and ``update(lr)``;
``update`` uses the input cached by the last ``forward`` and the output gradient cached by
the last ``backward`` (or :meth:`Layer.accept_grad`, which caches the gradient without
computing the input gradient: the first layer of a network needs no input gradient).

Analog layers own one :class:`~rpucircuit.model.tile.AnalogTile` each. A weight matrix is
(out, in); the bias is an extra LAST input column driven by 1 (paper A's mapping), so a
layer with ``n`` inputs uses an ``out × (n + 1)`` tile. With
:func:`rpucircuit.config.rpu.floating_point` the tile is exact and the same code path is
the floating-point baseline.

Convolution follows paper B: the ``out_channels`` kernels are stacked as the rows of one
tile with ``k·k·C + 1`` columns; each image patch is one input vector, so a forward pass is
one MVM per output pixel (``tile.forward(patches)`` with ``patches`` of shape
``(n_pixels, k·k·C + 1)``), the backward pass is the transpose read of the output-error
vector of each pixel, and the update is one stochastic outer-product update per patch.

Layout conventions (documented because tests and users rely on them):

* images and feature maps are channels-last ``(H, W, C)``; a flat input of the right size
  is accepted and viewed as ``(H, W, C)``;
* a kernel row of the conv tile is the flattened ``(k, k, C)`` kernel (row-major: kernel
  row, kernel column, input channel), followed by the bias;
* :class:`Flatten` turns ``(H, W, C)`` into a vector in the same row-major order.

Weight initialization (as PyTorch's and therefore aihwkit's default for ``Linear`` and
``Conv2d``): weights and bias drawn uniformly from ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``
with ``fan_in`` the number of inputs without the bias (``k·k·C`` for a convolution), then
programmed with ``tile.set_weights`` (clipped to the device bounds).

Speed: at mini-batch 1 the per-call Python overhead matters, so every layer preallocates
its buffers when built (activations on the first call for a given shape) and the hot loops
that numpy cannot do in one call (im2col, col2im, max pooling) are numba kernels, each with
a plain numpy reference (``*_reference``) that the tests compare against; the kernels live
in :mod:`rpucircuit.model.kernels.convnet`, with the fused calls of a CNN's training step.
"""

from __future__ import annotations

import abc
import math

import numpy as np
from numpy.typing import NDArray

from rpucircuit.config.rpu import RPUConfig
from rpucircuit.errors import ConfigError
from rpucircuit.model import kernels
from rpucircuit.model.kernels.convnet import col2im as _col2im_kernel
from rpucircuit.model.kernels.convnet import im2col as _im2col_kernel
from rpucircuit.model.kernels.convnet import maxpool as _maxpool_kernel
from rpucircuit.model.kernels.convnet import maxpool_backward as _maxpool_back_kernel
from rpucircuit.model.tile import AnalogTile

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

__all__ = [
    "AnalogConv2d",
    "AnalogLinear",
    "Flatten",
    "Layer",
    "MaxPool2d",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "Tanh",
    "col2im_reference",
    "im2col_reference",
    "maxpool_reference",
]


# --------------------------------------------------------------------------- base


class Layer(abc.ABC):
    """One stage of a network; see the module docstring for the call protocol."""

    @abc.abstractmethod
    def forward(self, x: FloatArray) -> FloatArray:
        """Compute and return the output; cache what :meth:`backward` and :meth:`update` need."""

    @abc.abstractmethod
    def backward(self, grad_out: FloatArray) -> FloatArray:
        """Return dLoss/dInput from dLoss/dOutput; cache ``grad_out`` for :meth:`update`."""

    def accept_grad(self, grad_out: FloatArray) -> None:  # noqa: B027 - optional hook
        """Cache ``grad_out`` for :meth:`update` without computing the input gradient.

        Layers without parameters need nothing; analog layers override it.
        """

    def update(self, lr: float) -> None:  # noqa: B027 - optional hook
        """Apply one SGD step with learning rate ``lr``; a no-op for parameter-free layers."""

    @property
    def tile(self) -> AnalogTile | None:
        """The analog tile of this layer, or ``None`` for a parameter-free layer."""
        return None


def _uniform_init(rng: np.random.Generator, out_size: int, fan_in: int, n_cols: int) -> FloatArray:
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=(out_size, n_cols))


def _check_layer_int(name: str, value: int, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"{name} = {value!r}: must be an integer >= {lo}")


# --------------------------------------------------------------------------- linear


class AnalogLinear(Layer):
    """Fully connected layer on one ``out_size × (in_size + 1)`` tile (bias as last column).

    ``forward(x)`` takes ``(in_size,)`` (any shape with ``in_size`` elements) and returns
    ``(out_size,)``; ``backward`` returns ``(in_size,)``. ``update_thread`` goes to the
    tile (:class:`~rpucircuit.model.tile.AnalogTile`: whether its updates may run on the
    background update thread).
    """

    def __init__(
        self,
        in_size: int,
        out_size: int,
        config: RPUConfig,
        *,
        rng: np.random.Generator,
        update_thread: bool = True,
    ) -> None:
        _check_layer_int("in_size", in_size, 1)
        _check_layer_int("out_size", out_size, 1)
        self.in_size = in_size
        self.out_size = out_size
        w0 = _uniform_init(rng, out_size, in_size, in_size + 1)
        self._tile = AnalogTile(
            out_size, in_size + 1, config, rng=rng.spawn(1)[0], update_thread=update_thread
        )
        self._tile.set_weights(w0)
        self._x = np.zeros(in_size + 1)
        self._x[in_size] = 1.0
        self._x_in = self._x[:in_size]
        self._d = np.zeros(out_size)

    def __getstate__(self) -> dict[str, object]:
        """Pickle/deepcopy support: ``_x_in`` is a view of ``_x`` and must stay one (a
        copied view would take the inputs while the tile reads the stale ``_x``)."""
        return {k: v for k, v in self.__dict__.items() if k != "_x_in"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._x_in = self._x[: self.in_size]

    @property
    def tile(self) -> AnalogTile:
        return self._tile

    def forward(self, x: FloatArray) -> FloatArray:
        self._x_in[...] = x.reshape(self.in_size)
        return self._tile.forward(self._x)

    def backward(self, grad_out: FloatArray) -> FloatArray:
        self._d[...] = grad_out
        return self._tile.backward(self._d)[: self.in_size]

    def accept_grad(self, grad_out: FloatArray) -> None:
        self._d[...] = grad_out

    def update(self, lr: float) -> None:
        self._tile.update(self._x, self._d, lr)

    def load_input(self, x: FloatArray) -> None:
        """Write one sample into the input buffer (bias entry unchanged), as :meth:`forward`
        does, for a caller that runs the compiled network step itself."""
        self._x_in[...] = np.reshape(x, self.in_size)

    def dense_layer(self, act: int) -> kernels.DenseLayer:
        """This layer as :func:`~rpucircuit.model.kernels.dense_train_step` takes it: the
        tile's live kernel arrays with this layer's input and gradient buffers (shared, so
        the fused step and this layer see the same values); ``act``: the activation code
        after it. Finishes the tile's deferred update; rebuild it after
        :meth:`~rpucircuit.model.tile.AnalogTile.set_read_order`."""
        return kernels.dense_layer(self._tile.kernel_arrays(), act=act, x=self._x, d=self._d)


# --------------------------------------------------------------------------- conv


def im2col_reference(x: FloatArray, k: int, stride: int = 1) -> FloatArray:
    """Plain numpy im2col: ``(n_pixels, k*k*C)`` patches of ``x`` (H, W, C), no bias column."""
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(0, 1))
    win = win[::stride, ::stride]  # (h_out, w_out, C, k, k)
    h_out, w_out = win.shape[:2]
    return np.ascontiguousarray(win.transpose(0, 1, 3, 4, 2)).reshape(h_out * w_out, -1)


def col2im_reference(
    gcols: FloatArray, shape: tuple[int, int, int], k: int, stride: int = 1
) -> FloatArray:
    """Plain numpy col2im (the adjoint of :func:`im2col_reference`), one patch at a time."""
    h, w, c = shape
    h_out = (h - k) // stride + 1
    w_out = (w - k) // stride + 1
    dx = np.zeros(shape)
    for p in range(h_out * w_out):
        i, j = divmod(p, w_out)
        r, s = i * stride, j * stride
        dx[r : r + k, s : s + k, :] += gcols[p, : k * k * c].reshape(k, k, c)
    return dx


class AnalogConv2d(Layer):
    """2-D convolution (valid padding) on one ``out_channels × (k·k·C + 1)`` tile (paper B).

    ``forward(x)`` takes the ``(H, W, C)`` input (or anything with that many elements) and
    returns ``(H_out, W_out, out_channels)`` with ``H_out = (H - k) // stride + 1``.
    ``update_thread`` goes to the tile, as for :class:`AnalogLinear`.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        out_channels: int,
        kernel_size: int,
        config: RPUConfig,
        *,
        rng: np.random.Generator,
        stride: int = 1,
        update_thread: bool = True,
    ) -> None:
        if len(in_shape) != 3:
            raise ConfigError(f"in_shape = {in_shape!r}: must be (height, width, channels)")
        for n, v in zip(("in_shape[0]", "in_shape[1]", "in_shape[2]"), in_shape, strict=True):
            _check_layer_int(n, v, 1)
        _check_layer_int("out_channels", out_channels, 1)
        _check_layer_int("kernel_size", kernel_size, 1)
        _check_layer_int("stride", stride, 1)
        h, w, c = in_shape
        if kernel_size > h or kernel_size > w:
            raise ConfigError(
                f"kernel_size = {kernel_size}: must not exceed the input height {h} and width {w}"
            )
        self.in_shape = (h, w, c)
        self.kernel_size = kernel_size
        self.stride = stride
        self.out_channels = out_channels
        self.out_shape = (
            (h - kernel_size) // stride + 1,
            (w - kernel_size) // stride + 1,
            out_channels,
        )
        self.n_pixels = self.out_shape[0] * self.out_shape[1]
        self.n_inputs = kernel_size * kernel_size * c
        w0 = _uniform_init(rng, out_channels, self.n_inputs, self.n_inputs + 1)
        self._tile = AnalogTile(
            out_channels,
            self.n_inputs + 1,
            config,
            rng=rng.spawn(1)[0],
            update_thread=update_thread,
        )
        self._tile.set_weights(w0)
        # two sets of patch and gradient buffers, used in turn by successive forward
        # passes: a deferred update (AnalogTile.update with copy=False) keeps reading one
        # set while the next sample's patches go into the other, and the tile finishes it
        # before that sample's read, i.e. before the set comes round again
        self._patch_sets: FloatArray = np.zeros((2, self.n_pixels, self.n_inputs + 1))
        self._patch_sets[:, :, self.n_inputs] = 1.0
        self._d_sets: FloatArray = np.zeros((2, self.n_pixels, out_channels))
        self._set = 0
        self._patches: FloatArray = self._patch_sets[0]
        self._d: FloatArray = self._d_sets[0]
        self._dx = np.zeros(self.in_shape)

    @property
    def tile(self) -> AnalogTile:
        return self._tile

    def __getstate__(self) -> dict[str, object]:
        """Pickle/deepcopy support: ``_patches`` and ``_d`` are views of the current buffer
        set and must stay views."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_patches", "_d")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._patches = self._patch_sets[self._set]
        self._d = self._d_sets[self._set]

    @property
    def patches(self) -> FloatArray:
        """The patch matrix of the last forward pass, ``(n_pixels, k·k·C + 1)``, bias last."""
        return self._patches

    def next_buffers(self) -> tuple[FloatArray, FloatArray]:
        """Switch to the other patch and gradient buffer set, as :meth:`forward` does, and
        return it ``(patches, d)``, for a caller that runs the compiled network step itself
        (it fills them as :meth:`forward` and :meth:`backward` do; :meth:`update` then
        reads them)."""
        self._set ^= 1
        self._patches = self._patch_sets[self._set]
        self._d = self._d_sets[self._set]
        return self._patches, self._d

    def forward(self, x: FloatArray) -> FloatArray:
        self.next_buffers()
        _im2col_kernel(
            np.ascontiguousarray(x).reshape(self.in_shape),
            self.kernel_size,
            self.stride,
            self._patches,
        )
        return self._tile.forward(self._patches).reshape(self.out_shape)

    def backward(self, grad_out: FloatArray) -> FloatArray:
        self._tile.finish_update()  # an update still reading this set (no forward since)
        self._d[...] = grad_out.reshape(self.n_pixels, self.out_channels)
        gcols = self._tile.backward(self._d)
        _col2im_kernel(gcols, self.kernel_size, self.stride, self._dx)
        return self._dx

    def accept_grad(self, grad_out: FloatArray) -> None:
        self._tile.finish_update()
        self._d[...] = grad_out.reshape(self.n_pixels, self.out_channels)

    def update(self, lr: float) -> None:
        # no copy: the next forward pass fills the other buffer set, and whatever writes
        # this set again (the forward pass after, a backward without a forward) first
        # finishes the update
        self._tile.update(self._patches, self._d, lr, copy=False)


# --------------------------------------------------------------------------- activations


class _Elementwise(Layer):
    """An element-wise activation (``kernels.activation_forward`` code ``code``) that caches
    its output in a preallocated buffer.

    By default it runs numpy's vectorized ufuncs; with ``compiled`` True it runs the
    compiled kernel that the fused network steps use
    (:func:`rpucircuit.model.kernels.activation_forward`: libm's ``exp`` for the sigmoid,
    its own vectorized ``tanh``), so a network that can run fused gives bit-identical
    results either way (numpy's SIMD ``exp``/``tanh`` may differ from them in the last
    bit). :class:`rpucircuit.model.network.Network` sets it for the fully connected
    networks and paper B's CNN.
    """

    code = kernels.ACT_NONE

    def __init__(self) -> None:
        self._y: FloatArray = np.zeros(0)
        self._g: FloatArray = np.zeros(0)
        self.compiled = False

    def buffers(self, shape: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
        """The output and input-gradient buffers ``(y, g)`` for inputs of ``shape``
        (allocated on the first call for a shape, as :meth:`forward` does)."""
        if self._y.shape != shape:
            self._y = np.zeros(shape)
            self._g = np.zeros(shape)
        return self._y, self._g

    def forward(self, x: FloatArray) -> FloatArray:
        self.buffers(x.shape)
        if not self.compiled:
            self._numpy_forward(x, self._y)
            return self._y
        flat = x.reshape(-1) if x.flags.c_contiguous and x.dtype == np.float64 else None
        if flat is None:
            flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        kernels.activation_forward(self.code, flat, self._y.reshape(-1))
        return self._y

    def backward(self, grad_out: FloatArray) -> FloatArray:
        g = np.ascontiguousarray(grad_out, dtype=np.float64).reshape(-1)
        kernels.activation_backward(self.code, self._y.reshape(-1), g, self._g.reshape(-1))
        return self._g

    @staticmethod
    @abc.abstractmethod
    def _numpy_forward(x: FloatArray, y: FloatArray) -> None:
        """y = f(x) with numpy ufuncs."""


class Sigmoid(_Elementwise):
    """Logistic sigmoid ``1 / (1 + exp(-x))`` (paper A's hidden layers)."""

    code = kernels.ACT_SIGMOID

    @staticmethod
    def _numpy_forward(x: FloatArray, y: FloatArray) -> None:
        np.negative(x, out=y)
        np.exp(y, out=y)
        y += 1.0
        np.reciprocal(y, out=y)


class Tanh(_Elementwise):
    """Hyperbolic tangent (paper B's hidden layers)."""

    code = kernels.ACT_TANH

    @staticmethod
    def _numpy_forward(x: FloatArray, y: FloatArray) -> None:
        np.tanh(x, out=y)


# --------------------------------------------------------------------------- pooling


def maxpool_reference(x: FloatArray, size: int) -> tuple[FloatArray, FloatArray]:
    """Plain numpy max pooling of ``x`` (H, W, C) and the 0/1 routing mask for backward.

    Windows are non-overlapping; trailing rows/columns that do not fill a window are
    dropped (as PyTorch does). Ties route to the first maximum in row-major window order.
    """
    h, w, c = x.shape
    ho, wo = h // size, w // size
    win = x[: ho * size, : wo * size].reshape(ho, size, wo, size, c).transpose(0, 2, 4, 1, 3)
    win = win.reshape(ho, wo, c, size * size)
    arg = win.argmax(axis=-1)
    y = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    onehot = np.zeros_like(win)
    np.put_along_axis(onehot, arg[..., None], 1.0, axis=-1)
    mask = np.zeros_like(x)
    mask[: ho * size, : wo * size] = (
        onehot.reshape(ho, wo, c, size, size)
        .transpose(0, 3, 1, 4, 2)
        .reshape(ho * size, wo * size, c)
    )
    return y, mask


class MaxPool2d(Layer):
    """Non-overlapping max pooling over ``size × size`` windows of an ``(H, W, C)`` map.

    The backward pass routes each gradient to the element that won the max (the first
    one, in row-major window order, when several tie).
    """

    def __init__(self, in_shape: tuple[int, int, int], size: int = 2) -> None:
        if len(in_shape) != 3:
            raise ConfigError(f"in_shape = {in_shape!r}: must be (height, width, channels)")
        _check_layer_int("size", size, 1)
        h, w, c = in_shape
        if size > h or size > w:
            raise ConfigError(f"size = {size}: must not exceed the input height {h} and width {w}")
        self.in_shape = (h, w, c)
        self.size = size
        self.out_shape = (h // size, w // size, c)
        self._y = np.zeros(self.out_shape)
        self._idx = np.zeros(self.out_shape, dtype=np.int64)
        self._dx = np.zeros(self.in_shape)
        self._dx_flat = self._dx.reshape(-1)

    def __getstate__(self) -> dict[str, object]:
        """Pickle/deepcopy support: ``_dx_flat`` is a view of ``_dx`` and must stay one (a
        copied view would take the routed gradient while :meth:`backward` returns the stale
        ``_dx``: a deep-copied network trained on wrong conv gradients)."""
        return {k: v for k, v in self.__dict__.items() if k != "_dx_flat"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._dx_flat = self._dx.reshape(-1)

    def forward(self, x: FloatArray) -> FloatArray:
        _maxpool_kernel(x.reshape(self.in_shape), self.size, self._y, self._idx)
        return self._y

    def backward(self, grad_out: FloatArray) -> FloatArray:
        _maxpool_back_kernel(grad_out.reshape(self.out_shape), self._idx, self._dx_flat)
        return self._dx


class Flatten(Layer):
    """Row-major flatten of any input; backward restores the input shape."""

    def __init__(self) -> None:
        self._shape: tuple[int, ...] = ()

    def forward(self, x: FloatArray) -> FloatArray:
        self._shape = x.shape
        return x.reshape(-1)

    def backward(self, grad_out: FloatArray) -> FloatArray:
        return grad_out.reshape(self._shape)


# --------------------------------------------------------------------------- loss


class SoftmaxCrossEntropy:
    """Softmax output with cross-entropy loss, computed together (stable and exact).

    ``forward(z)`` returns the class probabilities; ``loss(label)`` the cross-entropy of the
    last forward; ``backward(label)`` returns dLoss/dz = p - onehot(label).
    """

    def __init__(self, n_classes: int) -> None:
        _check_layer_int("n_classes", n_classes, 2)
        self.n_classes = n_classes
        self._p = np.zeros(n_classes)
        self._g = np.zeros(n_classes)

    def forward(self, z: FloatArray) -> FloatArray:
        kernels.softmax(z.reshape(self.n_classes), self._p)
        return self._p

    def loss(self, label: int) -> float:
        """Cross-entropy ``-log p[label]`` of the last forward (p floored at 1e-300)."""
        return -math.log(max(float(self._p[label]), 1e-300))

    def backward(self, label: int) -> FloatArray:
        g = self._g
        g[...] = self._p
        g[label] -= 1.0
        return g

    def buffers(self) -> tuple[FloatArray, FloatArray]:
        """The live probability and gradient buffers ``(p, g)`` that :meth:`forward` and
        :meth:`backward` fill and return, for a caller that runs the compiled network step
        itself (it fills them the same way)."""
        return self._p, self._g
