"""AnalogTile background updates: bit-identical to in-place updates, safe with reused buffers,
errors raised to the caller, pickling and fork draining, switched by an explicit argument.

The update thread is one per process and keeps a tuning state (what hand-overs saved, the
expected backlog); the autouse fixture resets it around every test, so no test depends on
what an earlier one did to it.
"""

from __future__ import annotations

import dataclasses
import pickle
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from rpucircuit.config import rpu
from rpucircuit.errors import ConfigError
from rpucircuit.model import tile as array
from rpucircuit.model.layers import AnalogConv2d
from rpucircuit.model.network import Network, cnn_gokmen_2017
from rpucircuit.model.tile import AnalogTile, TileShapeError
from rpucircuit.model.updatethread import UpdateJob

WAIT_S = 30.0
"""Longest wait for an event the update thread must set (a hung test fails, not hangs)."""


@pytest.fixture(autouse=True)
def fresh_tuning() -> Iterator[None]:
    """The process's update thread as in a fresh process, before and after each test."""
    array._UPDATE_THREAD.drain()
    array._UPDATE_THREAD.reset_tuning()
    yield
    array._UPDATE_THREAD.drain()
    array._UPDATE_THREAD.reset_tuning()


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Background updates for every size, even on a one-CPU machine."""
    monkeypatch.setattr(array, "usable_cpus", lambda: 2)
    monkeypatch.setattr(array, "ASYNC_MIN_US", 0.0)


def _pair(seed: int, *, update_thread: bool = True) -> tuple[AnalogTile, AnalogTile]:
    rng = np.random.default_rng(seed)
    cfg = rpu.gokmen_vlasov_2016()
    a = AnalogTile(16, 26, cfg, rng=rng, update_thread=update_thread)
    b = AnalogTile(32, 16, cfg, rng=rng, update_thread=update_thread)
    a.set_weights(rng.uniform(-0.3, 0.3, (16, 26)))
    b.set_weights(rng.uniform(-0.3, 0.3, (32, 16)))
    return a, b


def _workload(a: AnalogTile, b: AnalogTile, steps: int) -> list[np.ndarray]:
    """Interleaved reads and patch updates of two tiles, reusing the caller's buffers."""
    rng = np.random.default_rng(7)
    x = np.empty((40, 26))
    d = np.empty((40, 16))
    out = []
    for _ in range(steps):
        x[...] = rng.uniform(-1, 1, x.shape)
        ya = a.forward(x)
        yb = b.forward(np.tanh(ya))
        d[...] = b.backward(rng.normal(0, 0.1, yb.shape)) * 0.1
        a.update(x, d, 0.01)  # background; x and d are refilled before it may have run
        b.update(np.tanh(ya), rng.normal(0, 0.1, yb.shape), 0.01)
        out += [ya, yb]
    return out


def test_background_updates_are_bit_identical(threaded: None) -> None:
    before = array._UPDATE_THREAD.submitted
    a1, b1 = _pair(3)
    r1 = _workload(a1, b1, 15)
    s1 = (a1.get_state(), b1.get_state())
    handed = array._UPDATE_THREAD.submitted - before
    assert handed >= 2  # at least the first update of each tile went to the thread
    a2, b2 = _pair(3, update_thread=False)
    r2 = _workload(a2, b2, 15)
    s2 = (a2.get_state(), b2.get_state())
    assert array._UPDATE_THREAD.submitted - before == handed  # none without the thread
    for u, v in zip(r1, r2, strict=True):
        np.testing.assert_array_equal(u, v)  # exact: same kernels, same order per tile
    for st1, st2 in zip(s1, s2, strict=True):
        for key in ("weights", "kernel_rng_words"):
            np.testing.assert_array_equal(st1[key], st2[key])


def test_update_is_handed_to_the_thread_when_enabled(threaded: None) -> None:
    """The hand-over happens (the thread's counters move) and the thread runs the job
    while the caller goes on; a later use of the tile then only waits for it."""
    worker = array._UPDATE_THREAD
    submitted, ran = worker.submitted, worker.ran
    a, _ = _pair(4)
    a.update(np.ones((3, 26)), np.full((3, 16), 0.1), 0.01)
    job = a._pending
    assert job is not None
    assert worker.submitted == submitted + 1
    assert job._done.wait(WAIT_S)  # the thread ran it: nobody else touched the tile
    assert worker.ran == ran + 1
    w = a.get_weights()  # finishes it (here: only collects it)
    assert a._pending is None
    assert np.any(w != 0.0)


def test_small_updates_stay_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(array, "usable_cpus", lambda: 2)
    monkeypatch.setattr(array, "ASYNC_MIN_US", 1e9)  # no update is that slow
    submitted = array._UPDATE_THREAD.submitted
    a, _ = _pair(4)
    for _ in range(3):
        a.update(np.ones((3, 26)), np.full((3, 16), 0.1), 0.01)
        assert a._pending is None
    assert 0.0 < a._update_us < 1e9  # measured
    assert array._UPDATE_THREAD.submitted == submitted


def test_disabled_by_argument(threaded: None) -> None:
    """``update_thread=False`` (e.g. one sweep job per core) keeps every update in place;
    the attribute switches an existing tile."""
    worker = array._UPDATE_THREAD
    submitted = worker.submitted
    a, _ = _pair(4, update_thread=False)
    a.update(np.ones((3, 26)), np.full((3, 16), 0.1), 0.01)
    assert a._pending is None and worker.submitted == submitted
    a.update_thread = True
    a.update(np.ones((3, 26)), np.full((3, 16), 0.1), 0.01)
    assert a._pending is not None and worker.submitted == submitted + 1


def test_one_cpu_keeps_updates_in_place(threaded: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(array, "usable_cpus", lambda: 1)
    submitted = array._UPDATE_THREAD.submitted
    a, _ = _pair(4)
    a.update(np.ones((3, 26)), np.full((3, 16), 0.1), 0.01)
    assert a._pending is None and array._UPDATE_THREAD.submitted == submitted


def test_update_thread_argument_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"update_thread = 1: must be True or False"):
        AnalogTile(2, 2, rpu.gokmen_vlasov_2016(), rng=np.random.default_rng(0), update_thread=1)  # type: ignore[arg-type]


def test_nan_is_refused_before_deferring(threaded: None) -> None:
    a, _ = _pair(5)
    before = a.get_weights()
    x = np.ones((2, 26))
    x[1, 3] = np.nan
    with pytest.raises(TileShapeError, match=r"update: x or d contains NaN or infinite"):
        a.update(x, np.ones((2, 16)), 0.01)
    with pytest.raises(TileShapeError, match=r"update: x or d contains NaN or infinite"):
        a.update(np.ones((2, 26)), np.full((2, 16), np.inf), 0.01)
    assert a._pending is None
    np.testing.assert_array_equal(a.get_weights(), before)


def test_job_error_reaches_the_waiting_caller() -> None:
    def boom() -> None:
        raise TileShapeError("update: kernel refused")

    job = array._UpdateJob(boom)
    with pytest.raises(TileShapeError, match=r"kernel refused"):
        job.finish()
    assert job.done
    assert not job.try_run()  # a job runs once


def test_pickle_finishes_the_pending_update(threaded: None) -> None:
    a, _ = _pair(6)
    a.update(np.ones((3, 26)), np.full((3, 16), 0.1), 0.01)
    assert a._pending is not None
    copy = pickle.loads(pickle.dumps(a))
    assert copy._pending is None and a._pending is None
    assert copy.update_thread
    np.testing.assert_array_equal(copy.get_weights(), a.get_weights())


def test_drain_finishes_outstanding_jobs(threaded: None) -> None:
    tiles = [_pair(s)[0] for s in range(4)]
    for t in tiles:
        t.update(np.ones((50, 26)), np.full((50, 16), 0.1), 0.01)
    jobs = [t._pending for t in tiles]
    assert all(j is not None for j in jobs)
    array._UPDATE_THREAD.drain()  # what a fork runs first
    assert all(j is not None and j.done for j in jobs)


@pytest.mark.parametrize("enabled", [False, True])
def test_cnn_training_steps_bit_identical(monkeypatch: pytest.MonkeyPatch, enabled: bool) -> None:
    """The paper-B CNN trained a few steps with and without the update thread (conv2's
    devices with half-select, so the network steps through its calls and hands conv2's
    updates over, every one): identical network state; checks the layers' order of use."""
    cfg = rpu.gokmen_vlasov_2016()  # half-select: the CNN hands conv2's updates over
    cfg = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, k_half_select=0.1))

    def run(thread: bool) -> dict[str, dict[str, np.ndarray]]:
        net = cnn_gokmen_2017(cfg, rng=np.random.default_rng(11), update_thread=thread)
        rng = np.random.default_rng(12)
        for _ in range(3):
            img = rng.uniform(0, 1, 784) * (rng.random(784) < 0.2)
            net.train_step(img, int(rng.integers(10)), 0.01)
        return net.get_state()  # type: ignore[return-value]

    monkeypatch.setattr(array, "usable_cpus", lambda: 2)
    monkeypatch.setattr(array, "ASYNC_MIN_US", 0.0)
    ref = run(False)
    submitted = array._UPDATE_THREAD.submitted
    got = run(enabled)
    assert (array._UPDATE_THREAD.submitted > submitted) == enabled  # handed over iff on
    assert set(got) == set(ref) and len(ref) == 4
    for name, tr in ref.items():
        for key in ("weights", "kernel_rng_words"):
            np.testing.assert_array_equal(got[name][key], tr[key], err_msg=f"{name} {key}")


@pytest.mark.parametrize("lagging_tile", [0, 1, 2, 3])  # conv1, conv2, fc1, out
def test_cnn_steps_with_lagging_updates_are_bit_identical(
    monkeypatch: pytest.MonkeyPatch, lagging_tile: int
) -> None:
    """The fused CNN step finishes each tile's deferred update just before the tile's first
    use in the step, not all at its start. One tile at a time may use the thread, and gets
    every update handed over; the thread runs every job handed to it (the caller waits for
    it to claim the job) and takes 5 ms over each. Fused steps (which defer conv2's update
    only) alternate with steps on the layer path (which defer that tile's every update), so
    a fused step starts while the tile's last update is still running (its cached arguments
    are built by the first step, which finishes every update, and stay valid): a tile whose
    update were not finished before its use would be read or updated with the weights from
    before that update, and the state would differ."""
    claimed = []
    plain = UpdateJob.try_run

    def lagging(job: UpdateJob) -> bool:
        if threading.current_thread() is threading.main_thread():
            deadline = time.monotonic() + WAIT_S
            while not job._claim.locked() and time.monotonic() < deadline:
                time.sleep(1e-4)  # let the thread claim it
            return plain(job)
        if not job._claim.acquire(blocking=False):
            return False
        claimed.append(job)
        time.sleep(0.005)
        try:
            job._fn()
        except BaseException as exc:  # handed to the caller, as try_run does
            job.error = exc
        finally:
            job._done.set()
        return True

    def run(thread: bool) -> dict[str, dict[str, np.ndarray]]:
        net = cnn_gokmen_2017(
            rpu.gokmen_vlasov_2016(), rng=np.random.default_rng(21), update_thread=True
        )
        for k, tile in enumerate(net.tiles):
            tile.update_thread = thread and k == lagging_tile
        rng = np.random.default_rng(22)
        for step in range(6):
            net.fused = step % 2 == 0
            img = rng.uniform(0, 1, 784) * (rng.random(784) < 0.2)
            net.train_step(img, int(rng.integers(10)), 0.01)
        return net.get_state()  # type: ignore[return-value]

    monkeypatch.setattr(array, "usable_cpus", lambda: 2)
    monkeypatch.setattr(array, "ASYNC_MIN_US", 0.0)
    # the fused steps one sample at a time (the path for conv2's half-select updates on the
    # thread), whatever tile lags: the whole-step call finishes every update at its start
    monkeypatch.setattr(Network, "_cnn_threaded", lambda self: True)
    ref = run(False)
    monkeypatch.setattr(UpdateJob, "try_run", lagging)
    monkeypatch.setattr(array._UPDATE_THREAD, "takes", lambda cost_us: True)
    got = run(True)
    assert len(claimed) >= 3  # the thread ran the tile's updates, late
    for name, tr in ref.items():
        for key in ("weights", "kernel_rng_words"):
            np.testing.assert_array_equal(got[name][key], tr[key], err_msg=f"{name} {key}")


def test_unprofitable_thread_backs_off_and_probes() -> None:
    """Hand-overs that save little (the caller waits about as long as the update takes, or
    must run it itself while the thread idles: a busy machine) stop, except every 16th
    update, which probes whether the second core is free again."""
    worker = array._UpdateThread()
    assert worker.worthwhile()
    for _ in range(20):
        worker.note_finished(False, 200.0, 190.0)  # waited 190 of 200 µs: saved 5 %
    assert worker.gain < 0.25
    handed = [worker.worthwhile() for _ in range(32)]
    assert sum(handed) == 2  # the probes
    for _ in range(20):
        worker.note_finished(False, 200.0, 20.0)  # saved 90 %
    assert worker.gain > 0.25 and worker.worthwhile()
    for _ in range(20):
        worker.note_finished(True, 200.0, 0.0)  # ran by its caller, thread idle: a loss
    assert worker.gain < 0.0
    worker.gain = 0.5
    worker.running = True
    worker.note_finished(True, 200.0, 0.0)  # taken while the thread was busy: saved 0
    assert worker.gain == pytest.approx(0.45, abs=1e-12)  # 0.5 + 0.1·(0 − 0.5), exact
    worker.reset_tuning()
    assert worker.gain == 1.0 and worker.worthwhile()


def test_a_job_behind_a_long_backlog_is_run_by_its_caller() -> None:
    """``takes``: a job goes to the thread only if the jobs before it (at their expected
    costs) leave less than half its own time to wait; otherwise its caller, which must
    finish it before it next uses the tile, is better off running it at once. The backlog
    is read from a manual clock, so no real time window is involved."""
    worker = array._UpdateThread()
    now = [1_000.0]
    worker.clock_us = lambda: now[0]
    assert worker.takes(100.0)  # idle thread
    started, release = threading.Event(), threading.Event()

    def long_job() -> None:
        started.set()
        release.wait(WAIT_S)

    worker.submit(array._UpdateJob(long_job), 10_000.0)  # expected to take 10 ms
    assert started.wait(WAIT_S)
    assert not worker.takes(100.0)  # would wait ≈ 10 ms behind it
    assert worker.takes(50_000.0)  # a job 5x longer still gains by waiting 10 ms
    now[0] += 9_960.0  # 40 µs of the expected backlog left: below half of 100 µs
    assert worker.takes(100.0)
    release.set()
    worker.drain()


def test_an_idle_thread_has_no_backlog() -> None:
    """A job expected to take 10 s (a first update timed with its kernel's compilation)
    that finishes at once leaves no backlog: once the thread is idle, the next job goes to
    it at once, where the expected cost alone would keep jobs away for 10 s."""
    worker = array._UpdateThread()
    now = [1_000.0]
    worker.clock_us = lambda: now[0]
    job = array._UpdateJob(lambda: None)
    worker.submit(job, 10_000_000.0)
    assert job._done.wait(WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while worker.running and time.monotonic() < deadline:
        time.sleep(1e-4)  # the thread leaves the job
    assert worker.takes(100.0)
    worker.drain()


def test_conv_backward_without_forward_waits_for_the_update(
    threaded: None,
) -> None:
    """A conv layer hands its update over without copying its buffers: a second backward
    (or accept_grad) before any forward, which rewrites the errors the update reads,
    first finishes it, so the result equals the in-place order. The update thread is held
    busy meanwhile (it has started a job that waits for an event), so the handed-over
    updates have certainly not run yet."""

    def run(thread: bool) -> np.ndarray:
        rng = np.random.default_rng(5)
        layer = AnalogConv2d(
            (8, 8, 2), 4, 3, rpu.gokmen_vlasov_2016(), rng=rng, update_thread=thread
        )
        layer.forward(rng.uniform(0, 1, (8, 8, 2)))
        g1, g2 = rng.normal(0, 0.1, layer.out_shape), rng.normal(0, 0.1, layer.out_shape)
        started, release = threading.Event(), threading.Event()

        def hold() -> None:
            started.set()
            release.wait(WAIT_S)

        if thread:  # occupy the thread: the updates below wait in its queue
            array._UPDATE_THREAD.submit(array._UpdateJob(hold))
            assert started.wait(WAIT_S)
        layer.backward(g1)
        layer.update(0.05)
        if thread:
            pending = layer.tile._pending
            assert pending is not None and not pending.done
        layer.backward(g2)  # overwrites the error buffer the pending update reads
        if thread:
            assert pending.done and layer.tile._pending is None  # finished by the caller
        layer.update(0.05)
        layer.accept_grad(g1)
        layer.update(0.05)
        w = layer.tile.get_weights()
        release.set()
        array._UPDATE_THREAD.drain()
        return w

    np.testing.assert_array_equal(run(True), run(False))
