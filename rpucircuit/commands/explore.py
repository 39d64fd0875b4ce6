"""``rpucircuit explore noise|onoff``: the output noise, and the op-amp noise and on/off ratio,
that a network can afford, found by training (:mod:`rpucircuit.design.explore`,
:mod:`rpucircuit.design.explore_onoff`)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rpucircuit.jobs import DEFAULT_CONNECT_TIMEOUT_S

QUICK_ONOFF = {
    "t_meas_s": (80e-9,),
    "on_off": (2.0, 3.0, 4.0, 8.0),
    "e_n_v_per_rthz": (0.0, 40e-9, 160e-9, 320e-9),
    "seeds": (1, 2),
}
"""``explore onoff --quick`` grid (unless given): paper A's 80 ns, ratios 2-8 and densities
from a noiseless op-amp to where the longest read's σ reaches 0.6-1.3 (the quick schedule
tolerates about twice paper A's σ, so the penalized region must be on the grid), two seeds
(an interval needs two)."""


def _numbers(scale: float, *, integer: bool = False) -> Callable[[str], tuple[Any, ...]]:
    """argparse type: a comma-separated list of numbers, each times ``scale``."""

    def parse(text: str) -> tuple[Any, ...]:
        parts = [p.strip() for p in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers, e.g. 1,2,3")
        try:
            if integer:
                return tuple(int(p) for p in parts)
            values = tuple(float(p) * scale for p in parts)
        except ValueError:
            kind = "integers" if integer else "numbers"
            raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated {kind}") from None
        if not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: every value must be finite")
        return values

    return parse


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value:g} must be a finite number of seconds > 0")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", choices=("fc", "cnn"), default="fc", help="network (default fc)")
    p.add_argument(
        "--model",
        default="gokmen_vlasov_2016",
        help="array model: a preset name or a model file (.h5, e.g. a calibrated one); its "
        "read noise is replaced (default gokmen_vlasov_2016)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        dest="settings",
        help="change a field of the array model on every analog layer (repeatable), e.g. "
        "--set backward.noise_management=false",
    )
    p.add_argument(
        "--seeds",
        type=_numbers(1, integer=True),
        default=None,
        metavar="S,S,...",
        help="seeds (default 1,2,3)",
    )
    p.add_argument("--quick", action="store_true", help="the shortened training schedule")
    p.add_argument("--epochs", type=int, default=None, help="change the schedule's epochs")
    p.add_argument(
        "--n-train",
        type=int,
        default=None,
        metavar="N",
        help="change the schedule's training images",
    )
    p.add_argument(
        "--n-test", type=int, default=None, metavar="N", help="change the schedule's test images"
    )
    p.add_argument("--lr", type=float, default=None, help="change the schedule's learning rate")
    p.add_argument(
        "--penalty",
        type=float,
        default=None,
        metavar="POINTS",
        help="acceptable test-error penalty in percentage points (default 0.3)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="job result cache (default: <out>/cache); share one to reuse jobs",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDR",
        help="Dask scheduler address (e.g. tcp://10.0.0.5:8786); default: a local pool",
    )
    where.add_argument(
        "--jobs", type=int, default=None, metavar="N", help="local pool size (default: CPUs)"
    )
    p.add_argument(
        "--connect-timeout",
        type=_positive_seconds,
        default=DEFAULT_CONNECT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to try to reach the Dask scheduler (default {DEFAULT_CONNECT_TIMEOUT_S:g})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Subcommands ``noise`` and ``onoff``."""
    sub = parser.add_subparsers(dest="what", required=True, metavar="noise|onoff")
    noise = sub.add_parser(
        "noise",
        help="train over the output noise σ of both reads: the largest σ within a penalty",
        description="Train over the output noise σ of both reads (every analog layer) and seeds; "
        "report the test-error penalty against σ and the largest σ within the penalty.",
    )
    _common(noise)
    noise.add_argument(
        "--sigmas",
        type=_numbers(1.0),
        default=None,
        metavar="S,S,...",
        help="σ grid in weight units, starting at 0 (default 0,0.02,0.04,0.06,0.08,0.1,0.15,0.2)",
    )
    onoff = sub.add_parser(
        "onoff",
        help="acceptable op-amp noise against on/off ratio per t_meas, from training",
        description="Map (on/off ratio, op-amp e_n, t_meas) to each read's output noise at the "
        "network's tile sizes, train with it, and report the acceptable op-amp noise against "
        "the on/off ratio beside the analytic budget and ngspice .noise points.",
    )
    _common(onoff)
    onoff.add_argument(
        "--on-off",
        type=_numbers(1.0),
        default=None,
        metavar="R,R,...",
        help="on/off ratios (default 2,3,4,8,16; quick 2,3,4,8)",
    )
    onoff.add_argument(
        "--e-n",
        type=_numbers(1e-9),
        default=None,
        metavar="NV,NV,...",
        help="op-amp noise densities in nV/√Hz, starting at 0 "
        "(default 0,10,20,40,80,160; quick 0,40,160,320)",
    )
    onoff.add_argument(
        "--t-meas",
        type=_numbers(1e-9),
        default=None,
        metavar="NS,NS,...",
        help="integration times in ns (default 40,80,160; quick 80)",
    )
    onoff.add_argument(
        "--sigma-target",
        type=float,
        default=None,
        metavar="W",
        help="σ the analytic curve budgets on the longest line (default paper A's 0.06)",
    )
    onoff.add_argument(
        "--line-devices",
        type=int,
        default=0,
        metavar="N",
        help="devices per line for every read instead of the network's own "
        "(paper A's derivation: 4096)",
    )
    onoff.add_argument(
        "--spice-points",
        type=int,
        default=3,
        metavar="K",
        help="on/off ratios per t_meas checked with ngspice .noise (default 3; 0 = none)",
    )
    onoff.add_argument(
        "--circuit",
        type=Path,
        default=None,
        help="circuit config (TOML) the grid changes (default: paper A's tile)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``explore noise`` or ``explore onoff``."""
    if args.what == "noise":
        return _run_noise(args)
    return _run_onoff(args)


def _schedule(args: argparse.Namespace) -> Any:
    """The full or quick schedule with the command line's changes (named ``custom``)."""
    import dataclasses

    from rpucircuit.design.explore import full_schedule, quick_schedule

    schedule = quick_schedule() if args.quick else full_schedule()
    changes = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("n_train", args.n_train),
            ("n_test", args.n_test),
            ("lr", args.lr),
        )
        if v is not None
    }
    if changes:
        changes["eval_last"] = min(schedule.eval_last, changes.get("epochs", schedule.epochs))
        schedule = dataclasses.replace(schedule, name="custom", **changes)
    return schedule


def _interrupted(out: Path, cache: Path | None) -> None:
    where = cache if cache is not None else out / "cache"
    print(
        f"interrupted; finished jobs are cached in {where}: the same command again runs only "
        "the others",
        file=sys.stderr,
    )


def _run_noise(args: argparse.Namespace) -> int:
    from rpucircuit.design import explore as ex
    from rpucircuit.design.explore_noise import run_noise

    kw: dict[str, Any] = {}
    if args.sigmas is not None:
        kw["sigmas"] = args.sigmas
    if args.seeds is not None:
        kw["seeds"] = args.seeds
    if args.penalty is not None:
        kw["penalty_pts"] = args.penalty
    study = ex.NoiseStudy(
        network=args.network,
        model=args.model,
        schedule=_schedule(args),
        settings=tuple(args.settings),
        **kw,
    )
    out = _out(args, "noise")
    res = _run_study(run_noise, study, out, args)
    print(ex.noise_table(study, res.curve))
    print(
        f"\nlargest σ within {study.penalty_pts:g} points: "
        + ex.acceptable_text(res.acceptable, study.penalty_pts, "w")
        + f" (paper A: σ ≈ {ex.PAPER_A_SIGMA:g})"
    )
    _print_run(res.run, out)
    return 0


def _run_onoff(args: argparse.Namespace) -> int:
    from rpucircuit.design import explore_onoff as eo
    from rpucircuit.design.explore_onoff_run import run_onoff

    kw: dict[str, Any] = dict(QUICK_ONOFF) if args.quick else {}
    for field, value in (
        ("on_off", args.on_off),
        ("e_n_v_per_rthz", args.e_n),
        ("t_meas_s", args.t_meas),
        ("seeds", args.seeds),
        ("penalty_pts", args.penalty),
        ("sigma_target_w", args.sigma_target),
    ):
        if value is not None:
            kw[field] = value
    circuit = ""
    if args.circuit is not None:
        from rpucircuit.config.base import read_toml_file

        read_toml_file(args.circuit)  # a clear error for a missing or malformed file
        circuit = args.circuit.read_text(encoding="utf-8")
    study = eo.OnOffStudy(
        network=args.network,
        model=args.model,
        schedule=_schedule(args),
        line_devices=args.line_devices,
        spice_points=args.spice_points,
        circuit_toml=circuit,
        settings=tuple(args.settings),
        **kw,
    )
    study.circuit()  # a circuit the grid cannot vary fails before anything runs
    out = _out(args, "onoff")
    res = _run_study(run_onoff, study, out, args)
    print((out / "report.md").read_text(encoding="utf-8"))
    _print_run(res.run, out)
    return 0


def _out(args: argparse.Namespace, kind: str) -> Path:
    """``--out``, or ``runs/explore/<kind>-<network>[-quick]``."""
    if args.out is not None:
        return Path(args.out)
    return Path("runs") / "explore" / (f"{kind}-{args.network}" + ("-quick" if args.quick else ""))


def _run_study(runner: Any, study: Any, out: Path, args: argparse.Namespace) -> Any:
    """``runner(study, out, ...)`` on the engine the options choose; Ctrl-C says how to
    resume (:func:`_interrupted`) before it propagates."""
    try:
        return runner(
            study,
            out,
            scheduler=args.scheduler,
            n_workers=args.jobs,
            cache_dir=args.cache,
            progress=not args.no_progress,
            connect_timeout_s=args.connect_timeout,
        )
    except KeyboardInterrupt:
        _interrupted(out, args.cache)
        raise


def _print_run(run: Any, out: Path) -> None:
    jobs = f"{len(run.results)} jobs ({sum(run.cached)} cached)"
    print(f"{jobs} in {run.wall_s:.1f} s; results in {out}")
