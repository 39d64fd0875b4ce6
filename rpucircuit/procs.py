"""Child processes that do not outlive the process that started them.

A sweep's pool workers and the ngspice runs they start are separate processes. When the
parent is killed outright (SIGKILL, a CI time limit, an out-of-memory kill) or ends on
SIGTERM's default action, nothing in Python runs to stop them: a worker would go on
training its job for many minutes, and an ngspice run in its own session would go on
until it ends by itself, which for a hanging simulation is never. On Linux the kernel can
signal a child when its parent goes (``prctl(PR_SET_PDEATHSIG)``); :func:`die_with_parent`
asks for that. Elsewhere it does nothing, and those platforms keep the old behaviour.

The kernel's notion of "parent" is the *thread* that started the child: a child started
from a thread that ends before the child is signalled then. The pool starts its workers
from the thread that submits the jobs, which waits for them; :mod:`rpucircuit.circuit.spice`
waits for its ngspice in the thread that started it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal a process gets when its parent exits (linux/prctl.h)."""

_PRCTL: Any = None
if sys.platform.startswith("linux"):  # resolved here, never in a freshly forked child
    try:
        _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        _PRCTL = None


def die_with_parent(sig: int = signal.SIGKILL, parent_pid: int | None = None) -> None:
    """Have the kernel send ``sig`` to this process when its parent exits (Linux; a no-op
    elsewhere or if the call fails). ``parent_pid``: the parent's pid as the parent saw
    it; a parent that already exited before the request (a race the request cannot
    cover) makes this process exit now."""
    if _PRCTL is None:
        return
    if _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return  # best effort: the child then simply behaves as before
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that runs :func:`die_with_parent` in
    the child before it executes the program (the setting survives ``exec``), or None
    where it is not available."""
    if _PRCTL is None:
        return None
    parent = os.getpid()
    return lambda: die_with_parent(signal.SIGKILL, parent)
