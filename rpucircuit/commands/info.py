"""``rpucircuit info``: versions of the package, its libraries and the simulator."""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys

from rpucircuit import __version__
from rpucircuit.errors import SimulatorNotFoundError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``info`` takes no options."""


def _ngspice_version() -> str:
    """The simulator's version as :func:`rpucircuit.circuit.spice.ngspice_version` gives it
    (``ngspice-39``) and where it is, or why it cannot run."""
    from rpucircuit.circuit import spice  # only this command's run needs the circuit path

    try:
        return f"{spice.ngspice_version()} ({shutil.which('ngspice')})"
    except SimulatorNotFoundError as exc:
        return f"not available: {exc}"


def run(args: argparse.Namespace) -> int:
    """Print the package's, its dependencies' and the simulator's versions."""
    print(f"rpucircuit {__version__} (Python {sys.version.split()[0]})")
    for dist in ("numpy", "scipy", "h5py", "numba", "matplotlib", "dask", "distributed"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        print(f"  {dist:<12} {version}")
    print(f"  {'ngspice':<12} {_ngspice_version()}")
    return 0
