"""Crossbar tile circuits as data, rendered once and deterministically into SPICE text.

``build_*`` functions return a :class:`Netlist` of small element records; :func:`render`
turns it into ngspice input text, including the ``.control`` block that runs the analyses,
``write``\\s the raw file ``out.raw`` and ``quit``\\s. That block is generated here from
validated records only: no user string ever reaches it.

Topology (one RC segment per cross point on every line)
-------------------------------------------------------
* Signed weights: ``w ∝ G⁺ − G⁻`` on two identical arrays ``p`` (G⁺) and ``m`` (G⁻). The
  ``m`` array's input lines are driven with the opposite polarity, and both arrays' output
  line ``i`` end at the same integrator summing node ``sum{i}``, so the integrator sums
  ``(G⁺ − G⁻)·V``. With ``tile.paired = False`` only array ``p`` exists.
* Forward cycle: inputs on the columns, integrators on the rows. Column ``j``'s driver sits
  at the row-0 end: driver → ``{a}c{j}_d`` → segment → ``{a}c{j}_r0`` → … → ``{a}c{j}_r{R-1}``
  (R segments). Row ``i`` runs ``{a}r{i}_c0`` → … → ``{a}r{i}_c{C-1}`` → segment →
  ``sum{i}``: the integrator sits at the far (last-column) end; the column-0 end is open.
* Backward cycle: the transpose. Row ``i``'s driver sits at the column-0 end
  (``{a}r{i}_d`` → ``{a}r{i}_c0`` …); column ``j`` ends, past row ``R-1``, at ``sum{j}``.
* Device ``(i, j)`` of array ``a`` connects ``{a}r{i}_c{j}`` and ``{a}c{j}_r{i}``. Every line
  node has its segment capacitance to ground (transient netlists only).
* Integrators are inverting: ``v(out{i}) = −Q_i/C_int`` (ideal op-amp), Q_i the charge that
  flowed from the lines into ``sum{i}``. Operating-point netlists replace each integrator by
  a 0 V source ``vsum{i}`` from ``sum{i}`` to ground; ``i(vsum{i})`` > 0 is current into the
  summing node, and ``Q_i = i(vsum{i})·t_meas`` because each input line is driven with its
  time-averaged voltage (its volt-seconds / t_meas), exact for linear devices by linearity.

Input encoding: an input ``x`` is quantized to ``round(|x|·steps)/steps``; time encoding
drives ``sign(x)·V_read`` for ``|x|·t_meas``, amplitude encoding ``x·V_read`` for ``t_meas``
(trapezoids whose area is exactly the volt-seconds). Pulses start at ``t_reset``.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.config.tile import (
    CircuitConfig,
    check_spice_budget,
    input_volt_seconds,
    quantize_inputs,
)
from rpucircuit.errors import ConfigError, NetlistError, UnsupportedError

NETLIST_DIR = Path(__file__).resolve().parents[2] / "netlists"
"""Folder of the hand-written subcircuit libraries (``*.lib``)."""

RAW_NAME = "out.raw"
"""Raw file every rendered netlist writes, relative to the run folder."""

Direction = Literal["forward", "backward"]
ReadAnalysis = Literal["tran", "op"]

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_LIB = re.compile(r"[a-z][a-z0-9_]*\.lib\Z")
_VECTOR = re.compile(r"(v\([a-z][a-z0-9_]*\)|i\([a-z][a-z0-9_]*\)|[a-z][a-z0-9_]*)\Z")
_MAX_NAME = 64


# --------------------------------------------------------------------------- validation


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a safe SPICE identifier ``[a-z][a-z0-9_]*`` (≤ 64 chars)."""
    if not isinstance(name, str) or len(name) > _MAX_NAME or not _NAME.match(name):
        raise NetlistError(
            f"{what} = {name!r}: must match [a-z][a-z0-9_]* with at most {_MAX_NAME} characters"
        )
    return name


def check_node(name: object, what: str = "node") -> str:
    """Return ``name`` if it is ground ``"0"`` or a safe identifier (see :func:`check_name`)."""
    if name == "0":
        return "0"
    return check_name(name, what)


def check_value(value: object, what: str) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise NetlistError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise NetlistError(f"{what} = {value!r}: must be a real number")
    v = float(value)
    if not math.isfinite(v):
        raise NetlistError(f"{what} = {value!r}: must be finite")
    return v


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str) or any(not (32 <= ord(ch) < 127) for ch in text):
        raise NetlistError(f"{what} = {text!r}: must be printable ASCII on one line")
    return text


def fmt(value: float) -> str:
    """Exact text of a float (Python's shortest round-trip repr)."""
    return repr(float(value))


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Resistor:
    """``r<name> n1 n2 ohm``; a zero resistance is rendered as a 0 V source (a short)."""

    name: str
    n1: str
    n2: str
    ohm: float
    comment: str = ""
    noisy: bool = True


@dataclass(frozen=True, slots=True)
class Capacitor:
    """``c<name> n1 n2 farad``."""

    name: str
    n1: str
    n2: str
    farad: float
    comment: str = ""


@dataclass(frozen=True, slots=True)
class VSource:
    """``v<name> np nn dc <dc> [ac <ac>] [pwl(t v ...)]``."""

    name: str
    np_: str
    nn: str
    dc: float = 0.0
    ac: float | None = None
    pwl: tuple[float, ...] = ()
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Instance:
    """``x<name> nodes... subckt p=v ...`` (a subcircuit from one of the libraries)."""

    name: str
    nodes: tuple[str, ...]
    subckt: str
    params: tuple[tuple[str, float], ...] = ()
    comment: str = ""


Element = Resistor | Capacitor | VSource | Instance


@dataclass(frozen=True, slots=True)
class Op:
    """DC operating point."""


@dataclass(frozen=True, slots=True)
class Tran:
    """Transient analysis ``tran step stop [0 max_step] [uic]``."""

    step_s: float
    stop_s: float
    max_step_s: float | None = None
    uic: bool = False


@dataclass(frozen=True, slots=True)
class Noise:
    """``noise v(output) source dec points f_start f_stop``; writes plots noise1 and noise2."""

    output: str
    source: str
    points_per_decade: int
    f_start_hz: float
    f_stop_hz: float


AnalysisRecord = Op | Tran | Noise


@dataclass(frozen=True, slots=True)
class Netlist:
    """A circuit as data. ``vectors`` are what the ``write`` command saves (besides the
    analysis' scale); ``layout`` maps a role to the vector names in order (for example
    ``"outputs"`` → ``("v(out0)", "v(out1)")``)."""

    title: str
    libs: tuple[str, ...]
    elements: tuple[Element, ...]
    analyses: tuple[AnalysisRecord, ...]
    vectors: tuple[str, ...]
    options: tuple[tuple[str, float], ...] = ()
    layout: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def role(self, name: str) -> tuple[str, ...]:
        """Vector names recorded under ``name`` in :attr:`layout`."""
        for key, values in self.layout:
            if key == name:
                return values
        raise KeyError(name)


# --------------------------------------------------------------------------- render


def _pwl_text(values: tuple[float, ...], what: str) -> str:
    if len(values) % 2 or not values:
        raise NetlistError(f"{what}: pwl needs (time, value) pairs, got {len(values)} numbers")
    nums = [fmt(check_value(v, what)) for v in values]
    times = [float(v) for v in values[::2]]
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise NetlistError(f"{what}: pwl times must increase strictly, got {times}")
    return "pwl(" + " ".join(nums) + ")"


def _render_element(el: Element) -> list[str]:
    lines: list[str] = []
    if el.comment:
        lines.append("* " + _check_text(el.comment, f"comment of {el.name!r}"))
    name = check_name(el.name, "element name")
    if isinstance(el, Resistor):
        n1, n2 = check_node(el.n1, f"{name} node"), check_node(el.n2, f"{name} node")
        ohm = check_value(el.ohm, f"{name} resistance")
        if ohm < 0:
            raise NetlistError(f"{name} resistance = {ohm!r}: must be >= 0")
        if ohm == 0:
            lines.append(f"vr{name} {n1} {n2} dc 0.0")
        else:
            lines.append(f"r{name} {n1} {n2} {fmt(ohm)}" + ("" if el.noisy else " noisy=0"))
    elif isinstance(el, Capacitor):
        n1, n2 = check_node(el.n1, f"{name} node"), check_node(el.n2, f"{name} node")
        f = check_value(el.farad, f"{name} capacitance")
        if f <= 0:
            raise NetlistError(f"{name} capacitance = {f!r}: must be > 0")
        lines.append(f"c{name} {n1} {n2} {fmt(f)}")
    elif isinstance(el, VSource):
        n1, n2 = check_node(el.np_, f"{name} node"), check_node(el.nn, f"{name} node")
        text = f"v{name} {n1} {n2} dc {fmt(check_value(el.dc, f'{name} dc'))}"
        if el.ac is not None:
            text += f" ac {fmt(check_value(el.ac, f'{name} ac'))}"
        if el.pwl:
            text += " " + _pwl_text(el.pwl, f"{name} pwl")
        lines.append(text)
    elif isinstance(el, Instance):
        nodes = " ".join(check_node(n, f"{name} node") for n in el.nodes)
        sub = check_name(el.subckt, f"{name} subcircuit")
        params = " ".join(
            f"{check_name(k, f'{name} parameter')}={fmt(check_value(v, f'{name}.{k}'))}"
            for k, v in el.params
        )
        lines.append(f"x{name} {nodes} {sub} {params}".rstrip())
    else:  # pragma: no cover - the union is closed
        raise NetlistError(f"unknown element {el!r}")
    return lines


def _render_analysis(an: AnalysisRecord) -> str:
    if isinstance(an, Op):
        return "op"
    if isinstance(an, Tran):
        step = check_value(an.step_s, "tran step")
        stop = check_value(an.stop_s, "tran stop")
        if not 0 < step <= stop:
            raise NetlistError(f"tran step = {step!r}, stop = {stop!r}: need 0 < step <= stop")
        text = f"tran {fmt(step)} {fmt(stop)}"
        if an.max_step_s is not None:
            text += f" 0 {fmt(check_value(an.max_step_s, 'tran max step'))}"
        if an.uic:
            text += " uic"
        return text
    if isinstance(an, Noise):
        out = check_name(an.output, "noise output node")
        src = check_name(an.source, "noise source")
        if isinstance(an.points_per_decade, bool) or not isinstance(an.points_per_decade, int):
            raise NetlistError(f"noise points = {an.points_per_decade!r}: must be an integer")
        if an.points_per_decade < 1:
            raise NetlistError(f"noise points = {an.points_per_decade!r}: must be >= 1")
        f0 = check_value(an.f_start_hz, "noise f_start")
        f1 = check_value(an.f_stop_hz, "noise f_stop")
        if not 0 < f0 < f1:
            raise NetlistError(
                f"noise f_start = {f0!r}, f_stop = {f1!r}: need 0 < f_start < f_stop"
            )
        return f"noise v({out}) v{src} dec {an.points_per_decade} {fmt(f0)} {fmt(f1)}"
    raise NetlistError(f"unknown analysis {an!r}")  # pragma: no cover


def render(netlist: Netlist) -> str:
    """SPICE text of ``netlist``: title, options, includes, elements, control block.

    Deterministic: the same netlist renders to the same bytes. Every name, number and
    comment is validated; a bad one raises :class:`NetlistError` naming it.
    """
    out = ["* " + _check_text(netlist.title, "title")]
    opts = " ".join(
        f"{check_name(k, 'option')}={fmt(check_value(v, f'option {k}'))}"
        for k, v in netlist.options
    )
    out.append(f".options noinit noacct {opts}".rstrip())
    for lib in netlist.libs:
        if not isinstance(lib, str) or not _LIB.match(lib):
            raise NetlistError(f"library = {lib!r}: must be a file name like rpu_x.lib")
        out.append(f".include {lib}")
    for el in netlist.elements:
        out.extend(_render_element(el))
    for vec in netlist.vectors:
        if not isinstance(vec, str) or not _VECTOR.match(vec):
            raise NetlistError(f"vector = {vec!r}: must be v(name), i(name) or a name")
    if not netlist.analyses:
        raise NetlistError("netlist has no analysis")
    out.append(".control")
    out.append("set filetype=binary")
    out.append("set appendwrite")
    for an in netlist.analyses:
        out.append(_render_analysis(an))
        if isinstance(an, Noise):
            out.append("setplot noise1")
            out.append(f"write {RAW_NAME} all")
            out.append("setplot noise2")
            out.append(f"write {RAW_NAME} all")
        else:
            vecs = " ".join(netlist.vectors) if netlist.vectors else "all"
            out.append(f"write {RAW_NAME} {vecs}")
    out.append("quit")
    out.append(".endc")
    out.append(".end")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- helpers

FloatArray = npt.NDArray[np.float64]


def _as_matrix(g: npt.ArrayLike, shape: tuple[int, int], what: str) -> FloatArray:
    try:
        a = np.asarray(g, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetlistError(f"{what}: not a numeric array ({exc})") from exc
    if a.shape != shape:
        raise NetlistError(f"{what}: shape {a.shape} must be {shape}")
    if not np.all(np.isfinite(a)):
        raise NetlistError(f"{what}: contains non-finite values")
    if np.any(a <= 0):
        raise NetlistError(f"{what}: conductances must be > 0 (min {a.min()!r})")
    return a


def _as_inputs(x: npt.ArrayLike, n: int, what: str) -> FloatArray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetlistError(f"{what}: not a numeric array ({exc})") from exc
    if a.shape != (n,):
        raise NetlistError(f"{what}: shape {a.shape} must be ({n},)")
    if not np.all(np.isfinite(a)):
        raise NetlistError(f"{what}: contains non-finite values")
    if np.any(np.abs(a) > 1.0):
        raise NetlistError(f"{what}: inputs must lie in [-1, 1] (max |x| = {np.abs(a).max()!r})")
    return a


def read_times(cfg: CircuitConfig) -> tuple[float, float]:
    """(start of the input pulses, sampling time of the outputs) of a read transient (s)."""
    p = cfg.periphery
    t0 = p.t_reset_s + p.t_rise_s
    return t0, t0 + p.t_meas_s + p.t_rise_s + p.t_settle_s


def _seg_note(cfg: CircuitConfig, kind: Literal["row", "col"], what: str) -> str:
    """Comment for the first segment of a line: how its R and C per segment are derived."""
    t = cfg.tile
    line = t.row_line if kind == "row" else t.col_line
    r = t.r_seg_row_ohm if kind == "row" else t.r_seg_col_ohm
    c = t.c_seg_row_f if kind == "row" else t.c_seg_col_f
    return (
        f"{what}: per segment R = {line.r_ohm_per_um!r} ohm/um x {t.pitch_um!r} um = {r!r} ohm, "
        f"C = {line.c_f_per_um!r} F/um x {t.pitch_um!r} um = {c!r} F"
    )


def _integrator(cfg: CircuitConfig, name: str, inn: str, out: str, *, treset: float) -> Instance:
    p = cfg.periphery
    return Instance(
        name,
        (inn, out),
        "rpu_integrator",
        (
            ("a0", p.a0),
            ("gbw", p.gbw_hz),
            ("vmax", p.v_out_max_v),
            ("cint", cfg.c_int_f),
            ("rnoise", max(p.r_noise_ohm, 1e-3)),
            ("rreset", p.r_reset_ohm),
            ("treset", treset),
        ),
        comment=(
            f"integrator {name}: C_int = {cfg.c_int_f!r} F, rnoise = e_n^2/(4kT) = "
            f"{p.r_noise_ohm!r} ohm"
        ),
    )


def _device(
    cfg: CircuitConfig, name: str, n1: str, n2: str, g: float, *, linear: bool = False
) -> Element:
    g = float(g)
    if cfg.device.read_iv == "linear" or linear:
        return Resistor(name, n1, n2, 1.0 / g, comment=f"device g = {g!r} S")
    return Instance(
        name,
        (n1, n2),
        "rpu_read_sinh",
        (("g", g), ("v0", cfg.device.read_v0_v)),
        comment=f"device g = {g!r} S at 0 V (sinh read)",
    )


# --------------------------------------------------------------------------- read


def build_read(
    cfg: CircuitConfig,
    g_pos: npt.ArrayLike,
    g_neg: npt.ArrayLike | None,
    x: npt.ArrayLike,
    *,
    direction: Direction = "forward",
    analysis: ReadAnalysis = "tran",
    check_budget: bool = True,
) -> Netlist:
    """A forward or backward read of the whole tile.

    ``g_pos``/``g_neg``: device conductances (S) of arrays p and m, shape ``(rows, cols)``
    (``g_neg`` is None for an unpaired tile). ``x``: inputs in [-1, 1], one per input line
    (``cols`` forward, ``rows`` backward). ``analysis="tran"`` builds the transient with
    integrators (vectors ``v(out{k})``, role ``"outputs"``); ``"op"`` the DC operating point
    with 0 V sources at the summing nodes (vectors ``i(vsum{k})``, role ``"currents"``).
    """
    tile = cfg.tile
    rows, cols = tile.rows, tile.cols
    if direction not in ("forward", "backward"):
        raise NetlistError(f"direction = {direction!r}: must be 'forward' or 'backward'")
    if analysis not in ("tran", "op"):
        raise NetlistError(f"analysis = {analysis!r}: must be 'tran' or 'op'")
    if check_budget:
        try:
            check_spice_budget(cfg, analysis)
        except ConfigError as exc:
            raise NetlistError(str(exc)) from exc
    gp = _as_matrix(g_pos, (rows, cols), "g_pos")
    arrays: list[tuple[str, float, FloatArray]] = [("p", 1.0, gp)]
    if tile.paired:
        if g_neg is None:
            raise NetlistError("g_neg = None: a paired tile needs the G- conductances")
        arrays.append(("m", -1.0, _as_matrix(g_neg, (rows, cols), "g_neg")))
    elif g_neg is not None:
        raise NetlistError("g_neg given but tile.paired = false")
    n_in, n_out = (cols, rows) if direction == "forward" else (rows, cols)
    xq = quantize_inputs(cfg, _as_inputs(x, n_in, "x"))
    p = cfg.periphery
    partial = np.any((np.abs(xq) > 0) & (np.abs(xq) < 1))
    if analysis == "op" and cfg.device.read_iv == "sinh" and p.encoding == "time" and partial:
        raise UnsupportedError(
            "a DC operating point of time-encoded inputs with a sinh read I-V is not "
            "equivalent to the transient; use analysis='tran' or amplitude encoding"
        )
    in_seg = tile.r_seg_col_ohm if direction == "forward" else tile.r_seg_row_ohm
    out_seg = tile.r_seg_row_ohm if direction == "forward" else tile.r_seg_col_ohm
    in_c = tile.c_seg_col_f if direction == "forward" else tile.c_seg_row_f
    out_c = tile.c_seg_row_f if direction == "forward" else tile.c_seg_col_f
    # Input line k has n_out cross points; output line m has n_in cross points.
    in_kind, out_kind = ("c", "r") if direction == "forward" else ("r", "c")
    in_line: Literal["row", "col"] = "col" if direction == "forward" else "row"
    out_line: Literal["row", "col"] = "row" if direction == "forward" else "col"
    t0, t_end = read_times(cfg)
    els: list[Element] = []

    def in_node(a: str, k: int, pos: int) -> str:
        return f"{a}{in_kind}{k}_{out_kind}{pos}"

    def out_node(a: str, m: int, pos: int) -> str:
        return f"{a}{out_kind}{m}_{in_kind}{pos}"

    for a, sign, _ in arrays:
        for k in range(n_in):
            xv = float(xq[k]) * sign
            drv = f"{a}{in_kind}{k}_d"
            if analysis == "op":
                v = xv * p.v_read_v
                els.append(
                    Instance(
                        f"drv_{a}{in_kind}{k}",
                        (drv,),
                        "rpu_dc_driver",
                        (("v", v), ("rout", tile.r_driver_ohm)),
                        comment=f"input {k}: x = {xv!r} -> mean voltage x*V_read",
                    )
                )
            else:
                if p.encoding == "time":
                    amp, width = math.copysign(p.v_read_v, xv), abs(xv) * p.t_meas_s
                else:
                    amp, width = xv * p.v_read_v, p.t_meas_s
                if width == 0.0 or amp == 0.0:
                    amp, width = 0.0, p.t_meas_s
                els.append(
                    Instance(
                        f"drv_{a}{in_kind}{k}",
                        (drv,),
                        "rpu_pulse_driver",
                        (
                            ("v", amp),
                            ("td", t0 - p.t_rise_s),
                            ("tw", width),
                            ("tr", p.t_rise_s),
                            ("rout", tile.r_driver_ohm),
                        ),
                        comment=f"input {k}: x = {xv!r} ({p.encoding} encoding)",
                    )
                )
            prev = drv
            for pos in range(n_out):
                node = in_node(a, k, pos)
                note = _seg_note(cfg, in_line, f"input line {k}") if pos == 0 else ""
                els.append(Resistor(f"s_{node}", prev, node, in_seg, comment=note))
                if analysis == "tran" and in_c > 0:
                    els.append(Capacitor(f"g_{node}", node, "0", in_c))
                prev = node
    for a, _, g in arrays:
        for m in range(n_out):
            for pos in range(n_in):
                node = out_node(a, m, pos)
                nxt = out_node(a, m, pos + 1) if pos + 1 < n_in else f"sum{m}"
                note = _seg_note(cfg, out_line, f"output line {m}") if pos == 0 else ""
                els.append(Resistor(f"s_{node}", node, nxt, out_seg, comment=note))
                if analysis == "tran" and out_c > 0:
                    els.append(Capacitor(f"g_{node}", node, "0", out_c))
        for i in range(rows):
            for j in range(cols):
                els.append(
                    _device(cfg, f"d_{a}_{i}_{j}", f"{a}r{i}_c{j}", f"{a}c{j}_r{i}", g[i, j])
                )
    if analysis == "tran":
        for m in range(n_out):
            els.append(_integrator(cfg, f"int{m}", f"sum{m}", f"out{m}", treset=p.t_reset_s))
        vectors = tuple(f"v(out{m})" for m in range(n_out))
        role = "outputs"
        analyses: tuple[AnalysisRecord, ...] = (Tran(step_s=p.t_step_s, stop_s=t_end),)
    else:
        for m in range(n_out):
            els.append(VSource(f"sum{m}", f"sum{m}", "0", comment="virtual ground"))
        vectors = tuple(f"i(vsum{m})" for m in range(n_out))
        role = "currents"
        analyses = (Op(),)
    return Netlist(
        title=f"rpucircuit {direction} read, {rows}x{cols} tile, {analysis}",
        libs=("rpu_drivers.lib", "rpu_integrator.lib", "rpu_devices.lib"),
        elements=tuple(els),
        analyses=analyses,
        vectors=vectors,
        layout=((role, vectors),),
    )


# --------------------------------------------------------------------------- update


def _as_bits(bits: npt.ArrayLike, shape: tuple[int, int], what: str) -> npt.NDArray[np.bool_]:
    a = np.asarray(bits)
    if a.shape != shape:
        raise NetlistError(f"{what}: shape {a.shape} must be {shape}")
    if a.dtype != np.bool_ and not (
        np.issubdtype(a.dtype, np.integer) and np.all((a == 0) | (a == 1))
    ):
        raise NetlistError(f"{what}: must hold booleans (or 0/1 integers)")
    return a.astype(np.bool_)


def update_slot_times(cfg: CircuitConfig) -> tuple[float, float]:
    """(start of bit slot 0, end of the update transient) in s; slot b starts at
    ``t_first + b·t_pulse``."""
    p = cfg.periphery
    return p.t_pulse_s, (p.bl + 2) * p.t_pulse_s


def _bit_pwl(cfg: CircuitConfig, bits: npt.NDArray[np.bool_], amp: float) -> tuple[float, ...]:
    """PWL of a bit stream: runs of set bits become one trapezoid whose 50 % points sit on
    the slot edges (area amp·t_pulse per bit)."""
    p = cfg.periphery
    t_first, t_end = update_slot_times(cfg)
    half = p.t_rise_s / 2.0
    pts: list[float] = [0.0, 0.0]
    b = 0
    n = len(bits)
    while b < n:
        if not bits[b]:
            b += 1
            continue
        e = b
        while e + 1 < n and bits[e + 1]:
            e += 1
        t_on = t_first + b * p.t_pulse_s
        t_off = t_first + (e + 1) * p.t_pulse_s
        pts += [t_on - half, 0.0, t_on + half, amp, t_off - half, amp, t_off + half, 0.0]
        b = e + 1
    pts += [t_end, 0.0]
    return tuple(pts)


def build_update(
    cfg: CircuitConfig,
    g0: npt.ArrayLike,
    row_bits: npt.ArrayLike,
    col_bits: npt.ArrayLike,
    *,
    polarity: Literal[1, -1] = 1,
    check_budget: bool = True,
) -> Netlist:
    """One stochastic update cycle of one array (V/2 scheme).

    ``g0``: initial conductances (S), ``(rows, cols)``. ``row_bits``: ``(rows, BL)`` and
    ``col_bits``: ``(cols, BL)`` booleans, one slot of ``t_pulse`` each. Rows pulse to
    ``+polarity·V_S/2``, columns to ``−polarity·V_S/2``, so a coincidence puts
    ``polarity·V_S`` across the device (up for +1) and a half-selected device sees
    ``polarity·V_S/2``. A signed update is two cycles, one per polarity. Drivers sit at the
    index-0 end of every line (rows: column 0; columns: row 0); the far ends are open.
    Device (i, j)'s conductance change is ``1e-9·v(s{i}_{j})`` S (1 V = 1 nS); vectors
    ``v(s{i}_{j})`` in row-major order, role ``"states"``.
    """
    tile = cfg.tile
    rows, cols = tile.rows, tile.cols
    if polarity not in (1, -1):
        raise NetlistError(f"polarity = {polarity!r}: must be 1 or -1")
    if check_budget:
        try:
            check_spice_budget(cfg, "update")
        except ConfigError as exc:
            raise NetlistError(str(exc)) from exc
    g = _as_matrix(g0, (rows, cols), "g0")
    dev = cfg.device
    if np.any(g < dev.g_off_s) or np.any(g > dev.g_on_s):
        raise NetlistError(
            f"g0: conductances must lie in [g_off, g_on] = [{dev.g_off_s!r}, {dev.g_on_s!r}] S"
        )
    p = cfg.periphery
    rb = _as_bits(row_bits, (rows, p.bl), "row_bits")
    cb = _as_bits(col_bits, (cols, p.bl), "col_bits")
    half = polarity * p.v_s_v / 2.0
    els: list[Element] = []
    for i in range(rows):
        drv = f"pr{i}_d"
        els.append(
            VSource(
                f"row{i}",
                f"vr{i}",
                "0",
                pwl=_bit_pwl(cfg, rb[i], half),
                comment=f"row {i} bits {''.join('1' if b else '0' for b in rb[i])}",
            )
        )
        els.append(Resistor(f"drv_r{i}", f"vr{i}", drv, tile.r_driver_ohm))
        prev = drv
        for j in range(cols):
            node = f"pr{i}_c{j}"
            note = _seg_note(cfg, "row", f"row {i}") if j == 0 else ""
            els.append(Resistor(f"s_{node}", prev, node, tile.r_seg_row_ohm, comment=note))
            if tile.c_seg_row_f > 0:
                els.append(Capacitor(f"g_{node}", node, "0", tile.c_seg_row_f))
            prev = node
    for j in range(cols):
        drv = f"pc{j}_d"
        els.append(
            VSource(
                f"col{j}",
                f"vc{j}",
                "0",
                pwl=_bit_pwl(cfg, cb[j], -half),
                comment=f"column {j} bits {''.join('1' if b else '0' for b in cb[j])}",
            )
        )
        els.append(Resistor(f"drv_c{j}", f"vc{j}", drv, tile.r_driver_ohm))
        prev = drv
        for i in range(rows):
            node = f"pc{j}_r{i}"
            note = _seg_note(cfg, "col", f"column {j}") if i == 0 else ""
            els.append(Resistor(f"s_{node}", prev, node, tile.r_seg_col_ohm, comment=note))
            if tile.c_seg_col_f > 0:
                els.append(Capacitor(f"g_{node}", node, "0", tile.c_seg_col_f))
            prev = node
    rate = cfg.update_rate_scale
    r0up = rate * 2.0 * dev.up_down_ratio / (1.0 + dev.up_down_ratio)
    r0dn = rate * 2.0 / (1.0 + dev.up_down_ratio)
    sub = {"rectifying": "rpu_update_rect", "linear": "rpu_update_lin"}.get(
        dev.response, "rpu_update_sat"
    )
    states: list[str] = []
    for i in range(rows):
        for j in range(cols):
            params: list[tuple[str, float]] = [
                ("g0", float(g[i, j])),
                ("r0up", r0up),
                ("r0dn", r0dn),
            ]
            if dev.response != "linear":
                params.append(("v0", cfg.update_v0_v))
            params += [("gon", dev.g_on_s), ("goff", dev.g_off_s), ("margin", dev.bound_margin)]
            els.append(
                Instance(
                    f"u_{i}_{j}",
                    (f"pr{i}_c{j}", f"pc{j}_r{i}", f"s{i}_{j}"),
                    sub,
                    tuple(params),
                    comment=(
                        f"device ({i},{j}) {dev.response}: k = {dev.k!r}, "
                        f"dg per pulse = {dev.dg_pulse_s!r} S"
                    ),
                )
            )
            states.append(f"v(s{i}_{j})")
    _, t_end = update_slot_times(cfg)
    step = p.t_rise_s / 5.0
    return Netlist(
        title=f"rpucircuit update cycle, {rows}x{cols} array, polarity {polarity:+d}",
        libs=("rpu_devices.lib",),
        elements=tuple(els),
        analyses=(Tran(step_s=step, stop_s=t_end, uic=True),),
        vectors=tuple(states),
        options=(("reltol", 1e-6), ("vntol", 1e-9)),
        layout=(("states", tuple(states)),),
    )


# --------------------------------------------------------------------------- noise


def build_noise(
    cfg: CircuitConfig,
    g_pos: npt.ArrayLike,
    g_neg: npt.ArrayLike | None,
    *,
    line: Literal["row", "col"] = "row",
    points_per_decade: int = 20,
    f_start_hz: float = 1e3,
    f_stop_hz: float = 10e9,
    opamp_noise: Literal["resistor", "source"] = "resistor",
) -> Netlist:
    """``.noise`` of one output line with its integrator (forward: a row, ``line="row"``).

    ``g_pos``/``g_neg``: the line's device conductances (S), one per cross point. Each
    device joins the output line node ``{a}r0_c{j}`` to its input line, which is held at 0 V
    through the driver resistance plus one segment (``{a}c{j}_d``). Devices are linear
    resistors (thermal noise 4kT·G; a sinh device's small-signal G), the op-amp's e_n is its
    series resistor, the integrator's reset switch is open. Output ``v(out0)``; the noise
    input source is ``vin0`` (input line 0 of array p, ``ac 1``). Plots ``noise1``
    (``frequency``, ``onoise_spectrum``, ``inoise_spectrum``, V/√Hz) and ``noise2``
    (``v(onoise_total)``, ``v(inoise_total)``).

    ``opamp_noise="source"`` is the variant for the transient-noise Monte Carlo: the
    integrator is ``rpu_integrator_ext`` (no noise resistor) and its non-inverting input
    ``pin0`` is driven by the explicit source ``ven0`` (``dc 0``, no noise of its own in
    ``.noise``) that the Monte Carlo gives a PWL waveform of density e_n; the instance also
    carries ``vreset`` (0 V), the capacitor voltage its reset switch holds.
    """
    if opamp_noise not in ("resistor", "source"):
        raise NetlistError(f"opamp_noise = {opamp_noise!r}: must be 'resistor' or 'source'")
    tile = cfg.tile
    try:
        gp = np.asarray(g_pos, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetlistError(f"g_pos: not a numeric array ({exc})") from exc
    if gp.ndim != 1 or gp.size < 1:
        raise NetlistError(f"g_pos: shape {gp.shape} must be (n,) with n >= 1")
    n = gp.size
    arrays: list[tuple[str, FloatArray]] = [("p", _as_matrix(gp[None, :], (1, n), "g_pos")[0])]
    if tile.paired:
        if g_neg is None:
            raise NetlistError("g_neg = None: a paired tile needs the G- conductances")
        gn = _as_matrix(np.asarray(g_neg, dtype=np.float64)[None, :], (1, n), "g_neg")[0]
        arrays.append(("m", gn))
    elif g_neg is not None:
        raise NetlistError("g_neg given but tile.paired = false")
    if line not in ("row", "col"):
        raise NetlistError(f"line = {line!r}: must be 'row' or 'col'")
    r_out = tile.r_seg_row_ohm if line == "row" else tile.r_seg_col_ohm
    c_out = tile.c_seg_row_f if line == "row" else tile.c_seg_col_f
    r_in = tile.r_seg_col_ohm if line == "row" else tile.r_seg_row_ohm
    els: list[Element] = []
    for a, g in arrays:
        for j in range(n):
            src = "in0" if (a == "p" and j == 0) else f"in_{a}{j}"
            els.append(VSource(src, f"v{a}{j}", "0", ac=1.0 if src == "in0" else None, comment=""))
            els.append(
                Resistor(
                    f"drv_{a}{j}",
                    f"v{a}{j}",
                    f"{a}c{j}_d",
                    tile.r_driver_ohm + r_in,
                    comment="driver resistance + one input-line segment",
                )
            )
            node = f"{a}r0_c{j}"
            els.append(_device(cfg, f"d_{a}_{j}", node, f"{a}c{j}_d", float(g[j]), linear=True))
            nxt = f"{a}r0_c{j + 1}" if j + 1 < n else "sum0"
            note = _seg_note(cfg, line, f"output line, array {a}") if j == 0 else ""
            els.append(Resistor(f"s_{node}", node, nxt, r_out, comment=note))
            if c_out > 0:
                els.append(Capacitor(f"g_{node}", node, "0", c_out))
    if opamp_noise == "resistor":
        els.append(_integrator(cfg, "int0", "sum0", "out0", treset=0.0))
    else:
        p = cfg.periphery
        els.append(
            VSource(
                "en0",
                "pin0",
                "0",
                comment=(
                    f"op-amp input-referred noise source, density e_n = {p.e_n_v_per_rthz!r} "
                    "V/rtHz (a PWL waveform in the Monte Carlo)"
                ),
            )
        )
        els.append(
            Instance(
                "int0",
                ("sum0", "out0", "pin0"),
                "rpu_integrator_ext",
                (
                    ("a0", p.a0),
                    ("gbw", p.gbw_hz),
                    ("vmax", p.v_out_max_v),
                    ("cint", cfg.c_int_f),
                    ("rreset", p.r_reset_ohm),
                    ("treset", 0.0),
                    ("vreset", 0.0),
                ),
                comment=f"integrator int0: C_int = {cfg.c_int_f!r} F, e_n from source en0",
            )
        )
    return Netlist(
        title=f"rpucircuit noise of one {line} line, {n} cross points",
        libs=("rpu_integrator.lib",),
        elements=tuple(els),
        analyses=(Noise("out0", "in0", points_per_decade, f_start_hz, f_stop_hz),),
        vectors=(),
        layout=(("spectrum", ("onoise_spectrum", "inoise_spectrum")),),
    )


# --------------------------------------------------------------------------- line delay


def build_line(
    cfg: CircuitConfig,
    *,
    line: Literal["row", "col"] = "row",
    n: int | None = None,
    load_devices: bool = True,
    t_stop_s: float | None = None,
    t_rise_s: float | None = None,
    points: int = 1000,
) -> Netlist:
    """Step response of one line: a V_read step through the driver resistance into ``n``
    RC segments (default: the tile's length of that line), the far end open.

    With ``load_devices`` every cross point also has a device of G_mean to ground (the
    crossing lines are near ground). Nodes ``l0`` … ``l{n-1}`` (``l{n-1}`` is the far end);
    vectors ``v(l0)``, ``v(l{n-1})``, role ``"ends"``. The step is a linear ramp from
    t = 0 to ``t_rise_s`` (default: Elmore delay/100, so the line, not the ramp, sets the
    delay; measure delays from ``t_rise_s/2``). ``t_stop_s`` defaults to ramp + 10 × the
    Elmore delay ``R_drv·n·c + r·c·n(n+1)/2`` of the driven line.
    """
    tile = cfg.tile
    if n is None:
        n = tile.cols if line == "row" else tile.rows
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise NetlistError(f"n = {n!r}: must be an integer >= 1")
    if line not in ("row", "col"):
        raise NetlistError(f"line = {line!r}: must be 'row' or 'col'")
    r = tile.r_seg_row_ohm if line == "row" else tile.r_seg_col_ohm
    c = tile.c_seg_row_f if line == "row" else tile.c_seg_col_f
    if c <= 0:
        raise NetlistError(f"tile.{line}_line.c_f_per_um = 0: a delay needs line capacitance")
    if isinstance(points, bool) or not isinstance(points, int) or points < 10:
        raise NetlistError(f"points = {points!r}: must be an integer >= 10")
    p = cfg.periphery
    elmore = tile.r_driver_ohm * n * c + r * c * n * (n + 1) / 2.0
    rise = elmore / 100.0 if t_rise_s is None else check_value(t_rise_s, "t_rise_s")
    stop = 10.0 * elmore + rise if t_stop_s is None else check_value(t_stop_s, "t_stop_s")
    if not 0 < rise < stop:
        raise NetlistError(f"t_rise_s = {rise!r}, t_stop_s = {stop!r}: need 0 < rise < stop")
    els: list[Element] = [
        VSource(
            "step",
            "vs",
            "0",
            pwl=(0.0, 0.0, rise, p.v_read_v, stop, p.v_read_v),
            comment=f"V_read step, ramp {rise!r} s (Elmore delay {elmore!r} s)",
        ),
        Resistor("drv", "vs", "ld", tile.r_driver_ohm, comment="driver output resistance"),
    ]
    prev = "ld"
    for k in range(n):
        node = f"l{k}"
        note = _seg_note(cfg, line, f"{line} line") if k == 0 else ""
        els.append(Resistor(f"s_{node}", prev, node, r, comment=note))
        els.append(Capacitor(f"g_{node}", node, "0", c))
        if load_devices:
            els.append(Resistor(f"d_{node}", node, "0", cfg.device.r_mean_ohm))
        prev = node
    ends = ("v(l0)", f"v(l{n - 1})")
    return Netlist(
        title=f"rpucircuit {line} line step response, {n} segments",
        libs=(),
        elements=tuple(els),
        analyses=(Tran(step_s=stop / points, stop_s=stop),),
        vectors=ends,
        layout=(("ends", ends),),
    )


def build_cycle(
    cfg: CircuitConfig,
    cycle: Literal["forward", "backward", "update", "noise", "line"],
    *,
    rng: np.random.Generator,
) -> Netlist:
    """A netlist of ``cycle`` for random conductances/inputs from ``rng`` (the CLI's use)."""
    tile, dev, p = cfg.tile, cfg.device, cfg.periphery
    gp = rng.uniform(dev.g_off_s, dev.g_on_s, size=(tile.rows, tile.cols))
    gn = rng.uniform(dev.g_off_s, dev.g_on_s, size=(tile.rows, tile.cols)) if tile.paired else None
    if cycle in ("forward", "backward"):
        n_in = tile.cols if cycle == "forward" else tile.rows
        x = rng.uniform(-1.0, 1.0, size=n_in)
        return build_read(cfg, gp, gn, x, direction=cycle)
    if cycle == "update":
        rb = rng.random((tile.rows, p.bl)) < 0.5
        cb = rng.random((tile.cols, p.bl)) < 0.5
        return build_update(cfg, gp, rb, cb)
    if cycle == "noise":
        return build_noise(cfg, gp[0], None if gn is None else gn[0])
    if cycle == "line":
        return build_line(cfg)
    raise NetlistError(f"cycle = {cycle!r}: must be forward, backward, update, noise or line")


def libraries(netlist: Netlist) -> list[Path]:
    """Paths of the library files ``netlist`` includes (copied into each run folder)."""
    return [NETLIST_DIR / name for name in netlist.libs]


__all__ = [
    "NETLIST_DIR",
    "RAW_NAME",
    "Capacitor",
    "Instance",
    "Netlist",
    "Noise",
    "Op",
    "Resistor",
    "Tran",
    "VSource",
    "build_cycle",
    "build_line",
    "build_noise",
    "build_read",
    "build_update",
    "check_name",
    "check_value",
    "input_volt_seconds",
    "libraries",
    "quantize_inputs",
    "read_times",
    "render",
    "update_slot_times",
]
