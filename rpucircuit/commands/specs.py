"""``rpucircuit specs``: under construction (placeholder, replaced before release)."""

from __future__ import annotations

import argparse

from rpucircuit.errors import RpuError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options yet."""


def run(args: argparse.Namespace) -> int:
    """Refuse: not built yet."""
    raise RpuError("specs: not built yet")
