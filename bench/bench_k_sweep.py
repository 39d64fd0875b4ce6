"""Wall time of paper A's nonlinearity sweep (k of a half-selected device) against the
same sweep at k = 0.

What it measures
    ``rpucircuit sweep experiments/paper-a-nonlinearity.toml`` (FC network, paper A's full
    schedule: 30 epochs of 60,000 images; k in {0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1}
    times seeds 1-3, 27 trainings) on the local process pool, run as a user runs it, in a
    child process: its wall time and the CPU seconds of the sweep and its workers. Then,
    from the sweep's ``results.csv``, every job's training time (``train_seconds_total``:
    the epochs' training, without the test evaluations) and, from its cached result, the
    same at its steady speed (its median epoch time times its epochs): a worker's first
    job also compiles the kernels in its first epoch when numba's cache is cold (about
    2 min on a 2-core AMD EPYC), a one-time cost that would distort a per-k comparison.

    "The same sweep at k = 0" is the same 27 trainings with every device's k set to 0. Run
    literally, the engine would train only 3 of them (the 9 configs of a seed become equal
    and share one job key), so it is not run: its time is the 27 jobs at the measured
    k = 0 jobs' mean steady time each, scaled by the sweep's own measured wall time per
    steady job second (which carries the pool's start-up, the compilation, the test
    evaluations and the load balance). Training at k = 0 is the same code path as the
    preset's benchmark (``bench_training.py``), so the ratio also says how far k > 0 is
    from the k = 0 speed.

    The sweep caches each finished job (``<out>/cache``): an interrupted run continues with
    the same command, and its wall time is then only the last part's; the job times in
    ``results.csv`` are each job's own, from whichever run trained it. The report says how
    many jobs came from the cache.

Run (hours on 2 cores at the full schedule; ``--quick`` runs the experiment's quick grid,
k in {0, 0.1, 0.5}, one seed, in a few minutes)::

    python bench/bench_k_sweep.py --jobs 2 [--out runs/sweeps/paper-a-nonlinearity]
    python bench/bench_k_sweep.py --jobs 2 --seeds 1 --out DIR   # 9 jobs: one seed
    python bench/bench_k_sweep.py --quick --jobs 2
    python bench/bench_k_sweep.py --report-only --out DIR   # read a finished sweep
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
from bench_training import cpu_model  # this folder's: the CPU's model name

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "paper-a-nonlinearity.toml"
K = "rpu.device.k_half_select"


def run_sweep(
    out: Path, jobs: int, quick: bool, seeds: list[int] | None = None
) -> tuple[float, float, str]:
    """Run the sweep in a child process (``seeds``: only these of the grid's seeds):
    (wall s, CPU s of it and its workers, stdout)."""
    cmd = [
        sys.executable,
        "-c",
        "import sys; from rpucircuit import cli; sys.exit(cli.main(sys.argv[1:]))",
        "sweep",
        str(EXPERIMENT),
        "--jobs",
        str(jobs),
        "--out",
        str(out),
        "--no-progress",
    ]
    if quick:
        cmd.append("--quick")
    if seeds:
        cmd += ["--grid", f"seed=[{','.join(str(v) for v in seeds)}]"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"the sweep failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def steady_seconds(cache: Path, key: str, total: float) -> float:
    """A job's training time at its steady speed: its median epoch time times its number
    of epochs, from its cached result (the first epoch of a worker's first job also
    compiles the kernels when numba's cache is cold, a one-time cost of ~2 min); the
    recorded ``total`` when the job is not in ``cache``."""
    path = cache / f"{key}.h5"
    if not path.is_file():
        return total
    with h5py.File(path, "r") as f:
        epochs = np.asarray(f["train_seconds"][()], dtype=float)
    return float(np.median(epochs) * epochs.size) if epochs.size else total


def read_jobs(out: Path) -> list[dict[str, float]]:
    path = out / "results.csv"
    if not path.is_file():
        sys.exit(f"{path}: no sweep results (run without --report-only first)")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    need = (K, "train_seconds_total", "test_error_avg")
    missing = [c for c in (*need, "key") if rows and c not in rows[0]]
    if not rows or missing:
        sys.exit(f"{path}: not a nonlinearity sweep (missing {missing or 'rows'})")
    jobs = []
    for r in rows:
        job = {c: float(r[c]) for c in need}
        job["steady"] = steady_seconds(out / "cache", r["key"], job["train_seconds_total"])
        jobs.append(job)
    return jobs


def report(
    rows: list[dict[str, float]], wall: float | None, cpu: float | None, jobs: int, cached: bool
) -> str:
    by_k: dict[float, list[dict[str, float]]] = defaultdict(list)
    for r in rows:
        by_k[r[K]].append(r)
    if 0.0 not in by_k:
        sys.exit("the sweep has no k = 0 jobs to compare with")
    t0 = statistics.mean(r["steady"] for r in by_k[0.0])
    lines = [
        f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); pool of {jobs} worker(s)",
        "",
        "| k | jobs | training s per job (mean) | at steady speed | speed / k = 0 | "
        "test error (%) |",
        "|---|---|---|---|---|---|",
    ]
    for k in sorted(by_k):
        g = by_k[k]
        t = statistics.mean(r["train_seconds_total"] for r in g)
        ts = statistics.mean(r["steady"] for r in g)
        e = statistics.mean(100 * r["test_error_avg"] for r in g)
        lines.append(f"| {k:g} | {len(g)} | {t:.1f} | {ts:.1f} | {t0 / ts:.2f} | {e:.2f} |")
    recorded = sum(r["train_seconds_total"] for r in rows)
    total = sum(r["steady"] for r in rows)
    at_k0 = len(rows) * t0
    lines += [
        "",
        f"training time of the {len(rows)} jobs: {recorded:,.0f} s as recorded, {total:,.0f} s "
        f"at steady speed (each job's median epoch times its epochs: without the kernels' "
        f"one-time compilation); the same {len(rows)} jobs at k = 0: {at_k0:,.0f} s (ratio "
        f"{total / at_k0:.2f})",
    ]
    if wall is not None and cpu is not None and cached:
        lines.append(
            f"this run's wall time {wall:,.0f} s, CPU {cpu:,.0f} s, covers only the jobs not "
            "in the cache: no sweep wall time or projection (rerun into an empty --out)"
        )
    elif wall is not None and cpu is not None:
        lines.append(
            f"sweep wall time {wall:,.0f} s ({wall / 3600:.2f} h), CPU {cpu:,.0f} s; the same "
            f"sweep at k = 0, projected at this run's wall time per job second: "
            f"{wall * at_k0 / total:,.0f} s ({wall * at_k0 / total / 3600:.2f} h)"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="sweep output folder")
    p.add_argument("--jobs", type=int, default=2, help="pool size (default 2)")
    p.add_argument("--quick", action="store_true", help="the experiment's quick grid")
    p.add_argument(
        "--seeds",
        default=None,
        help="comma list: only these seeds of the grid (1: 9 of the 27 jobs); a later run "
        "into the same --out, with the same code, reuses their cached jobs",
    )
    p.add_argument(
        "--report-only", action="store_true", help="read a finished sweep in --out, run nothing"
    )
    a = p.parse_args()
    if a.jobs < 1:
        p.error("--jobs must be >= 1")
    try:
        seeds = [int(v) for v in a.seeds.split(",")] if a.seeds else None
    except ValueError:
        p.error(f"--seeds {a.seeds!r}: give a comma list of integers")
    out = a.out or ROOT / "runs" / "sweeps" / (
        "paper-a-nonlinearity" + ("-quick" if a.quick else "")
    )
    wall = cpu = None
    cached = False
    if not a.report_only:
        had = len(list((out / "cache").glob("*.h5"))) if (out / "cache").is_dir() else 0
        wall, cpu, _ = run_sweep(out, a.jobs, a.quick, seeds)
        cached = had > 0
        print(f"{had} job(s) were in the cache before this run")
    print(report(read_jobs(out), wall, cpu, a.jobs, cached))


if __name__ == "__main__":
    main()
