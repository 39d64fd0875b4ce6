"""``rpucircuit netlist``: write the SPICE netlist of one cycle of a tile.

With ``--out`` the libraries the netlist ``.include``\\s by bare name are copied beside it,
so ``ngspice -b OUT`` runs from any folder (ngspice looks for them next to the netlist);
the copies are written atomically like the netlist, and the output names them. On standard
output only the netlist text is written; a note on standard error says where its
libraries are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rpucircuit.circuit.netlist import CYCLES, Netlist, build_cycle, libraries, render
from rpucircuit.config.tile import CircuitConfig, load_circuit_config
from rpucircuit.errors import ConfigError
from rpucircuit.fileio import atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG (optional TOML with [tile], [device], [periphery]), --cycle, --out, --seed."""
    parser.add_argument(
        "config",
        nargs="?",
        default=None,
        help="circuit config TOML: tables [tile], [device], [periphery], at the top level or "
        "in one [circuit] table, as 'rpucircuit characterize' reads them (default: the "
        "paper-A preset, 32x32)",
    )
    parser.add_argument("--cycle", choices=CYCLES, default="forward", help="which circuit")
    parser.add_argument(
        "--out",
        default=None,
        help="output file; the .lib files it includes are copied beside it "
        "(default: standard output)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random conductances, inputs and bits"
    )


def load_config(path: str | None) -> CircuitConfig:
    """The circuit config in ``path``, read as ``rpucircuit characterize`` reads it (a
    campaign file's ``[campaign]`` table is skipped), or the preset when ``path`` is None."""
    return load_circuit_config(path, extra_tables=("campaign",))


def _write_with_libraries(out: Path, text: str, netlist: Netlist) -> list[Path]:
    """Write the netlist and copy its libraries beside it, each file atomically."""
    copies = []
    for lib in libraries(netlist):
        copies.append(atomic_write_text(out.parent / lib.name, lib.read_text(encoding="utf-8")))
    atomic_write_text(out, text)
    return copies


def run(args: argparse.Namespace) -> int:
    """Build, render and write the netlist (and, with ``--out``, its libraries)."""
    if args.seed < 0:
        raise ConfigError(f"--seed = {args.seed}: must be an integer >= 0")
    cfg = load_config(args.config)
    netlist = build_cycle(cfg, args.cycle, rng=np.random.default_rng(args.seed))
    text = render(netlist)
    if args.out is None:
        sys.stdout.write(text)
        if netlist.libs:
            where = libraries(netlist)[0].parent
            print(
                f"note: the netlist includes {', '.join(netlist.libs)} from {where}; "
                "--out FILE copies them beside FILE",
                file=sys.stderr,
            )
        return 0
    out = Path(args.out)
    copies = _write_with_libraries(out, text, netlist)
    copied = f"; copied {', '.join(p.name for p in copies)} beside it" if copies else ""
    print(f"wrote {out} ({args.cycle}{copied}); run: ngspice -b {out}", file=sys.stderr)
    return 0
