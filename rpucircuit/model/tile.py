"""Behavioral RPU tile: managed noisy forward/backward reads and the stochastic pulsed update.

:class:`AnalogTile` holds one crossbar's devices (``n_devices`` per weight, summed) with
their device-to-device parameters, the read periphery of both directions and the update
scheme of an :class:`~rpucircuit.config.rpu.RPUConfig`. The hot loops are the compiled
kernels of :mod:`rpucircuit.model.kernels`; one kernel call per operation.

Shapes: a weight matrix is (out_size, in_size); ``forward`` takes (in,) or (n, in),
``backward`` (out,) or (n, out). Details and conventions: ``docs/model-api.md``.
"""

from __future__ import annotations

import collections
import functools
import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rpucircuit.config.rpu import RPUConfig
from rpucircuit.errors import ConfigError, TileShapeError
from rpucircuit.model import kernels
from rpucircuit.model.kernels import KernelArrays, pack_device, pack_io, pack_update

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


def _perf_us() -> float:
    """``time.perf_counter`` in µs."""
    return time.perf_counter() * 1e6


class _UpdateJob:
    """One deferred tile update: run exactly once, by the update thread or by whoever
    needs the tile first (whichever claims it), and waited for before the tile is used."""

    __slots__ = ("_claim", "_done", "_fn", "error")

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn
        self._claim = threading.Lock()
        self._done = threading.Event()
        self.error: BaseException | None = None

    def try_run(self) -> bool:
        """Run the job here if nobody has claimed it yet; False if it was already claimed."""
        if not self._claim.acquire(blocking=False):
            return False
        try:
            self._fn()
        except BaseException as exc:  # handed to the waiting caller
            self.error = exc
        finally:
            self._done.set()
        return True

    def finish(self) -> bool:
        """Run the job now if it has not started, else wait for it; re-raise its error.

        Returns True if it ran here (the update thread had not started it)."""
        here = self.try_run()
        if not here:
            self._done.wait()
        if self.error is not None:
            raise self.error
        return here

    @property
    def done(self) -> bool:
        return self._done.is_set()


class _UpdateThread:
    """One daemon thread per process that runs deferred tile updates in FIFO order.

    The numba update kernels release the GIL (``nogil``), so an update runs on the second
    core while the calling thread goes on (e.g. with the backward read of the layer below).
    A fork waits for every outstanding job first, so a child never inherits a half-done
    update; the child starts its own thread when it first needs one.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_UpdateJob] = queue.SimpleQueue()
        self._pid = -1
        self._lock = threading.Lock()
        self._outstanding: collections.deque[_UpdateJob] = collections.deque()
        self.running = False  # the thread is inside a job right now
        self.clock_us: Callable[[], float] = _perf_us  # of the backlog estimate (tests: manual)
        self.submitted = 0  # jobs handed to the thread so far (whoever ended up running them)
        self.ran = 0  # jobs the thread itself ran so far
        self.reset_tuning()

    def reset_tuning(self) -> None:
        """Forget what earlier hand-overs saved (:meth:`note_finished`) and the expected
        backlog, as in a fresh process: the hand-over decisions start from scratch."""
        self.gain = 1.0  # running mean of the fraction of a job's time saved by handing over
        self._probe = 0
        self._busy_until = 0.0  # when the submitted jobs should be done (clock_us)

    def note_finished(self, ran_here: bool, job_us: float, wait_us: float) -> None:
        """Record what a hand-over saved the caller: a job that took ``job_us`` of CPU
        and made the caller wait ``wait_us`` saved job_us − wait_us; one the caller had
        to run itself saved nothing, and counts as a loss only if the thread was idle
        (it got no CPU in time) rather than busy with an earlier job."""
        if ran_here:
            saved = 0.0 if self.running else -1.0
        else:
            saved = max(-1.0, (job_us - wait_us) / max(job_us, 1.0))
        self.gain += 0.1 * (saved - self.gain)

    def worthwhile(self) -> bool:
        """Hand over while it has been saving at least a quarter of the update time on
        average (an idle second core); on a busy machine the thread gets its CPU late and
        saves little, so tiles update in place and only every 16th update probes again."""
        self._probe += 1
        return self.gain >= 0.25 or self._probe % 16 == 0

    def takes(self, cost_us: float) -> bool:
        """Whether to hand over a job of about ``cost_us`` of CPU: only if the thread would
        start it within half that time (the jobs before it, at their expected costs, are
        nearly done) and handing over has been paying off (:meth:`worthwhile`). A job that
        would wait behind a long one is better run by the caller at once: the caller must
        finish it anyway before it next uses the tile, and handing it over would only add
        the hand-over's cost (e.g. the paper-B CNN: conv1's update, issued while conv2's
        runs on the thread, is run in place)."""
        backlog = self._busy_until - self.clock_us()
        return backlog < 0.5 * cost_us and self.worthwhile()

    def submit(self, job: _UpdateJob, cost_us: float = 0.0) -> None:
        """Queue ``job`` (expected CPU time ``cost_us``) for the thread."""
        now = self.clock_us()
        self._busy_until = max(now, self._busy_until) + cost_us
        with self._lock:
            if self._pid != os.getpid():
                self._queue = queue.SimpleQueue()
                self._outstanding.clear()
                worker = threading.Thread(
                    target=self._loop, args=(self._queue,), name="rpucircuit-update", daemon=True
                )
                worker.start()
                self._pid = os.getpid()
            while self._outstanding and self._outstanding[0].done:
                self._outstanding.popleft()
            self._outstanding.append(job)
            self.submitted += 1
            self._queue.put(job)

    def _loop(self, jobs: queue.SimpleQueue[_UpdateJob]) -> None:
        while True:
            job = jobs.get()
            self.running = True
            if job.try_run():
                self.ran += 1
            self.running = False

    def drain(self) -> None:
        """Finish every outstanding job (errors stay with the job for its tile to raise)."""
        with self._lock:
            pending = list(self._outstanding)
            self._outstanding.clear()
        for job in pending:
            if not job.try_run():
                job._done.wait()


_UPDATE_THREAD = _UpdateThread()
os.register_at_fork(before=_UPDATE_THREAD.drain)


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
        self._dp = pack_device(dev, use_attenuation=False)
        self._upd = pack_update(config)
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
        """Pickle support: a deferred update is finished first and never pickled."""
        self._sync()
        return {name: getattr(self, name) for name in self.__dict__ if name != "_pending"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("update_thread", True)  # pickled before the attribute
        self.__dict__.setdefault("_upd", pack_update(self.config))
        self._pending = None

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
        if kernels.read_batch(self._wread.T, db, z, self._bwd_io, self._s):
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
                    xb, db, lr, self._w, self._par, self._dp, self._wread, self._att
                )
            else:
                code = kernels.pulsed_update(
                    xb, db, lr, upd.bl, upd.update_management, dw_min,
                    self._w, self._par, self._dp, self._wread, self._att, self._s,
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
            state=self._s,
            fwd_io=self._fwd_io,
            bwd_io=self._bwd_io,
            upd=self._upd,
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
        inputs are mostly zero (MNIST pixels, conv1 patches); the default suits layers
        read both ways (the backward read then skips zero errors).
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

    def set_attenuation(self, att: object) -> None:
        """Position-dependent read attenuation (out, in), multiplying the weight in reads."""
        self._sync()
        a = np.asarray(att, dtype=np.float64)
        if a.shape != (self.out_size, self.in_size):
            raise TileShapeError(
                f"set_attenuation: shape {a.shape} must be ({self.out_size}, {self.in_size})"
            )
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise TileShapeError("set_attenuation: values must be finite and >= 0")
        self._att[...] = a
        # in place: callers of kernel_arrays hold this array
        self._dp[...] = pack_device(self.config.device, use_attenuation=not np.all(a == 1.0))
        self._refresh_read()

    def get_attenuation(self) -> FloatArray:
        """The current attenuation map (out, in), a copy."""
        self._sync()
        return self._att.copy()

    def device_parameters(self) -> dict[str, FloatArray]:
        """Copies of the per-device d2d parameters, each (n_devices, out, in)."""
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
        self._s[...] = words
        self._rng.bit_generator.state = json.loads(str(state["generator_state"]))
        self.set_attenuation(state["attenuation"])
