"""The ``rpucircuit`` command: one entry point, one module per subcommand.

Each subcommand lives in ``rpucircuit.commands.<name>`` and defines
``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the command being
run is imported, so ``rpucircuit train`` never loads the circuit path and vice versa.
``main(argv)`` returns the exit status, so tests call it in-process.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from rpucircuit import __version__
from rpucircuit.errors import RpuError


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, str] = {
    "info": "show versions and whether ngspice is available",
    "train": "train the FC or CNN network on MNIST (mini-batch 1, resumable)",
    "sweep": "run an experiment's jobs (cached; local pool or Dask) and report",
    "model": "write an array-model file from a preset (export) or print one (show)",
    "netlist": "write the SPICE netlist of one tile cycle (forward/backward/update/noise/line)",
    "characterize": "run the circuit characterization campaign (ngspice; cached, parallel)",
}
"""Subcommand name -> one-line help. Each has a module ``rpucircuit.commands.<name>``."""


def _overview() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return "commands:\n" + "\n".join(lines)


def _load(name: str) -> _Command:
    return cast(_Command, importlib.import_module(f"rpucircuit.commands.{name}"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog="rpucircuit",
        description="Mixed-signal co-simulation of RPU crossbar arrays.",
        epilog=_overview() + "\n\nrun 'rpucircuit COMMAND --help' for a command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"rpucircuit {__version__}")
    top.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    if not args or args[0].startswith("-"):
        top.parse_args(args or ["--help"])  # prints help/version and exits
        return 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        top.parse_args([name])  # argparse's own "invalid choice" message, exit 2
        return 2
    module = _load(name)
    parser = argparse.ArgumentParser(prog=f"rpucircuit {name}", description=COMMANDS[name])
    module.add_arguments(parser)
    ns = parser.parse_args(rest)
    try:
        return module.run(ns)
    except RpuError as exc:
        print(f"rpucircuit {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rpucircuit {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
