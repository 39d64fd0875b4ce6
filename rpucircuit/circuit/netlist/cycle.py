"""Example netlists of each cycle with random conductances, inputs and bits (the CLI's use)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from rpucircuit.circuit.netlist.blocks import refuse_over_budget
from rpucircuit.circuit.netlist.elements import Netlist
from rpucircuit.circuit.netlist.line import build_line, build_noise
from rpucircuit.circuit.netlist.read import build_read
from rpucircuit.circuit.netlist.update import build_update, device_rate_factors
from rpucircuit.config.tile import Analysis, CircuitConfig
from rpucircuit.errors import NetlistError

Cycle = Literal["forward", "backward", "update", "noise", "line"]


def _conductances(
    cfg: CircuitConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    tile, dev = cfg.tile, cfg.device
    gp = rng.uniform(dev.g_off_s, dev.g_on_s, size=(tile.rows, tile.cols))
    gn = rng.uniform(dev.g_off_s, dev.g_on_s, size=(tile.rows, tile.cols)) if tile.paired else None
    return gp, gn


def _read(
    cfg: CircuitConfig, rng: np.random.Generator, direction: Literal["forward", "backward"]
) -> Netlist:
    gp, gn = _conductances(cfg, rng)
    n_in = cfg.tile.cols if direction == "forward" else cfg.tile.rows
    x = rng.uniform(-1.0, 1.0, size=n_in)
    return build_read(cfg, gp, gn, x, direction=direction)


def _update(cfg: CircuitConfig, rng: np.random.Generator) -> Netlist:
    gp, _ = _conductances(cfg, rng)  # G- drawn too, so the bits follow the same stream as a read
    rb = rng.random((cfg.tile.rows, cfg.periphery.bl)) < 0.5
    cb = rng.random((cfg.tile.cols, cfg.periphery.bl)) < 0.5
    if cfg.device.dw_min_dtod == 0.0:
        return build_update(cfg, gp, rb, cb)
    factor = device_rate_factors(cfg, gp.shape, rng=rng)  # drawn last: the rest as before
    return build_update(cfg, gp, rb, cb, rate_factor=factor)


def _noise(cfg: CircuitConfig, rng: np.random.Generator) -> Netlist:
    dev, cols = cfg.device, cfg.tile.cols
    gp = rng.uniform(dev.g_off_s, dev.g_on_s, size=cols)
    gn = rng.uniform(dev.g_off_s, dev.g_on_s, size=cols) if cfg.tile.paired else None
    return build_noise(cfg, gp, gn)


_CYCLES: dict[str, tuple[Analysis, Callable[[CircuitConfig, np.random.Generator], Netlist]]] = {
    "forward": ("tran", lambda cfg, rng: _read(cfg, rng, "forward")),
    "backward": ("tran", lambda cfg, rng: _read(cfg, rng, "backward")),
    "update": ("update", _update),
    "noise": ("noise", _noise),
    "line": ("line", lambda cfg, rng: build_line(cfg)),
}
"""Cycle -> (the analysis its SPICE budget is charged as, the function that builds it)."""

CYCLES: tuple[Cycle, ...] = ("forward", "backward", "update", "noise", "line")
"""The cycles :func:`build_cycle` knows, in the CLI's order."""


def build_cycle(cfg: CircuitConfig, cycle: Cycle, *, rng: np.random.Generator) -> Netlist:
    """A netlist of ``cycle`` for random conductances, inputs and bits drawn from ``rng``.

    The SPICE budget is checked before anything is drawn, so a tile too large for ngspice
    is refused (NetlistError) without allocating its conductances.
    """
    if cycle not in _CYCLES:
        raise NetlistError(f"cycle = {cycle!r}: must be forward, backward, update, noise or line")
    analysis, build = _CYCLES[cycle]
    refuse_over_budget(cfg, analysis)
    return build(cfg, rng)
