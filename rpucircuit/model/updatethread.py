"""The process's update thread: deferred tile updates run on a second core.

A tile (:class:`~rpucircuit.model.tile.AnalogTile`) whose updates are long hands each
one to :data:`UPDATE_THREAD` as an :class:`UpdateJob` and finishes it before its next use
(the policy, and why it is bit-identical: ``docs/model-api.md``, "Update thread").
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["UPDATE_THREAD", "UpdateJob", "UpdateThread"]


def _perf_us() -> float:
    """``time.perf_counter`` in µs."""
    return time.perf_counter() * 1e6


class UpdateJob:
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


class UpdateThread:
    """One daemon thread per process that runs deferred tile updates in FIFO order.

    The numba update kernels release the GIL (``nogil``), so an update runs on the second
    core while the calling thread goes on (e.g. with the backward read of the layer below).
    A fork waits for every outstanding job first, so a child never inherits a half-done
    update; the child starts its own thread when it first needs one.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[UpdateJob] = queue.SimpleQueue()
        self._pid = -1
        self._lock = threading.Lock()
        self._outstanding: collections.deque[UpdateJob] = collections.deque()
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
        the hand-over's cost. An idle thread has no backlog, whatever the expected costs
        of its finished jobs said."""
        now = self.clock_us()
        if self._busy_until > now and not self.running and self._queue.empty():
            # the thread is idle, its jobs done sooner than expected: no backlog (a first
            # update's CPU time includes the kernel's compilation, seconds on an empty
            # cache; as a job's expected cost it kept every later update in place that long)
            self._busy_until = now
        backlog = self._busy_until - now
        return backlog < 0.5 * cost_us and self.worthwhile()

    def submit(self, job: UpdateJob, cost_us: float = 0.0) -> None:
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

    def _loop(self, jobs: queue.SimpleQueue[UpdateJob]) -> None:
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


UPDATE_THREAD = UpdateThread()
os.register_at_fork(before=UPDATE_THREAD.drain)
