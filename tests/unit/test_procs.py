"""Child processes die with their parent: a sweep's pool workers when the sweep process is
killed outright (SIGKILL: no Python code runs), and the ngspice run of a killed worker.

Before, both went on: a worker trained its job to the end (many minutes at the papers'
schedule) and an ngspice run in its own session ran until it finished by itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rpucircuit.circuit import spice

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"
)

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_for_pids(folder: Path, n: int, proc: subprocess.Popen[bytes]) -> list[int]:
    deadline = time.monotonic() + 120.0
    while len(pids := sorted(folder.glob("*.pid"))) < n:
        assert proc.poll() is None, "the driver ended before its children started"
        assert time.monotonic() < deadline, f"{n} children did not start in 120 s"
        time.sleep(0.05)
    return [int(p.read_text()) for p in pids[:n]]


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_all(driver: subprocess.Popen[bytes], folder: Path) -> None:
    """Whatever the test's outcome: the driver's group and every child it recorded (a
    child in a session of its own by its group), so a failure leaves nothing running."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    for path in folder.glob("*.pid"):
        pid = int(path.read_text())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


def _run_driver(tmp_path: Path, body: str) -> subprocess.Popen[bytes]:
    (tmp_path / "driver.py").write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    return subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py")],
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # its own group: the SIGKILL below reaches the driver only
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_pool_workers_die_with_a_killed_sweep(tmp_path: Path) -> None:
    (tmp_path / "slowjob.py").write_text(
        textwrap.dedent(
            """
            import os, time
            from pathlib import Path

            def slow(config):
                tmp = Path(config, f"{os.getpid()}.tmp")
                tmp.write_text(str(os.getpid()))
                os.replace(tmp, Path(config, f"{os.getpid()}.pid"))
                time.sleep(300)
                return {"x": 1.0}
            """
        )
    )
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    driver = _run_driver(
        tmp_path,
        f"""
        from rpucircuit.jobs import Job, run_jobs
        from slowjob import slow

        if __name__ == "__main__":  # the spawned workers import this module too
            jobs = [Job(config={str(pids_dir)!r}, params={{}}, key=f"k{{i}}") for i in range(2)]
            run_jobs(slow, jobs, cache_dir={str(tmp_path / "cache")!r}, n_workers=2, progress=False)
        """,
    )
    try:
        workers = _wait_for_pids(pids_dir, 2, driver)
        assert all(_alive(p) for p in workers)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        assert _gone_within(workers, 10.0), "pool workers outlived their killed parent"
    finally:
        _kill_all(driver, pids_dir)


@pytest.mark.sim
@pytest.mark.skipif(not spice.available(), reason="ngspice not installed")
def test_ngspice_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A transient of 10^10 one-nanosecond steps runs for hours; its caller is SIGKILLed
    (the time limit, which the caller enforces, then never fires)."""
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    driver = _run_driver(
        tmp_path,
        f"""
        import os, threading, time
        from pathlib import Path
        from rpucircuit.circuit import spice

        def report():  # ngspice's pid, once it runs: the child of this process
            while True:
                for stat in Path("/proc").glob("[0-9]*/stat"):
                    try:
                        fields = stat.read_text().rsplit(") ", 1)[1].split()
                    except (OSError, IndexError):
                        continue
                    if int(fields[1]) == os.getpid():
                        tmp = Path({str(pids_dir)!r}, "ngspice.tmp")
                        tmp.write_text(stat.parent.name)
                        os.replace(tmp, tmp.with_suffix(".pid"))
                        return
                time.sleep(0.02)

        threading.Thread(target=report, daemon=True).start()
        text = (
            "hours\\nv1 a 0 sin(0 1 1e6)\\nr1 a b 1k\\nc1 b 0 1n\\n.tran 1e-9 10 0 1e-9\\n"
            ".control\\nsave b\\nrun\\n.endc\\n.end\\n"
        )
        spice.run(spice.SpiceJob(name="hours", text=text, timeout_s=600), workdir={str(tmp_path)!r})
        """,
    )
    try:
        (ngspice,) = _wait_for_pids(pids_dir, 1, driver)
        assert _alive(ngspice)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        assert _gone_within([ngspice], 10.0), "ngspice outlived the process that started it"
    finally:
        _kill_all(driver, pids_dir)
