"""``rpucircuit sweep EXPERIMENT.toml``: run an experiment's jobs (cached) on a pool or Dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rpucircuit.jobs import DEFAULT_CONNECT_TIMEOUT_S


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """EXPERIMENT, --scheduler, --connect-timeout, --jobs, --out, --quick, --cache, --set,
    --grid, --no-progress."""
    parser.add_argument("experiment", type=Path, help="experiment definition (TOML)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDR",
        help="Dask scheduler address (e.g. tcp://10.0.0.5:8786); default: a local process pool",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive_seconds,
        default=DEFAULT_CONNECT_TIMEOUT_S,
        metavar="S",
        help="seconds to try to reach the Dask scheduler before giving up "
        f"(default {DEFAULT_CONNECT_TIMEOUT_S:g})",
    )
    where.add_argument(
        "--jobs", type=int, default=None, metavar="N", help="local pool size (default: CPUs)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: runs/sweeps/<experiment name>[-quick][-set-<hash>])",
    )
    parser.add_argument(
        "--quick", action="store_true", help="the shortened schedule of the experiment's [quick]"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="job result cache (default: <out>/cache); share one to reuse jobs across sweeps",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="change a config field in every job, applied last (TOML value; repeatable), "
        "e.g. --set epochs=3",
    )
    parser.add_argument(
        "--grid",
        dest="grid",
        action="append",
        default=[],
        metavar="AXIS=[...]",
        help="replace a grid axis's values (repeatable), e.g. --grid seed=[1]",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value:g} must be a finite number of seconds > 0")
    return value


def run(args: argparse.Namespace) -> int:
    from rpucircuit.training.sweep import load_experiment, parse_assignment, run_experiment

    exp = load_experiment(args.experiment)
    overrides = dict(parse_assignment(a, option="--set") for a in args.overrides)
    grid = dict(parse_assignment(a, option="--grid") for a in args.grid)
    if overrides or grid:
        exp = exp.with_overrides(overrides, grid)
    name = exp.name + ("-quick" if args.quick else "")
    if exp.customized:  # a folder of its own, so a full run's report is never overwritten
        name += "-set-" + exp.key()[:8]
    out = args.out if args.out is not None else Path("runs") / "sweeps" / name
    try:
        result = run_experiment(
            exp,
            out,
            quick=args.quick,
            scheduler=args.scheduler,
            n_workers=args.jobs,
            cache_dir=args.cache,
            progress=not args.no_progress,
            connect_timeout_s=args.connect_timeout,
        )
    except KeyboardInterrupt:
        cache = args.cache if args.cache is not None else out / "cache"
        print(
            f"interrupted; finished jobs are cached in {cache}: "
            "the same command again runs only the others",
            file=sys.stderr,
        )
        raise
    r = result.run
    print(
        f"{exp.name}: {len(r.results)} jobs ({sum(r.cached)} cached) in {r.wall_s:.1f} s; "
        f"results in {out}"
    )
    print((out / "summary.md").read_text(encoding="utf-8"))
    return 0
