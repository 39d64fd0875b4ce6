"""``rpucircuit verify DESIGN.toml [--out DIR] [--jobs N | --scheduler ADDRESS]``: check a
designer's own peripheral circuit (SPICE libraries) against the design's spec.

Exit status: 0 when every check passes, 1 when a check fails (or a simulation of the
checks fails), 2 when the design file or a library is unusable (the message names the
file, and for a library that ngspice rejects quotes ngspice).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

EXIT_FAIL = 1
EXIT_BAD_INPUT = 2


def _children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux ``/proc``; none elsewhere)."""
    kids: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the fields after the command name (which may hold spaces) start at ") "
            if int(stat.read_text().rsplit(") ", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
    return kids


def _stop_workers() -> None:
    """Stop each worker process and the ngspice runs it started: the worker is frozen
    first (so it starts no new run), its ngspice runs (each in its own process group, out
    of reach of a terminal's Ctrl-C) are killed, then the worker."""
    for child in multiprocessing.active_children():
        pid = child.pid
        if pid is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
            for kid in _children_of(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if os.getpgid(kid) == kid:
                        os.killpg(kid, signal.SIGKILL)
                    else:
                        os.kill(kid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)


def _on_stop(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: stop the workers and their simulations (a worker interrupted
    mid-job would take its next queued job, and an ngspice run outlives its worker), then
    unwind here as a KeyboardInterrupt, so the finished jobs stay cached and the command
    ends with one line."""
    _stop_workers()
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Install :func:`_on_stop` for SIGINT and SIGTERM for the duration (main thread
    only; the previous handlers come back after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``verify``."""
    parser.epilog = (
        "exit status: 0 every check passed, 1 a check (or a simulation) failed, 2 the design "
        "file, a library or an option is unusable (nothing simulated), 130 interrupted"
    )
    parser.add_argument("design", help="design TOML: circuit, [libraries], [spec]")
    parser.add_argument("--out", default="runs/verify", help="output folder (default: %(default)s)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"worker processes (default: 2; this machine has {os.cpu_count()} cores)",
    )
    where.add_argument(
        "--scheduler", default=None, help="run the simulations on this Dask scheduler"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Verify; print the table and where the results went; exit status as documented."""
    from rpucircuit.design import verify as v

    if args.jobs is not None and args.jobs < 1:
        print(f"rpucircuit verify: error: --jobs = {args.jobs}: must be >= 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        with _stop_on_signals():
            result = v.verify(
                args.design,
                args.out,
                n_workers=args.jobs,
                scheduler=args.scheduler,
                progress=not args.no_progress,
            )
    except v.DesignError as exc:
        print(f"rpucircuit verify: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(v.report_table(result.rows), end="")
    print(f"report {result.report}")
    print(f"wrote  {result.path}")
    for p in result.plots:
        print(f"plot   {p}")
    verdict = "PASS" if result.passed else "FAIL"
    print(
        f"{verdict} in {result.wall_s:.1f} s ({result.n_jobs} simulation jobs, "
        f"{result.n_cached} from the cache)"
    )
    return 0 if result.passed else EXIT_FAIL
