"""``rpucircuit model export|show``: write an array-model file from a preset; print a file.

``rpucircuit model export gokmen_vlasov_2016 --out models/gokmen_vlasov_2016.h5
--ir-drop-ratio 6e-9`` writes a model file (``docs/model-file.md``) that training loads with
``model.file``; ``rpucircuit model show FILE`` prints what a file holds: provenance, the IR-drop and
output-noise models with each tile's σ and largest attenuation (the FC and CNN networks'
tiles, or those given by ``--tile``), the parameters and validation tables, the RPUConfig,
and with ``--report`` the fit report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rpucircuit.config.training import PRESETS

NETWORK_TILES: tuple[tuple[int, int], ...] = (
    (256, 785),
    (128, 257),
    (10, 129),
    (16, 26),
    (32, 401),
    (128, 513),
)
"""Tile shapes (out, in) of the FC network (first three) and the CNN (conv1, conv2, fc1;
its fc2 is the FC network's 10 × 129), listed by ``model show``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Subcommands ``export`` and ``show``."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    exp = sub.add_parser("export", help="write a model file from a preset")
    exp.add_argument("preset", choices=sorted(PRESETS), help="preset name")
    exp.add_argument("--out", type=Path, required=True, help="model file to write (.h5)")
    exp.add_argument(
        "--ir-drop-ratio",
        type=float,
        default=0.0,
        metavar="R",
        help="line segment resistance over mean device resistance (0 = no IR-drop model; "
        "paper A: 0.144 ohm / 24 Mohm = 6e-9)",
    )
    exp.add_argument(
        "--ir-drop-driver-ratio",
        type=float,
        default=0.0,
        metavar="R",
        help="line driver resistance over mean device resistance (needs --ir-drop-ratio)",
    )
    show = sub.add_parser("show", help="print what a model file holds")
    show.add_argument("file", type=Path, help="model file (.h5)")
    show.add_argument(
        "--tile",
        action="append",
        default=None,
        metavar="OUTxIN",
        help="tile shape whose output noise and largest IR-drop attenuation to list "
        "(repeatable; default: the FC and CNN tiles)",
    )
    show.add_argument("--report", action="store_true", help="print the fit report too")


def _shape(text: str) -> tuple[int, int]:
    from rpucircuit.errors import ConfigError

    parts = text.lower().split("x")
    try:
        out_size, in_size = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--tile {text!r}: give OUTxIN, e.g. 256x785") from None
    if out_size < 1 or in_size < 1:
        raise ConfigError(f"--tile {text!r}: both sizes must be >= 1")
    return out_size, in_size


def run(args: argparse.Namespace) -> int:
    from rpucircuit.model import modelfile, modelshow

    if args.action == "export":
        origin = modelfile.PresetExport(
            preset=args.preset,
            segment_ratio=args.ir_drop_ratio,
            driver_ratio=args.ir_drop_driver_ratio,
        )
        model = origin.build()
        path = modelfile.save_model(args.out, model, origin=origin)
        sha = modelfile.file_sha256(path)
        # the full digest: what model.file_sha256 in a training config takes
        print(f"wrote {path} ({model.source}; sha256 {sha})", file=sys.stderr)
        return 0
    shapes = NETWORK_TILES if args.tile is None else tuple(_shape(t) for t in args.tile)
    print(modelshow.describe(modelfile.load_model(args.file), shapes, report=args.report))
    return 0
