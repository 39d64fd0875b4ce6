"""``rpucircuit verify DESIGN.toml``: check a designer's own peripheral circuit against a spec.

Steps, in order, and nothing simulated before the input is known good:

1. :func:`~rpucircuit.design.verify_input.load_design` reads the design file, the tile and
   the spec, and scans every library (pins, parameters, no commands).
2. :func:`prepare` copies the libraries into ``<out>/libs`` (the netlists include those
   copies, never the originals) and runs each of the designer's subcircuits alone in a
   small operating point, so that a library ngspice rejects is reported with its file and
   ngspice's own message.
3. The checks' simulations (:mod:`~rpucircuit.design.verify_checks`) run through
   :func:`rpucircuit.jobs.run_jobs` (cached in ``<out>/cache``, a process pool or Dask).
4. :func:`evaluate` turns the measured numbers into one row per check (measured, limit,
   margin, pass); :func:`write_outputs` writes ``report.md``, ``verify.h5`` and the plots.

Margins are relative: ``(limit − measured)/limit`` for an upper limit and
``(measured − limit)/limit`` for a lower one; positive means pass.
"""

from __future__ import annotations

import functools
import hashlib
import math
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit import store
from rpucircuit.circuit import netlist as nl
from rpucircuit.circuit import spice
from rpucircuit.circuit.netlist.blocks import integrator
from rpucircuit.config.base import to_toml
from rpucircuit.design import verify_checks as vc
from rpucircuit.design.verify_input import (
    ROLE_BY_NAME,
    Design,
    DesignError,
    RoleChoice,
    VerifySpec,
    check_out,
    load_design,
    read_library,
)
from rpucircuit.errors import SimulationError
from rpucircuit.fileio import atomic_write_text, save_png
from rpucircuit.jobs import make_job, run_jobs, source_digest

KIND = "verify"
"""HDF5 kind of a verification's results."""
SCHEMA_VERSION = 1
"""Layout version of ``verify.h5``."""
RESULT_NAME = "verify.h5"
REPORT_NAME = "report.md"


def code_digest() -> str:
    """Digest of the code that computes a verification job (part of each job's key)."""
    here = Path(__file__).resolve().parent
    return source_digest([here / "verify_checks.py", here / "verify_input.py"])


# --------------------------------------------------------------------------- prepare


def _copy_name(choice: RoleChoice, table_of: Mapping[Path, str]) -> str:
    return f"user_{table_of[choice.path]}.lib"


def _shipped_needed(design: Design) -> set[str]:
    """Shipped libraries some netlist still includes (roles the design leaves out)."""
    needed: set[str] = set()
    if design.role("integrator") is None:
        needed.add("rpu_integrator.lib")
    if design.role("driver") is None:
        needed.add("rpu_drivers.lib")
    if design.role("update") is None or (
        design.role("read") is None and design.circuit.device.read_iv == "sinh"
    ):
        needed.add("rpu_devices.lib")
    return needed


def _check_shipped_clash(design: Design, shipped: set[str]) -> None:
    for name in sorted(shipped):
        lib = read_library(nl.NETLIST_DIR / name)
        for user in design.libraries.values():
            clash = sorted(set(lib.subckts) & set(user.subckts))
            if clash:
                raise DesignError(
                    f"{user.path}: subcircuit {clash[0]!r} has the name of a shipped one in "
                    f"{name}, which this design still uses (a role not given in "
                    "[libraries]); rename it or give that role"
                )


def _ngspice_message(log: str) -> str:
    keys = ("error", "warning", "unknown", "not found", "could not", "undefined", "abort")
    lines = [ln.strip() for ln in log.splitlines() if any(k in ln.lower() for k in keys)]
    if not lines:
        lines = [ln.strip() for ln in log.strip().splitlines()[-5:]]
    return " | ".join(lines[:6])


def _smoke_elements(design: Design, choice: RoleChoice) -> list[nl.Element]:
    """A role's subcircuit alone, its ports tied to sources and loads, for an op point."""
    cfg = design.circuit
    sub, declared = choice.subckt.name, set(choice.subckt.params)

    def inst(nodes: tuple[str, ...], params: tuple[tuple[str, float], ...]) -> nl.Instance:
        kept = tuple((k, v) for k, v in params if k in declared)
        return nl.Instance("dut", nodes, sub, kept)

    if choice.role == "integrator":
        el = integrator(cfg, "dut", "inn", "out", treset=0.0)
        return [
            nl.VSource("src", "src", "0"),
            nl.Resistor("in", "src", "inn", cfg.device.r_mean_ohm),
            inst(el.nodes, el.params),
            nl.Resistor("load", "out", "0", 1e6),
        ]
    if choice.role == "driver":
        p = cfg.periphery
        params = (("v", p.v_read_v), ("td", 0.0), ("tw", p.t_meas_s), ("tr", p.t_rise_s))
        return [inst(("out",), (*params, ("rout", 10.0))), nl.Resistor("load", "out", "0", 1e6)]
    g = cfg.device.g_mean_s
    if choice.role == "read":
        return [
            nl.VSource("a", "a", "0", dc=0.1),
            inst(("a", "b"), (("g", g), ("v0", cfg.device.read_v0_v))),
            nl.Resistor("load", "b", "0", 1.0),
        ]
    return [
        nl.VSource("row", "row", "0"),
        inst(("row", "col", "s"), (("g0", g),)),
        nl.Resistor("load", "col", "0", 1.0),
    ]


def _smoke(design: Design, choice: RoleChoice, copy: str, lib_dir: Path, workdir: Path) -> None:
    net = nl.Netlist(
        title=f"rpucircuit verify: {choice.role} {choice.subckt.name} alone",
        libs=(copy,),
        elements=tuple(_smoke_elements(design, choice)),
        analyses=(nl.Op(),),
        vectors=(),
    )
    job = spice.SpiceJob.from_netlist(
        net, name=f"check-{choice.role}", timeout_s=60.0, lib_dir=str(lib_dir)
    )
    try:
        spice.run(job, workdir=workdir)
    except SimulationError as exc:
        raise DesignError(
            f"{choice.path}: ngspice rejects the {choice.role} subcircuit "
            f"{choice.subckt.name!r}: {_ngspice_message(exc.log) or exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class Prepared:
    """A design ready to simulate: the jobs' shared fields and the library folder."""

    design: Design
    lib_dir: Path
    parts: tuple[vc.UserPart, ...]
    user_libs: tuple[str, ...]
    digest: str


def _write_libs(design: Design, shipped: set[str], lib_dir: Path) -> None:
    table_of = _tables_of(design)
    for path, table in table_of.items():
        atomic_write_text(lib_dir / f"user_{table}.lib", design.libraries[path].text)
    for name in sorted(shipped):
        shutil.copyfile(nl.NETLIST_DIR / name, lib_dir / name)


def _tables_of(design: Design) -> dict[Path, str]:
    table_of: dict[Path, str] = {}
    for choice in design.roles:
        table_of.setdefault(choice.path, ROLE_BY_NAME[choice.role].table)
    return table_of


def prepare(design: Design, out: Path) -> Prepared:
    """Run each of the designer's subcircuits alone in ngspice (a DesignError naming the
    file and quoting ngspice when it fails), then copy the libraries into ``out/libs``.

    The preflight runs in a temporary folder, so a rejected library leaves ``out``
    untouched (not even created).
    """
    shipped = _shipped_needed(design)
    _check_shipped_clash(design, shipped)
    table_of = _tables_of(design)
    h = hashlib.sha256()
    user_libs: list[str] = []
    for path, table in table_of.items():
        name = f"user_{table}.lib"
        h.update(name.encode() + b"\0" + design.libraries[path].text.encode() + b"\0")
        user_libs.append(name)
    parts = tuple(
        vc.UserPart(
            role=c.role,
            subckt=c.subckt.name,
            lib=_copy_name(c, table_of),
            params=c.subckt.params,
        )
        for c in design.roles
    )
    with tempfile.TemporaryDirectory(prefix="rpucircuit-verify-") as tmp:
        stage = Path(tmp) / "libs"
        stage.mkdir()
        _write_libs(design, shipped, stage)
        for c in design.roles:
            _smoke(design, c, _copy_name(c, table_of), stage, Path(tmp) / "spice")
    lib_dir = out / "libs"
    lib_dir.mkdir(parents=True, exist_ok=True)
    # only the names a run writes: --out may be a folder of the designer's own files
    copies = (f"user_{table}.lib" for table in ("integrator", "driver", "device"))
    for stale in (*(out / name for name in OUTPUT_NAMES), *(lib_dir / c for c in copies)):
        stale.unlink(missing_ok=True)
    _write_libs(design, shipped, lib_dir)
    return Prepared(design, lib_dir, parts, tuple(user_libs), h.hexdigest())


# --------------------------------------------------------------------------- evaluate


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One line of the report."""

    name: str
    what: str
    measured: float
    limit: float
    unit: str
    upper: bool
    """True: measured must not exceed the limit; False: must reach it."""
    method: str

    @property
    def margin(self) -> float:
        """Relative margin: positive passes (see the module docstring)."""
        if self.upper:
            return (self.limit - self.measured) / self.limit
        if self.limit == 0:
            return math.inf if self.measured >= 0 else -math.inf
        return (self.measured - self.limit) / self.limit

    @property
    def passed(self) -> bool:
        """Whether the check passes (its limit included)."""
        return self.measured <= self.limit if self.upper else self.measured >= self.limit


def _f(tree: Mapping[str, Any], *keys: str) -> float:
    node: Any = tree
    for k in keys:
        node = node[k]
    return float(np.asarray(node))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(np.asarray(value))


def _read_rows(spec: VerifySpec, results: Mapping[str, Mapping[str, Any]]) -> list[CheckRow]:
    """Output error, saturation headroom and the full-tile read gain."""
    read, bench, nodal = results["read"], results["bench"], results["nodal"]
    n = int(np.asarray(read["size"]))
    k = int(np.asarray(nodal["stripe_lines"]))
    return [
        CheckRow(
            "output_error",
            "largest read error, max over outputs of abs(y - W x)",
            _f(read, "max_error_pct"),
            spec.output_error_pct,
            "% of alpha",
            True,
            f"ngspice transient, {n}x{n} tile, random W and x",
        ),
        CheckRow(
            "output_error_full",
            "largest read error on the full tile after the gain, % of alpha",
            _f(nodal, "error_pct"),
            spec.output_error_pct,
            "% of alpha",
            True,
            f"nodal solver: {k} full-length output lines ({_f(nodal, 'rows_error_pct'):.3g} %) "
            f"+ {k} full-length input lines ({_f(nodal, 'cols_error_pct'):.3g} %)",
        ),
        CheckRow(
            "saturation",
            f"integrator headroom at {spec.output_max_w:g} weight units",
            _f(bench, "headroom"),
            spec.saturation_margin,
            "of swing",
            False,
            f"ngspice; swing {_f(bench, 'swing_v'):.3g} V measured at twice the bound",
        ),
        CheckRow(
            "read_gain",
            "fraction of a read's charge reaching C_int on the full tile",
            _f(bench, "read_gain"),
            spec.read_gain_min,
            "",
            False,
            f"ngspice; the full output line's {_f(bench, 'g_line_s') * 1e6:.4g} uS and "
            "capacitance on the summing node",
        ),
    ]


def _settling_rows(design: Design, results: Mapping[str, Mapping[str, Any]]) -> list[CheckRow]:
    """The far-end delay of the full row and column lines and the integrator's settling."""
    lines, bench = results["lines"], results["bench"]
    budget_ns = _f(lines, "budget_s") * 1e9
    rows = [
        CheckRow(
            f"settling_{line}_line",
            f"far-end 50 % delay of a {length}-cross-point {line} line",
            _f(lines, line, "t50_s") * 1e9,
            budget_ns,
            "ns",
            True,
            f"{_text(lines[line]['method'])}; limit {design.spec.settle_fraction:g} x update pulse",
        )
        for line, length in (("row", design.circuit.tile.cols), ("col", design.circuit.tile.rows))
    ]
    rows.append(
        CheckRow(
            "settling_integrator",
            "integrator settling to half an ADC step after the window",
            _f(bench, "settle_s") * 1e9,
            _f(bench, "t_settle_budget_s") * 1e9,
            "ns",
            True,
            "ngspice; the slower of the bench at output_max_w and the full-line bench",
        )
    )
    return rows


def _noise_update_rows(design: Design, results: Mapping[str, Mapping[str, Any]]) -> list[CheckRow]:
    """Output noise (referred through the read gain) and the half-select disturb."""
    noise = results["noise"]
    how = (
        f"ngspice .noise, {int(np.asarray(noise['n_devices']))} devices per array, "
        "through the window, referred through the read gain"
    )
    if not int(np.asarray(noise["reset_measured"])):
        how += "; reset part not measured (the integrator has no treset parameter)"
    ratio = max(_f(results["update_up"], "ratio"), _f(results["update_down"], "ratio"))
    return [
        CheckRow(
            "output_noise",
            "output noise sigma of one read",
            _f(noise, "sigma_w") / _f(results["bench"], "read_gain"),
            design.spec.output_noise_sigma_w,
            "weight units",
            True,
            how,
        ),
        CheckRow(
            "half_select",
            "half-selected / fully selected dg (worse polarity)",
            ratio,
            design.spec.half_select_max,
            "ratio",
            True,
            f"ngspice update cycle, BL = {design.circuit.periphery.bl}",
        ),
    ]


def evaluate(design: Design, results: Mapping[str, Mapping[str, Any]]) -> list[CheckRow]:
    """The report's rows from the jobs' result trees (pure)."""
    return [
        *_read_rows(design.spec, results),
        *_settling_rows(design, results),
        *_noise_update_rows(design, results),
    ]


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What a verification wrote, whether the design passed, and how many of its ``n_jobs``
    simulation jobs came from ``<out>/cache`` (``n_cached``)."""

    rows: tuple[CheckRow, ...]
    path: Path
    report: Path
    plots: tuple[Path, ...]
    wall_s: float
    n_jobs: int = 0
    n_cached: int = 0

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(r.passed for r in self.rows)


def report_table(rows: Sequence[CheckRow]) -> str:
    """The Markdown table of the checks."""
    out = [
        "| check | measured | limit | margin | result | how |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        op = "<=" if r.upper else ">="
        unit = f" {r.unit}" if r.unit else ""
        out.append(
            f"| {r.name}: {r.what} | {r.measured:.4g}{unit} | {op} {r.limit:.4g}{unit} "
            f"| {100 * r.margin:+.1f} % | {'PASS' if r.passed else 'FAIL'} | {r.method} |"
        )
    return "\n".join(out) + "\n"


def _report_text(design: Design, rows: Sequence[CheckRow], wall_s: float) -> str:
    t = design.circuit.tile
    verdict = "PASS" if all(r.passed for r in rows) else "FAIL"
    roles = "\n".join(f"- {c.role}: `{c.subckt.name}` from `{c.path.name}`" for c in design.roles)
    return (
        f"# Verification of {design.source.name}: {verdict}\n\n"
        f"Tile {t.rows} x {t.cols}"
        f"{' (paired)' if t.paired else ''}; the designer's subcircuits:\n\n{roles}\n\n"
        f"{report_table(rows)}\n"
        "Margin: (limit - measured)/limit for an upper limit, (measured - limit)/limit for "
        "a lower one.\n\n"
        f"Simulator {spice.ngspice_version()}; {wall_s:.1f} s.\n"
    )


def _plots(out: Path, results: Mapping[str, Mapping[str, Any]], design: Design) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    read = results["read"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ideal, sim = np.asarray(read["y_ideal_w"]), np.asarray(read["y_sim_w"])
    ax.plot(ideal, sim, "o")
    lim = float(max(np.abs(ideal).max(), np.abs(sim).max(), 1e-12))
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    ax.set_xlabel("W x (weight units)")
    ax.set_ylabel("read through the designer's circuit (weight units)")
    ax.set_title("read: output vs ideal")
    paths.append(save_png(fig, out / "read.png", dpi=110))
    bench = results["bench"]
    fig, ax = plt.subplots(figsize=(6, 4))
    t_ns = np.asarray(bench["t_s"]) * 1e9
    ax.plot(t_ns, np.asarray(bench["v_max_v"]), label=f"{design.spec.output_max_w:g} w")
    ax.plot(t_ns, np.asarray(bench["v_over_v"]), label="twice the bound (swing)")
    half = 0.5 * design.spec.output_max_w
    ax.plot(t_ns, np.asarray(bench["v_gain_v"]), label=f"{half:g} w, full line on the summing node")
    ax.set_xlabel("time (ns)")
    ax.set_ylabel("integrator output (V)")
    ax.legend(loc="lower left")
    ax.set_title("integrator bench")
    paths.append(save_png(fig, out / "integrator.png", dpi=110))
    noise = results["noise"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(np.asarray(noise["f_hz"]), np.asarray(noise["onoise_v_per_rthz"]))
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("output noise (V/rtHz)")
    ax.set_title("output line noise")
    paths.append(save_png(fig, out / "noise.png", dpi=110))
    return paths


def write_outputs(
    out: Path,
    design: Design,
    rows: Sequence[CheckRow],
    results: Mapping[str, Mapping[str, Any]],
    wall_s: float,
) -> tuple[Path, Path, list[Path]]:
    """``verify.h5`` (checks and raw numbers), ``report.md`` and the plots."""
    checks = {
        r.name: {
            "measured": r.measured,
            "limit": r.limit,
            "margin": r.margin,
            "passed": int(r.passed),
            "unit": r.unit,
            "upper": int(r.upper),
            "method": r.method,
        }
        for r in rows
    }
    tree = {
        "checks": checks,
        "jobs": {k: dict(v) for k, v in results.items()},
        "passed": int(all(r.passed for r in rows)),
    }
    cfg_text = to_toml(design.spec) + "\n# circuit\n" + to_toml(design.circuit)
    prov = store.Provenance(
        kind=KIND,
        schema_version=SCHEMA_VERSION,
        config_toml=cfg_text,
        config_key=hashlib.sha256(cfg_text.encode()).hexdigest(),
        ngspice_version=spice.ngspice_version(),
    )
    path = store.save(out / RESULT_NAME, tree, prov)
    report = atomic_write_text(out / REPORT_NAME, _report_text(design, rows, wall_s))
    return path, report, _plots(out, results, design)


def verify(
    design_path: str | Path,
    out: str | Path,
    *,
    n_workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> VerifyResult:
    """Verify the design in ``design_path``; write the results under ``out``."""
    t0 = time.perf_counter()
    design = load_design(design_path)
    out = Path(out)
    check_out(out)
    spice.ngspice_version()  # no simulator: fail before anything is written
    created = not out.exists()
    try:
        return _verify_into(design, out, n_workers, scheduler, progress, t0)
    except BaseException:
        # No finished simulation cached in a folder this run made: leave no half-made folder.
        if created and not any((out / "cache").glob("*.h5")):
            shutil.rmtree(out, ignore_errors=True)
        raise


OUTPUT_NAMES = (RESULT_NAME, REPORT_NAME, "read.png", "integrator.png", "noise.png")
"""A run's result files, removed when a new run starts (never one design's report beside
another's libraries)."""


def _verify_into(
    design: Design,
    out: Path,
    n_workers: int | None,
    scheduler: str | None,
    progress: bool,
    t0: float,
) -> VerifyResult:
    prep = prepare(design, out)
    jobs = [
        make_job(
            vc.VerifyJob(
                check=c,
                circuit=design.circuit,
                spec=design.spec,
                parts=prep.parts,
                user_libs=prep.user_libs,
                lib_dir=str(prep.lib_dir.resolve()),
                libs_digest=prep.digest,
            ),
            {"check": c},
            code=code_digest(),
        )
        for c in vc.CHECK_JOBS
    ]
    run = run_jobs(
        functools.partial(vc.run_job, workdir=str((out / "spice").resolve())),
        jobs,
        cache_dir=out / "cache",
        scheduler=scheduler,
        n_workers=n_workers or 2,
        progress=progress,
    )
    results = dict(zip(vc.CHECK_JOBS, run.results, strict=True))
    rows, wall = evaluate(design, results), time.perf_counter() - t0
    path, report, plots = write_outputs(out, design, rows, results, wall)
    return VerifyResult(tuple(rows), path, report, tuple(plots), wall, len(jobs), sum(run.cached))


__all__ = [
    "CheckRow",
    "DesignError",
    "VerifyResult",
    "evaluate",
    "load_design",
    "prepare",
    "report_table",
    "verify",
]
