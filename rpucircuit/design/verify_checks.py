"""The simulations of ``rpucircuit verify``: one job per piece, through the designer's
subcircuits.

The netlists are the package's own builders' (:mod:`rpucircuit.circuit.netlist`), with
each shipped subcircuit the designer replaces swapped for theirs (:func:`adapt`): the
instance keeps its nodes and gets the documented parameters its replacement declares.
Each job is a :class:`VerifyJob` (a frozen config, so :func:`rpucircuit.jobs.run_jobs`
caches it by key and runs it on a process pool or Dask) and :func:`run_job` returns its
measured numbers as a result tree:

* ``read``: a transient read of a ``spice_size`` tile with random weights and inputs
  through the designer's drivers, devices and integrators; outputs in weight units
  through the nominal gain ``Q_unit/C_int`` against ``W·x`` (quantized inputs).
* ``nodal``: the same kind of read at full line length in the nodal solver (the config's
  op-amp model): a stripe of ``nodal_lines`` full-length output lines and one of
  ``nodal_lines`` full-length input lines; the gain a calibration removes is fitted out
  (``read`` and ``bench`` measure it), what remains is the lines' IR drop.
* ``bench``: three integrators fed through the designer's driver and a resistor chosen so
  that they receive the charge of ``output_max_w`` weight units, of twice the output
  bound and of half ``output_max_w``; every summing node carries the full tile's line
  capacitance, the third also the full line's device conductance. Gives the output at
  the largest expected input, the swing (the overdriven one's peak), the read gain at
  full size (the fraction of the charge that reaches C_int while the lines load the
  virtual ground) and the settling after the window (the slower of the first and the
  third: the largest output, and the full line's load).
* ``lines``: the far-end 50 % delay of the full tile's row and column lines (ngspice up
  to ``spice_line_max`` segments, the distributed-line formula beyond).
* ``noise``: ``.noise`` of one full-length output line with the designer's integrator,
  through the integration window of one read (:func:`single_read_variance_c2`), plus the
  op-amp noise the reset leaves on the line capacitance (a second ``.noise`` with the
  reset switch closed).
* ``update_up`` / ``update_down``: a 2×2 array with one row and one column pulsed for the
  whole bit stream: device (0, 0) is fully selected every slot, (0, 1) and (1, 0) half
  selected; their Δg ratio is the half-select disturb.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit.circuit import analytic as an
from rpucircuit.circuit import netlist as nl
from rpucircuit.circuit import nodal, spice
from rpucircuit.circuit.extract import (
    first_crossing_s,
    weights_to_conductances,
    windowed_charge_variance_c2,
    with_device,
    with_periphery,
    with_tile,
)
from rpucircuit.circuit.netlist.blocks import integrator
from rpucircuit.config.tile import CircuitConfig, quantize_inputs
from rpucircuit.design.verify_input import ROLE_BY_NAME, VerifySpec
from rpucircuit.errors import ExtractionError, RpuError

CHECK_JOBS = ("read", "nodal", "bench", "lines", "noise", "update_up", "update_down")
"""The jobs of one verification, in report order."""

SHIPPED_LIBRARY = {
    "rpu_integrator": "rpu_integrator.lib",
    "rpu_integrator_ext": "rpu_integrator.lib",
    "rpu_pulse_driver": "rpu_drivers.lib",
    "rpu_dc_driver": "rpu_drivers.lib",
    "rpu_read_sinh": "rpu_devices.lib",
    "rpu_update_rect": "rpu_devices.lib",
    "rpu_update_lin": "rpu_devices.lib",
    "rpu_update_sat": "rpu_devices.lib",
}
"""Which shipped library defines each shipped subcircuit."""


@dataclass(frozen=True, kw_only=True, slots=True)
class UserPart:
    """A role the designer fills: their subcircuit, its library copy and its parameters."""

    role: str
    """A role of :data:`rpucircuit.design.verify_input.ROLES`."""
    subckt: str
    """The designer's subcircuit name."""
    lib: str
    """File name of the library's copy in the job's library folder."""
    params: tuple[str, ...]
    """Parameters the subcircuit declares (only these are passed)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyJob:
    """One simulation of a verification (the unit of caching and of parallelism)."""

    check: str
    """One of :data:`CHECK_JOBS`."""
    circuit: CircuitConfig
    """The full tile of the design."""
    spec: VerifySpec
    """The design's spec (sizes, seed, time limit)."""
    parts: tuple[UserPart, ...]
    """The designer's subcircuits; a role not here uses the shipped one."""
    user_libs: tuple[str, ...]
    """Library copies every netlist includes (all of the designer's files)."""
    lib_dir: str
    """Folder holding the copies (and the shipped libraries a netlist still needs)."""
    libs_digest: str
    """sha256 of the designer's library texts: a changed library reruns every job."""


# --------------------------------------------------------------------------- netlists


def _part(job: VerifyJob, role: str) -> UserPart | None:
    for p in job.parts:
        if p.role == role:
            return p
    return None


def _swap(el: nl.Instance, part: UserPart) -> nl.Instance:
    params = tuple((k, v) for k, v in el.params if k in part.params)
    return dataclasses.replace(el, subckt=part.subckt, params=params)


def adapt(net: nl.Netlist, job: VerifyJob, *, user_devices: bool = False) -> nl.Netlist:
    """``net`` with every shipped subcircuit the design replaces swapped for the
    designer's, and the includes set to the designer's copies plus the shipped libraries
    still used. ``user_devices``: also turn the builders' linear device resistors
    (``d_*``) into instances of the designer's read device (a read, not a noise run)."""
    swaps: dict[str, UserPart] = {}
    for part in job.parts:
        for name in ROLE_BY_NAME[part.role].shipped:
            swaps[name] = part
    read = _part(job, "read")
    elements: list[nl.Element] = []
    for el in net.elements:
        if isinstance(el, nl.Instance) and el.subckt in swaps:
            elements.append(_swap(el, swaps[el.subckt]))
        elif user_devices and read is not None and isinstance(el, nl.Resistor):
            if el.name.startswith("d_"):
                params = (("g", 1.0 / el.ohm), ("v0", job.circuit.device.read_v0_v))
                inst = nl.Instance(el.name, (el.n1, el.n2), "rpu_read_sinh", params, el.comment)
                elements.append(_swap(inst, read))
            else:
                elements.append(el)
        else:
            elements.append(el)
    kept = {el.subckt for el in net.elements if isinstance(el, nl.Instance)} - set(swaps)
    shipped = sorted({SHIPPED_LIBRARY[k] for k in kept if k in SHIPPED_LIBRARY})
    return dataclasses.replace(net, elements=tuple(elements), libs=(*job.user_libs, *shipped))


def _run(job: VerifyJob, net: nl.Netlist, name: str, workdir: Path) -> spice.RawResult:
    sj = spice.SpiceJob.from_netlist(
        net, name=name, timeout_s=job.spec.timeout_s, lib_dir=job.lib_dir
    )
    return spice.run(sj, workdir=workdir)


def _vec(res: spice.RawResult, name: str) -> np.ndarray:
    try:
        return np.asarray(np.real(res.vector(name)), dtype=np.float64)
    except KeyError as exc:
        raise ExtractionError(f"simulator output lacks {name!r}") from exc


# --------------------------------------------------------------------------- jobs


def _read(job: VerifyJob, workdir: Path) -> dict[str, Any]:
    n = min(job.spec.spice_size, job.circuit.tile.rows, job.circuit.tile.cols)
    cfg = with_tile(job.circuit, rows=n, cols=n)
    rng = np.random.default_rng(job.spec.seed)
    w_max = cfg.device.w_max
    w = rng.uniform(-w_max, w_max, size=(n, n))
    x = rng.uniform(-1.0, 1.0, size=n)
    g_pos, g_neg = weights_to_conductances(cfg, w)
    net = nl.build_read(cfg, g_pos, g_neg if cfg.tile.paired else None, x)
    res = _run(job, adapt(net, job, user_devices=True), "read", workdir)
    t = _vec(res, "time")
    v = np.array([_vec(res, name) for name in net.role("outputs")])
    y_sim = -v[:, -1] / cfg.v_out_per_weight_v
    w_eff = (g_pos - g_neg if cfg.tile.paired else g_pos) / cfg.device.dg_unit_s
    y_ideal = w_eff @ quantize_inputs(cfg, x)
    err = np.abs(y_sim - y_ideal)
    alpha = cfg.alpha_effective
    return {
        "size": n,
        "t_s": t,
        "v_out_v": v,
        "y_sim_w": y_sim,
        "y_ideal_w": y_ideal,
        "max_error_pct": float(100.0 * err.max() / alpha),
        "rms_error_pct": float(100.0 * math.sqrt(float(np.mean(err**2))) / alpha),
        "alpha_w": alpha,
        "wall_s": res.wall_s,
    }


def _stripe_error_pct(cfg: CircuitConfig, rows: int, cols: int, seed: int) -> tuple[float, float]:
    """(largest gain-corrected read error in % of α, fitted gain) of a ``rows × cols``
    part of the tile in the nodal solver: random weights and inputs from ``seed``."""
    part = with_tile(cfg, rows=rows, cols=cols)
    rng = np.random.default_rng(seed)
    w_max = part.device.w_max
    w = rng.uniform(-w_max, w_max, size=(rows, cols))
    x = rng.uniform(-1.0, 1.0, size=cols)
    g_pos, g_neg = weights_to_conductances(part, w)
    res = nodal.read(part, g_pos, g_neg if part.tile.paired else None, x, finite_gain=True)
    y = np.asarray(res.q_c, dtype=np.float64) / part.q_unit_c
    w_eff = (g_pos - g_neg if part.tile.paired else g_pos) / part.device.dg_unit_s
    y_ideal = w_eff @ quantize_inputs(part, x)
    gain = float(y @ y_ideal / (y_ideal @ y_ideal))
    err = float(np.abs(y - gain * y_ideal).max())
    return 100.0 * err / part.alpha_effective, gain


def _nodal(job: VerifyJob, workdir: Path) -> dict[str, Any]:
    del workdir  # the nodal solver runs no simulator
    cfg = job.circuit
    t, k = cfg.tile, job.spec.nodal_lines
    rows_pct, rows_gain = _stripe_error_pct(cfg, min(k, t.rows), t.cols, job.spec.seed)
    cols_pct, cols_gain = _stripe_error_pct(cfg, t.rows, min(k, t.cols), job.spec.seed + 1)
    return {
        "stripe_lines": k,
        "rows_error_pct": rows_pct,
        "rows_gain": rows_gain,
        "cols_error_pct": cols_pct,
        "cols_gain": cols_gain,
        "error_pct": rows_pct + cols_pct,
    }


@dataclass(frozen=True, slots=True)
class _Bench:
    """One integrator of the bench: the output (weight units) its input charge stands for
    and the conductance from its summing node to ground besides the input (S)."""

    y_w: float
    shunt_s: float


def _benches(job: VerifyJob) -> tuple[_Bench, _Bench, _Bench]:
    """Bench 0: ``output_max_w`` (saturation); bench 1: twice the bound (the swing);
    bench 2: half of ``output_max_w`` with the full output line's device conductance on
    the summing node (the read gain at full size, and the settling)."""
    cfg = job.circuit
    t = cfg.tile
    y_max = job.spec.output_max_w
    g_line = t.n_arrays * t.cols * cfg.device.g_mean_s
    y2 = 0.5 * y_max
    g_sig = y2 * cfg.device.dg_unit_s
    return (
        _Bench(y_max, 0.0),
        _Bench(2.0 * max(cfg.alpha_effective, y_max), 0.0),
        _Bench(y2, max(g_line - g_sig, 0.0)),
    )


def _bench_net(job: VerifyJob) -> nl.Netlist:
    """The bench's integrators, each fed through the designer's driver and a resistor that
    sets its charge, with the full output line's capacitance on its summing node."""
    cfg = job.circuit
    p, t = cfg.periphery, cfg.tile
    t0, t_end = nl.read_times(cfg)
    c_in = t.n_arrays * t.cols * t.c_seg_row_f
    els: list[nl.Element] = []
    for k, bench in enumerate(_benches(job)):
        r_total = p.v_read_v * p.t_meas_s / (bench.y_w * cfg.q_unit_c)
        r_in = r_total - t.r_driver_ohm
        if r_in <= 0:
            raise ExtractionError(f"output {bench.y_w:g} w needs a resistance below the driver's")
        els += [
            nl.Instance(
                f"drv{k}",
                (f"d{k}",),
                "rpu_pulse_driver",
                (
                    ("v", p.v_read_v),
                    ("td", t0 - p.t_rise_s),
                    ("tw", p.t_meas_s),
                    ("tr", p.t_rise_s),
                    ("rout", t.r_driver_ohm),
                ),
                comment=f"input pulse for an output of {bench.y_w!r} weight units",
            ),
            nl.Resistor(f"in{k}", f"d{k}", f"sum{k}", r_in, comment="sets the charge"),
            nl.Capacitor(f"line{k}", f"sum{k}", "0", c_in, comment="the full tile's output line"),
            integrator(cfg, f"int{k}", f"sum{k}", f"out{k}", treset=p.t_reset_s),
        ]
        if bench.shunt_s > 0:
            els.append(
                nl.Resistor(
                    f"load{k}",
                    f"sum{k}",
                    "0",
                    1.0 / bench.shunt_s,
                    comment="the other devices of the full output line (G_mean each)",
                )
            )
    step = min(p.t_step_s, p.t_settle_s / 200.0)
    return nl.Netlist(
        title="rpucircuit verify: integrator bench",
        libs=(),
        elements=tuple(els),
        analyses=(nl.Tran(step_s=step, stop_s=t_end, max_step_s=step),),
        vectors=("v(out0)", "v(out1)", "v(out2)"),
    )


def _settle_s(t: np.ndarray, v: np.ndarray, t_edge: float, tol_v: float) -> float:
    """Time from ``t_edge`` until ``v`` stays within ``tol_v`` of its last value (s)."""
    outside = np.nonzero((t >= t_edge) & (np.abs(v - v[-1]) > tol_v))[0]
    return float(t[outside[-1] + 1] - t_edge) if outside.size else 0.0


def _bench(job: VerifyJob, workdir: Path) -> dict[str, Any]:
    cfg = job.circuit
    p = cfg.periphery
    benches = _benches(job)
    res = _run(job, adapt(_bench_net(job), job), "bench", workdir)
    t = _vec(res, "time")
    v0, v1, v2 = (_vec(res, f"v(out{k})") for k in range(3))
    swing = float(np.max(np.abs(v1)))
    at_max = abs(float(v0[-1]))
    final = float(v2[-1])
    lsb_half = cfg.adc_range_v / 2**p.adc_bits
    t_edge = nl.read_times(cfg)[0] + p.t_meas_s  # 50 % point of the input's falling edge
    settle = max(_settle_s(t, v0, t_edge, lsb_half), _settle_s(t, v2, t_edge, lsb_half))
    return {
        "t_s": t,
        "v_max_v": v0,
        "v_over_v": v1,
        "v_gain_v": v2,
        "v_out_at_max_v": at_max,
        "v_out_at_max_ideal_v": benches[0].y_w * cfg.v_out_per_weight_v,
        "swing_v": swing,
        "headroom": 1.0 - at_max / swing if swing > 0 else 0.0,
        "read_gain": -final / (benches[2].y_w * cfg.v_out_per_weight_v),
        "g_line_s": benches[2].shunt_s + benches[2].y_w * cfg.device.dg_unit_s,
        "settle_s": settle,
        "settle_tol_v": lsb_half,
        "t_settle_budget_s": p.t_settle_s,
        "wall_s": res.wall_s,
    }


def _line_delay(job: VerifyJob, line: str, workdir: Path) -> tuple[float, float, str]:
    """(far-end 50 % delay, formula's delay, how measured) of the tile's ``line``."""
    cfg = job.circuit
    t = cfg.tile
    n = t.cols if line == "row" else t.rows
    r = t.r_seg_row_ohm if line == "row" else t.r_seg_col_ohm
    c = t.c_seg_row_f if line == "row" else t.c_seg_col_f
    formula = an.distributed_delay_50_s(n * r, n * c, r_driver_ohm=t.r_driver_ohm)
    if n > job.spec.spice_line_max:
        return formula, formula, "formula"
    sharp = with_periphery(cfg, t_rise_s=1e-13)
    net = nl.build_line(sharp, line=line, n=n, points=2000)  # type: ignore[arg-type]
    res = _run(job, net, f"line-{line}", workdir)
    far = _vec(res, net.role("ends")[1])
    time = _vec(res, "time")
    t50 = first_crossing_s(time, far, 0.5 * float(far[-1])) - sharp.periphery.t_rise_s / 2.0
    return t50, formula, "ngspice"


def _lines(job: VerifyJob, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in ("row", "col"):
        t50, formula, how = _line_delay(job, line, workdir)
        out[line] = {"t50_s": t50, "formula_s": formula, "method": how}
    out["budget_s"] = job.spec.settle_fraction * job.circuit.periphery.t_pulse_s
    return out


def single_read_variance_c2(f_hz: np.ndarray, s_i_a2_per_hz: np.ndarray, t_meas_s: float) -> float:
    """Charge variance of one reset-integrate-sample read from a summing-node current
    PSD (C²), pure.

    :func:`~rpucircuit.circuit.extract.windowed_charge_variance_c2` puts the whole spectrum
    through the window ``sin²(πfT)/(πf)²``, whose average ``1/(2π²f²)`` far above 1/T
    counts broadband noise twice, at both ends of the window. A read starts from a reset,
    so that part is sampled once, at the end: above ``f_split = 20/T`` (where the devices'
    share is < 1 % of theirs) the tail is counted at half weight. What the reset freezes
    is added by the caller.
    """
    var_all = windowed_charge_variance_c2(f_hz, s_i_a2_per_hz, t_meas_s)
    f_split = 20.0 / t_meas_s
    if f_hz[-1] <= f_split:
        return var_all
    hi = np.geomspace(f_split, float(f_hz[-1]), 2000)
    log_s = np.log(np.maximum(s_i_a2_per_hz, 1e-300))
    s_hi = np.exp(np.interp(np.log(hi), np.log(f_hz), log_s))
    tail = float(np.trapezoid(s_hi / (2.0 * math.pi**2 * hi**2), hi))
    return var_all - 0.5 * tail


def _noise_spectrum(
    job: VerifyJob, net: nl.Netlist, name: str, workdir: Path
) -> tuple[np.ndarray, np.ndarray]:
    res = _run(job, adapt(net, job), name, workdir)
    try:
        plot = res.plot("noise spectral")
        f = np.asarray(np.real(plot["frequency"]), dtype=np.float64)
        onoise = np.asarray(np.real(plot["onoise_spectrum"]), dtype=np.float64)
    except KeyError as exc:
        raise ExtractionError(f"noise output incomplete: {exc}") from exc
    return f, onoise


def _reset_net(net: nl.Netlist) -> nl.Netlist:
    """``net`` with the integrator's reset switch closed and the summing node as output."""
    els = tuple(
        dataclasses.replace(
            el, params=tuple((k, 1.0 if k == "treset" else v) for k, v in el.params)
        )
        if isinstance(el, nl.Instance) and el.subckt == "rpu_integrator"
        else el
        for el in net.elements
    )
    old = net.analyses[0]
    assert isinstance(old, nl.Noise)
    return dataclasses.replace(
        net, elements=els, analyses=(dataclasses.replace(old, output="sum0"),)
    )


def _noise(job: VerifyJob, workdir: Path) -> dict[str, Any]:
    cfg = job.circuit
    p, t = cfg.periphery, cfg.tile
    n = t.cols
    g = np.full(n, cfg.device.g_mean_s)
    net = nl.build_noise(
        cfg, g, g.copy() if t.paired else None, points_per_decade=10, f_stop_hz=1e11
    )
    f, onoise = _noise_spectrum(job, net, "noise", workdir)
    s_i = onoise**2 * (2.0 * math.pi * f * cfg.c_int_f) ** 2
    var_read = single_read_variance_c2(f, s_i, p.t_meas_s)
    # The op-amp's noise on the summing node when the reset switch opens stays on the
    # line capacitance: C_in²·∫S_vn/(1 + (2πf·R_rst·C_int)²) df (switch closed, R_rst of
    # the config). Needs an integrator with a treset parameter to close the switch.
    integ = _part(job, "integrator")
    var_reset = 0.0
    reset_measured = integ is None or "treset" in integ.params
    if reset_measured:
        fr, s_vn = _noise_spectrum(job, _reset_net(net), "noise-reset", workdir)
        c_in = t.n_arrays * n * t.c_seg_row_f
        lowpass = 1.0 / (1.0 + (2.0 * math.pi * fr * p.r_reset_ohm * cfg.c_int_f) ** 2)
        var_reset = c_in**2 * float(np.trapezoid(s_vn**2 * lowpass, fr))
    return {
        "n_devices": n,
        "f_hz": f,
        "onoise_v_per_rthz": onoise,
        "sigma_read_w": math.sqrt(var_read) / cfg.q_unit_c,
        "sigma_reset_w": math.sqrt(var_reset) / cfg.q_unit_c,
        "reset_measured": int(reset_measured),
        "sigma_w": math.sqrt(var_read + var_reset) / cfg.q_unit_c,
    }


def _update(job: VerifyJob, polarity: int, workdir: Path) -> dict[str, Any]:
    cfg = with_device(with_tile(job.circuit, rows=2, cols=2), dw_min_dtod=0.0)
    bl = cfg.periphery.bl
    bits = np.zeros((2, bl), dtype=bool)
    bits[0, :] = True  # line 0 pulsed in every slot, line 1 never
    g0 = np.full((2, 2), cfg.device.g_mean_s)
    net = nl.build_update(cfg, g0, bits, bits, polarity=1 if polarity > 0 else -1)
    res = _run(job, adapt(net, job), f"update-{'up' if polarity > 0 else 'down'}", workdir)
    dg = np.array([_vec(res, v)[-1] for v in net.role("states")]).reshape(2, 2) * 1e-9
    full = float(dg[0, 0])
    half = 0.5 * float(dg[0, 1] + dg[1, 0])
    if full == 0.0:
        raise ExtractionError("the fully selected device did not change: no update response")
    return {
        "polarity": polarity,
        "dg_s": dg,
        "dg_full_s": full,
        "dg_half_s": half,
        "ratio": abs(half / full),
        "wall_s": res.wall_s,
    }


def run_job(job: VerifyJob, *, workdir: str | Path) -> dict[str, Any]:
    """Run one verification job; its measured numbers as a result tree. Module level, so
    that ``functools.partial(run_job, workdir=...)`` runs in pool and Dask workers."""
    wd = Path(workdir)
    runners = {
        "read": lambda: _read(job, wd),
        "nodal": lambda: _nodal(job, wd),
        "bench": lambda: _bench(job, wd),
        "lines": lambda: _lines(job, wd),
        "noise": lambda: _noise(job, wd),
        "update_up": lambda: _update(job, 1, wd),
        "update_down": lambda: _update(job, -1, wd),
    }
    runner = runners.get(job.check)
    if runner is None:
        raise RpuError(f"check = {job.check!r}: must be one of {list(CHECK_JOBS)}")
    return runner()


def tree_float(tree: Mapping[str, Any], key: str) -> float:
    """A scalar of a result tree as a float."""
    return float(np.asarray(tree[key]))
