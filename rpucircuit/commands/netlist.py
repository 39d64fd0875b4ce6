"""``rpucircuit netlist``: write the SPICE netlist of one cycle of a tile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rpucircuit.circuit.netlist import build_cycle, render
from rpucircuit.config.base import from_dict, read_toml_file
from rpucircuit.config.tile import CircuitConfig, gokmen_vlasov_2016
from rpucircuit.fileio import atomic_write_text

CYCLES = ("forward", "backward", "update", "noise", "line")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG (optional TOML with [tile], [device], [periphery]), --cycle, --out, --seed."""
    parser.add_argument(
        "config",
        nargs="?",
        default=None,
        help="circuit config TOML (default: the embedded paper-A preset, 32x32)",
    )
    parser.add_argument("--cycle", choices=CYCLES, default="forward", help="which circuit")
    parser.add_argument("--out", default=None, help="output file (default: standard output)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random conductances, inputs and bits"
    )


def load_config(path: str | None) -> CircuitConfig:
    """The config in ``path`` (a whole file of [tile]/[device]/[periphery] tables, or one
    [circuit] table holding them), or the default preset when ``path`` is None."""
    if path is None:
        return gokmen_vlasov_2016()
    data = read_toml_file(path)
    if "circuit" in data and isinstance(data["circuit"], dict):
        return from_dict(CircuitConfig, data["circuit"], path="circuit")
    return from_dict(CircuitConfig, data)


def run(args: argparse.Namespace) -> int:
    """Build, render and write the netlist; the libraries it includes are listed."""
    cfg = load_config(args.config)
    netlist = build_cycle(cfg, args.cycle, rng=np.random.default_rng(args.seed))
    text = render(netlist)
    if args.out is None:
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        atomic_write_text(out, text)
        libs = ", ".join(netlist.libs) or "none"
        print(f"wrote {out} ({args.cycle}; includes from netlists/: {libs})", file=sys.stderr)
    return 0
