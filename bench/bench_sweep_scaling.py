"""Sweep scaling: the same training jobs on a 1-worker and a 2-worker local Dask cluster.

What it measures
    Wall-clock time of :func:`rpucircuit.sweep.run_jobs` for ``--jobs`` independent
    training jobs (paper A's FC network on the RPU baseline, ``--n-train`` images, one epoch,
    seeds 1..N) on ``distributed.LocalCluster(processes=True, threads_per_worker=1)`` with
    one worker, then with two, each with a fresh result cache (nothing reused), repeated
    ``--reps`` times interleaved (1, 2, 1, 2, ...). Prints the median times and the speedup
    (time with one worker / time with two). Every worker pins BLAS to one thread.

    Each run also reports how busy the whole machine was during it (cores, from
    ``/proc/stat``): with one worker a quiet 2-core machine shows about 1 busy core, with two
    about 2. A higher figure means other processes competed, and the speedup is not
    meaningful on a shared 2-core machine then. "Workers kept busy" (summed job time over
    workers × wall time) separates the engine's own overhead from CPU contention.

Run
    python bench/bench_sweep_scaling.py --jobs 4 --n-train 10000 --reps 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rpucircuit.config.training import ModelSpec, TrainingConfig
from rpucircuit.data import load_mnist
from rpucircuit.sweep import make_job, run_jobs
from rpucircuit.training import run_job


def _busy_jiffies() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def one_run(n_workers: int, jobs: list, cache: Path) -> tuple[float, float, float]:
    """(wall seconds, mean busy cores of the whole machine, summed job seconds)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        # warm the workers (imports, numba cache load) outside the timed stretch
        from distributed import Client

        with Client(cluster.scheduler_address) as client:
            client.run(lambda: __import__("rpucircuit.training"))
        b0, t0 = _busy_jiffies()
        start = time.perf_counter()
        run = run_jobs(
            run_job, jobs, cache_dir=cache, scheduler=cluster.scheduler_address, progress=False
        )
        wall = time.perf_counter() - start
        b1, t1 = _busy_jiffies()
    import os

    ncpu = os.cpu_count() or 1
    return wall, ncpu * (b1 - b0) / max(t1 - t0, 1), sum(run.seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    load_mnist()  # fill the cache before timing
    jobs = [
        make_job(
            TrainingConfig(
                network="fc",
                epochs=1,
                n_train=args.n_train,
                n_test=args.n_test,
                seed=s,
                model=ModelSpec(preset="gokmen_vlasov_2016"),
            ),
            {"seed": s},
        )
        for s in range(1, args.jobs + 1)
    ]
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for n in (1, 2):
                wall, busy, job_s = one_run(n, jobs, Path(tmp) / f"{n}-{rep}")
                times[n].append(wall)
                print(
                    f"rep {rep} workers {n}: {wall:6.1f} s, machine busy {busy:.2f} cores, "
                    f"workers kept busy {job_s / (n * wall):.0%} of the time"
                )
    m1, m2 = statistics.median(times[1]), statistics.median(times[2])
    print(
        f"{args.jobs} jobs x {args.n_train} samples: 1 worker {m1:.1f} s, 2 workers {m2:.1f} s, "
        f"speedup {m1 / m2:.2f}x (median of {args.reps})"
    )


if __name__ == "__main__":
    main()
