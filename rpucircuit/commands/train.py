"""``rpucircuit train CONFIG``: train the FC or CNN network on MNIST at mini-batch 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def run(args: argparse.Namespace) -> int:
    from rpucircuit.training.loop import train

    cfg = load_config(args.config)
    out = args.out if args.out is not None else Path("runs") / "train" / args.config.stem
    try:
        result = train(
            cfg,
            out,
            resume=args.resume,
            progress=not args.no_progress,
            stop_after=args.stop_after,
            overwrite=args.overwrite,
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
    return 0
