"""ngspice vs the nodal solver: wall time, ngspice peak memory, scaling exponents, and the
run_many speed-up, all measured in one run on this machine.

    python bench/bench_nodal.py            # default: ~5-8 minutes on 2 cores
    python bench/bench_nodal.py --quick    # ~1 minute: small sizes only
    python bench/bench_nodal.py --tran 8 16 32 64 --op 8 16 32 64 128 --nodal 64 128 256 512 1024

Every case is a paired N×N tile of the paper-A preset (random conductances in
[G_off, G_on], random inputs, 0.144 Ω and 0.08 fF per segment). "tran" is the forward read
transient with integrators (``build_read(..., analysis="tran")``), "op" its DC operating
point (``analysis="op"``), "nodal" :func:`rpucircuit.circuit.nodal.read` (factorization + solve,
first-order op-amp model). Each ngspice size runs once (they take seconds to minutes);
nodal sizes take the best of 3. Peak memory is each ngspice process's own resident
high-water mark (VmHWM polled by :func:`rpucircuit.circuit.spice.run`; 0 = ran too briefly). The
nodal/ngspice agreement at each op size is printed too (max relative difference of the
summing-node currents).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rpucircuit.circuit import netlist as nl
from rpucircuit.circuit import nodal, spice
from rpucircuit.config.tile import (
    CircuitConfig,
    estimate_spice_cost,
    gokmen_vlasov_2016,
    replace_tile,
)


def _cfg(n: int) -> CircuitConfig:
    return replace_tile(gokmen_vlasov_2016(rows=8, cols=8), rows=n, cols=n, spice_limit_s=1e9)


def _tile(cfg: CircuitConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d, n = cfg.device, cfg.tile.rows
    gp = rng.uniform(d.g_off_s, d.g_on_s, (n, n))
    gn = rng.uniform(d.g_off_s, d.g_on_s, (n, n))
    return gp, gn, rng.uniform(-1, 1, n)


def _fit(ns: list[int], ts: list[float]) -> float:
    if len(ns) < 2:
        return float("nan")
    # Fit on the two largest sizes' trend: small sizes are dominated by process start-up.
    k = min(3, len(ns))
    x, y = np.log(ns[-k:]), np.log(ts[-k:])
    return float(np.polyfit(x, y, 1)[0])


def bench_spice(kind: str, sizes: list[int], work: Path) -> dict[int, tuple[float, int, float]]:
    """N -> (wall s, peak rss bytes, nodal agreement) for ngspice ``kind`` ('tran'|'op')."""
    out: dict[int, tuple[float, int, float]] = {}
    for n in sizes:
        cfg = _cfg(n)
        gp, gn, x = _tile(cfg, n)
        net = nl.build_read(cfg, gp, gn, x, analysis=kind)  # type: ignore[arg-type]
        job = spice.SpiceJob.from_netlist(net, name=f"{kind}{n}", timeout_s=3600)
        t0 = time.perf_counter()
        res = spice.run(job, workdir=work)
        wall = time.perf_counter() - t0
        rss = res.peak_rss_bytes
        agree = float("nan")
        if kind == "op":
            i_sp = np.array([res.vector(v)[0].real for v in net.vectors])
            ref = nodal.read(cfg, gp, gn, x, finite_gain=False)
            agree = float(np.max(np.abs(i_sp - ref.i_mean_a)) / np.max(np.abs(i_sp)))
        est = estimate_spice_cost(cfg, kind)  # type: ignore[arg-type]
        print(
            f"  ngspice {kind:<4} N={n:<5} nodes={est.nodes:<7} wall={wall:8.3f} s "
            f"(estimate {est.seconds:8.3g} s)  peak RSS={rss / 1e6:7.1f} MB"
            + (f"  |nodal-ngspice|/max = {agree:.1e}" if kind == "op" else ""),
            flush=True,
        )
        out[n] = (wall, rss, agree)
    return out


def bench_nodal(sizes: list[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for n in sizes:
        cfg = _cfg(n)
        gp, gn, x = _tile(cfg, n)
        best = float("inf")
        for _ in range(3 if n <= 256 else 1):
            t0 = time.perf_counter()
            nodal.read(cfg, gp, gn, x, finite_gain=True)
            best = min(best, time.perf_counter() - t0)
        print(f"  nodal        N={n:<5} unknowns~{4 * n * n:<8} wall={best:8.3f} s", flush=True)
        out[n] = best
    return out


def bench_parallel(n: int, n_jobs: int, work: Path) -> tuple[float, float, float]:
    """(serial wall, 2-worker wall, concurrency = Σ job walls / 2-worker wall)."""
    jobs = []
    for k in range(n_jobs):
        cfg = _cfg(n)
        gp, gn, x = _tile(cfg, 100 + k)
        jobs.append(spice.SpiceJob.from_netlist(nl.build_read(cfg, gp, gn, x), name=f"par{k}"))
    t0 = time.perf_counter()
    spice.run_many(jobs, workdir=work, n_workers=1)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = spice.run_many(jobs, workdir=work, n_workers=2)
    parallel = time.perf_counter() - t0
    busy = sum(r.wall_s for r in out if isinstance(r, spice.RawResult))
    return serial, parallel, busy / parallel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tran", type=int, nargs="*", default=[8, 16, 24, 32])
    ap.add_argument("--op", type=int, nargs="*", default=[8, 16, 32, 48, 64])
    ap.add_argument("--nodal", type=int, nargs="*", default=[8, 16, 32, 64, 128, 256, 512])
    ap.add_argument("--parallel-size", type=int, default=24)
    ap.add_argument("--parallel-jobs", type=int, default=8, help="0 skips the run_many part")
    ap.add_argument("--quick", action="store_true", help="small sizes only (~1 minute)")
    args = ap.parse_args(argv)
    if args.quick:
        args.tran, args.op, args.nodal = [8, 16], [8, 16, 32], [16, 64, 128]
        args.parallel_jobs = 4
    if not spice.available():
        print("ngspice not found", file=sys.stderr)
        return 1
    print(f"{spice.ngspice_version()}; paired N×N tiles, paper-A preset\n")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tran = bench_spice("tran", sorted(args.tran), work)
        op = bench_spice("op", sorted(args.op), work)
        nod = bench_nodal(sorted(args.nodal))
        serial, parallel, concurrency = (
            bench_parallel(args.parallel_size, args.parallel_jobs, work)
            if args.parallel_jobs > 0
            else (float("nan"), float("nan"), float("nan"))
        )

    head = "N      ngspice tran (s)  ngspice op (s)  nodal (s)   op/nodal   tran/nodal"
    print("\n" + head + "  peak RSS tran/op (MB)")
    for n in sorted(set(tran) | set(op) | set(nod)):
        t, rss_t = tran.get(n, (float("nan"), 0, 0.0))[:2]
        o, rss = op.get(n, (float("nan"), 0, 0.0))[:2]
        d = nod.get(n, float("nan"))
        print(
            f"{n:<6} {t:16.3f}  {o:14.3f}  {d:9.4f}  {o / d:9.1f}  {t / d:10.1f}"
            f"  {rss_t / 1e6:9.1f} / {rss / 1e6:.1f}"
        )
    print("\nscaling exponents (time ∝ N^p, fitted on the largest three sizes):")
    print(f"  ngspice tran p = {_fit(sorted(tran), [tran[n][0] for n in sorted(tran)]):.2f}")
    print(f"  ngspice op   p = {_fit(sorted(op), [op[n][0] for n in sorted(op)]):.2f}")
    print(f"  nodal        p = {_fit(sorted(nod), [nod[n] for n in sorted(nod)]):.2f}")
    ops = sorted(op)
    print(
        f"  ngspice op peak memory p = {_fit(ops, [max(op[n][1], 1) for n in ops]):.2f} (RSS ∝ N^p)"
    )
    print(
        f"\nrun_many, {args.parallel_jobs} transients of "
        f"{args.parallel_size}x{args.parallel_size}: 1 worker {serial:.2f} s, "
        f"2 workers {parallel:.2f} s, speed-up {serial / parallel:.2f}x "
        f"(ngspice processes running at once: {concurrency:.2f}; on a machine shared with "
        "other work the speed-up falls below it)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
