"""The ``rpucircuit`` command: one entry point, one module per subcommand.

Each subcommand lives in ``rpucircuit.commands.<name>`` and defines
``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the command being
run is imported, so ``rpucircuit train`` never loads the circuit path and vice versa.
``main(argv)`` returns the exit status, so tests call it in-process.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
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
    "calibrate": "fit and validate an array-model file from a characterization file",
    "run": "the main job: characterize, calibrate, train calibrated vs preset, report",
    "explore": "derive the acceptable output noise (noise) or on/off ratio (onoff) by training",
    "specs": "the tile's specification sheet derived from a circuit config (markdown, HTML)",
    "verify": "check a designer's own peripheral circuits against a spec in ngspice",
}
"""Subcommand name -> one-line help. Each has a module ``rpucircuit.commands.<name>``."""


def _overview() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return "commands:\n" + "\n".join(lines)


def _load(name: str) -> _Command:
    return cast(_Command, importlib.import_module(f"rpucircuit.commands.{name}"))


EXIT_BROKEN_PIPE = 128 + 13
"""Exit status when the reader of standard output went away (``rpucircuit ... | head``):
what a process killed by SIGPIPE reports to the shell."""


def _silence_stdout() -> None:
    """Point standard output at the null device, so that the interpreter's final flush of
    the dead pipe raises nothing (Python's documented recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # no real file descriptor behind sys.stdout (an in-process caller's capture)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status.

    Errors of the package (bad configs, refused circuits, failed simulations) and of the
    operating system (unreadable or unwritable files) end in one line on standard error
    and status 1, never a traceback; a closed standard output ends the command quietly.
    """
    try:
        try:
            return _dispatch(list(sys.argv[1:] if argv is None else argv))
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _dispatch(args: list[str]) -> int:
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
    except BrokenPipeError:
        raise  # handled by main: the reader went away, not an error of this command
    except OSError as exc:
        print(f"rpucircuit {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rpucircuit {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
