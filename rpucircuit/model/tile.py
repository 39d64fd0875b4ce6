"""Behavioral RPU tile: managed noisy forward/backward reads and the stochastic pulsed update.

:class:`AnalogTile` holds one crossbar's devices (``n_devices`` per weight, summed) with
their device-to-device parameters, the read periphery of both directions and the update
scheme of an :class:`~rpucircuit.config.rpu.RPUConfig`. The hot loops are the compiled
kernels of :mod:`rpucircuit.model.kernels`; one kernel call per operation.

Shapes: a weight matrix is (out_size, in_size); ``forward`` takes (in,) or (n, in),
``backward`` (out,) or (n, out). Details and conventions: ``docs/model-api.md``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rpucircuit.config.rpu import RPUConfig
from rpucircuit.errors import ConfigError, TileShapeError
from rpucircuit.model import kernels
from rpucircuit.model.kernels import KernelArrays, pack_device, pack_io, pack_update
from rpucircuit.model.kernels.conv import patch_update
from rpucircuit.model.updatethread import UPDATE_THREAD as _UPDATE_THREAD
from rpucircuit.model.updatethread import UpdateJob as _UpdateJob
from rpucircuit.model.updatethread import UpdateThread as _UpdateThread  # noqa: F401 (tests)

__all__ = [
    "ASYNC_MIN_US",
    "STATE_VERSION",
    "AnalogTile",
    "KernelArrays",
    "check_lr",
    "io_vector",
    "read_dtype",
    "update_thread_enabled",
    "usable_cpus",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

STATE_VERSION = 1
"""Layout version of :meth:`AnalogTile.get_state` dictionaries."""

_PAR_NAMES = {name: idx for idx, name in enumerate(kernels.PAR_FIELDS)}
"""State key of each per-device parameter -> its index in the kernels' ``par`` array."""
_STATE_ARRAYS = ("weights", "dw_up", "dw_down", "w_max", "w_min", "attenuation")


io_vector = pack_io
"""The read parameter vector of an :class:`~rpucircuit.config.rpu.IOConfig`
(:func:`rpucircuit.model.kernels.layout.pack_io`, kept under its former name)."""


def read_dtype(config: RPUConfig) -> type[np.floating[Any]]:
    """Precision of the read copy of the weights: float32 when both reads add output noise.

    float32 rounding of an MVM output is ~1e-7 relative, at least four orders of magnitude
    below any output noise worth modelling, and halves the memory the MVMs stream; a read
    without noise (floating point, or a test of one non-ideality) stays float64.
    """
    noisy = [not io.is_perfect and io.out_noise > 0 for io in (config.forward, config.backward)]
    return np.float32 if all(noisy) else np.float64


ASYNC_MIN_US = 50.0
"""A tile hands its updates to the update thread only while its own updates take at least
this long (µs, running mean of the kernel's CPU time): a hand-over costs ≈ 10 µs of the
caller's time (checks, input copies) plus the thread's wake-up latency, which only a long
update repays. Measured on the 2-core machine (paper-B CNN, MNIST): 50 µs also moves the
CNN's 128×513 layer (≈ 70–100 µs per update, overlapping the conv2 backward read) besides
the conv layers, 1,310–1,470 → 1,470–1,580 samples/s against the former 100 µs; paper A's
FC network runs its whole step in one compiled call and never hands over."""


@functools.cache
def usable_cpus() -> int:
    """Number of CPUs this process may run on, found on first use (not at import).

    The scheduler affinity mask where the platform has one (Linux); elsewhere (macOS,
    Windows) ``os.process_cpu_count`` (Python 3.13+, which honours the affinity where it
    can) or ``os.cpu_count``; at least 1. A tile's update thread only runs with >= 2.
    """
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return max(1, len(affinity(0)))
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return max(1, int(count or 1))


def update_thread_enabled() -> bool:
    """Whether a tile built with ``update_thread=True`` (the default) may hand its updates
    to the update thread in this process: at least two usable CPUs (:func:`usable_cpus`)."""
    return usable_cpus() >= 2


def check_lr(lr: object) -> None:
    """Refuse a learning rate that is not a finite number >= 0 (:class:`TileShapeError`)."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)):
        raise TileShapeError(f"update lr = {lr!r}: must be a number")
    if not math.isfinite(lr) or lr < 0:
        raise TileShapeError(f"update lr = {lr!r}: must be finite and >= 0")


def _same_bits(a: FloatArray, b: FloatArray) -> bool:
    """Whether two float64 arrays of one shape hold the same bits (``np.array_equal`` takes
    -0.0 for 0.0, which a read copy's sign of zero would not)."""
    return bool(
        np.array_equal(
            np.ascontiguousarray(a).view(np.uint64), np.ascontiguousarray(b).view(np.uint64)
        )
    )


class AnalogTile:
    """One RPU crossbar of ``out_size × in_size`` weights under ``config``.

    ``rng`` draws the device-to-device parameters and seeds the kernels' own generator; the
    tile keeps a child generator so it never touches the caller's afterwards. Initial
    weights are zero; use :meth:`set_weights` to program them.

    Background update (``update_thread`` True, the default, and at least two usable CPUs,
    :func:`usable_cpus`): once this tile's updates take :data:`ASYNC_MIN_US` or longer, an
    :meth:`update` is validated, its inputs copied, and its kernel handed to the process's
    update thread; the call returns at once and every later use of this tile (read,
    update, weights, state) first finishes it. Each tile's operations therefore run in the
    order they were called, on its own generator state, so the results are bit-identical
    to running every update in place; only other tiles' work (e.g. the backward read of
    the layer below) overlaps with it. Pass ``update_thread=False`` where the process
    already has a core's worth of work per CPU (e.g. one sweep job per core); the
    attribute of the same name may be changed at any time.
    """

    def __init__(
        self,
        out_size: int,
        in_size: int,
        config: RPUConfig,
        *,
        rng: np.random.Generator,
        update_thread: bool = True,
    ) -> None:
        for name, value in (("out_size", out_size), ("in_size", in_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} = {value!r}: must be an integer >= 1")
        if not isinstance(config, RPUConfig):
            raise ConfigError(f"config = {config!r}: must be an RPUConfig")
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng = {rng!r}: must be a numpy.random.Generator")
        if not isinstance(update_thread, bool):
            raise ConfigError(f"update_thread = {update_thread!r}: must be True or False")
        self.out_size = out_size
        self.in_size = in_size
        self.config = config
        self.update_thread = update_thread  # see the class docstring
        self._rng = np.random.default_rng(rng.integers(0, 2**63, size=4))
        self._fwd_io = pack_io(config.forward)
        self._bwd_io = pack_io(config.backward)
        dev = config.device
        n_dev = dev.n_devices
        shape = (n_dev, out_size, in_size)
        r = self._rng
        gain = np.maximum(1.0 + dev.dw_min_dtod * r.standard_normal(shape), 0.0)
        u = np.clip(dev.up_down + dev.up_down_dtod * r.standard_normal(shape), -1.0, 1.0)
        dw_dev = dev.dw_min / n_dev
        self._par = np.empty((*shape, kernels.PAR_LEN))
        self._par[..., kernels.PAR_UP] = dw_dev * gain * (1.0 + u)
        self._par[..., kernels.PAR_DOWN] = dw_dev * gain * (1.0 - u)
        if dev.bounded:
            wmax = dev.w_max / n_dev * (1.0 + dev.w_bound_dtod * r.standard_normal(shape))
            wmin = dev.w_min / n_dev * (1.0 + dev.w_bound_dtod * r.standard_normal(shape))
            self._par[..., kernels.PAR_WMAX] = np.maximum(wmax, 0.0)
            self._par[..., kernels.PAR_WMIN] = np.minimum(wmin, 0.0)
        else:
            self._par[..., kernels.PAR_WMAX] = np.inf
            self._par[..., kernels.PAR_WMIN] = -np.inf
        self._w = np.zeros(shape)
        self._att = np.ones((out_size, in_size))
        self._wread = np.zeros((out_size, in_size), dtype=read_dtype(config))
        # the backward read's own map and read copy (C order), used only while
        # dp[DP_BWD_ATT] is set (kernels.BWD_*); allocated now so kernel_arrays' references
        # stay live
        self._att_b = np.ones((out_size, in_size))
        self._wread_b = np.zeros((out_size, in_size), dtype=self._wread.dtype)
        # the maps' line terms (kernels.att_lines_maps), used while dp[DP_ATT_LINES] is set
        self._att_lines = np.zeros((4, max(out_size, in_size)))
        self._dp = pack_device(dev, use_attenuation=False)
        self._upd = pack_update(config)
        self._par_lines = self._build_par_lines()
        self._s = kernels.seed_state(self._rng)
        self._pending: _UpdateJob | None = None
        self._update_us = 0.0  # running mean of the update kernel's CPU time (µs)
        self._last_us = 0.0  # the last update's kernel CPU time (µs)

    def _sync(self) -> None:
        """Finish this tile's deferred update, if any (see the class docstring)."""
        job = self._pending
        if job is not None:
            self._pending = None
            t0 = time.perf_counter()
            ran_here = job.finish()
            wait_us = 0.0 if ran_here else (time.perf_counter() - t0) * 1e6
            _UPDATE_THREAD.note_finished(ran_here, self._last_us, wait_us)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support: a deferred update is finished first and never pickled; the
        parameters' copy along the lines is rebuilt on unpickling, not pickled."""
        self._sync()
        skip = ("_pending", "_par_lines")
        return {name: getattr(self, name) for name in self.__dict__ if name not in skip}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("update_thread", True)  # pickled before the attribute
        self.__dict__.setdefault("_upd", pack_update(self.config))
        if "_att_lines" not in self.__dict__:  # pickled before the maps' line terms
            self._att_lines = np.zeros((4, max(self.out_size, self.in_size)))
            self._dp = np.concatenate([self._dp, np.zeros(kernels.DP_LEN - self._dp.shape[0])])
        self._par_lines = self._build_par_lines()
        self._pending = None

    def _build_par_lines(self) -> FloatArray:
        """The device parameters along the rows and along the columns when this tile's
        updates take the half-select passes over whole lines (pulsed updates, k > 0, hard
        bounds; :func:`~rpucircuit.model.kernels.par_lines_of`, float32), after rounding
        the parameters themselves to float32 precision so that both hold the same values;
        else (an exact update reads neither) an empty stand-in
        (:func:`~rpucircuit.model.kernels.no_par_lines`)."""
        if kernels.needs_par_lines(self._dp) and self._upd[kernels.UPD_EXACT] == 0.0:
            kernels.round_parameters(self._par)  # the copy's precision (float32)
            return kernels.par_lines_of(self._par)
        return kernels.no_par_lines(self._par)

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _batch(v: object, size: int, name: str) -> tuple[FloatArray, bool]:
        """(n, size) C-contiguous float64 view or copy of ``v``, and whether ``v`` was 1-D.

        Finiteness is checked inside the kernels (one pass, no extra Python call)."""
        a = v if isinstance(v, np.ndarray) else np.asarray(v)
        if a.dtype != np.float64:
            if a.dtype.kind not in "fiu":
                raise TileShapeError(f"{name}: dtype {a.dtype} is not a real number type")
            a = a.astype(np.float64)
        if a.ndim == 1 and a.shape[0] == size:
            return (a if a.flags.c_contiguous else np.ascontiguousarray(a)).reshape(1, size), True
        if a.ndim == 2 and a.shape[1] == size:
            return (a if a.flags.c_contiguous else np.ascontiguousarray(a)), False
        raise TileShapeError(
            f"{name}: shape {a.shape} must be ({size},) or (n, {size}) for this tile"
        )

    # ----------------------------------------------------------------- reads

    def forward(self, x: object) -> FloatArray:
        """y = W x through the forward periphery; x is (in,) or (n, in) (n independent reads)."""
        xb, single = self._batch(x, self.in_size, "forward x")
        self._sync()
        y = np.empty((xb.shape[0], self.out_size))
        if kernels.read_batch(self._wread, xb, y, self._fwd_io, self._s):
            raise TileShapeError("forward x: contains NaN or infinite values")
        return y[0] if single else y

    def backward(self, d: object) -> FloatArray:
        """z = Wᵀ d through the backward periphery; d is (out,) or (n, out)."""
        db, single = self._batch(d, self.out_size, "backward d")
        self._sync()
        z = np.empty((db.shape[0], self.in_size))
        wr = self._wread
        if self._dp[kernels.DP_BWD_ATT] != kernels.BWD_NONE:  # its own map: its own copy
            kernels.refresh_backward(self._w, self._att_b, self._wread_b, self._dp)
            wr = self._wread_b
        if kernels.read_batch(wr.T, db, z, self._bwd_io, self._s):
            raise TileShapeError("backward d: contains NaN or infinite values")
        return z[0] if single else z

    # ----------------------------------------------------------------- update

    def update(self, x: object, d: object, lr: float, *, copy: bool = True) -> None:
        """SGD step W ← W − lr·dᵀx in expectation (n rows = n sequential updates).

        ``copy=False``: the caller promises to leave ``x`` and ``d`` unchanged until this
        tile is next used (read, updated, or its weights or state touched), so a deferred
        update may read them in place instead of from copies."""
        xb, _ = self._batch(x, self.in_size, "update x")
        db, _ = self._batch(d, self.out_size, "update d")
        if xb.shape[0] != db.shape[0]:
            raise TileShapeError(
                f"update: x has {xb.shape[0]} rows but d has {db.shape[0]}; they must match"
            )
        check_lr(lr)
        self._sync()
        if (
            self.update_thread
            and self._update_us >= ASYNC_MIN_US
            and update_thread_enabled()
            and _UPDATE_THREAD.takes(self._update_us)
        ):
            if not (kernels.all_finite(xb) and kernels.all_finite(db)):
                raise TileShapeError("update: x or d contains NaN or infinite values")
            if copy:  # the caller may refill its buffers while the update runs
                xb, db = np.array(xb), np.array(db)
            job = _UpdateJob(self._update_fn(xb, db, float(lr)))
            self._pending = job
            _UPDATE_THREAD.submit(job, self._update_us)
            return
        self._update_fn(xb, db, float(lr))()

    def _update_fn(self, xb: FloatArray, db: FloatArray, lr: float) -> Callable[[], None]:
        """The update kernel call for validated (n, in) and (n, out) batches."""
        upd = self.config.update
        dw_min = self.config.device.dw_min

        def run() -> None:
            t0 = time.thread_time()
            if upd.pulse_type == "exact":
                code = kernels.exact_update(
                    xb, db, lr, self._w, self._par, self._dp, self._wread, self._att,
                    self._wread_b, self._att_b,
                )  # fmt: skip
            else:  # a conv layer's batch of patches through conv_update (bit-identical)
                code = patch_update(
                    xb, db, lr, upd.bl, upd.update_management, dw_min,
                    self._w, self._par, self._par_lines, self._dp, self._wread, self._att,
                    self._wread_b, self._att_b, self._att_lines, self._s,
                )  # fmt: skip
            if code < 0:
                raise TileShapeError("update: x or d contains NaN or infinite values")
            # running mean of this tile's update CPU time (not wall time, which a busy
            # machine inflates): decides in place vs thread only, never what is computed
            self._last_us = (time.thread_time() - t0) * 1e6
            self._update_us += 0.25 * (self._last_us - self._update_us)

        return run

    def finish_update(self) -> None:
        """Finish a deferred update now (see the class docstring); a no-op without one."""
        self._sync()

    def kernel_arrays(self) -> KernelArrays:
        """The live arrays the kernels work on, for a caller that runs the kernels itself
        (:func:`rpucircuit.model.kernels.dense_layer` and
        :func:`~rpucircuit.model.kernels.dense_train_step`). Finishes a deferred update
        first; the arrays change in place, and :meth:`set_read_order` replaces ``wread``."""
        self._sync()
        return KernelArrays(
            wread=self._wread,
            w=self._w,
            par=self._par,
            dp=self._dp,
            att=self._att,
            wread_b=self._wread_b,
            att_b=self._att_b,
            state=self._s,
            fwd_io=self._fwd_io,
            bwd_io=self._bwd_io,
            upd=self._upd,
            par_lines=self._par_lines,
            att_lines=self._att_lines,
        )

    # ----------------------------------------------------------------- weights

    @property
    def read_order(self) -> str:
        """Memory order of the read copy of the weights: ``"C"`` (rows) or ``"F"`` (columns)."""
        return "C" if self._wread.flags.c_contiguous else "F"

    @property
    def read_copy(self) -> np.ndarray[Any, Any]:
        """The live read copy of the weights (out, in) (attenuated, devices summed); do not
        write to it."""
        return self._wread

    def set_read_order(self, order: str) -> None:
        """Store the read copy of the weights row-major (``"C"``, the default) or
        column-major (``"F"``).

        Only speed changes (and the summation order of the reads, i.e. float rounding): a
        read whose weights are laid out along its input direction adds one contiguous
        weight line per nonzero input and skips zero inputs, the other direction forms
        dot products. ``"F"`` suits a first layer, which is read forward only and whose
        inputs are mostly zero (MNIST pixels, conv1 patches), unless it is a dense layer
        with half-select: each of its updates rewrites whole rows, contiguous only
        row-major; the default suits layers read both ways (the backward read then skips
        zero errors).
        """
        if order not in ("C", "F"):
            raise ConfigError(f"order = {order!r}: must be one of ['C', 'F']")
        self._sync()
        if order != self.read_order:
            self._wread = (
                np.asfortranarray(self._wread)
                if order == "F"
                else np.ascontiguousarray(self._wread)
            )

    def _refresh_read(self) -> None:
        self._sync()
        total = self._w.sum(axis=0)
        self._wread[...] = total * self._att if self._dp[kernels.DP_USE_ATT] else total
        if self._dp[kernels.DP_BWD_ATT] != kernels.BWD_NONE:
            self._dp[kernels.DP_BWD_ATT] = kernels.BWD_STALE  # the next backward read rebuilds it

    def get_weights(self) -> FloatArray:
        """Effective weights (out, in): devices summed, without the attenuation map."""
        self._sync()
        return np.asarray(self._w.sum(axis=0))

    def set_weights(self, w: object) -> None:
        """Program weights (out, in): each device gets w/n_devices, clipped to its bounds."""
        self._sync()
        a = np.asarray(w, dtype=np.float64)
        if a.shape != (self.out_size, self.in_size):
            raise TileShapeError(
                f"set_weights: shape {a.shape} must be ({self.out_size}, {self.in_size})"
            )
        if not np.all(np.isfinite(a)):
            raise TileShapeError("set_weights: contains NaN or infinite values")
        n_dev = self._w.shape[0]
        lo = self._par[..., kernels.PAR_WMIN]
        hi = self._par[..., kernels.PAR_WMAX]
        self._w[...] = np.clip(a[None, :, :] / n_dev, lo, hi)
        self._refresh_read()

    def _check_map(self, att: object, name: str) -> FloatArray:
        """``att`` as a float64 map of this tile's shape, finite and >= 0; ``name`` is ""
        for the forward map (the messages of a single map) or "backward "."""
        a = np.asarray(att, dtype=np.float64)
        if a.shape != (self.out_size, self.in_size):
            raise TileShapeError(
                f"set_attenuation: {name}shape {a.shape} must be ({self.out_size}, {self.in_size})"
            )
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise TileShapeError(f"set_attenuation: {name}values must be finite and >= 0")
        return a

    def set_attenuation(
        self,
        forward: object,
        backward: object | None = None,
        *,
        lines: tuple[object, object, object, object] | None = None,
    ) -> None:
        """Position-dependent read attenuation maps (out, in, tile orientation), each
        multiplying the weight in its direction's reads: ``forward`` in the forward read,
        ``backward`` in the backward read (None: the forward map, as for a tile whose two
        reads see the same line resistances). A backward map that differs from the
        forward one gets a read copy of its own, kept up to date by the updates.

        ``lines``: optionally, the maps as line terms, (forward over the rows (out,),
        forward over the columns (in,), backward over the rows, backward over the
        columns), each map being 1 − (row term + column term) bit for bit, as
        :meth:`rpucircuit.model.irdrop.IRDropModel.attenuation_lines` gives them for the
        first-order IR-drop model. The updates then compute a changed weight's map value
        from them instead of loading it from the map (the same values, less memory
        traffic). Terms that do not give the maps exactly raise
        :class:`~rpucircuit.errors.TileShapeError`. Without ``lines``, terms already held
        are kept while they still give the new maps exactly (as when ``set_state``
        restores the same maps)."""
        self._sync()
        a = self._check_map(forward, "")
        b = a if backward is None else self._check_map(backward, "backward ")
        n_out, n_in = self.out_size, self.in_size
        if lines is not None:
            terms = self._check_lines(lines)
            fwd, bwd = kernels.att_lines_maps(terms, n_out, n_in)
            if not (_same_bits(fwd, a) and _same_bits(bwd, b)):
                raise TileShapeError(
                    "set_attenuation: lines do not give the maps bit for bit "
                    "(each map must be 1 - (row term + column term))"
                )
            self._att_lines[...] = terms
            exact = True
        elif self._dp[kernels.DP_ATT_LINES]:
            fwd, bwd = kernels.att_lines_maps(self._att_lines, n_out, n_in)
            exact = _same_bits(fwd, a) and _same_bits(bwd, b)
        else:
            exact = False
        self._att[...] = a
        self._att_b[...] = b
        # in place: callers of kernel_arrays hold this array
        self._dp[...] = pack_device(
            self.config.device,
            use_attenuation=not np.all(a == 1.0),
            backward_map=not np.array_equal(a, b),
            att_lines=exact,
        )
        self._refresh_read()

    def _check_lines(self, lines: object) -> FloatArray:
        """``lines`` (four vectors: rows, columns, rows, columns) as this tile's
        ``att_lines`` layout (4, max(out, in)), each finite."""
        if not isinstance(lines, (tuple, list)) or len(lines) != 4:
            raise TileShapeError(
                "set_attenuation: lines must be four vectors (forward rows, forward "
                "columns, backward rows, backward columns)"
            )
        terms = np.zeros_like(self._att_lines)
        sizes = (self.out_size, self.in_size, self.out_size, self.in_size)
        names = ("forward rows", "forward columns", "backward rows", "backward columns")
        for k, (v, n, name) in enumerate(zip(lines, sizes, names, strict=True)):
            arr = np.asarray(v, dtype=np.float64)
            if arr.shape != (n,):
                raise TileShapeError(
                    f"set_attenuation: lines ({name}) shape {arr.shape} must be ({n},)"
                )
            if not np.all(np.isfinite(arr)):
                raise TileShapeError(f"set_attenuation: lines ({name}) must be finite")
            terms[k, :n] = arr
        return terms

    def get_attenuation(self, direction: str = "forward") -> FloatArray:
        """The attenuation map (out, in) of the ``"forward"`` or ``"backward"`` read, a copy."""
        if direction not in ("forward", "backward"):
            raise ConfigError(f"direction = {direction!r}: must be one of ['forward', 'backward']")
        self._sync()
        return (self._att if direction == "forward" else self._att_b).copy()

    def device_parameters(self) -> dict[str, FloatArray]:
        """Copies of the per-device d2d parameters, each (n_devices, out, in); at float32
        precision on a tile with half-select, pulsed updates and bounds that are not soft
        (its updates read them from a float32 copy,
        :func:`~rpucircuit.model.kernels.round_parameters`)."""
        self._sync()
        return {name: self._par[..., idx].copy() for name, idx in _PAR_NAMES.items()}

    def device_weights(self) -> FloatArray:
        """Copy of the individual device weights (n_devices, out, in)."""
        self._sync()
        return self._w.copy()

    # ----------------------------------------------------------------- state

    def get_state(self) -> dict[str, Any]:
        """Everything needed to resume bit-exactly (arrays are copies)."""
        self._sync()
        return {
            "state_version": STATE_VERSION,
            "shape": np.array([self._w.shape[0], self.out_size, self.in_size], dtype=np.int64),
            "weights": self._w.copy(),
            **self.device_parameters(),
            "attenuation": self._att.copy(),
            "backward_attenuation": self._att_b.copy(),
            "kernel_rng_words": self._s.copy(),
            "generator_state": json.dumps(self._rng.bit_generator.state),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` dict (same tile shape and n_devices)."""
        self._sync()
        missing = [
            k for k in (*_STATE_ARRAYS, "kernel_rng_words", "generator_state") if k not in state
        ]
        if missing:
            raise TileShapeError(f"set_state: missing key(s) {', '.join(missing)}")
        version = int(state.get("state_version", STATE_VERSION))
        if version != STATE_VERSION:
            raise TileShapeError(
                f"set_state: state_version {version} is not supported (expected {STATE_VERSION})"
            )
        for name in _STATE_ARRAYS:
            target = self._att if name == "attenuation" else self._w
            arr = np.asarray(state[name], dtype=np.float64)
            if arr.shape != target.shape:
                raise TileShapeError(
                    f"set_state: {name} has shape {arr.shape}, this tile needs {target.shape}"
                )
        words = np.asarray(state["kernel_rng_words"], dtype=np.uint64)
        if words.shape != (kernels.STATE_WORDS,) or not np.any(words[:4]):
            raise TileShapeError(
                f"set_state: kernel_rng_words must be {kernels.STATE_WORDS} words, "
                "the first 4 not all zero"
            )
        self._w[...] = state["weights"]
        for name, idx in _PAR_NAMES.items():
            self._par[..., idx] = state[name]
        self._par_lines[...] = self._build_par_lines()
        self._s[...] = words
        self._rng.bit_generator.state = json.loads(str(state["generator_state"]))
        # states saved before per-direction maps have none: the forward map, as then
        self.set_attenuation(state["attenuation"], state.get("backward_attenuation"))
