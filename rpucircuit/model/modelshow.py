"""Human-readable summary of an array-model file (``rpucircuit model show``): provenance,
IR-drop and noise models with σ and the largest attenuation of given tile shapes, the
parameters table, the validation table, the RPUConfig and, on request, the fit report."""

from __future__ import annotations

import math

from rpucircuit.config.base import to_toml
from rpucircuit.model.irdrop import MAX_ATTENUATION, IRDropModel
from rpucircuit.model.modelfile import ArrayModel, LoadedModel
from rpucircuit.model.modelparts import ModelParameter


def _value(p: ModelParameter) -> str:
    lo, hi = p.interval
    if p.origin == "config" or lo == hi:
        return f"{p.value:.6g}"
    half = (hi - lo) / 2.0
    if math.isclose(p.value - lo, hi - p.value, rel_tol=1e-6, abs_tol=1e-300):
        return f"{p.value:.6g} ± {half:.2g}"
    return f"{p.value:.6g} [{lo:.6g}, {hi:.6g}]"


def _parameter_lines(m: ArrayModel) -> list[str]:
    if not m.parameters:
        return ["parameters   none"]
    lines = ["parameters   name = value ± 95 % interval [unit] origin; sources"]
    for p in m.parameters:
        sources = ", ".join(p.sources) or "-"
        lines.append(f"  {p.name} = {_value(p)} [{p.unit}] {p.origin}; {sources}")
    return lines


def _shape_lines(m: ArrayModel, shapes: tuple[tuple[int, int], ...]) -> list[str]:
    lines = []
    for out_size, in_size in shapes:
        cfg = m.rpu_config_for(out_size, in_size)
        text = f"  tile {out_size} × {in_size}:"
        if m.out_noise is not None:
            text += (
                f" σ forward {cfg.forward.out_noise:.4g} (N = {in_size}), "
                f"backward {cfg.backward.out_noise:.4g} (N = {out_size});"
            )
        if m.ir_drop is not None:
            a_fwd = m.ir_drop.forward.max_attenuation(out_size, in_size, "forward")
            a_bwd = m.ir_drop.backward.max_attenuation(out_size, in_size, "backward")
            text += f" largest attenuation forward {a_fwd:.3g}, backward {a_bwd:.3g}"
            if max(a_fwd, a_bwd) > MAX_ATTENUATION:
                text += f" (beyond the first-order limit {MAX_ATTENUATION}: training refuses it)"
        lines.append(text.rstrip(";"))
    return lines


def _ir_line(name: str, ir: IRDropModel) -> str:
    return (
        f"{name}segment ratio {ir.segment_ratio:g}, driver ratio {ir.driver_ratio:g}, "
        f"inputs driven at the {ir.drive_end} end, outputs sensed at the {ir.sense_end} end"
    )


def _physics_lines(m: ArrayModel, shapes: tuple[tuple[int, int], ...]) -> list[str]:
    lines = []
    if m.ir_drop is None:
        lines.append("IR drop      none (attenuation map = 1)")
    elif m.ir_drop.forward == m.ir_drop.backward:
        lines.append(_ir_line("IR drop      both reads: ", m.ir_drop.forward))
    else:
        lines.append(_ir_line("IR drop      forward: ", m.ir_drop.forward))
        lines.append(_ir_line("             backward: ", m.ir_drop.backward))
    if m.out_noise is None:
        lines.append(
            f"out noise    from the RPUConfig: σ forward {m.rpu.forward.out_noise:g}, "
            f"backward {m.rpu.backward.out_noise:g} for every tile"
        )
    else:
        nm = m.out_noise
        curve = (
            f"σ² = a + b·N + c·N², a = {nm.a:.4g} w², b = {nm.b:.4g} w², c = {nm.c:.4g} w²"
            if nm.c != 0.0
            else f"σ² = a + b·N, a = {nm.a:.4g} w², b = {nm.b:.4g} w²"
        )
        lines.append(
            f"out noise    {curve} (N: devices on an output line; forward N = in, backward N = out)"
        )
    if m.ir_drop is not None or m.out_noise is not None:
        lines.extend(_shape_lines(m, shapes))
    for d, t in (("forward", m.forward_input_transfer), ("backward", m.backward_input_transfer)):
        if t is None:
            continue
        if t.odd_coefficients:
            form = "odd polynomial " + ", ".join(f"{c:.4g}" for c in t.odd_coefficients)
        else:
            form = f"table of {len(t.x)} points on [{t.x[0]:g}, {t.x[-1]:g}]"
        lines.append(f"input curve  {d}: {form} (stored; the tile does not apply it yet)")
    return lines


def _figure(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def _validation_lines(m: ArrayModel) -> list[str]:
    if not m.validation:
        return ["validation   none"]
    lines = []
    figures = [c for c in m.validation if not c.is_case]
    cases = [c for c in m.validation if c.is_case]
    if figures:
        lines.append("validation   name: predicted / reference (tolerance) pass")
        for c in figures:
            ok = "yes" if c.passed else "NO"
            lines.append(
                f"  {c.name}: {c.predicted:.6g} / {c.reference:.6g} ({c.tolerance:.3g}) {ok}"
            )
    if cases:
        lines.append(
            "validation   name [case, unit]: calibrated rms / max | preset rms / max "
            "(tolerance on rms) pass"
        )
        for c in cases:
            ok = "yes" if c.passed else "NO"
            lines.append(
                f"  {c.name} [{c.case or '-'}, {c.unit or '-'}]: {_figure(c.rms_error)} / "
                f"{_figure(c.max_error)} | {_figure(c.preset_rms_error)} / "
                f"{_figure(c.preset_max_error)} ({c.tolerance:.3g}) {ok}"
            )
    return lines


def describe(
    loaded: LoadedModel, shapes: tuple[tuple[int, int], ...] = (), *, report: bool = False
) -> str:
    """Human-readable summary of a model file (``rpucircuit model show``). ``shapes``: tile
    shapes (out, in) whose σ and largest attenuation are listed; ``report``: append the fit
    report."""
    m, prov = loaded.model, loaded.provenance
    lines = [
        f"model file   {loaded.path}",
        f"sha256       {loaded.sha256}",
        f"schema       {prov.kind} v{prov.schema_version}, written by rpucircuit "
        f"{prov.package_version} "
        + (f"at {prov.created_utc}" if prov.created_utc else "(reproducible: no creation time)"),
        f"source       {m.source}",
        f"description  {m.description}",
        f"origin key   {prov.config_key[:16]}",
    ]
    origin = prov.config_toml.strip().splitlines()
    if origin:
        lines.append("origin       " + "; ".join(origin))
    if prov.ngspice_version:
        lines.append(f"ngspice      {prov.ngspice_version}")
    link = m.characterization
    if link is not None:
        lines.append(
            f"calibrated   from {link.path} (sha256 {link.sha256[:16]}…, "
            f"config key {link.config_key[:16]})"
        )
    lines += _physics_lines(m, shapes)
    lines += _parameter_lines(m)
    lines += _validation_lines(m)
    if m.fit_report:
        n = len(m.fit_report.splitlines())
        lines.append(f"fit report   {n} lines" + ("" if report else " (show --report prints it)"))
    lines.append("RPUConfig (TOML):")
    lines.extend("  " + ln for ln in to_toml(m.rpu).rstrip().splitlines())
    if report and m.fit_report:
        lines.append("fit report:")
        lines.extend(m.fit_report.rstrip().splitlines())
    return "\n".join(lines)


__all__ = ["describe"]
