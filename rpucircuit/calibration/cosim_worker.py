"""The circuit side of a training spot check (:mod:`rpucircuit.calibration.cosim`), run in a
worker process under a deadline.

:func:`run_circuit` reads one block of weights in ngspice (DC operating point and transient,
through :func:`rpucircuit.circuit.extract.transfer_case`, i.e. the netlist builders and the
batch backend) and solves the whole layer with the nodal solver; :func:`run_in_worker`
runs it in a fresh interpreter (:func:`main`: no fork of a training process with threads,
no re-import of the caller's main script as ``multiprocessing``'s spawn would do) and
waits until the deadline plus :data:`GRACE_S`. Each ngspice run gets the time left before
the deadline as its own limit, so ngspice is killed (its whole process group) at the
deadline by the backend; a worker still running after the grace period, or when the caller
is interrupted, is stopped with SIGTERM, on which it kills its ngspice runs (each in a
process group of its own) and exits, and is killed if it does not. The worker loads the
circuit path and the calibration package, not the compiled model kernels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.circuit import nodal
from rpucircuit.circuit.extract import transfer_case, weights_to_conductances
from rpucircuit.config.tile import CircuitConfig, replace_tile
from rpucircuit.errors import RpuError, SimulationTimeoutError
from rpucircuit.procs import die_with_parent_preexec

FloatArray = npt.NDArray[np.float64]
Status = Literal["ok", "timeout", "failed", "skipped"]

GRACE_S = 5.0
"""Seconds past the deadline the caller waits for the worker's answer before killing it
(ngspice itself is killed at the deadline; this covers the worker's start and its exit)."""

STOP_WAIT_S = 1.0
"""Seconds a worker asked to stop (SIGTERM) gets before its process group is killed."""

_WORKER_CODE = "from rpucircuit.calibration.cosim_worker import main; main()"
"""What the worker interpreter runs (the module imported by name, so the outcome pickles
as this module's class)."""

_SEVERITY = {"ok": 0, "skipped": 1, "timeout": 2, "failed": 3}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CircuitJob:
    """What the worker simulates: weights in weight units, inputs in [-1, 1]."""

    circuit: CircuitConfig
    """The circuit (devices, lines, periphery); its tile size is replaced by the arrays'."""
    w_block: FloatArray
    """Block weights (rows, cols), within ±w_max of the circuit's devices."""
    x_block: FloatArray
    """Block inputs (cols,)."""
    w_layer: FloatArray | None
    """The whole layer's weights for the nodal solve; None = no nodal solve."""
    x_layer: FloatArray | None
    """The whole layer's inputs."""
    op: bool
    tran: bool
    deadline: float
    """``time.monotonic()`` value past which nothing more runs (system-wide clock)."""
    name: str = "cosim"
    """Prefix of the ngspice run folders."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CircuitOutcome:
    """Outputs in weight units (``Q/Q_unit``); empty arrays for analyses not run."""

    y_op_w: FloatArray
    """ngspice DC operating point of the block (``I·t_meas/Q_unit``), one per block row."""
    y_tran_w: FloatArray
    """ngspice transient of the block (``−V_out·C_int/Q_unit`` at the sample time)."""
    y_nodal_w: FloatArray
    """Nodal DC solve of the whole layer (same network as the operating point), per row."""
    status: Status
    notes: tuple[str, ...] = ()


def _empty() -> FloatArray:
    return np.zeros(0)


def _worse(a: Status, b: Status) -> Status:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


def _nodal_w(cfg: CircuitConfig, w: FloatArray, x: FloatArray) -> FloatArray:
    c = replace_tile(cfg, rows=w.shape[0], cols=w.shape[1])
    g_pos, g_neg = weights_to_conductances(c, w)
    res = nodal.read(c, g_pos, g_neg, x, direction="forward", finite_gain=False)
    return np.asarray(res.q_c / c.q_unit_c, dtype=np.float64)


def run_circuit(job: CircuitJob, workdir: Path) -> CircuitOutcome:
    """The nodal solve, then the operating point, then the transient, each only while time
    is left; a timeout or failure of one is noted and the others still run."""
    out = {"nodal": _empty(), "op": _empty(), "tran": _empty()}
    status: Status = "ok"
    notes: list[str] = []
    wanted = [
        name
        for name, on in (("nodal", job.w_layer is not None), ("op", job.op), ("tran", job.tran))
        if on
    ]
    block = replace_tile(job.circuit, rows=job.w_block.shape[0], cols=job.w_block.shape[1])
    for name in wanted:
        left = job.deadline - time.monotonic()
        if left <= 0:
            status = _worse(status, "timeout")
            notes.append(f"{name}: not started, the time limit was reached")
            continue
        try:
            if name == "nodal":
                assert job.w_layer is not None and job.x_layer is not None
                out[name] = _nodal_w(job.circuit, job.w_layer, job.x_layer)
            else:
                res = transfer_case(
                    block,
                    job.w_block,
                    job.x_block,
                    name=f"{job.name}-{name}",
                    analysis="op" if name == "op" else "tran",
                    workdir=workdir,
                    timeout_s=left,
                )
                out[name] = res.y_sim_w
        except SimulationTimeoutError as exc:
            status = _worse(status, "timeout")
            notes.append(f"{name}: {exc}")
        except RpuError as exc:
            status = _worse(status, "failed")
            notes.append(f"{name}: {type(exc).__name__}: {exc}")
    return CircuitOutcome(
        y_op_w=out["op"],
        y_tran_w=out["tran"],
        y_nodal_w=out["nodal"],
        status=status,
        notes=tuple(notes),
    )


def run_in_worker(job: CircuitJob) -> CircuitOutcome:
    """:func:`run_circuit` in a fresh worker process (:func:`main`, the job pickled on its
    standard input, the outcome on its output), killed with its process
    group when it outlives the deadline by :data:`GRACE_S`; a killed, crashed or failing
    worker becomes an outcome with status ``timeout`` or ``failed``, never an exception.
    Run folders go to a temporary folder that is removed afterwards."""
    workdir = tempfile.mkdtemp(prefix="rpucircuit-cosim-")
    try:
        proc = start_worker()
        wait = max(job.deadline - time.monotonic(), 0.0) + GRACE_S
        try:
            out, err = proc.communicate(pickle.dumps((job, workdir)), timeout=wait)
        except subprocess.TimeoutExpired:
            stop_worker(proc)
            why = f"the worker was still running {GRACE_S:g} s after the time limit; killed"
            return _outcome("timeout", why)
        except BaseException:  # Ctrl-C in the caller: the worker and its ngspice go too
            stop_worker(proc)
            raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if proc.returncode != 0 or not out:
        lines = err.decode("utf-8", errors="replace").strip().splitlines()
        last = lines[-1] if lines else "no message"
        return _outcome("failed", f"the worker exited with status {proc.returncode}: {last}")
    answer = pickle.loads(out)  # our own child's answer
    if isinstance(answer, str):
        return _outcome("failed", answer)
    assert isinstance(answer, CircuitOutcome)
    return answer


def start_worker() -> subprocess.Popen[bytes]:
    """A worker interpreter (:func:`main`) in a session of its own (a Ctrl-C meant for the
    caller reaches it through :func:`stop_worker`), waiting for its pickled job on stdin."""
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER_CODE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent_preexec(),  # a killed training takes its worker along
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Ask the worker to end (it kills its ngspice runs first, :func:`_on_sigterm`), then
    kill its process group if it is still there after a second."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc; ngspice runs only on Linux here)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the fields after the command name, which ends with the last ')'
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _on_sigterm(signum: int, frame: object) -> None:
    """The worker's SIGTERM: kill each ngspice it started (each in its own process group,
    so killing the worker alone would leave them running), then exit."""
    for child in children(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)  # reaped here: no zombie left behind
    os._exit(1)


def _outcome(status: Status, note: str) -> CircuitOutcome:
    return CircuitOutcome(
        y_op_w=_empty(), y_tran_w=_empty(), y_nodal_w=_empty(), status=status, notes=(note,)
    )


def main() -> None:
    """The worker: a pickled ``(job, workdir)`` in, a pickled outcome (or an error's text)
    out; nothing else is written to standard output."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    job, workdir = pickle.loads(sys.stdin.buffer.read())
    answer: CircuitOutcome | str
    try:
        answer = run_circuit(job, Path(workdir))
    except Exception as exc:  # everything goes back as a message
        answer = f"{type(exc).__name__}: {exc}"
    sys.stdout.buffer.write(pickle.dumps(answer))
    sys.stdout.buffer.flush()
