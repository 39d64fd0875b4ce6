"""``rpucircuit train CONFIG``: train the FC or CNN network on MNIST at mini-batch 1."""

from __future__ import annotations

import argparse
from pathlib import Path

from rpucircuit.config.base import from_dict, read_toml_file
from rpucircuit.config.training import TrainingConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG, --resume, --overwrite, --out, --stop-after, --no-progress."""
    parser.add_argument("config", type=Path, help="training config (TOML, a TrainingConfig)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: runs/train/<config name>)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the folder's checkpoint.h5 (same result as an unbroken run)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a folder that holds a checkpoint (it is replaced)",
    )
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="stop after this many epochs in total (continue later with --resume)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_config(path: Path) -> TrainingConfig:
    """Read a TrainingConfig TOML file."""
    return from_dict(TrainingConfig, read_toml_file(path))


def run(args: argparse.Namespace) -> int:
    from rpucircuit.training import train

    cfg = load_config(args.config)
    out = args.out if args.out is not None else Path("runs") / "train" / args.config.stem
    result = train(
        cfg,
        out,
        resume=args.resume,
        progress=not args.no_progress,
        stop_after=args.stop_after,
        overwrite=args.overwrite,
    )
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
