"""The circuit side of ``explore onoff``: each read's output noise at a grid point, the
analytic acceptable op-amp noise and on/off ratio, and ngspice ``.noise`` checks.

σ of a read is device thermal noise, the op-amp (its e_n·G part, its broadband output
noise once, its part frozen on the line capacitance at reset) and kT/C in quadrature, in
weight units of the signal as it reaches the output: the terms of calibration's noise
model (:mod:`rpucircuit.calibration.noise`, σ² = a + b·N + c·N²) in the closed form of
:func:`rpucircuit.circuit.analytic.noise_budget`, which the ``.noise`` extraction checks.
The ADC is not in σ: the behavioral tile quantizes its output itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rpucircuit.circuit import analytic as an
from rpucircuit.circuit.extract.noise import config_noise_budget
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.design.explore import Network
from rpucircuit.training.loop import TILE_SHAPES

Direction = Literal["forward", "backward"]


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    """One read of one analog layer: its output line carries ``n_devices`` per array."""

    layer: int
    direction: Direction
    n_devices: int


def network_lines(network: Network, line_devices: int = 0) -> tuple[Line, ...]:
    """Every read of every analog layer, forward before backward per layer. Forward: an
    output row carries the tile's ``in_size`` devices; backward: a column carries
    ``out_size``. ``line_devices > 0`` gives every read that length instead (paper A's
    derivation: 4096)."""
    out: list[Line] = []
    for i, (n_out, n_in) in enumerate(TILE_SHAPES[network]):
        out.append(Line(i, "forward", line_devices or n_in))
        out.append(Line(i, "backward", line_devices or n_out))
    return tuple(out)


def point_circuit(
    base: CircuitConfig, *, on_off_ratio: float, e_n_v_per_rthz: float, t_meas_s: float
) -> CircuitConfig:
    """``base`` at one grid point: the devices' on/off ratio (mean conductance kept), the
    op-amp's e_n and the integration time; C_int follows (α·Q_unit/V_swing)."""
    device = dataclasses.replace(base.device, on_off_ratio=on_off_ratio)
    periphery = dataclasses.replace(
        base.periphery, e_n_v_per_rthz=e_n_v_per_rthz, t_meas_s=t_meas_s
    )
    return dataclasses.replace(base, device=device, periphery=periphery)


def _c_in_f(cfg: CircuitConfig, line: Line) -> float:
    """Line capacitance on the summing node: both arrays' segments of the output line
    (a row for the forward read, a column for the backward read)."""
    t = cfg.tile
    seg = t.c_seg_row_f if line.direction == "forward" else t.c_seg_col_f
    return t.n_arrays * line.n_devices * seg


def line_budget(cfg: CircuitConfig, line: Line) -> an.NoiseBudget:
    """Analytic noise budget of ``line`` in circuit ``cfg`` (weight units of the signal as
    it reaches the output), the same call the ``.noise`` extraction compares with."""
    return config_noise_budget(cfg, line.n_devices, c_in_f=_c_in_f(cfg, line))


def line_sigma_w(cfg: CircuitConfig, line: Line) -> float:
    """Output noise σ of ``line`` (weight units): device thermal, op-amp and kT/C in
    quadrature (what calibration's noise model counts; no ADC)."""
    b = line_budget(cfg, line)
    return math.sqrt(b.device_thermal_w**2 + b.opamp_w**2 + b.ktc_w**2)


def _analytic_kwargs(cfg: CircuitConfig, line: Line, sigma_w: float) -> dict[str, Any]:
    d, p = cfg.device, cfg.periphery
    return {
        "sigma_total_w": sigma_w,
        "n_rows": line.n_devices,
        "r_mean_ohm": d.r_mean_ohm,
        "w_max": d.w_max,
        "v_read_v": p.v_read_v,
        "t_meas_s": p.t_meas_s,
        "alpha_w": p.alpha,
        "v_swing_v": p.v_out_max_v,
        "adc_bits": None,
        "c_in_f": _c_in_f(cfg, line),
        "gbw_hz": p.gbw_hz,
        "r_reset_ohm": p.r_reset_ohm,
        "a0": p.a0,
        "n_arrays": cfg.tile.n_arrays,
        "temperature_k": p.temperature_k,
        "include_ktc": True,
    }


def analytic_e_n_max(
    base: CircuitConfig,
    lines: Sequence[Line],
    *,
    on_off_ratio: float,
    t_meas_s: float,
    sigma_w: float,
) -> float:
    """Largest e_n (V/√Hz) that keeps every line's σ at or below ``sigma_w`` (the longest
    line binds); NaN where the other sources alone exceed it."""
    cfg = point_circuit(base, on_off_ratio=on_off_ratio, e_n_v_per_rthz=0.0, t_meas_s=t_meas_s)
    values = [
        an.acceptable_opamp_noise_v_per_rthz(
            on_off_ratio=on_off_ratio, **_analytic_kwargs(cfg, line, sigma_w)
        )
        for line in lines
    ]
    return math.nan if any(math.isnan(v) for v in values) else min(values)


def analytic_min_on_off(
    base: CircuitConfig,
    lines: Sequence[Line],
    *,
    e_n_v_per_rthz: float,
    t_meas_s: float,
    sigma_w: float,
) -> float:
    """Smallest on/off ratio at which every line's σ stays within ``sigma_w`` with op-amp
    noise ``e_n_v_per_rthz`` (NaN: not reachable)."""
    cfg = point_circuit(base, on_off_ratio=2.0, e_n_v_per_rthz=0.0, t_meas_s=t_meas_s)
    values = []
    for line in lines:
        kw = _analytic_kwargs(cfg, line, sigma_w)
        values.append(an.min_on_off_ratio(e_n_v_per_rthz=e_n_v_per_rthz, **kw))
    return math.nan if any(math.isnan(v) for v in values) else max(values)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SpicePoint:
    """ngspice ``.noise`` of the longest line at one (t_meas, on/off)."""

    t_meas_s: float
    on_off_ratio: float
    e_n_v_per_rthz: float
    """e_n the ``.noise`` ran with (the analytic acceptable one, else the circuit's)."""
    n_devices: int
    sigma_spice_w: float
    """σ from ngspice: device + op-amp (``.noise``) and kT/C (analytic) in quadrature."""
    sigma_analytic_w: float
    """The same from the analytic budget."""
    e_n_max_spice_v_per_rthz: float
    """e_n at which ngspice's σ reaches the target (NaN: not reachable)."""
    e_n_max_analytic_v_per_rthz: float


def spice_point(
    base: CircuitConfig,
    line: Line,
    *,
    on_off_ratio: float,
    t_meas_s: float,
    sigma_w: float,
    workdir: Path,
) -> SpicePoint:
    """``.noise`` of ``line`` at (t_meas, on/off): σ beside the analytic one, and the e_n
    where ngspice's σ reaches ``sigma_w`` (σ² = D + K·e_n², D and K from one run with and
    one without the op-amp's e_n)."""
    from rpucircuit.circuit.extract.noise import noise_case

    lines = (line,)
    e_an = analytic_e_n_max(
        base, lines, on_off_ratio=on_off_ratio, t_meas_s=t_meas_s, sigma_w=sigma_w
    )
    e_run = e_an if math.isfinite(e_an) and e_an > 0 else base.periphery.e_n_v_per_rthz
    cfg = point_circuit(base, on_off_ratio=on_off_ratio, e_n_v_per_rthz=e_run, t_meas_s=t_meas_s)
    res = noise_case(cfg, n_devices=line.n_devices, workdir=workdir)
    ktc = line_budget(cfg, line).ktc_w
    d2 = res.sigma_sim_no_opamp_w**2
    k = (res.sigma_sim_w**2 - d2) / e_run**2
    remaining = sigma_w**2 - ktc**2 - d2
    e_spice = math.sqrt(remaining / k) if remaining > 0 and k > 0 else math.nan
    return SpicePoint(
        t_meas_s=t_meas_s,
        on_off_ratio=on_off_ratio,
        e_n_v_per_rthz=e_run,
        n_devices=line.n_devices,
        sigma_spice_w=math.hypot(res.sigma_sim_w, ktc),
        sigma_analytic_w=line_sigma_w(cfg, line),
        e_n_max_spice_v_per_rthz=e_spice,
        e_n_max_analytic_v_per_rthz=e_an,
    )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DesignPoint:
    """σ of a line of ``n_devices`` at the base circuit's own point, three ways."""

    n_devices: int
    sigma_spice_w: float
    """ngspice ``.noise`` (device + op-amp) with kT/C (analytic) in quadrature."""
    sigma_analytic_w: float
    """The analytic budget (:func:`line_sigma_w`)."""
    sigma_model_file_w: float
    """The model file's calibrated noise model σ(N); NaN without one."""


def design_point_checks(
    base: CircuitConfig, lines: Sequence[Line], *, model_file: str, workdir: Path
) -> tuple[DesignPoint, ...]:
    """At the base circuit's point, σ of every distinct line length of the network from
    ngspice ``.noise`` (a forward line of that length), the analytic budget and, when
    ``model_file`` (a ``.h5`` model file) carries a noise model, from that model."""
    from rpucircuit.circuit.extract.noise import noise_case

    noise = None
    if model_file.endswith(".h5"):
        from rpucircuit.model.modelfile import load_model

        noise = load_model(model_file).model.out_noise
    out = []
    for n in sorted({line.n_devices for line in lines}):
        line = Line(0, "forward", n)
        res = noise_case(base, n_devices=n, workdir=workdir / f"n{n}")
        out.append(
            DesignPoint(
                n_devices=n,
                sigma_spice_w=math.hypot(res.sigma_sim_w, line_budget(base, line).ktc_w),
                sigma_analytic_w=line_sigma_w(base, line),
                sigma_model_file_w=math.nan if noise is None else noise.sigma(n),
            )
        )
    return tuple(out)
