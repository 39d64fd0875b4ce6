"""The simulator backend: the only module that runs ngspice.

ngspice runs in batch mode, ``ngspice -b net.cir``, one process per job in its own run
folder; the netlist's generated ``.control`` block runs the analyses, ``write``\\s
``out.raw`` (binary, plots appended) and ``quit``\\s. :func:`parse_raw` reads ngspice's
binary and ascii raw formats from bytes, doing no I/O.

Why not PySpice: PySpice 1.5 drives ngspice's shared library, which keeps one global
circuit per process (a second circuit overwrote the first one's results), leaks ~2.4 MB
per run unless cleaned up by hand, returns success on netlists that did not parse, raises
on harmless stderr lines, and cannot be killed on a timeout without taking its process
down. A batch process per job costs 15-25 ms of start-up,
contains crashes and hangs, is killed cleanly (its whole process group) when it runs past
its limit, and gives the same numbers. Parallel jobs are parallel ngspice processes.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rpucircuit.circuit.netlist import NETLIST_DIR, RAW_NAME, Netlist, render
from rpucircuit.errors import (
    NetlistError,
    SimulationError,
    SimulationTimeoutError,
    SimulatorNotFoundError,
)
from rpucircuit.procs import die_with_parent_preexec

NETLIST_NAME = "net.cir"
"""Name of the netlist file in each run folder."""
LOG_NAME = "ngspice.log"
"""Name of the simulator's combined stdout/stderr in each run folder."""

_LIB_RE = re.compile(r"[a-z][a-z0-9_]*\.lib\Z")
# Lines of ngspice's output that mean the run failed even when it exits 0.
_FAIL_RE = re.compile(
    r"^(error\b|.*\berror:|.*circuit not parsed|.*aborted|.*simulation\(s\) aborted|"
    r".*timestep too small|.*singular matrix|.*no such (function|vector)|.*could not find)",
    re.IGNORECASE | re.MULTILINE,
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class RawPlot:
    """One plot of a raw file: named vectors of equal length (real or complex)."""

    title: str
    plotname: str
    flags: str
    names: tuple[str, ...]
    """Vector names, lower case, as ngspice writes them (``time``, ``v(out0)``,
    ``i(vsum0)``, ``frequency``, ``onoise_spectrum``, ``v(onoise_total)``)."""
    units: tuple[str, ...]
    """ngspice's type of each vector (``time``, ``voltage``, ``current``, ...)."""
    data: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.complex128]] = field(
        default_factory=dict
    )

    def __getitem__(self, name: str) -> npt.NDArray[np.float64] | npt.NDArray[np.complex128]:
        try:
            return self.data[name.lower()]
        except KeyError:
            raise KeyError(f"no vector {name!r} in plot {self.plotname!r}") from None


@dataclass(frozen=True, slots=True)
class RawResult:
    """All plots of one raw file, in file order, plus where they came from."""

    plots: tuple[RawPlot, ...]
    log: str = ""
    run_dir: Path | None = None
    wall_s: float = 0.0
    """Wall time of the ngspice process (s); 0 when parsed from bytes."""
    peak_rss_bytes: int = 0
    """Peak resident memory of the ngspice process (bytes, VmHWM polled while it ran, every
    1-20 ms: runs shorter than a poll report 0); 0 when parsed from bytes."""

    def plot(self, plotname: str) -> RawPlot:
        """The first plot whose name starts with ``plotname`` (case-insensitive), e.g.
        ``"transient"``, ``"operating"``, ``"noise spectral"``, ``"integrated noise"``."""
        for p in self.plots:
            if p.plotname.lower().startswith(plotname.lower()):
                return p
        names = [p.plotname for p in self.plots]
        raise KeyError(f"no plot {plotname!r}; plots: {names}")

    def vector(self, name: str) -> npt.NDArray[np.float64] | npt.NDArray[np.complex128]:
        """The vector ``name`` from the first plot that has it."""
        for p in self.plots:
            if name.lower() in p.data:
                return p.data[name.lower()]
        raise KeyError(f"no vector {name!r} in any plot")


# --------------------------------------------------------------------------- parsing


def _parse_header(lines: list[str]) -> dict[str, str]:
    head: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        head[key.strip().lower()] = value.strip()
    return head


def parse_raw(data: bytes) -> RawResult:
    """Parse an ngspice raw file (binary or ascii; one or more plots) from bytes.

    Raises :class:`SimulationError` on a malformed or truncated file.
    """
    plots: list[RawPlot] = []
    pos = 0
    n = len(data)
    while pos < n:
        # Skip blank lines between plots.
        while pos < n and data[pos : pos + 1] in (b"\n", b"\r", b" "):
            pos += 1
        if pos >= n:
            break
        header: list[str] = []
        var_lines: list[str] = []
        in_vars = False
        n_vars = -1
        fmt = ""
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                raise SimulationError("raw file: truncated header")
            line = data[pos:end].decode("latin-1").rstrip("\r")
            pos = end + 1
            stripped = line.strip()
            if stripped.lower() in ("binary:", "values:"):
                fmt = stripped.lower()[:-1]
                break
            if in_vars and len(var_lines) < n_vars:
                var_lines.append(line)
                continue
            if stripped.lower().startswith("variables:"):
                in_vars = True
                h = _parse_header(header)
                try:
                    n_vars = int(h["no. variables"])
                except (KeyError, ValueError) as exc:
                    raise SimulationError("raw file: missing 'No. Variables'") from exc
                continue
            header.append(line)
        h = _parse_header(header)
        try:
            n_points = int(h["no. points"])
        except (KeyError, ValueError) as exc:
            raise SimulationError("raw file: missing 'No. Points'") from exc
        if n_vars < 0 or len(var_lines) != n_vars:
            raise SimulationError(f"raw file: expected {n_vars} variables, got {len(var_lines)}")
        names: list[str] = []
        units: list[str] = []
        for vl in var_lines:
            parts = vl.split()
            if len(parts) < 3:
                raise SimulationError(f"raw file: bad variable line {vl!r}")
            names.append(parts[1].lower())
            units.append(parts[2].lower())
        flags = h.get("flags", "real").lower()
        is_complex = "complex" in flags
        values: npt.NDArray[np.float64] | npt.NDArray[np.complex128]
        if fmt == "binary":
            width = 16 if is_complex else 8
            size = n_points * n_vars * width
            if pos + size > n:
                raise SimulationError(
                    f"raw file: binary data truncated ({n - pos} of {size} bytes)"
                )
            raw = np.frombuffer(data, dtype="<f8", count=size // 8, offset=pos).copy()
            pos += size
            if is_complex:
                values = (raw[0::2] + 1j * raw[1::2]).reshape(n_points, n_vars)
            else:
                values = raw.reshape(n_points, n_vars)
        else:
            values, pos = _parse_ascii_values(data, pos, n_points, n_vars, is_complex)
        plots.append(
            RawPlot(
                title=h.get("title", ""),
                plotname=h.get("plotname", ""),
                flags=flags,
                names=tuple(names),
                units=tuple(units),
                data={name: values[:, k] for k, name in enumerate(names)},
            )
        )
    if not plots:
        raise SimulationError("raw file: no plots")
    return RawResult(plots=tuple(plots))


def _parse_ascii_values(
    data: bytes, pos: int, n_points: int, n_vars: int, is_complex: bool
) -> tuple[npt.NDArray[np.float64] | npt.NDArray[np.complex128], int]:
    out: npt.NDArray[np.float64] | npt.NDArray[np.complex128]
    if is_complex:
        out = np.zeros((n_points, n_vars), dtype=np.complex128)
    else:
        out = np.zeros((n_points, n_vars), dtype=np.float64)
    need = n_points * (n_vars + 1)  # each point: its index, then n_vars values
    tokens: list[str] = []
    n = len(data)
    while len(tokens) < need and pos < n:
        end = data.find(b"\n", pos)
        if end < 0:
            end = n
        line = data[pos:end].decode("latin-1")
        if line.strip().endswith(":") and not line.strip()[0].isdigit():
            break  # the next plot's header started: truncated values
        tokens.extend(line.split())
        pos = end + 1
    if len(tokens) < need:
        raise SimulationError(f"raw file: ascii values truncated ({len(tokens)} of {need} tokens)")
    k = 0
    try:
        for p in range(n_points):
            k += 1  # the point index
            for v in range(n_vars):
                tok = tokens[k]
                k += 1
                if is_complex:
                    re_s, _, im_s = tok.partition(",")
                    out[p, v] = complex(float(re_s), float(im_s or 0.0))
                else:
                    out[p, v] = float(tok)
    except ValueError as exc:
        raise SimulationError(f"raw file: bad ascii value ({exc})") from exc
    return out, pos


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True, slots=True)
class SpiceJob:
    """One simulation: the netlist text (with its generated control block), the library
    files it includes, the vectors its result must contain, and a time limit."""

    text: str
    name: str = "job"
    libs: tuple[str, ...] = ()
    """Library file names in ``netlists/`` copied into the run folder."""
    expect: tuple[str, ...] = ()
    """Vector names the raw result must contain (else SimulationError)."""
    timeout_s: float = 600.0
    lib_dir: str = ""
    """Folder the ``libs`` are copied from; empty: the shipped ``netlists/`` folder. A
    designer's own libraries (``rpucircuit verify``) are copied into a folder of the run's
    output first and named here."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", self.name):
            raise NetlistError(f"job name = {self.name!r}: must match [a-z][a-z0-9_-]*")
        for lib in self.libs:
            if not _LIB_RE.match(lib):
                raise NetlistError(f"library = {lib!r}: must be a file name like rpu_x.lib")
        if not (self.timeout_s > 0 and np.isfinite(self.timeout_s)):
            raise NetlistError(f"timeout_s = {self.timeout_s!r}: must be finite and > 0")

    @classmethod
    def from_netlist(
        cls, netlist: Netlist, *, name: str = "job", timeout_s: float = 600.0, lib_dir: str = ""
    ) -> SpiceJob:
        """Render ``netlist`` into a job expecting its vectors (libraries from ``lib_dir``,
        default the shipped ``netlists/``)."""
        return cls(
            text=render(netlist),
            name=name,
            libs=netlist.libs,
            expect=tuple(v.lower() for v in netlist.vectors),
            timeout_s=timeout_s,
            lib_dir=lib_dir,
        )


def _executable() -> str:
    exe = shutil.which("ngspice")
    if exe is None:
        raise SimulatorNotFoundError(
            "ngspice not found on PATH; install it: apt-get install -y ngspice libngspice0"
        )
    return exe


def available() -> bool:
    """True when an ngspice executable is on the PATH and answers ``--version``."""
    try:
        ngspice_version()
    except SimulatorNotFoundError:
        return False
    return True


def ngspice_version() -> str:
    """The simulator's version line, e.g. ``ngspice-39.3``."""
    exe = _executable()
    try:
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SimulatorNotFoundError(f"{exe} is not runnable: {exc}") from exc
    for line in out.splitlines():
        m = re.search(r"ngspice-[0-9][0-9.a-z+-]*", line)
        if m:
            return m.group(0)
    raise SimulatorNotFoundError(f"{exe} --version printed no version: {out[:200]!r}")


def _vm_hwm(pid: int) -> int:
    """Peak resident memory (bytes) of a running process since its exec (VmHWM), or 0.

    Polled while ngspice runs: ``ru_maxrss`` from wait4 would also count the Python
    parent's pages the child held between fork and exec."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    m = re.search(r"VmHWM:\s+(\d+)\s+kB", text)
    return int(m.group(1)) * 1024 if m else 0


def run(job: SpiceJob, *, workdir: str | Path, keep: bool = False) -> RawResult:
    """Run ``job`` in a fresh run folder under ``workdir`` and parse its raw file.

    The folder holds ``net.cir``, the included libraries, ``ngspice.log`` and ``out.raw``;
    it is removed after a success unless ``keep``. A failure raises
    :class:`SimulationError` (or :class:`SimulationTimeoutError` past ``job.timeout_s``,
    after killing ngspice's whole process group) carrying the folder, the log and the
    netlist; the folder is kept, and a partial ``out.raw`` is deleted.
    """
    exe = _executable()
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=root))
    (run_dir / NETLIST_NAME).write_text(job.text, encoding="utf-8")
    lib_dir = Path(job.lib_dir) if job.lib_dir else NETLIST_DIR
    for lib in job.libs:
        src = lib_dir / lib
        if not src.is_file():
            raise NetlistError(f"library {lib!r} not found in {lib_dir}")
        shutil.copyfile(src, run_dir / lib)
    log_path = run_dir / LOG_NAME
    raw_path = run_dir / RAW_NAME
    start = time.perf_counter()
    peak = 0
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [exe, "-b", NETLIST_NAME],
            cwd=run_dir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent_preexec(),  # a killed worker takes its ngspice along
        )
        deadline = start + job.timeout_s
        rc: int | None = None
        pause = 0.001
        try:
            while rc is None:
                peak = max(peak, _vm_hwm(proc.pid))
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
                if pid != 0:
                    rc = os.waitstatus_to_exitcode(status)
                    proc.returncode = rc
                    break
                if time.perf_counter() >= deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(proc.pid, 0)
                    proc.returncode = -signal.SIGKILL
                    with contextlib.suppress(FileNotFoundError):
                        raw_path.unlink()
                    log = log_path.read_text(encoding="utf-8", errors="replace")
                    raise SimulationTimeoutError(
                        f"ngspice ran past its {job.timeout_s:g} s limit (job {job.name!r}) "
                        "and was killed",
                        run_dir=run_dir,
                        log=log,
                        netlist=job.text,
                    )
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
        except BaseException:
            # Ctrl-C, a signal turned into an exception, the time limit: ngspice runs in
            # its own session and would otherwise outlive this process
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            raise
    wall = time.perf_counter() - start
    log = log_path.read_text(encoding="utf-8", errors="replace")
    failed = _FAIL_RE.search(log)
    if rc != 0 or failed or not raw_path.is_file():
        with contextlib.suppress(FileNotFoundError):
            raw_path.unlink()
        why = f"exit status {rc}" if rc != 0 else "no raw file"
        if failed:
            why = f"ngspice reported: {failed.group(0).strip()}"
        raise SimulationError(
            f"ngspice failed on job {job.name!r} ({why})",
            run_dir=run_dir,
            log=log,
            netlist=job.text,
        )
    try:
        parsed = parse_raw(raw_path.read_bytes())
    except SimulationError as exc:
        raise SimulationError(
            f"job {job.name!r}: unreadable raw file: {exc}",
            run_dir=run_dir,
            log=log,
            netlist=job.text,
        ) from exc
    have = {name for p in parsed.plots for name in p.names}
    missing = [v for v in job.expect if v not in have]
    if missing:
        raise SimulationError(
            f"job {job.name!r}: raw file lacks vectors {missing}",
            run_dir=run_dir,
            log=log,
            netlist=job.text,
        )
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return RawResult(
        plots=parsed.plots,
        log=log,
        run_dir=run_dir if keep else None,
        wall_s=wall,
        peak_rss_bytes=peak,
    )


def _run_one(job: SpiceJob, workdir: str, keep: bool) -> RawResult | SimulationError:
    try:
        return run(job, workdir=workdir, keep=keep)
    except SimulationError as exc:
        return exc


def run_many(
    jobs: Sequence[SpiceJob],
    *,
    workdir: str | Path,
    n_workers: int = 2,
    progress: bool | Callable[[int, int], None] = False,
    keep: bool = False,
    return_exceptions: bool = False,
) -> list[RawResult | SimulationError]:
    """Run ``jobs``, ``n_workers`` ngspice processes at a time; results in job order.

    Parallelism is at the subprocess level: each job is its own ngspice process (so a
    crash or hang stays contained and is killed on its time limit), started and awaited
    by a small pool of threads that spend their time blocked in ``wait``; no Python
    worker processes need to start and import the package. Each job has its own time
    limit and run folder (see :func:`run`). A failed job's
    :class:`SimulationError` is returned in its place when ``return_exceptions``; otherwise
    the first failure (in job order) is raised once all jobs have finished. ``progress``:
    True for a tqdm bar, or a callable ``(done, total)``.
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers = {n_workers!r}: must be an integer >= 1")
    _executable()
    total = len(jobs)
    results: list[RawResult | SimulationError | None] = [None] * total
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="ngspice", unit="job")
    done = 0
    if n_workers == 1 or total <= 1:
        for k, job in enumerate(jobs):
            results[k] = _run_one(job, str(workdir), keep)
            done += 1
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(done, total)
    else:
        with cf.ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = {
                pool.submit(_run_one, job, str(workdir), keep): k for k, job in enumerate(jobs)
            }
            for fut in cf.as_completed(futures):
                results[futures[fut]] = fut.result()
                done += 1
                if bar is not None:
                    bar.update(1)
                elif callable(progress):
                    progress(done, total)
    if bar is not None:
        bar.close()
    final: list[RawResult | SimulationError] = [r for r in results if r is not None]
    if not return_exceptions:
        for r in final:
            if isinstance(r, SimulationError):
                raise r
    return final


__all__ = [
    "LOG_NAME",
    "NETLIST_NAME",
    "RawPlot",
    "RawResult",
    "SpiceJob",
    "available",
    "ngspice_version",
    "parse_raw",
    "run",
    "run_many",
]
