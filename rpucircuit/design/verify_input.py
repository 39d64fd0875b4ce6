"""The input of ``rpucircuit verify``: the design file, its spec, and the designer's SPICE
libraries, all checked before anything is simulated.

A design file (TOML) names the designer's library files (paths relative to the design
file), which subcircuit plays which role, the tile (an inline ``[circuit]`` table or the
path of a circuit TOML) and the ``[spec]`` the checks hold the circuit to::

    circuit = "tile.toml"                      # or a [circuit] table with [circuit.tile] ...

    [libraries.integrator]                     # ports: inn out
    file = "my_integrator.lib"
    subckt = "my_int"
    [libraries.driver]                         # ports: out
    file = "my_drivers.lib"
    subckt = "my_pulse"
    [libraries.device]                         # optional; read ports: a b, update: row col s
    file = "my_devices.lib"
    read = "my_read"
    update = "my_update"

    [spec]
    output_error_pct = 2.0
    ...

The pin interface is the one of the shipped ``netlists/*.lib`` (:data:`ROLES`): a role's
subcircuit must have exactly its ports, in that order, and declare the parameters the
role needs; of the other documented parameters it gets those it declares.

A library is plain SPICE text that ngspice reads as an include file. What it may hold is a
closed list (:data:`ALLOWED_DOT_COMMANDS`): subcircuits, models, parameters, functions and
options. Anything that runs analyses, includes other files or executes commands
(``.control``, ``*#`` command lines, ``shell``, ``.include``, ``.lib``, OSDI or code-model
loading, XSPICE ``A`` instances, whose code models can read files) is refused with the file
and line, so that a library never makes ngspice do more than simulate.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpucircuit.config.base import read_toml_file
from rpucircuit.config.tile import (
    CircuitConfig,
    check_spice_budget,
    circuit_config_from_data,
    load_circuit_config,
    replace_tile,
)
from rpucircuit.errors import ConfigError, RpuError


class DesignError(RpuError):
    """A design file or one of its libraries is unusable; the message names the file (and
    the line, where there is one) and what to do."""


# --------------------------------------------------------------------------- roles


@dataclass(frozen=True, slots=True)
class Role:
    """One part of the periphery a designer may bring: its ports and parameters."""

    name: str
    """Role name as written in ``[libraries]`` (and the key of the subcircuit there)."""
    table: str
    """The ``[libraries.<table>]`` table it sits in."""
    shipped: tuple[str, ...]
    """Shipped subcircuits it replaces in the netlist builders' output."""
    ports: tuple[str, ...]
    """Port names, in order (the documented interface)."""
    required: tuple[str, ...]
    """Parameters the subcircuit must declare (the builders set them per instance)."""
    optional: tuple[str, ...]
    """Parameters passed only when the subcircuit declares them."""


ROLES: tuple[Role, ...] = (
    Role(
        "integrator",
        "integrator",
        ("rpu_integrator",),
        ("inn", "out"),
        (),
        ("a0", "gbw", "vmax", "cint", "rnoise", "rreset", "treset"),
    ),
    Role(
        "driver",
        "driver",
        ("rpu_pulse_driver",),
        ("out",),
        ("v", "td", "tw", "tr"),
        ("rout",),
    ),
    Role("read", "device", ("rpu_read_sinh",), ("a", "b"), ("g",), ("v0",)),
    Role(
        "update",
        "device",
        ("rpu_update_rect", "rpu_update_lin", "rpu_update_sat"),
        ("row", "col", "s"),
        ("g0",),
        ("r0up", "r0dn", "v0", "gon", "goff", "margin"),
    ),
)
"""The roles, with the pin interface of the shipped ``netlists/*.lib``."""

ROLE_BY_NAME = {r.name: r for r in ROLES}
_REQUIRED_TABLES = ("integrator", "driver")
_TABLE_KEYS = {"integrator": ("subckt",), "driver": ("subckt",), "device": ("read", "update")}

# --------------------------------------------------------------------------- library scan

ALLOWED_DOT_COMMANDS = frozenset(
    {".subckt", ".ends", ".model", ".param", ".func", ".option", ".options", ".ic", ".nodeset"}
)
"""Dot commands a library may hold: definitions only."""
_EXPLAIN = {
    ".control": "a .control block runs ngspice commands",
    ".endc": "a .control block runs ngspice commands",
    ".exec": "an .exec block runs ngspice commands",
    ".include": "a library may not include other files (put the text in the file itself)",
    ".inc": "a library may not include other files (put the text in the file itself)",
    ".lib": "a library may not include other files (put the text in the file itself)",
    ".end": ".end would end the netlist that includes the library",
}
_FORBIDDEN_WORDS = {
    "shell": "'shell' runs an operating-system command",
    "pre_osdi": "OSDI loads a compiled shared library",
    "osdi": "OSDI loads a compiled shared library",
    "codemodel": "a code model loads a compiled shared library",
    "d_cosim": "d_cosim loads a compiled shared library",
    "pre_codemodel": "a code model loads a compiled shared library",
}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
MAX_LIBRARY_BYTES = 4 << 20
"""Largest library file read (4 MiB): a bigger one is refused, not parsed."""


@dataclass(frozen=True, slots=True)
class Subckt:
    """A ``.subckt`` definition found in a library."""

    name: str
    ports: tuple[str, ...]
    params: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Library:
    """A designer's library file, read and scanned."""

    path: Path
    text: str
    subckts: Mapping[str, Subckt]


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each logical line: continuation lines (``+``) joined,
    comments (``*`` lines, ``;`` and ``$`` tails) and blank lines dropped."""
    out: list[tuple[int, str]] = []
    for k, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("*"):
            continue
        for mark in (";", " $", "\t$"):
            cut = line.find(mark)
            if cut >= 0:
                line = line[:cut].rstrip()
        if not line:
            continue
        if line.startswith("+"):
            if not out:
                out.append((k, line[1:].strip()))
            else:
                first, prev = out[-1]
                out[-1] = (first, prev + " " + line[1:].strip())
            continue
        out.append((k, line))
    return out


def _parse_subckt(tokens: list[str], line: int, where: str) -> Subckt:
    if len(tokens) < 2:
        raise DesignError(f"{where}: .subckt without a name")
    name = tokens[1].lower()
    ports: list[str] = []
    params: list[str] = []
    in_params = False
    rest = " ".join(tokens[2:])
    rest = re.sub(r"\s*=\s*", "=", rest)
    for tok in rest.split():
        low = tok.lower()
        if low == "params:":
            in_params = True
            continue
        if low.startswith("params:"):
            in_params, low = True, low[len("params:") :]
        if "=" in low:
            in_params = True
            params.append(low.split("=", 1)[0])
        elif in_params:
            continue  # the value part of a spaced-out default, already joined above
        else:
            ports.append(low)
    return Subckt(name, tuple(ports), tuple(params), line)


def _scan_raw_lines(path: Path, text: str) -> None:
    """Refuse, on the raw text, what ngspice would execute whatever the scanner thinks
    of comments: ``*#`` lines (ngspice runs them as commands, even inside a subcircuit)
    and the forbidden words anywhere outside a plain ``*`` comment line, ``;`` and ``$``
    tails included (ngspice's rules for those are narrower than a scanner's)."""
    for k, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("*#"):
            raise DesignError(
                f"{path}:{k}: refused a '*#' line: ngspice runs it as a command; "
                "a library holds circuits only"
            )
        if not line or line.startswith("*"):
            continue
        first = line.split(maxsplit=1)[0].lower()
        if first in (".control", ".endc", ".exec"):
            raise DesignError(
                f"{path}:{k}: refused {first}: {_EXPLAIN[first]}; a library holds circuits only"
            )
        for word in _WORD.findall(line):
            why = _FORBIDDEN_WORDS.get(word.lower())
            if why is not None:
                raise DesignError(
                    f"{path}:{k}: refused {word!r}: {why}; a library holds circuits only"
                )


def scan_library(path: Path, text: str) -> Library:
    """Check a library's text and collect its subcircuits (pure: ``path`` only names it).

    Raises :class:`DesignError` naming ``path`` and the line for anything outside
    :data:`ALLOWED_DOT_COMMANDS` and for the words of :data:`_FORBIDDEN_WORDS`.
    """
    _scan_raw_lines(path, text)
    subckts: dict[str, Subckt] = {}
    open_subckts: list[tuple[int, str]] = []  # (line, name) of each .subckt not yet ended
    for line, body in _logical_lines(text):
        where = f"{path}:{line}"
        tokens = body.split()
        if not tokens:
            raise DesignError(f"{where}: a continuation line ('+') with no line before it")
        first = tokens[0].lower()
        if first.startswith("a"):
            raise DesignError(
                f"{where}: refused XSPICE instance {tokens[0]!r}: code models can read files "
                "and load compiled code; a library holds circuits of standard elements only"
            )
        if first.startswith("."):
            if first in _EXPLAIN:
                raise DesignError(
                    f"{where}: refused {first}: {_EXPLAIN[first]}; a library holds circuits only"
                )
            if first not in ALLOWED_DOT_COMMANDS:
                allowed = " ".join(sorted(ALLOWED_DOT_COMMANDS))
                raise DesignError(
                    f"{where}: refused {first}: a library may hold only {allowed} "
                    "(rpucircuit writes the analyses)"
                )
            if first == ".ends":
                if not open_subckts:
                    raise DesignError(f"{where}: .ends without a .subckt before it")
                open_subckts.pop()
            if first == ".subckt":
                open_subckts.append((line, tokens[1] if len(tokens) > 1 else ""))
                sub = _parse_subckt(tokens, line, where)
                if sub.name in subckts:
                    raise DesignError(
                        f"{where}: subcircuit {sub.name!r} defined twice "
                        f"(first at line {subckts[sub.name].line})"
                    )
                subckts[sub.name] = sub
    if open_subckts:
        line, name = open_subckts[-1]
        raise DesignError(f"{path}:{line}: .subckt {name} has no .ends")
    return Library(path=path, text=text, subckts=subckts)


def _require_regular_file(path: Path, what: str) -> None:
    """Refuse anything but a regular file before opening it: a FIFO would block the open
    forever, and a device (/dev/zero) would be read without end."""
    mode = path.stat().st_mode  # OSError (missing, unreadable) is the caller's to word
    if stat.S_ISDIR(mode):
        raise DesignError(f"cannot read {what} {path}: Is a directory")
    if not stat.S_ISREG(mode):
        raise DesignError(f"cannot read {what} {path}: not a regular file")


def read_library(path: Path) -> Library:
    """Read and scan a library file; a missing, unreadable, huge or non-text file is a
    DesignError naming it."""
    try:
        _require_regular_file(path, "library")
        # Read at most one byte past the limit: the size stat gives is not the end of the
        # story (a file that grows, a device such as /dev/zero).
        with path.open("rb") as f:
            data = f.read(MAX_LIBRARY_BYTES + 1)
        if len(data) > MAX_LIBRARY_BYTES:
            raise DesignError(f"{path}: a library may have at most {MAX_LIBRARY_BYTES} bytes")
    except OSError as exc:
        raise DesignError(f"cannot read library {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DesignError(
            f"{path}: not plain ASCII text (byte {exc.start}); ngspice reads ASCII netlists"
        ) from exc
    return scan_library(path, text)


def check_role(lib: Library, role: Role, subckt: str) -> Subckt:
    """The subcircuit ``subckt`` of ``lib`` if it exists with ``role``'s ports and
    parameters, else a DesignError naming the file, the subcircuit and the interface."""
    sub = lib.subckts.get(subckt)
    if sub is None:
        have = ", ".join(sorted(lib.subckts)) or "none"
        raise DesignError(
            f"{lib.path}: no subcircuit {subckt!r} for the {role.name} (subcircuits: {have})"
        )
    where = f"{lib.path}:{sub.line}"
    if sub.ports != role.ports:
        raise DesignError(
            f"{where}: subcircuit {subckt!r} has ports ({' '.join(sub.ports)}); the "
            f"{role.name} must have exactly ({' '.join(role.ports)}) in this order"
        )
    missing = [p for p in role.required if p not in sub.params]
    if missing:
        raise DesignError(
            f"{where}: subcircuit {subckt!r} lacks the parameter(s) {', '.join(missing)}; "
            f"the {role.name} is set through {', '.join(role.required)} per instance"
        )
    return sub


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifySpec:
    """What the designer's circuit must meet, and how large the simulated pieces are."""

    output_error_pct: float = 2.0
    """Largest |y − W·x| of a read over the outputs (% of the output bound α); W·x with
    the quantized inputs, y read through the nominal gain Q_unit/C_int."""
    read_gain_min: float = 0.5
    """Smallest fraction of a read's charge that must reach C_int on the full tile: the
    op-amp's finite gain and bandwidth hold the summing node off ground while the full
    output line's devices load it (a constant gain a calibration can undo, but the noise
    is referred through it and the lost part of the swing is not used)."""
    output_max_w: float = 10.0
    """Largest output the network is expected to produce (weight units)."""
    saturation_margin: float = 0.1
    """Headroom the integrator output must keep at ``output_max_w``: 1 − |V_out|/V_swing,
    with V_swing the swing measured by overdriving the integrator (fraction)."""
    settle_fraction: float = 0.1
    """The far-end 50 % delay of the longest line must be within this fraction of the
    update pulse (paper A's rule: 10 % of 1 ns); the integrator must settle to half an
    ADC step within the periphery's t_settle_s."""
    output_noise_sigma_w: float = 0.06
    """σ of one read's output noise (weight units), referred to the input through the
    full-size read gain like the signal. Paper A: 0.06 is acceptable."""
    half_select_max: float = 0.2
    """Largest Δg of a half-selected device relative to a fully selected one."""
    spice_size: int = 16
    """Rows and columns of the representative tile of the transient read (ngspice)."""
    nodal_lines: int = 64
    """Lines per stripe of the full-length read in the nodal solver (a stripe of this many
    full-length output lines and one of this many full-length input lines)."""
    spice_line_max: int = 4096
    """Longest line (segments) whose delay ngspice simulates; longer lines use the
    distributed-line formula (Sakurai), which the shorter ones check."""
    seed: int = 0
    """Seed of the read's random weights and inputs."""
    timeout_s: float = 600.0
    """Time limit of each ngspice run (s)."""

    def __post_init__(self) -> None:
        positive = ("output_error_pct", "output_max_w", "settle_fraction", "timeout_s")
        for name in (*positive, "output_noise_sigma_w", "half_select_max", "read_gain_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"spec.{name} = {value!r}: must be a number")
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"spec.{name} = {value!r}: must be finite and > 0")
        m = self.saturation_margin
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < 1:
            raise ConfigError(f"spec.saturation_margin = {m!r}: must be in [0, 1)")
        ints = (("spice_size", 1, 64), ("spice_line_max", 2, 100_000), ("nodal_lines", 1, 4096))
        for name, lo, hi in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"spec.{name} = {value!r}: must be an integer in [{lo}, {hi}]")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"spec.seed = {self.seed!r}: must be an integer >= 0")


# --------------------------------------------------------------------------- design


@dataclass(frozen=True, slots=True)
class RoleChoice:
    """A role filled by the designer: the library file, the subcircuit and what it declares."""

    role: str
    path: Path
    subckt: Subckt


@dataclass(frozen=True, slots=True)
class Design:
    """A validated design: the circuit, the spec and the designer's subcircuits."""

    source: Path
    circuit: CircuitConfig
    spec: VerifySpec
    roles: tuple[RoleChoice, ...]
    libraries: Mapping[Path, Library] = field(default_factory=dict)

    def role(self, name: str) -> RoleChoice | None:
        """The designer's choice for role ``name``, or None (the shipped one is used)."""
        for r in self.roles:
            if r.role == name:
                return r
        return None


def _str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise DesignError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _circuit(data: Mapping[str, Any], source: Path) -> CircuitConfig:
    given = data.get("circuit")
    if given is None:
        raise DesignError(
            f'{source}: no circuit: give circuit = "tile.toml" (a circuit config file) '
            "or a [circuit] table with [circuit.tile], [circuit.device], [circuit.periphery]"
        )
    try:
        if isinstance(given, str):
            path = (source.parent / given).resolve()
            if path.is_dir():
                raise DesignError(f"{source}: circuit file {given!r} is a folder ({path})")
            if path.exists() and not path.is_file():
                raise DesignError(f"{source}: circuit file {given!r} is not a regular file")
            if not path.is_file():
                raise DesignError(f"{source}: circuit file {given!r} not found ({path})")
            return load_circuit_config(path)
        if isinstance(given, Mapping):
            return circuit_config_from_data({"circuit": given}, source=str(source))
    except ConfigError as exc:
        raise DesignError(f"{source}: circuit: {exc}") from exc
    except UnicodeDecodeError as exc:  # a binary circuit file: the TOML reader lets it through
        raise DesignError(
            f"{source}: circuit file {given!r} is not UTF-8 text (byte {exc.start})"
        ) from exc
    raise DesignError(f"{source}: circuit must be a file name or a table, got {given!r}")


def _spec(data: Mapping[str, Any], source: Path) -> VerifySpec:
    table = data.get("spec", {})
    if not isinstance(table, Mapping):
        raise DesignError(f"{source}: [spec] must be a table")
    known = set(VerifySpec.__dataclass_fields__)
    unknown = sorted(set(table) - known)
    if unknown:
        raise DesignError(
            f"{source}: unknown [spec] field {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    try:
        return VerifySpec(**dict(table))
    except ConfigError as exc:
        raise DesignError(f"{source}: {exc}") from exc


def _roles(
    data: Mapping[str, Any], source: Path
) -> tuple[tuple[RoleChoice, ...], dict[Path, Library]]:
    libs_table = data.get("libraries")
    if not isinstance(libs_table, Mapping):
        raise DesignError(
            f"{source}: no [libraries] table; it needs [libraries.integrator] and "
            "[libraries.driver] (file and subckt), optionally [libraries.device]"
        )
    unknown = [k for k in libs_table if k not in _TABLE_KEYS]
    if unknown:
        raise DesignError(
            f"{source}: unknown table [libraries.{unknown[0]}]; known: " + ", ".join(_TABLE_KEYS)
        )
    missing = [k for k in _REQUIRED_TABLES if k not in libs_table]
    if missing:
        raise DesignError(f"{source}: [libraries.{missing[0]}] is missing (file and subckt)")
    libraries: dict[Path, Library] = {}
    choices: list[RoleChoice] = []
    for table_name, keys in _TABLE_KEYS.items():
        if table_name not in libs_table:
            continue
        table = libs_table[table_name]
        where = f"{source}: [libraries.{table_name}]"
        if not isinstance(table, Mapping):
            raise DesignError(f"{where} must be a table")
        extra = [k for k in table if k not in ("file", *keys)]
        if extra:
            raise DesignError(f"{where}: unknown key {extra[0]!r}; keys: file, {', '.join(keys)}")
        path = (source.parent / _str(table, "file", where)).resolve()
        if path not in libraries:
            libraries[path] = read_library(path)
        given = [k for k in keys if k in table]
        if not given:
            raise DesignError(f"{where}: name at least one subcircuit ({' or '.join(keys)})")
        for key in given:
            role = ROLE_BY_NAME[table_name if key == "subckt" else key]
            name = _str(table, key, where).lower()
            if not _NAME.match(name):
                raise DesignError(f"{where}: {key} = {name!r}: must match [a-z][a-z0-9_]*")
            choices.append(RoleChoice(role.name, path, check_role(libraries[path], role, name)))
    return tuple(choices), libraries


def load_design(path: str | Path) -> Design:
    """Read and validate a design file and every library it names (nothing simulated)."""
    source = Path(path)
    try:
        _require_regular_file(source, "design file")
        data = read_toml_file(source)
    except ConfigError as exc:
        raise DesignError(str(exc).replace("config file", "design file", 1)) from exc
    except OSError as exc:
        raise DesignError(f"cannot read design file {source}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:  # a binary file: the TOML reader lets it through
        raise DesignError(
            f"{source}: not a design file: not UTF-8 text (byte {exc.start})"
        ) from exc
    unknown = [k for k in data if k not in ("circuit", "libraries", "spec")]
    if unknown:
        raise DesignError(
            f"{source}: unknown key or table {unknown[0]!r}; a design has circuit, "
            "[libraries] and [spec]"
        )
    roles, libraries = _roles(data, source)
    _check_distinct_names(libraries)
    circuit, spec = _circuit(data, source), _spec(data, source)
    n = min(spec.spice_size, circuit.tile.rows, circuit.tile.cols)
    try:
        check_spice_budget(replace_tile(circuit, rows=n, cols=n), "tran")
    except ConfigError as exc:
        raise DesignError(f"{source}: spec.spice_size = {spec.spice_size}: {exc}") from exc
    return Design(source=source, circuit=circuit, spec=spec, roles=roles, libraries=libraries)


def _check_distinct_names(libraries: Mapping[Path, Library]) -> None:
    """Two files defining the same subcircuit would leave ngspice to pick one: refused."""
    seen: dict[str, Path] = {}
    for lib in libraries.values():
        for name in lib.subckts:
            if name in seen and seen[name] != lib.path:
                raise DesignError(
                    f"{lib.path}: subcircuit {name!r} is also defined in {seen[name]}; "
                    "every subcircuit name must be defined once across the libraries"
                )
            seen[name] = lib.path


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file, lies under a file, or cannot be created (before
    anything runs)."""
    if out.exists() and not out.is_dir():
        raise DesignError(f"--out {out}: exists and is not a folder")
    base = out.absolute()
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise DesignError(f"--out {out}: {base} is not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise DesignError(f"--out {out}: cannot write into {base}")
