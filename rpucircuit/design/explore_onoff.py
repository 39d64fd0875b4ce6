"""From the circuit to the accuracy it costs: acceptable op-amp noise against on/off ratio.

Paper A derived by hand how quiet the integrator's op-amp must be for a given on/off ratio
and integration time ``t_meas``: the output noise of a 4096-device line must stay below
the σ = 0.06 that training tolerates. ``rpucircuit explore onoff`` closes that derivation
end to end on the network that is actually trained:

1. **Circuit noise per tile.** For every grid point (on/off ratio r, op-amp input noise
   density e_n, t_meas) the circuit config (paper A's tile unless ``--circuit`` gives
   another) is changed at those three values (C_int follows from the bound α, t_meas and r),
   and the output noise σ of each read of each analog layer is computed at that read's own
   line length N (forward read: ``in_size`` devices per array on an output row; backward:
   ``out_size``, :data:`rpucircuit.training.loop.TILE_SHAPES`): device thermal noise, the
   op-amp (its e_n·G part, its broadband output noise once, its part frozen on the line
   capacitance at reset) and kT/C, the terms of calibration's noise model
   (:mod:`rpucircuit.calibration.noise`: σ² = a + b·N + c·N²) in the closed form of
   :func:`rpucircuit.circuit.analytic.noise_budget`. The ADC is not in σ: the behavioral
   tile quantizes its output itself.
2. **Checked against ngspice.** At chosen points ``.noise`` of the longest line
   (:func:`rpucircuit.circuit.extract.noise.noise_case`) gives σ without the formula; the
   report tables it beside the analytic σ, and with a model file that carries a noise model
   (a calibrated one) the file's σ(N) at its own design point stands beside both.
3. **Training.** Each grid point's per-layer σ set (rounded to 3 significant digits;
   identical sets share one job) is trained for every seed on the sweep engine, with a
   noiseless run per seed as the baseline (:mod:`rpucircuit.design.explore`).
4. **Answers.** Per (t_meas, r) the acceptable e_n is where the penalty along the e_n axis
   crosses the threshold (interval from the seed spread); per (t_meas, e_n) the smallest
   on/off ratio within the penalty (interpolated in log r). Beside them the analytic
   answers for σ = ``sigma_target`` on the network's longest line
   (:func:`~rpucircuit.circuit.analytic.acceptable_opamp_noise_v_per_rthz`,
   :func:`~rpucircuit.circuit.analytic.min_on_off_ratio`) and the same from ngspice at the
   chosen points (σ² is linear in e_n², so one ``.noise`` with and one without the op-amp
   give the e_n where σ reaches the target).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit.config.base import check_int, check_positive
from rpucircuit.config.tile import CircuitConfig, gokmen_vlasov_2016
from rpucircuit.config.training import N_ANALOG_LAYERS
from rpucircuit.design.explore import (
    DEFAULT_PENALTY_PTS,
    PAPER_A_SIGMA,
    Acceptable,
    FloatArray,
    Network,
    Schedule,
    check_grid,
    check_seeds,
    check_settings,
    crossing,
    full_schedule,
    model_table,
    paired_penalty,
    seed_spread,
    training_config,
    training_job,
)
from rpucircuit.design.explore_onoff_circuit import (
    DesignPoint,
    Line,
    SpicePoint,
    analytic_e_n_max,
    analytic_min_on_off,
    line_sigma_w,
    network_lines,
    point_circuit,
)
from rpucircuit.errors import ConfigError
from rpucircuit.jobs import Job, SweepRun

ONOFF_KIND = "explore-onoff"
"""HDF5 kind of ``explore onoff`` results."""
ONOFF_SCHEMA = 1
"""Layout version of ``explore onoff`` results."""

SIGMA_DIGITS = 3
"""Significant digits a training job's σ is rounded to: 0.1 %, far below what training
resolves, so grid points that differ by less share a job."""

DEFAULT_ON_OFF = (2.0, 3.0, 4.0, 8.0, 16.0)
"""On/off ratios of the full grid (paper A's curve spans 2 … 64; the network's shorter
lines need less, see docs/explore.md)."""
DEFAULT_E_N = (0.0, 10e-9, 20e-9, 40e-9, 80e-9, 160e-9)
"""Op-amp input noise densities (V/√Hz) of the full grid, from a noiseless op-amp to where
even the network's short lines reach the σ that costs accuracy."""
DEFAULT_T_MEAS = (40e-9, 80e-9, 160e-9)
"""Integration times (s): paper A's 80 ns and a factor 2 either side."""

# --------------------------------------------------------------------------- the study


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OnOffStudy:
    """What ``explore onoff`` computes and trains."""

    network: Network = "fc"
    """``fc`` (paper A) or ``cnn`` (paper B)."""
    model: str = "gokmen_vlasov_2016"
    """Array model trained: a preset name or a model file; its read noise is replaced by
    each grid point's per-layer σ."""
    schedule: Schedule = dataclasses.field(default_factory=full_schedule)
    on_off: tuple[float, ...] = DEFAULT_ON_OFF
    """Device on/off ratios (> 1, increasing)."""
    e_n_v_per_rthz: tuple[float, ...] = DEFAULT_E_N
    """Op-amp input-referred noise densities (V/√Hz, increasing, starting at 0)."""
    t_meas_s: tuple[float, ...] = DEFAULT_T_MEAS
    """Integration times (s, increasing)."""
    seeds: tuple[int, ...] = (1, 2, 3)
    penalty_pts: float = DEFAULT_PENALTY_PTS
    """Acceptable test-error penalty (percentage points)."""
    sigma_target_w: float = PAPER_A_SIGMA
    """σ the analytic curve budgets on the longest line (paper A: 0.06; ``explore noise``
    measures what the network tolerates)."""
    line_devices: int = 0
    """Devices per line of every read; 0 = each read's own (the network's tiles)."""
    spice_points: int = 3
    """On/off ratios per t_meas checked with ngspice ``.noise`` (spread over the grid);
    0 = none."""
    circuit_toml: str = ""
    """The circuit config (TOML text) the grid changes; empty = paper A's tile."""
    settings: tuple[str, ...] = ()
    """Array-model changes on every analog layer, ``PATH=VALUE``
    (:func:`~rpucircuit.design.explore.parse_setting`)."""

    def __post_init__(self) -> None:
        if self.network not in N_ANALOG_LAYERS:
            raise ConfigError(f"network = {self.network!r}: must be one of {list(N_ANALOG_LAYERS)}")
        check_grid("on_off", self.on_off, lo=1.0, lo_open=True)
        check_grid("e_n", self.e_n_v_per_rthz, lo=0.0)
        if self.e_n_v_per_rthz[0] != 0.0:
            raise ConfigError(
                f"e_n = {list(self.e_n_v_per_rthz)}: must start at 0 (a noiseless op-amp: "
                "what the devices and kT/C alone cost)"
            )
        if len(self.t_meas_s) < 1:
            raise ConfigError("t_meas: give at least one integration time")
        if len(self.t_meas_s) > 1:
            check_grid("t_meas", self.t_meas_s, lo=0.0, lo_open=True)
        else:
            check_positive("t_meas", self.t_meas_s[0])
        check_seeds(self.seeds)
        check_positive("penalty_pts", self.penalty_pts)
        check_positive("sigma_target", self.sigma_target_w)
        check_int("line_devices", self.line_devices, 0)
        check_int("spice_points", self.spice_points, 0, len(self.on_off))
        model_table(self.model)
        check_settings(self.settings, self.model, self.network)

    def circuit(self) -> CircuitConfig:
        """The base circuit config; refused when C_int is fixed (the grid needs it derived)."""
        if self.circuit_toml:
            from rpucircuit.config.base import parse_toml
            from rpucircuit.config.tile import circuit_config_from_data

            cfg = circuit_config_from_data(
                parse_toml(self.circuit_toml, source="--circuit"), source="--circuit"
            )
        else:
            cfg = gokmen_vlasov_2016()
        if cfg.periphery.c_int_f > 0:
            raise ConfigError(
                "--circuit: periphery.c_int_f is fixed; explore onoff varies t_meas and the "
                "on/off ratio, which set C_int through the bound α: set c_int_f = 0"
            )
        return cfg

    def lines(self) -> tuple[Line, ...]:
        """The network's reads (with :attr:`line_devices`)."""
        return network_lines(self.network, self.line_devices)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(t_meas, on/off, e_n) grid shape."""
        return len(self.t_meas_s), len(self.on_off), len(self.e_n_v_per_rthz)


def grid_sigmas(study: OnOffStudy) -> FloatArray:
    """σ (weight units) of every read at every grid point, shape (t_meas, on/off, e_n,
    reads), reads in :func:`network_lines` order."""
    base = study.circuit()
    lines = study.lines()
    out = np.empty((*study.shape, len(lines)))
    for i, t in enumerate(study.t_meas_s):
        for j, r in enumerate(study.on_off):
            for k, e in enumerate(study.e_n_v_per_rthz):
                cfg = point_circuit(base, on_off_ratio=r, e_n_v_per_rthz=e, t_meas_s=t)
                out[i, j, k] = [line_sigma_w(cfg, line) for line in lines]
    return out


def round_sigma(sigma: float) -> float:
    """σ to :data:`SIGMA_DIGITS` significant digits (0 stays 0)."""
    return float(f"{sigma:.{SIGMA_DIGITS}g}")


def onoff_jobs(study: OnOffStudy, sigmas: FloatArray) -> tuple[list[Job], list[Job]]:
    """(baseline jobs, one per seed; grid jobs, seed × t_meas × on/off × e_n in that
    order). Grid points whose rounded σ sets coincide get the same key (one training)."""
    n = N_ANALOG_LAYERS[study.network]

    def job(seed: int, fwd: Sequence[float], bwd: Sequence[float], params: dict[str, Any]) -> Job:
        cfg = training_config(
            network=study.network,
            schedule=study.schedule,
            seed=seed,
            model=study.model,
            forward=fwd,
            backward=bwd,
            settings=study.settings,
        )
        return training_job(cfg, params)

    baselines = [job(s, [0.0] * n, [0.0] * n, {"seed": s, "baseline": 1}) for s in study.seeds]
    grid: list[Job] = []
    for s in study.seeds:
        for i, t in enumerate(study.t_meas_s):
            for j, r in enumerate(study.on_off):
                for k, e in enumerate(study.e_n_v_per_rthz):
                    sig = [round_sigma(float(v)) for v in sigmas[i, j, k]]
                    params = {"seed": s, "t_meas_ns": t * 1e9, "on_off": r, "e_n_nv": e * 1e9}
                    grid.append(job(s, sig[0::2], sig[1::2], params))
    return baselines, grid


# --------------------------------------------------------------------------- answers


def _below(x: FloatArray, y: FloatArray, threshold: float, *, log_x: bool = False) -> float:
    """:func:`crossing`, but NaN when ``y[0]`` is already above the threshold (nothing on
    the grid is acceptable)."""
    if y[0] > threshold:
        return math.nan
    return crossing(x, y, threshold, log_x=log_x)


def acceptable_e_n(
    x: FloatArray, mean: FloatArray, spread: FloatArray, threshold: float
) -> Acceptable:
    """Acceptable e_n along the e_n axis: NaN when even a noiseless op-amp misses the
    threshold, +inf beyond the grid; interval from mean ± spread."""
    return Acceptable(
        value=_below(x, mean, threshold),
        low=_below(x, mean + spread, threshold),
        high=_below(x, mean - spread, threshold),
    )


def smallest_ratio(x: FloatArray, y: FloatArray, threshold: float) -> float:
    """Smallest x from which on ``y`` (a penalty falling with x) stays within
    ``threshold``, interpolated in log x between the last grid point above and the next:
    ``x[0]`` when the whole grid is within (the answer is at most that), +inf when the
    last point is above (beyond the grid)."""
    above = np.flatnonzero(y > threshold)
    if above.size == 0:
        return float(x[0])
    k = int(above[-1])
    if k == x.size - 1:
        return math.inf
    x0, x1, y0, y1 = float(x[k]), float(x[k + 1]), float(y[k]), float(y[k + 1])
    frac = (y0 - threshold) / (y0 - y1)
    return float(math.exp(math.log(x0) + frac * (math.log(x1) - math.log(x0))))


def spice_ratios(study: OnOffStudy) -> list[float]:
    """The on/off ratios checked with ngspice: ``spice_points`` spread over the grid."""
    n = study.spice_points
    if n == 0:
        return []
    idx = sorted({round(i * (len(study.on_off) - 1) / max(n - 1, 1)) for i in range(n)})
    return [study.on_off[i] for i in idx]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OnOffResult:
    """What ``explore onoff`` found (arrays over (t_meas, on/off[, e_n]))."""

    study: OnOffStudy
    sigmas: FloatArray
    """σ per read, (t_meas, on/off, e_n, reads)."""
    error_pct: FloatArray
    """Test error (%), (seeds, t_meas, on/off, e_n)."""
    baseline_pct: FloatArray
    """Each seed's noiseless test error (%)."""
    e_n_train: FloatArray
    """Acceptable e_n from training (V/√Hz), (t_meas, on/off, 3): value, low, high."""
    e_n_analytic: FloatArray
    """Acceptable e_n for σ_target on the longest line (V/√Hz), (t_meas, on/off)."""
    ratio_train: FloatArray
    """Smallest on/off ratio within the penalty from training, (t_meas, e_n)."""
    ratio_analytic: FloatArray
    """Smallest on/off ratio for σ_target (analytic), (t_meas, e_n)."""
    spice: tuple[SpicePoint, ...]
    """ngspice checks of the acceptable e_n on the longest line."""
    design: tuple[DesignPoint, ...]
    """σ at the base circuit's point per line length: ngspice, analytic, model file."""
    run: SweepRun
    files: tuple[Path, ...] = ()

    @property
    def penalty_pts(self) -> FloatArray:
        """Penalty per seed (points), (seeds, t_meas, on/off, e_n)."""
        return paired_penalty(self.error_pct, self.baseline_pct)

    @property
    def mean(self) -> FloatArray:
        """Mean penalty over seeds, (t_meas, on/off, e_n)."""
        out: FloatArray = np.mean(self.penalty_pts, axis=0)
        return out

    @property
    def spread(self) -> FloatArray:
        """Sample std of the penalty over seeds (0 for one seed)."""
        return seed_spread(self.penalty_pts)


def answers(
    study: OnOffStudy, error: FloatArray, baseline: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(acceptable e_n from training (t, r, 3), smallest ratio from training (t, e)) from
    test errors as fractions: ``error`` (seeds, t, r, e), ``baseline`` (seeds,)."""
    pen = 100.0 * (error - baseline[:, None, None, None])
    mean = np.mean(pen, axis=0)
    spread = np.std(pen, axis=0, ddof=1) if pen.shape[0] > 1 else np.zeros(mean.shape)
    e_n = np.asarray(study.e_n_v_per_rthz)
    r = np.asarray(study.on_off)
    nt, nr, ne = study.shape
    acc = np.empty((nt, nr, 3))
    for i in range(nt):
        for j in range(nr):
            a = acceptable_e_n(e_n, mean[i, j], spread[i, j], study.penalty_pts)
            acc[i, j] = (a.value, a.low, a.high)
    ratio = np.empty((nt, ne))
    for i in range(nt):
        for k in range(ne):
            ratio[i, k] = smallest_ratio(r, mean[i, :, k], study.penalty_pts)
    return acc, ratio


def analytic_answers(study: OnOffStudy, base: CircuitConfig) -> tuple[FloatArray, FloatArray]:
    """(acceptable e_n (t_meas, on/off), smallest on/off ratio (t_meas, e_n)) for
    σ ≤ ``sigma_target_w`` on every read, from the analytic budget."""
    lines = study.lines()
    sig = study.sigma_target_w
    e_an = np.array(
        [
            [
                analytic_e_n_max(base, lines, on_off_ratio=r, t_meas_s=t, sigma_w=sig)
                for r in study.on_off
            ]
            for t in study.t_meas_s
        ]
    )
    r_an = np.array(
        [
            [
                analytic_min_on_off(base, lines, e_n_v_per_rthz=e, t_meas_s=t, sigma_w=sig)
                for e in study.e_n_v_per_rthz
            ]
            for t in study.t_meas_s
        ]
    )
    return e_an, r_an
