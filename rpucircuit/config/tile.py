"""Circuit-side configuration: the crossbar tile, its devices and its periphery.

Everything here is SI with the unit in the name. The derived quantities that the netlist
builders, the nodal solver and the analyses share (segment R and C, G_on / G_off, the
weight scale, C_int implied by the output bound, the update model's V0, the simulation
cost estimate) are defined once, as properties of :class:`CircuitConfig` and the small
functions at the end of this module; nothing else recomputes them.

Weight scale (one place, used everywhere): a weight is ``w = (G⁺ − G⁻)/ΔG_unit`` on a pair
of identical arrays. Full-scale weight ``w_max`` means one device at ``G_on`` and its
partner at ``G_off``, so ``ΔG_unit = (G_on − G_off)/w_max``. A time-encoded input ``x = 1``
is a pulse of amplitude ``V_read`` lasting the full ``t_meas``, so one weight unit of output
is the charge ``Q_unit = V_read·t_meas·ΔG_unit`` integrated on ``C_int``.

Device conductance range: the mean device conductance ``G_mean = 1/R_mean`` is the
midpoint of the range, ``G_mean = (G_on + G_off)/2``; with ``r = G_on/G_off`` this gives
``G_on = 2·G_mean·r/(r+1)`` and ``G_off = 2·G_mean/(r+1)``.

Longer than 600 lines: the three configs, their derived values, the cost model and the
preset are one unit that every circuit module imports; splitting it would split the one
place the derived values live.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.config.base import (
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_range,
    from_dict,
    read_toml_file,
)
from rpucircuit.errors import ConfigError

BOLTZMANN_J_PER_K = 1.380649e-23
"""Boltzmann constant (exact, SI 2019)."""

# --------------------------------------------------------------------------- cost model

# Measured by bench/bench_nodal.py with Debian's ngspice 39.3 (Sparse 1.3, no KLU) on the
# shared 2-core machine (loaded), paired N×N tiles of the paper-A preset:
#   forward transient, N = 32 (4,160 nodes): 50 s, 52 MB peak;
#   DC operating point, N = 64 (16,512 nodes): 49 s, 74 MB peak.
# Time grows as ~nodes^2.5 (N^5, NGSPICE.md; the bench fits 4.6-5.4 between N = 32 and 64),
# memory about linearly in nodes above ngspice's ~12.5 MB start-up.
_REF_TRAN = (4160, 50.0, 39.3e6)
_REF_OP = (16512, 48.6, 61.0e6)
_COST_EXPONENT = 2.5
_BASE_MEM_BYTES = 12.5e6
_MEM_EXPONENT = 1.1


@dataclass(frozen=True, kw_only=True, slots=True)
class LineConfig:
    """Electrical parameters of one kind of line (all row lines, or all column lines)."""

    r_ohm_per_um: float = 0.36
    """Line resistance per length (Ω/µm). Paper A: 0.36 Ω/µm, an intermediate metal level
    ~200 nm wide."""
    c_f_per_um: float = 0.2e-15
    """Line capacitance to ground per length (F/µm). Paper A: 0.2 fF/µm."""

    def __post_init__(self) -> None:
        check_nonnegative("r_ohm_per_um", self.r_ohm_per_um)
        check_nonnegative("c_f_per_um", self.c_f_per_um)


@dataclass(frozen=True, kw_only=True, slots=True)
class TileConfig:
    """Geometry and wiring of a crossbar tile (a pair of identical arrays for signed weights)."""

    rows: int = 32
    """Number of row lines (outputs of the forward cycle, inputs of the backward cycle)."""
    cols: int = 32
    """Number of column lines (inputs of the forward cycle, outputs of the backward cycle)."""
    pitch_um: float = 0.4
    """Cross-point pitch (µm) along both line directions. Paper A: 400 nm (200 nm line,
    200 nm space)."""
    row_line: LineConfig = field(default_factory=LineConfig)
    """Row line R and C per µm."""
    col_line: LineConfig = field(default_factory=LineConfig)
    """Column line R and C per µm."""
    r_driver_ohm: float = 10.0
    """Output resistance of each line driver (Ω). Assumed: paper A says the drivers'
    contribution to the line resistance is minimized by design."""
    paired: bool = True
    """True: weights are G⁺ − G⁻ on two identical arrays; False: one array (G⁺ only)."""
    spice_limit_s: float = 1800.0
    """Largest estimated ngspice wall time (s) of one netlist of this tile. The netlist
    builders (the path that starts ngspice) refuse a bigger one with the estimate in the
    message; the config itself takes any size, so the nodal solver needs no change here.
    Raise it explicitly to simulate further."""

    def __post_init__(self) -> None:
        check_int("rows", self.rows, 1, 1 << 20)
        check_int("cols", self.cols, 1, 1 << 20)
        check_positive("pitch_um", self.pitch_um)
        if not isinstance(self.row_line, LineConfig):
            raise ConfigError(f"row_line = {self.row_line!r}: must be a LineConfig")
        if not isinstance(self.col_line, LineConfig):
            raise ConfigError(f"col_line = {self.col_line!r}: must be a LineConfig")
        check_nonnegative("r_driver_ohm", self.r_driver_ohm)
        if not isinstance(self.paired, bool):
            raise ConfigError(f"paired = {self.paired!r}: must be true or false")
        check_positive("spice_limit_s", self.spice_limit_s)

    @property
    def n_arrays(self) -> int:
        """2 for a signed pair, 1 for a single array."""
        return 2 if self.paired else 1

    @property
    def r_seg_row_ohm(self) -> float:
        """Row-line resistance of one cross-point segment (Ω) = R/µm × pitch."""
        return self.row_line.r_ohm_per_um * self.pitch_um

    @property
    def r_seg_col_ohm(self) -> float:
        """Column-line resistance of one cross-point segment (Ω) = R/µm × pitch."""
        return self.col_line.r_ohm_per_um * self.pitch_um

    @property
    def c_seg_row_f(self) -> float:
        """Row-line capacitance of one cross-point segment (F) = C/µm × pitch."""
        return self.row_line.c_f_per_um * self.pitch_um

    @property
    def c_seg_col_f(self) -> float:
        """Column-line capacitance of one cross-point segment (F) = C/µm × pitch."""
        return self.col_line.c_f_per_um * self.pitch_um


ReadIV = Literal["linear", "sinh"]


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceConfig:
    """A resistive cross-point device: read I-V and pulsed update response."""

    r_mean_ohm: float = 24e6
    """Mean device resistance (Ω), 1/G_mean with G_mean the midpoint of [G_off, G_on].
    Paper A: ≈ 24 MΩ from the IR-drop budget N·R_line/R_dev ≈ 0.1 on a 4096 line."""
    on_off_ratio: float = 8.0
    """G_on/G_off (> 1). Paper A's estimate ≈ 8 (to be re-derived)."""
    w_max: float = 0.6
    """Weight (weight units) of a pair with one device at G_on and the other at G_off.
    Paper A / aihwkit constant-step device: weight bounds ±0.6."""
    read_iv: ReadIV = "linear"
    """Read I-V: ``linear`` I = G·V, or ``sinh`` I = G·V0·sinh(V/V0) (G is the small-signal
    conductance), which amplitude encoding feels and time encoding does not."""
    read_v0_v: float = 0.5
    """Voltage scale V0 of the sinh read I-V (V). Assumed; only used when read_iv = sinh."""
    k: float = 0.1
    """Update nonlinearity k = Δg(V_S/2)/Δg(V_S) in (0, 1): > 0.5 saturating, 0.5 linear,
    < 0.5 rectifying. Paper A: k ≲ 0.1 trains close to baseline."""
    dw_min: float = 0.001
    """Mean weight change (weight units) per coincident full pulse. Paper A: Δw_min = 0.001."""
    up_down_ratio: float = 1.0
    """Δg_up/Δg_down per pulse (> 0); 1 is symmetric. Their mean stays Δg per pulse."""
    bound_margin: float = 0.01
    """Fraction of (G_on − G_off) over which the update rate ramps to zero at each bound."""
    dw_min_dtod: float = 0.0
    """Device-to-device spread of Δw_min (relative std): device i's update rate is the
    mean's times ``max(0, 1 + dw_min_dtod·ξ_i)``, ξ_i standard normal, drawn by the caller's
    generator (as rpucircuit.config.rpu draws it). Paper A: 30 % (its preset)."""

    def __post_init__(self) -> None:
        check_positive("r_mean_ohm", self.r_mean_ohm)
        check_range("on_off_ratio", self.on_off_ratio, 1.0, 1e9, lo_open=True)
        check_positive("w_max", self.w_max)
        check_choice("read_iv", self.read_iv, ("linear", "sinh"))
        check_positive("read_v0_v", self.read_v0_v)
        check_range("k", self.k, 0.0, 1.0, lo_open=True, hi_open=True)
        check_positive("dw_min", self.dw_min)
        check_range("up_down_ratio", self.up_down_ratio, 0.0, 1e3, lo_open=True)
        check_range("bound_margin", self.bound_margin, 0.0, 0.5, lo_open=True)
        check_range("dw_min_dtod", self.dw_min_dtod, 0.0, 10.0)

    @property
    def response(self) -> Literal["saturating", "linear", "rectifying"]:
        """Update response type named by k."""
        if self.k > 0.5:
            return "saturating"
        if self.k < 0.5:
            return "rectifying"
        return "linear"

    @property
    def g_mean_s(self) -> float:
        """Mean device conductance (S) = 1/R_mean."""
        return 1.0 / self.r_mean_ohm

    @property
    def g_on_s(self) -> float:
        """Largest conductance (S): 2·G_mean·r/(r+1)."""
        r = self.on_off_ratio
        return 2.0 * self.g_mean_s * r / (r + 1.0)

    @property
    def g_off_s(self) -> float:
        """Smallest conductance (S): 2·G_mean/(r+1)."""
        return 2.0 * self.g_mean_s / (self.on_off_ratio + 1.0)

    @property
    def dg_unit_s(self) -> float:
        """Conductance difference of one weight unit (S): (G_on − G_off)/w_max."""
        return (self.g_on_s - self.g_off_s) / self.w_max

    @property
    def dg_pulse_s(self) -> float:
        """Mean conductance change per coincident full pulse (S): Δw_min·ΔG_unit."""
        return self.dw_min * self.dg_unit_s

    @property
    def dg_up_s(self) -> float:
        """Δg per up pulse (S): 2·Δg·ρ/(1+ρ) with ρ the up/down ratio."""
        rho = self.up_down_ratio
        return 2.0 * self.dg_pulse_s * rho / (1.0 + rho)

    @property
    def dg_down_s(self) -> float:
        """Δg per down pulse (S, magnitude): 2·Δg/(1+ρ)."""
        return 2.0 * self.dg_pulse_s / (1.0 + self.up_down_ratio)


def update_v0_v(k: float, v_s_v: float) -> float:
    """Voltage scale V0 of the update rate f(V) that gives f(V_S/2)/f(V_S) = k.

    rectifying (k < 0.5): f = sinh(V/V0), sinh(a/2)/sinh(a) = 1/(2·cosh(a/2)) = k, so
    V0 = V_S/(2·acosh(1/(2k))) (NGSPICE.md). saturating (k > 0.5): f = tanh(V/V0); with
    t = tanh(a/2), tanh(a) = 2t/(1+t²) so the ratio is (1+t²)/2 = k and
    V0 = V_S/(2·atanh(√(2k−1))). linear (k = 0.5): f = V, no scale; returns ``inf``.
    """
    if k < 0.5:
        return v_s_v / (2.0 * math.acosh(1.0 / (2.0 * k)))
    if k > 0.5:
        return v_s_v / (2.0 * math.atanh(math.sqrt(2.0 * k - 1.0)))
    return math.inf


def update_rate_shape(v: float, k: float, v0: float) -> float:
    """f(V) of :func:`update_v0_v`'s family (V0·sinh(V/V0), V0·tanh(V/V0) or V); volts."""
    if k < 0.5:
        return v0 * math.sinh(v / v0)
    if k > 0.5:
        return v0 * math.tanh(v / v0)
    return v


Encoding = Literal["time", "amplitude"]


@dataclass(frozen=True, kw_only=True, slots=True)
class PeripheryConfig:
    """Drivers, op-amp integrators, ADCs and update pulse generators of a tile."""

    encoding: Encoding = "time"
    """Input encoding: ``time`` (pulse width ∝ |x| at fixed amplitude V_read, paper A) or
    ``amplitude`` (amplitude ∝ x for the full t_meas)."""
    v_read_v: float = 1.0
    """Read pulse amplitude for |x| = 1 (V). Paper A assumes a 1 V operating voltage."""
    input_steps: int = 126
    """Quantization steps of |x| ∈ [0, 1] (pulse width t_meas/steps or amplitude
    V_read/steps). aihwkit's inp_res = 1/126, ~7 bits; paper A: ~1 ns steps of 80 ns."""
    t_meas_s: float = 80e-9
    """Integration time (s): the longest input pulse. Paper A: 80 ns."""
    t_rise_s: float = 50e-12
    """Rise and fall time of every driver pulse (s). Assumed."""
    t_reset_s: float = 2e-9
    """Integrator reset before the measurement window (s). Assumed."""
    t_settle_s: float = 5e-9
    """Extra time after the window before the output is sampled (s). Assumed."""
    r_reset_ohm: float = 1e3
    """On-resistance of the reset switch across C_int (Ω). Assumed."""
    a0: float = 1e4
    """Op-amp open-loop DC gain (V/V). Assumed (NGSPICE.md example)."""
    gbw_hz: float = 1e9
    """Op-amp gain-bandwidth product (Hz). Assumed (NGSPICE.md example)."""
    v_out_max_v: float = 1.0
    """Op-amp output swing, symmetric ±v_out_max_v (V). Assumed."""
    e_n_v_per_rthz: float = 10e-9
    """Op-amp input-referred white voltage noise density (V/√Hz). Placeholder to be
    derived (paper A's headline specification)."""
    alpha: float = 12.0
    """Output bound (weight units) the swing must reach. Paper A: α = 12."""
    c_int_f: float = 0.0
    """Integrating capacitor (F); 0 means derived: C_int = α·Q_unit/v_out_max_v."""
    temperature_k: float = 300.0
    """Temperature for thermal noise (K)."""
    adc_bits: int = 9
    """ADC resolution (bits). Paper A: 9 bits."""
    adc_range_v: float = 0.0
    """ADC full scale ±adc_range_v (V); 0 means the op-amp swing."""
    v_s_v: float = 2.0
    """Update pulse amplitude V_S across a fully selected device (V); rows get +V_S/2,
    columns −V_S/2. Assumed."""
    t_pulse_s: float = 1e-9
    """Width of one update pulse (s). Paper A: 1 ns."""
    bl: int = 10
    """Update bit-stream length. Paper A: BL = 10."""

    def __post_init__(self) -> None:
        check_choice("encoding", self.encoding, ("time", "amplitude"))
        check_positive("v_read_v", self.v_read_v)
        check_int("input_steps", self.input_steps, 1, 1 << 16)
        check_positive("t_meas_s", self.t_meas_s)
        check_positive("t_rise_s", self.t_rise_s)
        check_nonnegative("t_reset_s", self.t_reset_s)
        check_nonnegative("t_settle_s", self.t_settle_s)
        check_positive("r_reset_ohm", self.r_reset_ohm)
        check_range("a0", self.a0, 1.0, 1e12)
        check_positive("gbw_hz", self.gbw_hz)
        check_positive("v_out_max_v", self.v_out_max_v)
        check_nonnegative("e_n_v_per_rthz", self.e_n_v_per_rthz)
        check_positive("alpha", self.alpha)
        check_nonnegative("c_int_f", self.c_int_f)
        check_range("temperature_k", self.temperature_k, 1.0, 1000.0)
        check_int("adc_bits", self.adc_bits, 1, 24)
        check_nonnegative("adc_range_v", self.adc_range_v)
        check_positive("v_s_v", self.v_s_v)
        check_positive("t_pulse_s", self.t_pulse_s)
        check_int("bl", self.bl, 1, 1 << 16)
        if self.t_rise_s * 2 > self.t_pulse_s:
            raise ConfigError(
                f"t_rise_s = {self.t_rise_s!r}: must be at most half of t_pulse_s = "
                f"{self.t_pulse_s!r}"
            )
        if self.t_rise_s > self.t_meas_s / self.input_steps:
            raise ConfigError(
                f"t_rise_s = {self.t_rise_s!r}: must not exceed the input step "
                f"t_meas_s/input_steps = {self.t_meas_s / self.input_steps!r}"
            )

    @property
    def t_step_s(self) -> float:
        """Input pulse-width step (s) = t_meas/input_steps."""
        return self.t_meas_s / self.input_steps

    @property
    def r_noise_ohm(self) -> float:
        """Series resistor whose thermal noise equals e_n: e_n²/(4kT) (Ω)."""
        return self.e_n_v_per_rthz**2 / (4.0 * BOLTZMANN_J_PER_K * self.temperature_k)


@dataclass(frozen=True, kw_only=True, slots=True)
class CircuitConfig:
    """A whole tile: wiring, devices and periphery. The circuit path's top-level config."""

    tile: TileConfig = field(default_factory=TileConfig)
    """Geometry and lines."""
    device: DeviceConfig = field(default_factory=DeviceConfig)
    """Cross-point devices."""
    periphery: PeripheryConfig = field(default_factory=PeripheryConfig)
    """Drivers, integrators, ADCs, update pulses."""

    def __post_init__(self) -> None:
        for name, cls in (
            ("tile", TileConfig),
            ("device", DeviceConfig),
            ("periphery", PeripheryConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name} = {getattr(self, name)!r}: must be a {cls.__name__}")
        # No SPICE budget here: a tile too big for ngspice is a valid tile for the nodal
        # solver. The netlist builders check tile.spice_limit_s before making a netlist.

    # ----------------------------------------------------------------- derived values

    @property
    def q_unit_c(self) -> float:
        """Charge of one weight unit of output (C): V_read·t_meas·ΔG_unit."""
        return self.periphery.v_read_v * self.periphery.t_meas_s * self.device.dg_unit_s

    @property
    def c_int_f(self) -> float:
        """C_int (F): the periphery's value, or α·Q_unit/V_swing when that is 0."""
        if self.periphery.c_int_f > 0:
            return self.periphery.c_int_f
        return self.periphery.alpha * self.q_unit_c / self.periphery.v_out_max_v

    @property
    def alpha_effective(self) -> float:
        """Output bound in weight units that C_int and the swing give: V_swing·C_int/Q_unit."""
        return self.periphery.v_out_max_v * self.c_int_f / self.q_unit_c

    @property
    def v_out_per_weight_v(self) -> float:
        """Integrator output magnitude per weight unit (V) = Q_unit/C_int (inverting)."""
        return self.q_unit_c / self.c_int_f

    @property
    def adc_range_v(self) -> float:
        """ADC full scale (V): the periphery's value, or the op-amp swing when that is 0."""
        if self.periphery.adc_range_v > 0:
            return self.periphery.adc_range_v
        return self.periphery.v_out_max_v

    @property
    def update_v0_v(self) -> float:
        """Update-rate voltage scale V0 (V) for the device's k at V_S (inf when linear)."""
        return update_v0_v(self.device.k, self.periphery.v_s_v)

    @property
    def update_rate_scale(self) -> float:
        """R0 (S/(s·V)) such that R0·f(V_S)·t_pulse = Δg per pulse (before up/down split)."""
        p = self.periphery
        f_vs = update_rate_shape(p.v_s_v, self.device.k, self.update_v0_v)
        return self.device.dg_pulse_s / (f_vs * p.t_pulse_s)

    @property
    def kt_over_c_v(self) -> float:
        """rms kT/C noise voltage of the integrator reset (V): sqrt(kT/C_int)."""
        return math.sqrt(BOLTZMANN_J_PER_K * self.periphery.temperature_k / self.c_int_f)


# --------------------------------------------------------------------------- cost


@dataclass(frozen=True, kw_only=True, slots=True)
class SpiceCost:
    """Estimated ngspice cost of one netlist (order of magnitude)."""

    nodes: int
    """Circuit nodes of the netlist."""
    seconds: float
    """Estimated wall time (s)."""
    memory_bytes: float
    """Estimated peak resident memory (bytes)."""


Analysis = Literal["tran", "op", "noise", "line", "update"]


def tile_nodes(tile: TileConfig) -> int:
    """Line nodes of a full tile netlist: two nodes per cross point and array, plus one
    driver node per input line and array."""
    return tile.n_arrays * (2 * tile.rows * tile.cols + max(tile.rows, tile.cols))


def estimate_spice_cost(cfg: CircuitConfig, analysis: Analysis) -> SpiceCost:
    """Estimated ngspice wall time and peak memory of ``analysis`` on ``cfg``'s whole tile.

    Scales this machine's measurements (module constants ``_REF_TRAN``, ``_REF_OP``) with
    nodes^2.5 for time and nodes^1.1 for memory. The update cycle is charged like a read
    transient; ``noise`` (one line) and ``line`` like a DC point of their few nodes.
    """
    tile = cfg.tile
    if analysis in ("noise", "line"):
        n = tile.n_arrays * 2 * max(tile.rows, tile.cols) + 8
    else:
        n = tile_nodes(tile)
    ref_nodes, ref_s, ref_mem = _REF_OP if analysis in ("op", "noise", "line") else _REF_TRAN
    ratio = n / ref_nodes
    seconds = ref_s * ratio**_COST_EXPONENT
    memory = _BASE_MEM_BYTES + ref_mem * ratio**_MEM_EXPONENT
    return SpiceCost(nodes=n, seconds=seconds, memory_bytes=memory)


def check_spice_budget(cfg: CircuitConfig, analysis: Analysis) -> SpiceCost:
    """Return the cost estimate, or raise ConfigError if it exceeds tile.spice_limit_s.

    Called where a netlist for ngspice is made (``rpucircuit.circuit.netlist``'s builders, a
    campaign's plan), never when a config is built.
    """
    cost = estimate_spice_cost(cfg, analysis)
    if cost.seconds > cfg.tile.spice_limit_s:
        raise ConfigError(
            f"tile.rows × tile.cols = {cfg.tile.rows} × {cfg.tile.cols}: too large to simulate "
            f"({analysis}): ~{cost.nodes} nodes, estimated ngspice time ~{cost.seconds:.3g} s "
            f"and memory ~{cost.memory_bytes / 1e6:.3g} MB exceed tile.spice_limit_s = "
            f"{cfg.tile.spice_limit_s:g} s; use a smaller tile, the nodal solver "
            f"(rpucircuit.circuit.nodal), or raise tile.spice_limit_s explicitly"
        )
    return cost


# --------------------------------------------------------------------------- inputs


def quantize_inputs(cfg: CircuitConfig, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Inputs as the drivers apply them: ``sign(x)·round(|x|·steps)/steps``."""
    a = np.asarray(x, dtype=np.float64)
    steps = cfg.periphery.input_steps
    out: npt.NDArray[np.float64] = np.sign(a) * np.round(np.abs(a) * steps) / steps
    return out


def input_volt_seconds(cfg: CircuitConfig, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Volt-seconds each input line receives (array p; array m gets the negative), V·s.

    Both encodings give ``x_q·V_read·t_meas`` for the quantized input ``x_q`` (time: the
    full amplitude for ``|x_q|·t_meas``; amplitude: ``x_q·V_read`` for ``t_meas``).
    """
    p = cfg.periphery
    return quantize_inputs(cfg, x) * p.v_read_v * p.t_meas_s


# --------------------------------------------------------------------------- preset


def gokmen_vlasov_2016(*, rows: int = 32, cols: int = 32) -> CircuitConfig:
    """Paper A's tile: Gokmen & Vlasov 2016, "Acceleration of deep neural network training
    with resistive cross-point devices", Front. Neurosci. 10:333, circuit section.

    Lines 0.36 Ω/µm and 0.2 fF/µm at 400 nm pitch (0.144 Ω and 0.08 fF per segment),
    R_mean ≈ 24 MΩ, on/off ≈ 8, t_meas = 80 ns, α = 12, 9-bit ADC, 1 ns update pulses,
    BL = 10, Δw_min = 0.001 with a 30 % device-to-device spread, weights ±0.6, k = 0.1 (a
    rectifying device that trains).
    Paper A's array is 4096 × 4096; the default here is ``rows × cols`` = 32 × 32, small
    enough for ngspice transients (the nodal solver reaches the full size). Values that
    the paper does not give (driver resistance, op-amp A0/GBW/noise, V_S, timing margins)
    are marked "Assumed" on their fields.
    """
    return CircuitConfig(
        tile=TileConfig(
            rows=rows,
            cols=cols,
            pitch_um=0.4,
            row_line=LineConfig(r_ohm_per_um=0.36, c_f_per_um=0.2e-15),
            col_line=LineConfig(r_ohm_per_um=0.36, c_f_per_um=0.2e-15),
        ),
        device=DeviceConfig(
            r_mean_ohm=24e6, on_off_ratio=8.0, w_max=0.6, dw_min=0.001, k=0.1, dw_min_dtod=0.3
        ),
        periphery=PeripheryConfig(t_meas_s=80e-9, alpha=12.0, adc_bits=9, t_pulse_s=1e-9, bl=10),
    )


# --------------------------------------------------------------------------- spec inputs


def _src(text: str) -> dict[str, str]:
    """Field metadata carrying the stated source of a spec input."""
    return {"source": text}


DelayRule = Literal["elmore", "distributed_50", "rc"]


@dataclass(frozen=True, kw_only=True, slots=True)
class SpecInputs:
    """Budgets and figures of merit that ``rpucircuit specs`` takes as given (TOML ``[specs]``).

    Kept apart from :class:`CircuitConfig` (not a field of it) so that adding or changing a
    figure of merit never changes a circuit's config key. Every field carries its source in
    its metadata (``dataclasses.fields(SpecInputs)[i].metadata["source"]``); the sheet
    prints it beside the row that uses it.
    """

    rc_budget_fraction: float = field(
        default=0.1, metadata=_src("paper A: line RC delay at most 10 % of the 1 ns update pulse")
    )
    """Largest line delay as a fraction of the update pulse width (dimensionless)."""
    delay_rule: DelayRule = field(
        default="elmore",
        metadata=_src("ours: the Elmore delay R·C/2 reproduces paper A's 1.64 mm line"),
    )
    """Which line delay the budget bounds: ``elmore`` (R·C/2), ``distributed_50``
    (0.377·R·C) or ``rc`` (R·C)."""
    ir_drop_budget: float = field(
        default=0.1, metadata=_src("paper A: N·R_line/R_device ≈ 0.1 on a full line")
    )
    """IR-drop budget N·R_line/R_device (dimensionless) that sets the mean device
    resistance."""
    sigma_w: float = field(
        default=0.06,
        metadata=_src("paper A: output noise σ = 0.06 weight units is acceptable in training"),
    )
    """Acceptable output noise (weight units) when no ``explore noise`` result is given."""
    on_off_knee_fraction: float = field(
        default=0.5,
        metadata=_src(
            "ours: the on/off ratio where the acceptable op-amp noise reaches this fraction "
            "of its limit at infinite on/off (the knee of paper A's noise-vs-on/off curve)"
        ),
    )
    """Fraction (0, 1) of the infinite-on/off acceptable op-amp noise that fixes the minimum
    on/off ratio in the analytic budget."""
    adc_lsb_per_sigma: float = field(
        default=1.0,
        metadata=_src("ours: one ADC step no larger than σ (2α/σ = 400 levels → 9 bits)"),
    )
    """Largest ADC step as a multiple of σ (dimensionless)."""
    adc_energy_per_conversion_j: float = field(
        default=19.2e-12,
        metadata=_src(
            "paper A's SAR ADC (Jonsson 2011): 0.24 mW at 12.5 MS/s, 9 bits → 19.2 pJ/conversion"
        ),
    )
    """Energy of one ADC conversion (J)."""
    adc_area_um2: float = field(
        default=25600.0, metadata=_src("paper A's SAR ADC (Jonsson 2011): 0.0256 mm² each")
    )
    """Area of one ADC (µm²)."""
    lines_per_adc: int = field(
        default=1,
        metadata=_src("paper A: one ADC per output line (4096 per tile); sharing is its option"),
    )
    """Output lines that share one ADC (time-multiplexed within the cycle)."""
    opamp_power_w: float = field(
        default=100e-6,
        metadata=_src(
            "assumed: an integrator op-amp with GBW ≈ 1 GHz into ~0.2 pF needs g_m ≈ 1.3 mS, "
            "~0.1 mA at 1 V"
        ),
    )
    """Static power of one integrator op-amp (W)."""
    opamp_area_um2: float = field(
        default=100.0, metadata=_src("assumed: a small two-stage op-amp in a scaled node")
    )
    """Area of one integrator op-amp without its capacitor (µm²)."""
    cap_density_f_per_um2: float = field(
        default=2e-15, metadata=_src("assumed: a MIM capacitor, ~2 fF/µm²")
    )
    """Capacitance per area of the integrating capacitor (F/µm²)."""
    mean_input_duty: float = field(
        default=0.5,
        metadata=_src(
            "assumed: mean |x| of a noise-managed input, spread evenly over [0, 1] (mean 0.5)"
        ),
    )
    """Mean read pulse width as a fraction of t_meas (dimensionless, (0, 1])."""
    digital_power_w: float = field(
        default=1.0,
        metadata=_src(
            "assumed: paper A's design point adds one digital core per tile (activations, "
            "stochastic streams); 1 W for a low-power core"
        ),
    )
    """Power of the digital logic that serves one tile (W); counted in the efficiency."""
    ops_per_weight: int = field(
        default=2, metadata=_src("paper A: a multiply and an add per weight and cycle")
    )
    """Operations counted per weight in one forward (or backward) cycle."""

    def __post_init__(self) -> None:
        check_range("rc_budget_fraction", self.rc_budget_fraction, 0.0, 1.0, lo_open=True)
        check_choice("delay_rule", self.delay_rule, ("elmore", "distributed_50", "rc"))
        check_range("ir_drop_budget", self.ir_drop_budget, 0.0, 1.0, lo_open=True)
        check_range("sigma_w", self.sigma_w, 0.0, 10.0, lo_open=True)
        check_range(
            "on_off_knee_fraction", self.on_off_knee_fraction, 0.0, 1.0, lo_open=True, hi_open=True
        )
        check_range("adc_lsb_per_sigma", self.adc_lsb_per_sigma, 0.0, 100.0, lo_open=True)
        check_positive("adc_energy_per_conversion_j", self.adc_energy_per_conversion_j)
        check_positive("adc_area_um2", self.adc_area_um2)
        check_int("lines_per_adc", self.lines_per_adc, 1, 1 << 20)
        check_nonnegative("opamp_power_w", self.opamp_power_w)
        check_nonnegative("opamp_area_um2", self.opamp_area_um2)
        check_positive("cap_density_f_per_um2", self.cap_density_f_per_um2)
        check_range("mean_input_duty", self.mean_input_duty, 0.0, 1.0, lo_open=True)
        check_nonnegative("digital_power_w", self.digital_power_w)
        check_int("ops_per_weight", self.ops_per_weight, 1, 1000)


def spec_source(name: str) -> str:
    """The stated source of :class:`SpecInputs` field ``name``."""
    for f in dataclasses.fields(SpecInputs):
        if f.name == name:
            return str(f.metadata["source"])
    raise KeyError(name)


# --------------------------------------------------------------------------- files

CIRCUIT_TABLES = ("tile", "device", "periphery")
"""The TOML tables of a circuit config (one per :class:`CircuitConfig` field)."""

SPECS_TABLE = "specs"
"""The TOML table of :class:`SpecInputs`, beside the circuit's tables (read by
:func:`spec_inputs_from_data`; :func:`circuit_config_from_data` checks it and skips it)."""


def _tables_text(extra: tuple[str, ...]) -> str:
    known = ", ".join(f"[{t}]" for t in CIRCUIT_TABLES) + f" and optional [{SPECS_TABLE}]"
    besides = f" (besides {', '.join(f'[{t}]' for t in extra)})" if extra else ""
    return f"a circuit config has tables {known}, at the top level or in one [circuit]{besides}"


def circuit_config_from_data(
    data: Mapping[str, Any], *, source: str = "<string>", extra_tables: Sequence[str] = ()
) -> CircuitConfig:
    """The circuit config of a parsed TOML document: every command reads circuits here.

    Two layouts, one meaning: tables ``[tile]``, ``[device]``, ``[periphery]`` at the top
    level, or the same tables inside one ``[circuit]`` table (``[circuit.tile]`` ...), not
    both. Fields not given take paper A's preset (:func:`gokmen_vlasov_2016`), nested tables
    (``[tile.row_line]``) field by field. ``extra_tables`` are top-level tables that belong
    to the caller (a campaign's ``[campaign]``) and are skipped; anything else is refused
    with a ConfigError naming it and ``source``. An optional ``[specs]`` table (inside
    ``[circuit]`` in the nested layout) holds :class:`SpecInputs`: it is checked here (unknown
    keys, non-physical values) but is no part of the circuit; read it with
    :func:`spec_inputs_from_data`.
    """
    extra = tuple(extra_tables)
    top = {k: v for k, v in data.items() if k not in extra}
    tables: Mapping[str, Any] = top
    prefix = ""
    if "circuit" in top:
        if len(top) > 1:
            other = next(k for k in top if k != "circuit")
            raise ConfigError(
                f"{source}: both [circuit] and top-level [{other}]; give the circuit's "
                "tables either at the top level or inside [circuit], not both"
            )
        if not isinstance(top["circuit"], Mapping):
            raise ConfigError(f"{source}: [circuit] must be a table")
        tables, prefix = top["circuit"], "circuit."
    unknown = [k for k in tables if k not in (*CIRCUIT_TABLES, SPECS_TABLE)]
    if unknown:
        raise ConfigError(f"{source}: unknown table [{prefix}{unknown[0]}]; {_tables_text(extra)}")
    _spec_inputs_of(tables, source=source, prefix=prefix)  # checked here, read by specs
    preset = gokmen_vlasov_2016()
    merged: dict[str, Any] = {}
    for name in CIRCUIT_TABLES:
        given = tables.get(name, {})
        if not isinstance(given, Mapping):
            raise ConfigError(f"{source}: [{prefix}{name}] must be a table")
        table = dataclasses.asdict(getattr(preset, name))
        for key, value in given.items():
            if isinstance(value, Mapping) and isinstance(table.get(key), dict):
                table[key] = {**table[key], **value}
            else:
                table[key] = value
        merged[name] = table
    return from_dict(CircuitConfig, merged, path=prefix.rstrip("."))


def _spec_inputs_of(tables: Mapping[str, Any], *, source: str, prefix: str) -> SpecInputs:
    given = tables.get(SPECS_TABLE, {})
    if not isinstance(given, Mapping):
        raise ConfigError(f"{source}: [{prefix}{SPECS_TABLE}] must be a table")
    try:
        return from_dict(SpecInputs, given, path=prefix + SPECS_TABLE)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def spec_inputs_from_data(data: Mapping[str, Any], *, source: str = "<string>") -> SpecInputs:
    """The :class:`SpecInputs` of a parsed circuit TOML document: its ``[specs]`` table (or
    ``[circuit.specs]``), paper A's defaults for fields not given, the defaults alone when
    there is no such table. Unknown keys and non-physical values are ConfigErrors naming
    ``source``."""
    tables = data
    prefix = ""
    if "circuit" in data and isinstance(data["circuit"], Mapping):
        tables, prefix = data["circuit"], "circuit."
    return _spec_inputs_of(tables, source=source, prefix=prefix)


def load_spec_inputs(path: str | Path | None) -> SpecInputs:
    """The ``[specs]`` table of the circuit TOML file ``path`` (:func:`spec_inputs_from_data`),
    or the defaults when ``path`` is None."""
    if path is None:
        return SpecInputs()
    return spec_inputs_from_data(read_toml_file(path), source=str(path))


def load_circuit_config(
    path: str | Path | None, *, extra_tables: Sequence[str] = ()
) -> CircuitConfig:
    """The circuit config in the TOML file ``path`` (see :func:`circuit_config_from_data`),
    or paper A's preset when ``path`` is None. An unreadable file is a ConfigError."""
    if path is None:
        return gokmen_vlasov_2016()
    return circuit_config_from_data(
        read_toml_file(path), source=str(path), extra_tables=extra_tables
    )


def replace_tile(cfg: CircuitConfig, **changes: object) -> CircuitConfig:
    """``cfg`` with tile fields changed (``dataclasses.replace`` one level down)."""
    return dataclasses.replace(cfg, tile=dataclasses.replace(cfg.tile, **changes))  # type: ignore[arg-type]
