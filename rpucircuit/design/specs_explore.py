"""The acceptable σ and minimum on/off ratio that ``rpucircuit explore`` found, for the sheet.

``rpucircuit specs --explore DIR`` (repeatable) reads, in each folder:

* ``summary.json``, when present: a JSON object with ``acceptable_sigma_w`` (weight units)
  and/or ``min_on_off_ratio`` (> 1). The small hand-written form, for results from
  elsewhere.
* every ``*.h5`` file that is an rpucircuit result of ``explore noise`` (kind
  ``explore-noise``: its scalar ``acceptable_sigma_w``) or ``explore onoff`` (kind
  ``explore-onoff``: ``min_on_off_train`` on the grid ``t_meas_s`` × ``e_n_v_per_rthz``, of
  which the sheet takes the entry at the circuit's own t_meas and op-amp noise). Other
  rpucircuit files and other HDF5 files are passed over.

Each value must come from exactly one file; a folder set that gives neither is refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit.design.specs_sheet import ExploreResults
from rpucircuit.errors import ConfigError, StoreError

SUMMARY_NAME = "summary.json"
"""The hand-written summary's file name."""
SIGMA_KEY = "acceptable_sigma_w"
"""Key (JSON) and dataset (explore noise) of the acceptable σ."""
ON_OFF_KEY = "min_on_off_ratio"
"""Key (JSON) of the minimum on/off ratio."""
NOISE_KIND = "explore-noise"
"""Provenance kind of an ``explore noise`` results file."""
ONOFF_KIND = "explore-onoff"
"""Provenance kind of an ``explore onoff`` results file."""
GRID_REL_TOL = 1e-6
"""Relative distance within which a grid value is the circuit's own t_meas or e_n."""

MAX_SIGMA_W = 10.0
"""Largest acceptable σ (weight units) taken from explore: the bound of the input
``specs.sigma_w``; beyond it the noise budget overflows."""

Found = dict[str, tuple[float, str]]
"""Key → (value, where it came from)."""


def _positive(value: object, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key} = {value!r}: must be a number")
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ConfigError(f"{where}: {key} = {value!r}: must be finite and > 0")
    if key == ON_OFF_KEY and v <= 1.0:
        raise ConfigError(f"{where}: {key} = {value!r}: must be > 1")
    if key == SIGMA_KEY and v > MAX_SIGMA_W:
        raise ConfigError(f"{where}: {key} = {value!r}: must lie in (0, {MAX_SIGMA_W:g}]")
    return v


def _from_summary(path: Path) -> Found:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object")
    unknown = sorted(set(data) - {SIGMA_KEY, ON_OFF_KEY})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known: {SIGMA_KEY}, {ON_OFF_KEY}")
    found = {k: (_positive(v, k, str(path)), str(path)) for k, v in data.items() if v is not None}
    if not found:
        raise ConfigError(f"{path}: has neither {SIGMA_KEY} nor {ON_OFF_KEY}")
    return found


def _grid_index(axis: Any, value: float, name: str, where: str) -> int:
    grid = np.atleast_1d(np.asarray(axis, dtype=np.float64))
    hits = np.flatnonzero(np.abs(grid - value) <= GRID_REL_TOL * abs(value))
    if hits.size == 0:
        listed = ", ".join(f"{g:g}" for g in grid)
        raise ConfigError(
            f"{where}: the circuit's {name} = {value:g} is not on the explored grid "
            f"({listed}); give a circuit config with one of them, or rerun explore onoff"
        )
    return int(hits[0])


def _from_results(path: Path, *, t_meas_s: float, e_n_v_per_rthz: float) -> Found:
    from rpucircuit import store

    try:
        kind = store.read_provenance(path).kind
    except StoreError:
        return {}  # not an rpucircuit result file: not ours to read
    if kind == NOISE_KIND:
        tree, _ = store.load(path, kind=NOISE_KIND)
        value = tree.get(SIGMA_KEY)
        if isinstance(value, float) and math.isinf(value):
            raise ConfigError(
                f"{path}: the penalty stayed within the threshold over the whole σ grid, so "
                "no acceptable σ was found; rerun explore noise with larger σ values"
            )
        return {SIGMA_KEY: (_positive(value, SIGMA_KEY, str(path)), str(path))}
    if kind == ONOFF_KIND:
        tree, _ = store.load(path, kind=ONOFF_KIND)
        try:
            i = _grid_index(tree["t_meas_s"], t_meas_s, "t_meas_s", str(path))
            j = _grid_index(tree["e_n_v_per_rthz"], e_n_v_per_rthz, "e_n_v_per_rthz", str(path))
            value = float(np.asarray(tree["min_on_off_train"], dtype=np.float64)[i, j])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{path}: malformed explore onoff results (t_meas_s, e_n_v_per_rthz and "
                f"min_on_off_train over their grid): {type(exc).__name__}: {exc}"
            ) from None
        where = f"{path} (t_meas {t_meas_s:g} s, e_n {e_n_v_per_rthz:g} V/√Hz)"
        return {ON_OFF_KEY: (_positive(value, ON_OFF_KEY, where), where)}
    return {}


def _merge(into: Found, more: Found) -> None:
    for key, (value, where) in more.items():
        if key in into:
            raise ConfigError(
                f"{key} given twice, by {into[key][1]} and by {where}; pass one of them"
            )
        into[key] = (value, where)


def read_explore(
    folders: Sequence[str | Path], *, t_meas_s: float, e_n_v_per_rthz: float
) -> ExploreResults:
    """The explore results in ``folders`` (see the module docstring); ``t_meas_s`` and
    ``e_n_v_per_rthz`` (the circuit's) pick the entry of an ``explore onoff`` grid."""
    found: Found = {}
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise ConfigError(f"--explore {root}: not a folder")
        summary = root / SUMMARY_NAME
        if summary.exists() and not summary.is_file():
            raise ConfigError(f"{summary}: not a file")
        if summary.is_file():
            _merge(found, _from_summary(summary))
        for path in sorted(root.glob("*.h5")):
            _merge(found, _from_results(path, t_meas_s=t_meas_s, e_n_v_per_rthz=e_n_v_per_rthz))
    if not found:
        names = ", ".join(str(f) for f in folders)
        others = [p.name for f in folders for p in sorted(Path(f).glob("*.h5"))]
        passed = f" ({', '.join(others)}: not explore noise or onoff results)" if others else ""
        raise ConfigError(
            f"--explore {names}: no {SUMMARY_NAME} and no explore noise or onoff results "
            f"(*.h5) found{passed}"
        )
    sigma = found.get(SIGMA_KEY)
    ratio = found.get(ON_OFF_KEY)
    return ExploreResults(
        sigma_w=None if sigma is None else sigma[0],
        sigma_source="" if sigma is None else sigma[1],
        min_on_off_ratio=None if ratio is None else ratio[0],
        on_off_source="" if ratio is None else ratio[1],
    )
