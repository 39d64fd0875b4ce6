"""``rpucircuit info``: versions of the package, its libraries and the simulator."""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys

from rpucircuit import __version__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``info`` takes no options."""


def _ngspice_version() -> str:
    exe = shutil.which("ngspice")
    if exe is None:
        return "not found (install: apt-get install -y ngspice libngspice0)"
    try:
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{exe}: not runnable ({exc})"
    for line in out.splitlines():
        if "ngspice-" in line:
            return line.strip(" *")
    return f"{exe}: unknown version"


def run(args: argparse.Namespace) -> int:
    print(f"rpucircuit {__version__} (Python {sys.version.split()[0]})")
    for dist in ("numpy", "scipy", "h5py", "numba", "matplotlib", "dask", "distributed"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        print(f"  {dist:<12} {version}")
    print(f"  {'ngspice':<12} {_ngspice_version()}")
    return 0
