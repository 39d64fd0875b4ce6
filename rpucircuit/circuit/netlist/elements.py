"""Element records and the renderer: a circuit as data, turned into SPICE text once.

A :class:`Netlist` is a closed set of small frozen records (:class:`Resistor`,
:class:`Capacitor`, :class:`VSource`, :class:`Instance`) plus analyses (:class:`Op`,
:class:`Tran`, :class:`Noise`). :func:`render` validates every name, number and comment and
writes ngspice input text, including the ``.control`` block that runs the analyses,
``write``\\s the raw file ``out.raw`` and ``quit``\\s. That block is generated here from
validated records only: no user string ever reaches it. The same netlist renders to the
same bytes.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rpucircuit.errors import NetlistError

NETLIST_DIR = Path(__file__).resolve().parents[3] / "netlists"
"""Folder of the hand-written subcircuit libraries (``*.lib``): the repository's top-level
``netlists/`` (this file is ``rpucircuit/circuit/netlist/elements.py``)."""

RAW_NAME = "out.raw"
"""Raw file every rendered netlist writes, relative to the run folder."""

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


def libraries(netlist: Netlist) -> list[Path]:
    """Paths of the library files ``netlist`` includes (copied into each run folder)."""
    return [NETLIST_DIR / name for name in netlist.libs]
