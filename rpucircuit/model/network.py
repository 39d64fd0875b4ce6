"""Networks of analog layers trained at mini-batch 1, and the two papers' networks.

A :class:`Network` is a sequence of :mod:`rpucircuit.model.layers` layers followed by a softmax
cross-entropy output. :meth:`Network.train_step` does one SGD step on one sample (forward,
loss, backward, update, as paper A trains); the first layer with a tile gets its output
gradient without computing an input gradient (nothing below it learns). A fully connected
network and paper B's CNN structure train through compiled fused calls
(:attr:`Network.fused`), bit-identical to the layer-by-layer path.

Builders:

* :func:`fc_784_256_128_10` — paper A (Gokmen & Vlasov 2016): 784-256-128-10, sigmoid
  hidden layers, softmax output; tiles 256×785, 128×257, 10×129 (bias as last column);
* :func:`fully_connected` — the same structure with any layer sizes (tests, small tasks);
* :func:`cnn_gokmen_2017` — paper B (Gokmen, Onen & Haensch 2017): conv 16×5×5 → tanh →
  maxpool 2 → conv 32×5×5×16 → tanh → maxpool 2 → FC 512→128 tanh → FC 128→10 softmax;
  tiles 16×26, 32×401, 128×513, 10×129.

``rpu_configs`` is one :class:`~rpucircuit.config.rpu.RPUConfig` for every layer or one per
analog layer (per-layer device variations; paper B's multi-device mapping on the second
conv layer is ``n_devices`` in that layer's config). Each tile gets its own generator
spawned from ``rng`` (after the weight initialization draws), so a network's state is the
union of its tiles' states and resumes bit-exactly.

Longer than 600 lines: the network's layer path and its two compiled paths (the fully
connected step, the CNN's whole step and its calls one by one around the update thread)
share the layers' buffers and must stay bit-identical to one another, so they are kept in
one class beside the builders that set them up.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rpucircuit.config.rpu import RPUConfig
from rpucircuit.errors import ConfigError, DataError, StoreError, TileShapeError
from rpucircuit.model import kernels
from rpucircuit.model.kernels import convnet
from rpucircuit.model.layers import (
    AnalogConv2d,
    AnalogLinear,
    Flatten,
    Layer,
    MaxPool2d,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
)
from rpucircuit.model.tile import AnalogTile, check_lr, update_thread_enabled

__all__ = [
    "Network",
    "cnn_gokmen_2017",
    "fc_784_256_128_10",
    "fully_connected",
]

FloatArray = NDArray[np.float64]
State = dict[str, dict[str, object]]


class Network:
    """A sequence of layers with a softmax cross-entropy output, trained at mini-batch 1.

    Args:
        layers: the layers in forward order; the last one's output has ``n_classes`` values.
        n_classes: number of classes of the softmax output.
        input_size: number of input values a sample must have (any shape with that many).
    """

    def __init__(self, layers: Sequence[Layer], *, n_classes: int, input_size: int) -> None:
        if not layers:
            raise ConfigError("layers = []: a network needs at least one layer")
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise ConfigError(f"input_size = {input_size!r}: must be an integer >= 1")
        self.layers: tuple[Layer, ...] = tuple(layers)
        self.loss = SoftmaxCrossEntropy(n_classes)
        self.n_classes = n_classes
        self.input_size = input_size
        analog = [i for i, layer in enumerate(self.layers) if layer.tile is not None]
        if not analog:
            raise ConfigError("layers: a network needs at least one layer with a tile")
        self._analog_index: tuple[int, ...] = tuple(analog)
        first = analog[0]
        self._first: Layer = self.layers[first]
        # layers that propagate a gradient, last first (everything above the first tile)
        self._back: tuple[Layer, ...] = tuple(reversed(self.layers[first + 1 :]))
        self._params: tuple[Layer, ...] = tuple(self.layers[i] for i in analog)
        first_tile = self._first.tile
        # training reads the first tile forward only, mostly with zero inputs (image
        # pixels): its read copy column-major makes that read skip the zeros. Not for a
        # dense first tile with half-select: each of its updates changes every device
        # of the pulsing rows, and a column-major copy of those rows is every cache line
        # of the copy (FC network at k = 0.1: 6-8 % less time per step row-major, though
        # its forward read takes about 9 us more)
        if first_tile is not None and first_tile.config.update.pulse_type == "stochastic":
            half_select = first_tile.config.device.k_half_select > 0.0
            if not (half_select and isinstance(self._first, AnalogLinear)):
                first_tile.set_read_order("F")
        self._dense = _dense_plan(self.layers)
        self._fused: tuple[Any, ...] | None = None
        self._cnn = _cnn_plan(self.layers, input_size)
        self._compile_activations()
        self._cnn_cache: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None
        dtypes = {layer.tile.read_copy.dtype for layer in self._dense[0]} if self._dense else set()
        self.fused = len(dtypes) == 1 or self._cnn is not None
        """Whether :meth:`train_step` runs compiled end to end: as one call
        (:func:`rpucircuit.model.kernels.dense_train_step`) for a fully connected network
        whose tiles share one read precision; for paper B's CNN structure as one call too
        (:func:`rpucircuit.model.kernels.convnet.cnn_train_steps`), or, where conv2's tile
        hands its half-select updates to the update thread, as fused calls around the
        activation layers (five, around conv2's own update). Either is bit-identical to
        the layer-by-layer path (set it False to run that path)."""

    # ------------------------------------------------------------------ running

    @property
    def tiles(self) -> tuple[AnalogTile, ...]:
        """The analog tiles, in layer order."""
        return tuple(layer.tile for layer in self._params if layer.tile is not None)

    def _check(self, x: FloatArray) -> None:
        if np.size(x) != self.input_size:
            raise DataError(
                f"input has shape {np.shape(x)} ({np.size(x)} values); "
                f"this network takes {self.input_size} values per sample"
            )

    def _check_label(self, label: int) -> None:
        integral = isinstance(label, (int, np.integer)) and not isinstance(label, bool)
        if not integral or not 0 <= label < self.n_classes:
            raise DataError(f"label = {label!r}: must be an integer in [0, {self.n_classes - 1}]")

    def _forward(self, x: FloatArray) -> FloatArray:
        z = x
        for layer in self.layers:
            z = layer.forward(z)
        return z

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Class probabilities of one sample (one forward pass; analog reads are noisy)."""
        self._check(x)
        return self.loss.forward(self._forward(x)).copy()

    def predict(self, x: FloatArray) -> int:
        """The most probable class of one sample."""
        self._check(x)
        return int(np.argmax(self._forward(x)))

    def __getstate__(self) -> dict[str, object]:
        """Pickle support: the fused steps' argument caches are rebuilt, never pickled."""
        return {k: (None if k in ("_fused", "_cnn_cache") else v) for k, v in self.__dict__.items()}

    def __setstate__(self, state: dict[str, object]) -> None:
        state.setdefault("_cnn", _cnn_plan(state["layers"], state["input_size"]))  # type: ignore[arg-type]
        state.setdefault("_cnn_cache", None)
        self.__dict__.update(state)
        self._compile_activations()  # a network pickled when the CNN's used numpy's

    def _compile_activations(self) -> None:
        """Let the activation layers of a network that runs fused compute as the fused
        steps do (:attr:`~rpucircuit.model.layers.Tanh.compiled`), so that the layer path
        stays bit-identical to them."""
        if self._dense is not None or self._cnn is not None:
            for layer in self.layers:
                if isinstance(layer, (Sigmoid, Tanh)):
                    layer.compiled = True

    def _fused_args(self) -> tuple[Any, ...]:
        """Arguments of :func:`kernels.dense_train_step` after (label, lr): the layers'
        :class:`~rpucircuit.model.kernels.DenseNet`, cached while every tile keeps its read
        copy; every tile's deferred update is finished."""
        assert self._dense is not None
        linears, codes = self._dense
        tiles = [layer.tile for layer in linears]
        for tile in tiles:
            tile.finish_update()
        cached = self._fused
        if cached is not None and all(
            a is t.read_copy for a, t in zip(cached[-1], tiles, strict=True)
        ):
            return cached[:-1]
        layers = [lin.dense_layer(code) for lin, code in zip(linears, codes, strict=True)]
        p, g = self.loss.buffers()
        net = kernels.dense_network(layers, p=p, g=g)
        self._fused = (net, tuple(t.read_copy for t in tiles))
        return (net,)

    def _cnn_args(self) -> tuple[Any, ...]:
        """The fixed arguments of the CNN's fused calls: per tile (conv1, conv2, fc1, out)
        its kernel arrays, the read output buffers, and the argument tuples of
        :func:`~rpucircuit.model.kernels.convnet.cnn_backward` that never change; cached
        while every tile keeps its read copy and every activation its buffers. Finishes no
        deferred update (the arrays are the live ones, which an update changes in place):
        the step finishes each tile's just before the tile's first use."""
        assert self._cnn is not None
        conv1, act1, _, conv2, act2, pool2, _, fc1, act3, fc2 = self._cnn
        tiles = (conv1.tile, conv2.tile, fc1.tile, fc2.tile)
        cached = self._cnn_cache
        live = (*(t.read_copy for t in tiles), act1._y, act2._y, act3._y)
        if cached is not None and all(a is b for a, b in zip(cached[1], live, strict=True)):
            return cached[0]
        arrays = tuple(t.kernel_arrays() for t in tiles)
        kernel_tiles = tuple(
            (a.wread, a.w, a.par, a.dp, a.att, a.wread_b, a.att_b, a.state, a.fwd_io,
             a.bwd_io, a.upd, a.par_lines, a.att_lines)
            for a in arrays
        )  # fmt: skip
        y1, g1 = act1.buffers(conv1.out_shape)
        y2, g2 = act2.buffers(conv2.out_shape)
        y3, g3 = act3.buffers((fc1.out_size,))
        fixed = (
            arrays,
            kernel_tiles,
            np.zeros((conv1.n_pixels, conv1.out_channels)),  # conv1 forward output
            np.zeros((conv2.n_pixels, conv2.out_channels)),  # conv2 forward output
            np.zeros((1, fc1.out_size)),  # fc1 forward output
            np.zeros((conv2.n_pixels, conv2.n_inputs + 1)),  # conv2 backward output
            (fc2._x, np.zeros((1, fc2.out_size)), fc2._d, np.zeros((1, fc2.in_size + 1))),
            self.loss.buffers(),
            (act3.code, y3, g3),
            (fc1._x, fc1._d, np.zeros((1, fc1.in_size + 1))),
            (pool2._idx, pool2._dx),
            (act2.code, y2, g2),
            (act1.code, y1, g1),
        )
        self._cnn_cache = (fixed, (*(t.read_copy for t in tiles), y1, y2, y3))
        return fixed

    def _cnn_threaded(self) -> bool:
        """Whether the CNN steps one sample at a time from Python (:meth:`_cnn_train_step`)
        so that conv2's tile can hand its updates to the update thread: where the thread
        may run and conv2's devices have half-select (k > 0), whose updates are long.
        Otherwise the whole steps run in one compiled call (:meth:`_cnn_train_steps`),
        which took less time, wall clock as well as CPU: paper B's CNN on the paper A
        preset, in the same runs, 1,636 and 1,589 images/s on one core against 1,513 and
        1,500 on 1.28 cores through the thread; at k = 0.1 the thread won, 968-1,058 on
        1.36-1.37 cores against 871-903 (Intel Xeon, 2 cores,
        ``bench/bench_training.py``)."""
        assert self._cnn is not None
        conv2 = self._cnn[3].tile
        return (
            update_thread_enabled()
            and conv2.update_thread
            and conv2.config.device.k_half_select > 0.0
        )

    def _cnn_train_steps(
        self, rows: FloatArray, labels: Any, lr: float, losses: FloatArray
    ) -> None:
        """Training steps of the CNN on ``rows`` (n, input_size; float64, C order) in one
        compiled call (:func:`~rpucircuit.model.kernels.convnet.cnn_train_steps`; every
        update in place), bit-identical to :meth:`_cnn_train_step` on each in turn; the
        losses go to ``losses``. Finishes every tile's deferred update first."""
        assert self._cnn is not None
        conv1, _, pool1, conv2, _, pool2, _, fc1, _, fc2 = self._cnn
        for layer in (conv1, conv2, fc1, fc2):  # updates deferred while the thread was on
            layer.tile.finish_update()
        _, tiles, y1, y2, y3, z2, out, loss, a3, fc1_args, p2, a2, a1 = self._cnn_args()
        geometry = (
            *conv1.in_shape, conv1.kernel_size, conv1.stride, pool1.size,
            conv2.kernel_size, conv2.stride, pool2.size,
        )  # fmt: skip
        forward = (y1, pool1._y, pool1._idx, y2, pool2._y, pool2._idx, fc1._x, y3)
        k, code, conv2_taken = convnet.cnn_train_steps(
            rows, np.ascontiguousarray(labels, dtype=np.int64), float(lr), losses, geometry,
            (conv1._set, conv2._set), (conv1._patch_sets, conv1._d_sets),
            (conv2._patch_sets, conv2._d_sets), forward, tiles, out, loss, a3, fc1_args, p2,
            a2, (z2, conv2._dx), (pool1._idx, pool1._dx), a1,
        )  # fmt: skip
        # the buffer sets the samples left current (as the per-sample path leaves them: a
        # sample refused at conv1's read has not taken conv2's)
        done = rows.shape[0] if k < 0 else k + 1
        for conv, taken in ((conv1, done), (conv2, done - 1 + conv2_taken)):
            for _ in range(taken % 2):
                conv.next_buffers()
        if k >= 0:
            where = f" (sample {k})" if rows.shape[0] > 1 else ""
            raise TileShapeError(self._cnn_failure(code) + where)

    @staticmethod
    def _cnn_failure(code: int) -> str:
        """The message for a nonzero code of the CNN's fused calls."""
        if code == 1:
            return "forward x: contains NaN or infinite values"
        if code < 0:
            return "update: x or d contains NaN or infinite values"
        return "backward d: contains NaN or infinite values"

    def _cnn_train_step(self, x: FloatArray, label: int, lr: float) -> float:
        """The CNN's training step through the fused calls of
        :mod:`~rpucircuit.model.kernels.convnet` from Python, one sample (bit-identical to
        the layer path and to :meth:`_cnn_train_steps`, which the network uses unless
        conv2's tile hands its updates to the update thread, :meth:`_cnn_threaded`; the
        benchmark's profile times these calls one by one). The updates run inside the
        last call, except conv2's where its tile may use the update thread
        (:class:`~rpucircuit.model.tile.AnalogTile`): then that tile updates itself
        between the backward reads and the other updates, and each tile's deferred update
        is finished just before the tile is first used in the next step (conv2's, the
        longest, after conv1's read: the update thread has that read's time too;
        finishing every tile at the start of the step left it too little, and the caller
        waited)."""
        assert self._cnn is not None
        conv1, act1, pool1, conv2, act2, pool2, _, fc1, act3, fc2 = self._cnn
        check_lr(lr)
        arrays, tiles, y1, y2, y3, z2, out, loss, a3, fc1_args, p2, a2, a1 = self._cnn_args()
        c1, c2, f1, _ = arrays
        conv1.tile.finish_update()
        patches1, d1 = conv1.next_buffers()
        img = np.ascontiguousarray(x).reshape(conv1.in_shape)
        forward_bad = self._cnn_failure(1)
        code = convnet.conv_forward(
            img, conv1.kernel_size, conv1.stride, patches1, c1.wread, y1, c1.fwd_io, c1.state
        )
        if code:
            raise TileShapeError(forward_bad)
        h1 = act1.forward(y1.reshape(conv1.out_shape))
        conv2.tile.finish_update()
        patches2, d2 = conv2.next_buffers()
        code = convnet.pool_conv_forward(
            h1, pool1.size, pool1._y, pool1._idx, conv2.kernel_size, conv2.stride, patches2,
            c2.wread, y2, c2.fwd_io, c2.state,
        )  # fmt: skip
        if code:
            raise TileShapeError(forward_bad)
        h2 = act2.forward(y2.reshape(conv2.out_shape))
        fc1.tile.finish_update()
        code = convnet.pool_dense_forward(
            h2, pool2.size, pool2._y, pool2._idx, fc1._x, f1.wread, y3, f1.fwd_io, f1.state
        )
        if code:
            raise TileShapeError(forward_bad)
        act3.forward(y3[0])
        fc2.tile.finish_update()
        c2_args = (patches2, d2, z2, conv2.kernel_size, conv2.stride, conv2._dx)
        c1_rest = ((pool1._idx, pool1._dx), a1, (patches1, d1))
        # reached where _cnn_threaded (conv2 hands over), and from the benchmark's profile,
        # which times these calls for any network
        if not (update_thread_enabled() and conv2.tile.update_thread):
            code = convnet.cnn_backward(
                int(label), float(lr), convnet.UPDATE_ALL, tiles, out, loss, a3, fc1_args, p2,
                a2, c2_args, *c1_rest,
            )  # fmt: skip
        else:
            # conv2's update (the longest) to its tile, which may hand it to the update
            # thread, between the backward reads and the other updates: the thread runs it
            # while this thread updates the other tiles (in the call, as without the
            # thread: a tile's update from Python costs several µs more) and reads conv1 of
            # the next sample; each tile's update still comes after its reads
            code = convnet.cnn_backward_reads(
                int(label), tiles, out, loss, a3, fc1_args, p2, a2, c2_args
            )
            if not code:
                conv2.update(lr)
                code = convnet.cnn_backward_updates(
                    float(lr), convnet.UPDATE_ALL & ~convnet.UPDATE_CONV2, tiles, out,
                    fc1_args, c2_args, *c1_rest,
                )  # fmt: skip
        if code:
            raise TileShapeError(self._cnn_failure(code))
        return -math.log(max(float(loss[0][label]), 1e-300))

    def train_step(self, x: FloatArray, label: int, lr: float) -> float:
        """One SGD step on one sample; returns the cross-entropy loss before the step."""
        self._check(x)
        self._check_label(label)
        if self._cnn is not None and self.fused:
            if self._cnn_threaded():
                return self._cnn_train_step(x, label, lr)
            check_lr(lr)
            losses = np.empty(1)
            row = np.ascontiguousarray(x, dtype=np.float64).reshape(1, self.input_size)
            self._cnn_train_steps(row, np.array([label]), lr, losses)
            return float(losses[0])
        if self._dense is not None and self.fused:
            check_lr(lr)
            args = self._fused_args()
            self._dense[0][0].load_input(x)
            loss = kernels.dense_train_step(int(label), float(lr), *args)
            if math.isnan(loss):
                raise TileShapeError("forward x: contains NaN or infinite values")
            return float(loss)
        self.loss.forward(self._forward(x))
        loss = self.loss.loss(label)
        g = self.loss.backward(label)
        for layer in self._back:
            g = layer.backward(g)
            layer.update(lr)
        self._first.accept_grad(g)
        self._first.update(lr)
        return loss

    def train_steps(self, x: Any, labels: Any, lr: float) -> FloatArray:
        """SGD steps on the samples ``x[k]`` (n samples of ``input_size`` values each, any
        shape (n, ...) that holds them; float32 or float64, others are converted) with
        ``labels[k]``, one after another (mini-batch 1): bit for bit what
        :meth:`train_step` on each in turn does. Returns the n losses.

        Every sample and label is checked before the first step, so bad input changes
        nothing. A fully connected network that trains fused takes all n samples in one
        compiled call (:func:`~rpucircuit.model.kernels.dense_train_steps`), which saves
        the cost of a call per sample (about 30 of paper A's 106 µs per sample); so does
        paper B's CNN (:func:`~rpucircuit.model.kernels.convnet.cnn_train_steps`) unless
        its conv2 tile hands its long half-select updates to the update thread
        (:meth:`_cnn_threaded`); other networks step through :meth:`train_step`."""
        xb = np.asarray(x)
        n = int(xb.shape[0]) if xb.ndim >= 1 else 0
        if xb.ndim < 2 or math.prod(xb.shape[1:]) != self.input_size:
            raise DataError(
                f"x has shape {xb.shape}: need (n, {self.input_size}), n samples of "
                f"{self.input_size} values each"
            )
        yb = np.asarray(labels)
        if yb.shape != (n,) or (n > 0 and yb.dtype.kind not in "iu"):
            raise DataError(
                f"labels: {n} integers needed (one per sample), got shape {yb.shape} of {yb.dtype}"
            )
        if n > 0 and (int(yb.min()) < 0 or int(yb.max()) >= self.n_classes):
            bad = int(np.flatnonzero((yb < 0) | (yb >= self.n_classes))[0])
            raise DataError(
                f"labels[{bad}] = {int(yb[bad])}: must be an integer in "
                f"[0, {self.n_classes - 1}]; no sample was trained"
            )
        check_lr(lr)
        flat = xb.reshape(n, self.input_size)
        if flat.dtype not in (np.float32, np.float64):
            flat = flat.astype(np.float64)
        flat = np.ascontiguousarray(flat)
        finite = np.isfinite(flat).all(axis=1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise TileShapeError(
                f"forward x: contains NaN or infinite values (sample {bad}); no sample was trained"
            )
        losses = np.empty(n)
        if n == 0:
            return losses
        if self._cnn is None and self._dense is not None and self.fused:
            net = self._fused_args()[0]
            first = self._dense[0][0]
            k = kernels.dense_train_steps(
                flat, yb.astype(np.int64), float(lr), first._x_in, net, losses
            )
            if k >= 0:  # (the check above makes this unreachable)
                raise TileShapeError(f"forward x: contains NaN or infinite values (sample {k})")
            return losses
        rows = flat.astype(np.float64, copy=False)
        if self._cnn is not None and self.fused and not self._cnn_threaded():
            self._cnn_train_steps(rows, yb, lr, losses)
            return losses
        for k in range(n):
            losses[k] = self.train_step(rows[k], int(yb[k]), lr)
        return losses

    def evaluate(self, x: FloatArray, y: NDArray[np.integer]) -> float:
        """Error rate (fraction misclassified) over samples ``x[i]`` with labels ``y[i]``."""
        if len(x) != len(y) or len(y) == 0:
            raise DataError(
                f"evaluate got {len(x)} samples and {len(y)} labels: need the same number, > 0"
            )
        wrong = 0
        for xi, yi in zip(x, y, strict=True):
            wrong += self.predict(xi) != int(yi)
        return wrong / len(y)

    # ------------------------------------------------------------------ state

    def get_state(self) -> State:
        """Every tile's state (weights, device parameters, generator), keyed ``layer<i>``."""
        return {
            f"layer{i}": dict(self.layers[i].tile.get_state())  # type: ignore[union-attr]
            for i in self._analog_index
        }

    def set_state(self, state: State) -> None:
        """Restore a state from :meth:`get_state` of a network with the same layers."""
        expected = {f"layer{i}" for i in self._analog_index}
        if set(state) != expected:
            raise StoreError(
                f"network state has entries {sorted(state)}; this network needs {sorted(expected)}"
            )
        for i in self._analog_index:
            self.layers[i].tile.set_state(state[f"layer{i}"])  # type: ignore[union-attr]


# --------------------------------------------------------------------------- fused path


def _dense_plan(
    layers: Sequence[Layer],
) -> tuple[tuple[AnalogLinear, ...], tuple[int, ...]] | None:
    """The fully connected layers and the activation code after each, if ``layers`` is
    AnalogLinear [Sigmoid|Tanh] ... AnalogLinear (what :func:`kernels.dense_train_step`
    runs), else None."""
    linears: list[AnalogLinear] = []
    codes: list[int] = []
    for layer in layers:
        if isinstance(layer, AnalogLinear):
            if linears and len(codes) < len(linears):
                codes.append(kernels.ACT_NONE)
            linears.append(layer)
        elif type(layer) in (Sigmoid, Tanh) and len(codes) < len(linears):
            codes.append(layer.code)  # type: ignore[attr-defined]
        else:
            return None
    if not linears or len(codes) == len(linears):  # an activation after the last layer
        return None
    codes.append(kernels.ACT_NONE)
    for prev, nxt in itertools.pairwise(linears):
        if prev.out_size != nxt.in_size:
            return None
    return tuple(linears), tuple(codes)


def _cnn_plan(layers: Sequence[Layer], input_size: int) -> tuple[Any, ...] | None:
    """The ten layers if ``layers`` is conv → act → pool → conv → act → pool → flatten →
    linear → act → linear with matching shapes (paper B's structure, what the fused calls
    of :mod:`rpucircuit.model.kernels.convnet` run), else None."""
    acts = (Sigmoid, Tanh)
    kinds = (AnalogConv2d, acts, MaxPool2d, AnalogConv2d, acts, MaxPool2d, Flatten,
             AnalogLinear, acts, AnalogLinear)  # fmt: skip
    if len(layers) != len(kinds):
        return None
    for layer, kind in zip(layers, kinds, strict=True):
        if type(layer) not in (kind if isinstance(kind, tuple) else (kind,)):
            return None
    conv1, _, pool1, conv2, _, pool2, _, fc1, _, fc2 = layers
    assert isinstance(conv1, AnalogConv2d) and isinstance(conv2, AnalogConv2d)
    assert isinstance(pool1, MaxPool2d) and isinstance(pool2, MaxPool2d)
    assert isinstance(fc1, AnalogLinear) and isinstance(fc2, AnalogLinear)
    shapes_match = (
        math.prod(conv1.in_shape) == input_size
        and conv1.out_shape == pool1.in_shape
        and pool1.out_shape == conv2.in_shape
        and conv2.out_shape == pool2.in_shape
        and math.prod(pool2.out_shape) == fc1.in_size
        and fc1.out_size == fc2.in_size
    )
    return tuple(layers) if shapes_match else None


# --------------------------------------------------------------------------- builders


def _per_layer(rpu_configs: RPUConfig | Sequence[RPUConfig], n: int) -> tuple[RPUConfig, ...]:
    if isinstance(rpu_configs, RPUConfig):
        return (rpu_configs,) * n
    configs = tuple(rpu_configs)
    if len(configs) != n or not all(isinstance(c, RPUConfig) for c in configs):
        raise ConfigError(
            f"rpu_configs has {len(configs)} entries: give one RPUConfig or one per analog "
            f"layer ({n})"
        )
    return configs


def fully_connected(
    sizes: Sequence[int],
    rpu_configs: RPUConfig | Sequence[RPUConfig],
    *,
    rng: np.random.Generator,
    hidden: str = "sigmoid",
    update_thread: bool = True,
) -> Network:
    """Fully connected network ``sizes[0] → … → sizes[-1]`` with softmax output.

    Hidden layers use ``hidden`` ("sigmoid" as paper A, or "tanh"); the last layer feeds
    the softmax directly. ``update_thread``: whether the tiles may hand updates to the
    background update thread (:class:`~rpucircuit.model.tile.AnalogTile`).
    """
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise ConfigError(f"sizes = {sizes!r}: need at least an input and an output size")
    if hidden not in ("sigmoid", "tanh"):
        raise ConfigError(f"hidden = {hidden!r}: must be one of ['sigmoid', 'tanh']")
    configs = _per_layer(rpu_configs, len(sizes) - 1)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(AnalogLinear(n_in, n_out, configs[i], rng=rng, update_thread=update_thread))
        if i < len(sizes) - 2:
            layers.append(Sigmoid() if hidden == "sigmoid" else Tanh())
    return Network(layers, n_classes=sizes[-1], input_size=sizes[0])


def fc_784_256_128_10(
    rpu_configs: RPUConfig | Sequence[RPUConfig],
    *,
    rng: np.random.Generator,
    update_thread: bool = True,
) -> Network:
    """Paper A's network (Gokmen & Vlasov 2016): 784-256-128-10, sigmoid, softmax output."""
    return fully_connected(
        (784, 256, 128, 10), rpu_configs, rng=rng, hidden="sigmoid", update_thread=update_thread
    )


def cnn_gokmen_2017(
    rpu_configs: RPUConfig | Sequence[RPUConfig],
    *,
    rng: np.random.Generator,
    update_thread: bool = True,
) -> Network:
    """Paper B's CNN (Gokmen, Onen & Haensch 2017) for 28×28 single-channel images.

    conv 16 kernels 5×5 → tanh → maxpool 2 → conv 32 kernels 5×5×16 → tanh → maxpool 2 →
    flatten (512) → FC 128 tanh → FC 10 → softmax. ``rpu_configs``: one config or four
    (conv1, conv2, fc1, fc2). ``update_thread`` as for :func:`fully_connected`.
    """
    c1, c2, f1, f2 = _per_layer(rpu_configs, 4)
    ut = update_thread
    conv1 = AnalogConv2d((28, 28, 1), 16, 5, c1, rng=rng, update_thread=ut)
    pool1 = MaxPool2d(conv1.out_shape, 2)
    conv2 = AnalogConv2d(pool1.out_shape, 32, 5, c2, rng=rng, update_thread=ut)
    pool2 = MaxPool2d(conv2.out_shape, 2)
    n_flat = int(np.prod(pool2.out_shape))
    layers: list[Layer] = [
        conv1,
        Tanh(),
        pool1,
        conv2,
        Tanh(),
        pool2,
        Flatten(),
        AnalogLinear(n_flat, 128, f1, rng=rng, update_thread=ut),
        Tanh(),
        AnalogLinear(128, 10, f2, rng=rng, update_thread=ut),
    ]
    return Network(layers, n_classes=10, input_size=28 * 28)
