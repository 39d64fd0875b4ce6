"""Calibration's fit report (Markdown, stored in the model file as ``fit_report``), the
validation table the command prints, and the plots: model vs SPICE per validated case, and
the error against the output's position in the tile."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rpucircuit.calibration.base import FittedParameter
from rpucircuit.calibration.validate import (
    CLOSER_FACTOR,
    PRESET_OFF,
    READ_RMS_TARGET,
    UPDATE_RMS_TARGET,
    Validation,
)
from rpucircuit.fileio import save_png


def _num(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.6g}"


def validation_table(v: Validation) -> str:
    """Markdown table of every read and update check: calibrated and preset errors."""
    lines = [
        "| check | role | rms | max | preset rms | preset max | ratio | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in v.reads:
        lines.append(
            f"| {r.direction} read {r.case} | {r.role} | {r.rms:.3g} % | {r.max:.3g} % | "
            f"{r.preset_rms:.3g} % | {r.preset_max:.3g} % | {r.ratio:.3g} | "
            f"rms ≤ {READ_RMS_TARGET} % of α"
            + (f"; ≥ {CLOSER_FACTOR:g}× closer" if r.preset_rms > PRESET_OFF else "")
            + " |"
        )
    for u in v.updates:
        ratio = u.preset_rms / u.rms if u.rms > 0 else math.inf
        lines.append(
            f"| update {u.case} | {u.role} | {u.rms:.3f} % | {u.max:.3f} % | "
            f"{u.preset_rms:.3f} % | {u.preset_max:.3f} % | {ratio:.3g} | "
            f"rms ≤ {UPDATE_RMS_TARGET} % of the largest step |"
        )
    return "\n".join(lines)


def targets_table(v: Validation) -> str:
    """Markdown table of the validation targets, met or missed, with the numbers."""
    lines = ["| target | met | numbers |", "|---|---|---|"]
    for name, met, numbers in v.targets():
        lines.append(f"| {name} | {'yes' if met else '**no**'} | {numbers} |")
    return "\n".join(lines)


def parameters_table(params: Sequence[FittedParameter]) -> str:
    """Markdown table of the parameters: value, interval, residual/tolerance, origin."""
    lines = [
        "| parameter | value | unit | 95 % interval | residual / tolerance | origin | sources |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in params:
        lo, hi = p.interval
        lines.append(
            f"| {p.name} | {_num(p.value)} | {p.unit} | [{_num(lo)}, {_num(hi)}] | "
            f"{_num(p.residual)} / {_num(p.tolerance)} | {p.origin} | "
            f"{', '.join(p.sources)} |"
        )
    return "\n".join(lines)


def fit_report(
    *,
    char_path: str,
    held_out: Sequence[str],
    params: Sequence[FittedParameter],
    validation: Validation,
    preset: str,
    notes: Sequence[str] = (),
) -> str:
    """The fit report (Markdown)."""
    missed = [t for t in validation.targets() if not t[1]]
    parts = [
        "# Calibration report",
        "",
        f"Characterization file: `{char_path}`. Preset compared with: `{preset}` (no IR-drop "
        "map, paper A's numbers).",
        "",
        "Held out of every fit (validation only): "
        + (", ".join(f"`{h}`" for h in held_out) if held_out else "none")
        + ".",
        "",
        "## Validation targets",
        "",
        targets_table(validation),
        "",
        (
            "Every target is met."
            if not missed
            else "Missed: "
            + "; ".join(f"{n} ({num})" for n, _, num in missed)
            + ". A validation miss is recorded, not refused: the fits themselves passed "
            "their residual tolerances, so the miss measures what the behavioral model "
            "leaves out."
        ),
        "",
        "## Validation",
        "",
        "Errors of the behavioral read (noise and ADC off; the simulations have no ADC) "
        "against ngspice's `y_sim_w`, in % of the case's α; updates in % of the cycle's "
        "largest expected Δw. `held-out` cases were seen by no fit; `fitted` cases are "
        "in-sample (a fit read them) and are listed because they carry physics the preset "
        "lacks. ratio = preset rms / calibrated rms.",
        "",
        validation_table(validation),
        "",
        "## Parameters",
        "",
        parameters_table(params),
        "",
    ]
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    parts += ["## How each parameter was fitted", ""]
    parts += [f"- **{p.name}**: {p.note}" for p in params if p.note]
    return "\n".join(parts) + "\n"


def write_plots(v: Validation, folder: Path) -> tuple[Path, ...]:
    """``model_vs_spice.png`` (calibrated and preset against SPICE, one panel per case) and
    ``error_vs_position.png`` (calibrated error per output index, % of α) in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    n = max(len(v.reads), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax, r in zip(axes.ravel(), v.reads, strict=False):
        lo, hi = float(r.y_sim.min()), float(r.y_sim.max())
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
        ax.scatter(r.y_sim, r.y_preset, s=10, marker="x", label=f"preset ({r.preset_rms:.3g} %)")
        ax.scatter(r.y_sim, r.y_model, s=10, label=f"calibrated ({r.rms:.3g} %)")
        ax.set_title(f"{r.case.removeprefix('transfer/')} ({r.role})", fontsize=9)
        ax.set_xlabel("SPICE y (w)")
        ax.set_ylabel("model y (w)")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(v.reads) :]:
        ax.axis("off")
    fig.tight_layout()
    scatter = folder / "model_vs_spice.png"
    save_png(fig, scatter, dpi=110, metadata={"Software": None})

    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for r in v.reads:
        err = 100.0 * (r.y_model - r.y_sim) / r.alpha
        ax.plot(np.arange(err.size), err, marker="o", ms=3, label=r.case.removeprefix("transfer/"))
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("output index (row forward, column backward; sensed far from the drivers)")
    ax.set_ylabel("calibrated − SPICE (% of α)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    position = folder / "error_vs_position.png"
    save_png(fig, position, dpi=110, metadata={"Software": None})
    return scatter, position


__all__ = ["fit_report", "parameters_table", "targets_table", "validation_table", "write_plots"]
