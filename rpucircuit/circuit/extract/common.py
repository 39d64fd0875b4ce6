"""What every analysis shares: running a netlist, reading its vectors, config variants, the
weight -> conductance map, and the tolerance for "zero" of computed values.

Simulator vector names are read here (:func:`real_vector`) and in the analyses of this
package; they never leave :mod:`rpucircuit.circuit.extract`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rpucircuit.circuit import spice
from rpucircuit.circuit.netlist import Netlist
from rpucircuit.circuit.spice import RawResult
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.errors import ExtractionError

FloatArray = NDArray[np.float64]

RELATIVE_ZERO = 1e-9
"""A computed quantity below this fraction of its data's scale counts as zero: float64
rounding leaves ~1e-16 of the scale (times a condition number) where the exact answer is 0."""


def first_crossing_s(t_s: ArrayLike, v: ArrayLike, level: float) -> float:
    """First time a waveform crosses ``level`` upwards, linearly interpolated (s).

    Raises :class:`ExtractionError` when the waveform never reaches the level.
    """
    t = np.asarray(t_s, dtype=np.float64)
    y = np.asarray(v, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1 or t.size < 2:
        raise ExtractionError(f"waveform shapes {t.shape} and {y.shape}: need two equal 1-D arrays")
    above = np.nonzero(y >= level)[0]
    if above.size == 0:
        raise ExtractionError(f"waveform never reaches {level:g} (max {float(y.max()):g})")
    i = int(above[0])
    if i == 0:
        return float(t[0])
    t0, t1, y0, y1 = t[i - 1], t[i], y[i - 1], y[i]
    return float(t0 + (level - y0) * (t1 - t0) / (y1 - y0))


def job_name(text: str) -> str:
    """A run-folder name ngspice jobs accept, derived from a case name."""
    name = re.sub(r"[^a-z0-9_-]", "-", text.lower())[:64]
    return name if name[:1].isalpha() else f"j{name}"[:64]


def run_netlist(netlist: Netlist, *, name: str, workdir: Path, timeout_s: float) -> RawResult:
    job = spice.SpiceJob.from_netlist(netlist, name=job_name(name), timeout_s=timeout_s)
    return spice.run(job, workdir=workdir)


def real_vector(result: RawResult, vector: str) -> FloatArray:
    try:
        values = result.vector(vector)
    except KeyError as exc:
        raise ExtractionError(f"simulator output lacks {vector!r}") from exc
    return np.asarray(np.real(values), dtype=np.float64)


def with_device(cfg: CircuitConfig, **changes: Any) -> CircuitConfig:
    """``cfg`` with device fields changed."""
    return dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, **changes))


def with_periphery(cfg: CircuitConfig, **changes: Any) -> CircuitConfig:
    """``cfg`` with periphery fields changed."""
    return dataclasses.replace(cfg, periphery=dataclasses.replace(cfg.periphery, **changes))


def with_tile(cfg: CircuitConfig, **changes: Any) -> CircuitConfig:
    """``cfg`` with tile fields changed."""
    return dataclasses.replace(cfg, tile=dataclasses.replace(cfg.tile, **changes))


def without_line_resistance(cfg: CircuitConfig) -> CircuitConfig:
    """``cfg`` with zero resistance on every line (capacitances and drivers kept)."""
    t = cfg.tile
    return with_tile(
        cfg,
        row_line=dataclasses.replace(t.row_line, r_ohm_per_um=0.0),
        col_line=dataclasses.replace(t.col_line, r_ohm_per_um=0.0),
    )


def weights_to_conductances(cfg: CircuitConfig, w: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Pair conductances for weights ``w`` (weight units): ``G± = G_mean ± w·ΔG_unit/2``.

    ``|w| <= w_max`` keeps both devices within ``[G_off, G_on]``.
    """
    ww = np.asarray(w, dtype=np.float64)
    d = cfg.device
    if np.any(np.abs(ww) > d.w_max * (1 + 1e-12)):
        raise ExtractionError(f"weights must lie in ±w_max = ±{d.w_max:g}")
    half = 0.5 * ww * d.dg_unit_s
    return d.g_mean_s + half, d.g_mean_s - half
