"""``rpucircuit train CONFIG``: train the FC or CNN network on MNIST at mini-batch 1.

A config with a ``[cosim]`` table also runs circuit spot checks after chosen epochs
(:mod:`rpucircuit.calibration.cosim`, ``docs/cosim.md``): the hook is built, and a bad
table refused, before training starts; its rows go into ``history.h5`` and
``cosim_error.png``. Only then is the circuit path imported (a co-simulated training run
is a design answer built on calibration); without ``[cosim]`` this command loads the
model path only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rpucircuit import store
from rpucircuit.config.base import config_key, from_dict, read_toml_file
from rpucircuit.config.training import TrainingConfig
from rpucircuit.errors import StoreError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG, --resume, --overwrite, --out, --stop-after, --no-progress."""
    parser.add_argument("config", type=Path, help="training config (TOML, a TrainingConfig)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: runs/train/<config name>)",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue from the folder's checkpoint.h5 (same result as an unbroken run)",
    )
    start.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a folder that holds a checkpoint (it is replaced)",
    )
    parser.add_argument(
        "--stop-after",
        type=_positive_int,
        default=None,
        metavar="EPOCHS",
        help="stop after this many epochs in total (continue later with --resume)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _has_checkpoint_of(path: Path, cfg: TrainingConfig) -> bool:
    """Whether ``path`` is a checkpoint this config can be resumed from."""
    try:
        return path.is_file() and store.read_provenance(path).config_key == config_key(cfg)
    except StoreError:
        return False


def load_config(path: Path) -> TrainingConfig:
    """Read a TrainingConfig TOML file."""
    return from_dict(TrainingConfig, read_toml_file(path))


def epoch_hooks(cfg: TrainingConfig) -> dict[str, Any]:
    """The config's epoch hooks: the ``[cosim]`` spot checks when the table is there (built
    now, so a bad table fails before training starts)."""
    if cfg.cosim is None:
        return {}
    from rpucircuit.calibration import cosim

    return {cosim.HOOK_NAME: cosim.build_hook(cfg)}


def run(args: argparse.Namespace) -> int:
    from rpucircuit.training.loop import train

    cfg = load_config(args.config)
    out = args.out if args.out is not None else Path("runs") / "train" / args.config.stem
    hooks = epoch_hooks(cfg)
    try:
        result = train(
            cfg,
            out,
            resume=args.resume,
            progress=not args.no_progress,
            stop_after=args.stop_after,
            overwrite=args.overwrite,
            epoch_hooks=hooks,
        )
    except KeyboardInterrupt:
        if _has_checkpoint_of(out / "checkpoint.h5", cfg):
            print(
                f"interrupted; the last finished epoch is in {out / 'checkpoint.h5'}: "
                f"continue with 'rpucircuit train {args.config} --out {out} --resume'",
                file=sys.stderr,
            )
        raise
    h = result.history
    done = len(h["test_error"])
    print(f"{cfg.network} on {cfg.n_train} MNIST images, {done}/{cfg.epochs} epochs in {out}")
    if done:
        print(
            f"  test error after epoch {done}: {100 * result.test_error_final:.2f} % "
            f"(mean of the last {min(cfg.eval_last, done)}: {100 * result.test_error_avg:.2f} %)"
        )
        print(f"  training speed: {float(h['samples_per_s'][-1]):.0f} samples/s (last epoch)")
        print(f"  files: {out / 'history.h5'}, {out / 'test_error.png'}, {out / 'checkpoint.h5'}")
    records = result.hook_records.get("cosim")
    if records is not None and len(records["epoch"]):
        _report_cosim(records, out)
    return 0


def _report_cosim(records: dict[str, Any], out: Path) -> None:
    """The spot checks' plot, and one line per layer for the last checked epoch."""
    from rpucircuit.calibration import cosim

    path = cosim.plot_records(records, out / "cosim_error.png")
    last = int(records["epoch"][-1])
    print(f"  circuit spot checks after epoch {last} (circuit − behavioral, % of α, RMS / max):")
    for k in range(len(records["epoch"])):
        if int(records["epoch"][k]) != last:
            continue
        parts = [
            f"{a} {float(records[a + '_rms_pct'][k]):.3g} / {float(records[a + '_max_pct'][k]):.3g}"
            for a in cosim.ANALYSES
            if records[a + "_rms_pct"][k] == records[a + "_rms_pct"][k]  # not NaN
        ]
        status = str(records["status"][k])
        note = "" if status == "ok" else f" [{status}: {records['message'][k]}]"
        print(f"    layer {int(records['layer'][k])}: {', '.join(parts) or 'none'}{note}")
    print(f"  spot-check plot: {path}")
