"""``rpucircuit characterize [CONFIG] [--out DIR] [--jobs N] [--quick]``: the campaign."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rpucircuit.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``characterize``."""
    parser.add_argument(
        "config",
        nargs="?",
        default=None,
        help="campaign TOML ([tile], [device], [periphery], [campaign]); "
        "default: paper A's tile and the default campaign",
    )
    parser.add_argument(
        "--out", default="runs/characterize", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"worker processes (default: the number of cores, {os.cpu_count()})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small campaign (smoke test, seconds)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Validate everything, then run the campaign; print where the results went."""
    from rpucircuit.circuit import characterize

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs = {args.jobs}: must be >= 1")
    text: str | None = None
    source = "<default>"
    if args.config is not None:
        path = Path(args.config)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
        source = str(path)
    spec = characterize.load_spec(text, source=source, quick=args.quick)
    result = characterize.run_campaign(
        spec, args.out, n_workers=args.jobs, progress=not args.no_progress
    )
    print(f"wrote {result.path}")
    print(f"report {result.report}")
    for p in result.plots:
        print(f"plot   {p}")
    print(f"{result.jobs} jobs ({result.cached} from the cache) in {result.wall_s:.1f} s")
    return 0
