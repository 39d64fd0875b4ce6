"""``rpucircuit specs``: the RPU tile's specification sheet, derived from a circuit config.

``rpucircuit specs [CONFIG] [--explore DIR] [--out DIR]`` sizes the largest tile the
config's technology allows and prints the sheet's table (markdown): each quantity with its
derivation, paper A's value beside it, the ratio, whether it lies within 2× and why it
differs. ``--out`` also writes ``specs.md`` and ``specs.html`` there. The figures of merit
that are inputs come from the config's ``[specs]`` table (paper A's values by default);
``--explore`` (repeatable) takes the acceptable σ and minimum on/off ratio from
``rpucircuit explore``'s results instead of the input σ and the analytic budget
(:mod:`rpucircuit.design.specs_explore` says what it reads).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rpucircuit.config.tile import load_circuit_config, load_spec_inputs
from rpucircuit.design.specs import derive_specs
from rpucircuit.design.specs_explore import read_explore
from rpucircuit.design.specs_render import table_markdown, write_sheet
from rpucircuit.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG (optional TOML), --explore DIR, --out DIR."""
    parser.add_argument(
        "config",
        nargs="?",
        default=None,
        help="circuit config TOML: [tile], [device], [periphery] and an optional [specs] "
        "table of figures of merit (default: paper A's preset and inputs)",
    )
    parser.add_argument(
        "--explore",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="output folder of 'rpucircuit explore noise' or 'explore onoff' (repeatable): "
        "the results in its *.h5 files (or a summary.json with acceptable_sigma_w and/or "
        "min_on_off_ratio) replace the input σ and the analytic on/off ratio",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder to write specs.md and specs.html into (default: print the table only)",
    )


def run(args: argparse.Namespace) -> int:
    """Read and check every input, derive the sheet, print its table, write the files."""
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out}: exists and is not a folder")
    config = None if args.config is None else Path(args.config)
    if config is not None and config.exists() and not (config.is_file() or config.is_dir()):
        # a FIFO would block the read forever, a device (/dev/zero) never end it
        raise ConfigError(f"cannot read config file {config}: not a regular file")
    try:
        cfg = load_circuit_config(args.config, extra_tables=("campaign",))
        inputs = load_spec_inputs(args.config)
    except UnicodeDecodeError as exc:  # a binary file: the TOML reader lets it through
        raise ConfigError(
            f"cannot read config file {args.config}: not UTF-8 text (byte {exc.start})"
        ) from exc
    p = cfg.periphery
    explore = (
        None
        if args.explore is None
        else read_explore(args.explore, t_meas_s=p.t_meas_s, e_n_v_per_rthz=p.e_n_v_per_rthz)
    )
    source = "paper A's preset (gokmen_vlasov_2016)" if args.config is None else str(args.config)
    sheet = derive_specs(cfg, inputs, explore=explore, config_source=source)
    sys.stdout.write(table_markdown(sheet) + "\n")
    if args.out is not None:
        md, page = write_sheet(sheet, args.out)
        print(f"wrote {md} and {page}", file=sys.stderr)
    return 0
