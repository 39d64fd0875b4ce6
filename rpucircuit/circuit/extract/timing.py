"""Timing: far-end delay of lines vs their length, and the integrator's settling, in ngspice
against the distributed-line formula and the Elmore delay."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rpucircuit.circuit import analytic as an
from rpucircuit.circuit.extract.common import (
    FloatArray,
    first_crossing_s,
    real_vector,
    run_netlist,
    weights_to_conductances,
    with_periphery,
    with_tile,
)
from rpucircuit.circuit.netlist import Tran, build_line, build_read, read_times
from rpucircuit.config.tile import CircuitConfig


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TimingResult:
    """Line delay vs line length from ngspice step responses, against the formulas."""

    n_segments: NDArray[np.int64]
    t50_sim_s: FloatArray
    """Simulated 50 % delay at the far end of a bare line (no devices), from the input's
    50 % point (s)."""
    t50_loaded_sim_s: FloatArray
    """The same with a device of G_mean to ground at every cross point (50 % of the final
    value, which the IR drop lowers)."""
    t50_distributed_s: FloatArray
    """Bakoglu's distributed-line formula with the driver (s)."""
    elmore_s: FloatArray
    """Elmore delay of the ladder with the driver (s)."""
    pulse_width_s: float
    budget_fraction: float
    n_max_sim: int
    """Largest cross points per line whose simulated 50 % delay (fitted a·N² + b·N through
    the simulated sizes) is within the budget."""
    n_max_distributed: int
    """The same from the distributed formula."""
    n_max_elmore: int
    """The same from the Elmore delay (paper A's rule reproduced)."""
    settle_tau_s: float
    """Analytic closed-loop time constant of the integrator on the tile's output line."""
    settle_t_s: FloatArray
    """Integrator output of the settling run: time (s) from the end of the input pulses."""
    settle_v_v: FloatArray
    """Integrator output of the settling run (V)."""
    settle_sim_s: float
    """Simulated settling time: from the 50 % point of the input pulses' falling edge until
    the output stays within ``settle_tol`` of its final value (s)."""
    settle_analytic_s: float
    """``τ·ln(lag/tol)``: the output lags an ideal ramp by ``slope·τ`` and that lag decays
    with the closed-loop time constant τ (s)."""
    settle_tol: float
    """Settling tolerance, relative to the final output."""


def _largest_n(coeff_n2: float, coeff_n: float, budget: float) -> int:
    disc = coeff_n**2 + 4.0 * coeff_n2 * budget
    return math.floor((-coeff_n + math.sqrt(disc)) / (2.0 * coeff_n2))


def timing_case(
    cfg: CircuitConfig,
    sizes: Sequence[int],
    *,
    budget_fraction: float = 0.1,
    workdir: Path,
    timeout_s: float = 300.0,
) -> TimingResult:
    """Step responses of row lines of ``sizes`` segments (ngspice), bare and loaded."""
    sharp = with_periphery(cfg, t_rise_s=1e-13)  # a near-ideal step (0.1 ps)
    t = cfg.tile
    r_seg, c_seg, r_drv = t.r_seg_row_ohm, t.c_seg_row_f, t.r_driver_ohm
    t_in50 = sharp.periphery.t_rise_s / 2.0
    sims: list[float] = []
    loaded: list[float] = []
    for n in sizes:
        for load, out in ((False, sims), (True, loaded)):
            net = build_line(sharp, n=int(n), load_devices=load, points=2000)
            res = run_netlist(net, name=f"line{n}", workdir=workdir, timeout_s=timeout_s)
            far = real_vector(res, net.role("ends")[1])
            out.append(
                first_crossing_s(real_vector(res, "time"), far, 0.5 * float(far[-1])) - t_in50
            )
    ns = np.asarray(sizes, dtype=np.int64)
    dist = np.array(
        [an.distributed_delay_50_s(n * r_seg, n * c_seg, r_driver_ohm=r_drv) for n in ns]
    )
    elm = np.array(
        [an.elmore_delay_s(n * r_seg, n * c_seg, r_driver_ohm=r_drv, n_segments=int(n)) for n in ns]
    )
    budget = budget_fraction * cfg.periphery.t_pulse_s
    sim = np.asarray(sims, dtype=np.float64)
    (a, b), *_ = np.linalg.lstsq(np.column_stack([ns**2, ns]).astype(float), sim, rcond=None)
    rc = r_seg * c_seg
    n_dist = _largest_n(an.SAKURAI_DISTRIBUTED_50 * rc, an.LN2 * r_drv * c_seg, budget)
    n_elm = _largest_n(0.5 * rc, (0.5 * rc + r_drv * c_seg), budget)
    c_in = t.n_arrays * t.cols * c_seg
    tau = an.integrator_settling_tau_s(cfg.periphery.gbw_hz, cfg.c_int_f, c_in)
    st, sv, s_sim, s_ana, tol = _settling(cfg, tau, workdir=workdir, timeout_s=timeout_s)
    return TimingResult(
        n_segments=ns,
        t50_sim_s=sim,
        t50_loaded_sim_s=np.asarray(loaded, dtype=np.float64),
        t50_distributed_s=dist,
        elmore_s=elm,
        pulse_width_s=cfg.periphery.t_pulse_s,
        budget_fraction=budget_fraction,
        n_max_sim=_largest_n(float(a), float(b), budget),
        n_max_distributed=n_dist,
        n_max_elmore=n_elm,
        settle_tau_s=tau,
        settle_t_s=st,
        settle_v_v=sv,
        settle_sim_s=s_sim,
        settle_analytic_s=s_ana,
        settle_tol=tol,
    )


def _settling(
    cfg: CircuitConfig, tau_s: float, *, workdir: Path, timeout_s: float, tol: float = 1e-3
) -> tuple[FloatArray, FloatArray, float, float, float]:
    """Transient of one output line of the tile (all ``cols`` devices, inputs at full
    width, output at half the bound) with a time step of τ/10; returns the waveform after
    the input pulses end, the simulated and the analytic settling time, and ``tol``."""
    one = with_tile(cfg, rows=1)
    p = one.periphery
    cols = one.tile.cols
    w = np.full((1, cols), min(one.device.w_max, 0.5 * one.alpha_effective / cols))
    g_pos, g_neg = weights_to_conductances(one, w)
    net = build_read(one, g_pos, g_neg if one.tile.paired else None, np.ones(cols))
    t0, t_end = read_times(one)
    fine = Tran(step_s=tau_s / 10.0, stop_s=t_end, max_step_s=tau_s / 10.0)
    net = dataclasses.replace(net, analyses=(fine,))
    res = run_netlist(net, name="settle", workdir=workdir, timeout_s=timeout_s)
    t = real_vector(res, "time")
    v = real_vector(res, net.role("outputs")[0])
    t_edge = t0 + p.t_meas_s  # 50 % point of the falling edge
    final = float(v[-1])
    after = t >= t_edge
    outside = np.nonzero(after & (np.abs(v - final) > tol * abs(final)))[0]
    settled = float(t[outside[-1] + 1] - t_edge) if outside.size else 0.0
    slope = final / p.t_meas_s
    lag = abs(slope) * tau_s
    analytic = tau_s * math.log(lag / (tol * abs(final))) if lag > tol * abs(final) else 0.0
    return t[after] - t_edge, v[after], settled, analytic, tol
