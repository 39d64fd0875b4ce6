"""``rpucircuit verify DESIGN.toml [--out DIR] [--jobs N | --scheduler ADDRESS]``: check a
designer's own peripheral circuit (SPICE libraries) against the design's spec.

Exit status: 0 when every check passes, 1 when a check fails (or a simulation of the
checks fails), 2 when the design file or a library is unusable (the message names the
file, and for a library that ngspice rejects quotes ngspice).
"""

from __future__ import annotations

import argparse
import os
import sys

from rpucircuit.errors import ConfigError

EXIT_FAIL = 1
EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``verify``."""
    parser.add_argument("design", help="design TOML: circuit, [libraries], [spec]")
    parser.add_argument("--out", default="runs/verify", help="output folder (default: %(default)s)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"worker processes (default: 2; this machine has {os.cpu_count()} cores)",
    )
    where.add_argument(
        "--scheduler", default=None, help="run the simulations on this Dask scheduler"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Verify; print the table and where the results went; exit status as documented."""
    from rpucircuit.design import verify as v

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs = {args.jobs}: must be >= 1")
    try:
        result = v.verify(
            args.design,
            args.out,
            n_workers=args.jobs,
            scheduler=args.scheduler,
            progress=not args.no_progress,
        )
    except v.DesignError as exc:
        print(f"rpucircuit verify: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(v.report_table(result.rows), end="")
    print(f"report {result.report}")
    print(f"wrote  {result.path}")
    for p in result.plots:
        print(f"plot   {p}")
    verdict = "PASS" if result.passed else "FAIL"
    print(f"{verdict} in {result.wall_s:.1f} s")
    return 0 if result.passed else EXIT_FAIL
