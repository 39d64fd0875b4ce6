"""Sweep scaling: the same training jobs on 1 and 2 workers, for each executor a user can pick.

What it measures
    ``--jobs`` independent training jobs (paper A's FC network on the RPU baseline, one
    epoch of ``--n-train`` images, ``--n-test`` test images, seeds 1..N: a quick schedule of
    a real sweep, each job several seconds) run through :func:`rpucircuit.jobs.run_jobs`,
    exactly as ``rpucircuit sweep`` runs them, on

    ``local``
        a ``distributed.LocalCluster(processes=True, threads_per_worker=1)`` started here;
    ``external``
        a ``dask scheduler`` process and a ``dask worker --nworkers N --nthreads 1`` process
        started from the command line, connected to by address (``--scheduler ADDRESS``);
    ``pool``
        the local process pool (``run_jobs(..., n_workers=N)``, the default executor).

    with one worker, then two, each run with a fresh result cache (nothing reused), repeated
    ``--reps`` times interleaved (1, 2, 1, 2, ...). For Dask, the cluster's start-up (until
    every worker has registered and imported rpucircuit) is timed apart from the sweep; the
    pool starts its processes inside ``run_jobs``, so its start-up is part of its sweep time.
    A worker's first job also pays the process's one-time warm-up (numba cache load, MNIST
    read: about a second), as it does in a real sweep.

    Each run reports how busy the whole machine was (cores, from ``/proc/stat``): on a quiet
    2-core machine about 1 with one worker and about 2 with two; and how much of that was
    other processes (machine busy minus the CPU of this process and its descendants: the
    sweep's workers, Dask's scheduler and nannies). More than a few hundredths of a core of
    other processes means they competed and the speedup is not meaningful. "Workers kept
    busy" (summed job time over workers × sweep time) separates the engine's own idle gaps
    from contention.
    The summary prints the median sweep times and the ratio (time with one worker / time with
    two) per executor.

    With Linux's autogroup scheduling on (``/proc/sys/kernel/sched_autogroup_enabled``), a
    nice-19 process in another login session still takes a full core from a 2-worker run
    (nice counts only inside a session). The figures in docs/performance.md come from a
    session of its own at autogroup nice -20: ``setsid --wait bash -c 'echo -20 >
    /proc/self/autogroup && exec python bench/bench_sweep_scaling.py ...'``.

Run (one executor per call keeps each under a few minutes)
    python bench/bench_sweep_scaling.py --executor local --jobs 4 --reps 2
    python bench/bench_sweep_scaling.py --executor external --jobs 4 --reps 2
    python bench/bench_sweep_scaling.py --executor pool --jobs 4 --reps 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rpucircuit.config.training import ModelSpec, TrainingConfig
from rpucircuit.jobs import Job, make_job, run_jobs
from rpucircuit.training.data import load_mnist
from rpucircuit.training.loop import run_job

EXECUTORS = ("local", "external", "pool")


def _busy_jiffies() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _own_cpu_s() -> float:
    """CPU seconds used so far by this process and its descendants (reaped and running)."""
    import psutil  # type: ignore[import-untyped]  # a dependency of distributed

    me = psutil.Process()
    t = me.cpu_times()
    total = float(t.user + t.system + t.children_user + t.children_system)
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            c = child.cpu_times()
            total += c.user + c.system
    return total


def _warm(address: str, n_workers: int, timeout_s: float = 60.0) -> None:
    """Wait until ``n_workers`` workers are registered, then import rpucircuit on each."""
    from distributed import Client

    with Client(address, timeout=timeout_s) as client:  # type: ignore[no-untyped-call]
        client.wait_for_workers(n_workers, timeout=timeout_s)
        client.run(__import__, "rpucircuit.training")


@contextlib.contextmanager
def _local_cluster(n_workers: int) -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        _warm(cluster.scheduler_address, n_workers)
        yield cluster.scheduler_address


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process this bench started (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _external_cluster(n_workers: int, folder: Path) -> Iterator[str]:
    """``dask scheduler`` + ``dask worker --nworkers N`` as separate command-line processes."""
    dask_cli = shutil.which("dask")
    if dask_cli is None:
        raise SystemExit("the 'dask' command is not on PATH (pip install distributed)")
    sched_file = folder / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    log = (folder / "cluster.log").open("ab")
    try:
        procs.append(
            subprocess.Popen(
                [
                    *(dask_cli, "scheduler", "--port", "0", "--no-dashboard"),
                    *("--scheduler-file", str(sched_file)),
                ],
                stdout=log,
                stderr=log,
            )
        )
        deadline = time.monotonic() + 60
        while not sched_file.is_file():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise SystemExit(f"dask scheduler did not start; see {folder / 'cluster.log'}")
            time.sleep(0.05)
        time.sleep(0.1)  # the file is written in one go; let the writer close it
        address = str(json.loads(sched_file.read_text())["address"])
        procs.append(
            subprocess.Popen(
                [
                    *(dask_cli, "worker", address, "--no-dashboard"),
                    *("--nworkers", str(n_workers), "--nthreads", "1"),
                ],
                stdout=log,
                stderr=log,
            )
        )
        _warm(address, n_workers)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        log.close()


def one_run(executor: str, n_workers: int, jobs: Sequence[Job], folder: Path) -> dict[str, float]:
    """Start the executor (timed apart), run the sweep; start-up, sweep wall, busy figures."""
    folder.mkdir(parents=True)
    cache = folder / "cache"
    t_start = time.perf_counter()
    stack = contextlib.ExitStack()
    with stack:
        address: str | None = None
        if executor == "local":
            address = stack.enter_context(_local_cluster(n_workers))
        elif executor == "external":
            address = stack.enter_context(_external_cluster(n_workers, folder))
        startup = time.perf_counter() - t_start
        b0, t0 = _busy_jiffies()
        own0 = _own_cpu_s()
        start = time.perf_counter()
        run = run_jobs(
            run_job,
            jobs,
            cache_dir=cache,
            scheduler=address,
            n_workers=None if address else n_workers,
            progress=False,
        )
        wall = time.perf_counter() - start
        own1 = _own_cpu_s()
        b1, t1 = _busy_jiffies()
    ncpu = os.cpu_count() or 1
    busy = ncpu * (b1 - b0) / max(t1 - t0, 1)
    return {
        "startup": startup,
        "wall": wall,
        "busy": busy,
        "others": max(0.0, busy - (own1 - own0) / wall),
        "kept_busy": sum(run.seconds) / (n_workers * wall),
        "job_s": sum(run.seconds) / max(1, len(run.seconds)),
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--executor", choices=[*EXECUTORS, "all"], default="local", help="default: local"
    )
    ap.add_argument("--jobs", type=int, default=4, help="training jobs per sweep (default 4)")
    ap.add_argument("--n-train", type=int, default=60000, help="training images per job")
    ap.add_argument("--n-test", type=int, default=10000, help="test images per job")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per job (default 1)")
    ap.add_argument("--reps", type=int, default=2, help="repetitions, 1 and 2 interleaved")
    args = ap.parse_args(argv)
    load_mnist()  # fill the data cache before timing
    jobs = [
        make_job(
            TrainingConfig(
                network="fc",
                epochs=args.epochs,
                n_train=args.n_train,
                n_test=args.n_test,
                seed=s,
                model=ModelSpec(preset="gokmen_vlasov_2016"),
            ),
            {"seed": s},
        )
        for s in range(1, args.jobs + 1)
    ]
    # compile the numba kernels into their cache here (after an edit of the kernels), so no
    # timed worker pays a compile; a worker still pays the load of the cached kernels
    run_job(dataclasses.replace(jobs[0].config, n_train=20, n_test=20))
    executors = EXECUTORS if args.executor == "all" else (args.executor,)
    print(
        f"{args.jobs} jobs: FC, {args.epochs} epoch(s) x {args.n_train} images, "
        f"{args.n_test} test images; {os.cpu_count()} CPUs; python {sys.version.split()[0]}"
    )
    walls: dict[tuple[str, int], list[float]] = {}
    ups: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for executor in executors:
                for n in (1, 2):
                    r = one_run(executor, n, jobs, Path(tmp) / f"{executor}-{n}-{rep}")
                    walls.setdefault((executor, n), []).append(r["wall"])
                    ups.setdefault((executor, n), []).append(r["startup"])
                    print(
                        f"rep {rep} {executor:8s} workers {n}: start-up {r['startup']:5.1f} s, "
                        f"sweep {r['wall']:6.1f} s, machine busy {r['busy']:.2f} cores "
                        f"(other processes {r['others']:.2f}), "
                        f"workers kept busy {r['kept_busy']:.0%}, mean job {r['job_s']:.2f} s",
                        flush=True,
                    )
    for executor in executors:
        m1 = statistics.median(walls[executor, 1])
        m2 = statistics.median(walls[executor, 2])
        s1 = statistics.median(ups[executor, 1])
        s2 = statistics.median(ups[executor, 2])
        startup = (
            "start-up inside the sweep time"
            if executor == "pool"
            else f"start-up {s1:.1f} s / {s2:.1f} s, not in the sweep time"
        )
        print(
            f"{executor:8s}: sweep 1 worker {m1:6.1f} s, 2 workers {m2:6.1f} s, "
            f"speedup {m1 / m2:.2f}x (median of {args.reps}); {startup}"
        )


if __name__ == "__main__":
    main()
