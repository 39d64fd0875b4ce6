"""``explore onoff``: run the study (:mod:`rpucircuit.design.explore_onoff`): ngspice checks,
training, answers; write its results, report (Markdown) and plot (PNG)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit import store
from rpucircuit.config.base import config_key, to_toml
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.design.explore import model_text, run_training, schedule_text
from rpucircuit.design.explore_onoff import (
    ONOFF_KIND,
    ONOFF_SCHEMA,
    OnOffResult,
    OnOffStudy,
    analytic_answers,
    answers,
    grid_sigmas,
    onoff_jobs,
    spice_ratios,
)
from rpucircuit.design.explore_onoff_circuit import (
    DesignPoint,
    Line,
    SpicePoint,
    analytic_e_n_max,
    design_point_checks,
    line_sigma_w,
    spice_point,
)
from rpucircuit.fileio import atomic_write_text, save_png
from rpucircuit.jobs import DEFAULT_CONNECT_TIMEOUT_S, Job


def circuit_checks(
    study: OnOffStudy, base: CircuitConfig, workdir: Path, *, progress: bool
) -> tuple[tuple[SpicePoint, ...], tuple[DesignPoint, ...]]:
    """ngspice ``.noise``: the acceptable e_n on the longest line at the chosen on/off
    ratios of every t_meas, and σ of every line length at the base circuit's point (none
    with ``spice_points = 0``)."""
    if study.spice_points == 0:
        return (), ()
    lines = study.lines()
    longest = max(lines, key=lambda line: line.n_devices)
    points = [(t, r) for t in study.t_meas_s for r in spice_ratios(study)]
    bar = _bar(len(points) + 1, "ngspice .noise", progress)
    spice = []
    for t, r in points:
        spice.append(
            spice_point(
                base,
                longest,
                on_off_ratio=r,
                t_meas_s=t,
                sigma_w=study.sigma_target_w,
                workdir=workdir / f"t{t * 1e9:g}ns-r{r:g}",
            )
        )
        if bar is not None:
            bar.update(1)
    design = design_point_checks(base, lines, model_file=study.model, workdir=workdir / "design")
    if bar is not None:
        bar.update(1)
        bar.close()
    return tuple(spice), design


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="point")


def run_onoff(
    study: OnOffStudy,
    out: Path,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> OnOffResult:
    """Circuit σ per read, ngspice checks, training (cached), answers; write
    ``results.h5``, ``report.md`` and ``acceptable_opamp_noise.png`` into ``out``."""
    base = study.circuit()
    sigmas = grid_sigmas(study)
    baselines, grid = onoff_jobs(study, sigmas)
    spice, design = circuit_checks(study, base, out / "spice", progress=progress)
    run = run_training(
        [*baselines, *grid],
        cache_dir=cache_dir if cache_dir is not None else out / "cache",
        scheduler=scheduler,
        n_workers=n_workers,
        progress=progress,
        connect_timeout_s=connect_timeout_s,
    )
    n_seeds = len(study.seeds)
    metric = np.array([float(res["test_error_avg"]) for res in run.results])
    error = metric[n_seeds:].reshape(n_seeds, *study.shape)
    e_train, r_train = answers(study, error, metric[:n_seeds])
    e_an, r_an = analytic_answers(study, base)
    result = OnOffResult(
        study=study,
        sigmas=sigmas,
        error_pct=100.0 * error,
        baseline_pct=100.0 * metric[:n_seeds],
        e_n_train=e_train,
        e_n_analytic=e_an,
        ratio_train=r_train,
        ratio_analytic=r_an,
        spice=spice,
        design=design,
        run=run,
    )
    out.mkdir(parents=True, exist_ok=True)
    h5 = store.save(
        out / "results.h5",
        onoff_tree(result, [*baselines, *grid]),
        store.Provenance(
            kind=ONOFF_KIND,
            schema_version=ONOFF_SCHEMA,
            config_toml=to_toml(study),
            config_key=config_key(study),
        ),
    )
    png = plot_onoff(result, base, out / "acceptable_opamp_noise.png")
    md = atomic_write_text(out / "report.md", onoff_report(result, base))
    return dataclasses.replace(result, files=(h5, md, png))


def onoff_tree(res: OnOffResult, jobs: Sequence[Job]) -> dict[str, Any]:
    """The HDF5 tree of an ``explore onoff`` result."""
    s = res.study
    lines = s.lines()
    spice = _records(res.spice, SpicePoint)
    design = _records(res.design, DesignPoint)
    return {
        "on_off_ratio": np.asarray(s.on_off),
        "e_n_v_per_rthz": np.asarray(s.e_n_v_per_rthz),
        "t_meas_s": np.asarray(s.t_meas_s),
        "seeds": np.asarray(s.seeds, dtype=np.int64),
        "line_layer": np.asarray([line.layer for line in lines], dtype=np.int64),
        "line_direction": np.asarray([line.direction for line in lines]),
        "line_devices": np.asarray([line.n_devices for line in lines], dtype=np.int64),
        "sigma_w": res.sigmas,
        "test_error_pct": res.error_pct,
        "baseline_test_error_pct": res.baseline_pct,
        "penalty_mean_pts": res.mean,
        "penalty_spread_pts": res.spread,
        "threshold_pts": s.penalty_pts,
        "sigma_target_w": s.sigma_target_w,
        "e_n_max_train_v_per_rthz": res.e_n_train,
        "e_n_max_analytic_v_per_rthz": res.e_n_analytic,
        "min_on_off_train": res.ratio_train,
        "min_on_off_analytic": res.ratio_analytic,
        "spice": spice,
        "design_point": design,
        "job_keys": np.asarray([j.key for j in jobs]),
        "distinct_jobs": len({j.key for j in jobs}),
        "wall_s": res.run.wall_s,
    }


def _records(rows: Sequence[Any], cls: type) -> dict[str, Any]:
    """Columns of frozen records (one float array per field); empty without rows."""
    if not rows:
        return {}
    return {
        f.name: np.asarray([getattr(p, f.name) for p in rows], dtype=np.float64)
        for f in dataclasses.fields(cls)
    }


def _nv(v: float) -> str:
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "> grid"
    return f"{v * 1e9:.3g}"


def _ratio(v: float, lo: float) -> str:
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "> grid"
    if v == lo:
        return f"≤ {lo:g}"
    return f"{v:.3g}"


def onoff_report(res: OnOffResult, base: CircuitConfig) -> str:
    """``report.md`` of ``explore onoff``."""
    s = res.study
    lines = s.lines()
    run = res.run
    n_jobs = len(run.results)
    out = [
        f"# Acceptable op-amp noise against on/off ratio: {s.network.upper()} network",
        "",
        f"- circuit: {'paper A tile' if not s.circuit_toml else 'from --circuit'} (R_mean = "
        f"{base.device.r_mean_ohm / 1e6:g} MΩ, α = {base.periphery.alpha:g}, GBW = "
        f"{base.periphery.gbw_hz / 1e9:g} GHz, A0 = {base.periphery.a0:g}); C_int follows α, "
        "t_meas and the on/off ratio",
        "- reads and their line lengths (devices per array): "
        + ", ".join(f"layer {ln.layer} {ln.direction} {ln.n_devices}" for ln in lines),
        f"- array model trained: {model_text(s.model, s.settings)}; "
        f"schedule: {schedule_text(s.schedule)}",
        f"- seeds: {', '.join(str(x) for x in s.seeds)}; penalty = test error minus the same "
        f"seed's noiseless run; threshold {s.penalty_pts:g} points",
        f"- jobs: {n_jobs} ({sum(run.cached)} from the cache; equal σ sets share one), wall "
        f"time {run.wall_s:.0f} s, training time {sum(run.seconds):.0f} s",
        "- noiseless baseline test error (%): " + ", ".join(f"{v:.2f}" for v in res.baseline_pct),
        "",
        "## Acceptable op-amp noise e_n (nV/√Hz)",
        "",
        f"From training (penalty ≤ {s.penalty_pts:g} points; interval from the seed spread) and "
        f"analytic (σ ≤ {s.sigma_target_w:g} on the longest line, N = "
        f"{max(ln.n_devices for ln in lines)}):",
        "",
        "| t_meas | on/off | training | interval | analytic |",
        "|---|---|---|---|---|",
    ]
    for i, t in enumerate(s.t_meas_s):
        for j, r in enumerate(s.on_off):
            v, lo, hi = res.e_n_train[i, j]
            out.append(
                f"| {t * 1e9:g} ns | {r:g} | {_nv(v)} | {_nv(lo)} … {_nv(hi)} | "
                f"{_nv(res.e_n_analytic[i, j])} |"
            )
    out += [
        "",
        "(— : the penalty exceeds the threshold even with a noiseless op-amp; > grid: within "
        "it up to the largest e_n of the grid.)",
        "",
        "## Smallest on/off ratio within the penalty",
        "",
        "| t_meas | " + " | ".join(f"e_n = {e * 1e9:g} nV/√Hz" for e in s.e_n_v_per_rthz) + " |",
        "|---|" + "---|" * len(s.e_n_v_per_rthz),
    ]
    r0 = s.on_off[0]
    for i, t in enumerate(s.t_meas_s):
        cells = [
            f"{_ratio(res.ratio_train[i, k], r0)} "
            f"(analytic {_ratio(res.ratio_analytic[i, k], math.nan)})"
            for k in range(len(s.e_n_v_per_rthz))
        ]
        out.append(f"| {t * 1e9:g} ns | " + " | ".join(cells) + " |")
    out += [
        "",
        "## Test-error penalty (points, mean over seeds)",
        "",
    ]
    for i, t in enumerate(s.t_meas_s):
        out += [
            f"t_meas = {t * 1e9:g} ns (rows: on/off; columns: e_n in nV/√Hz; in brackets σ of "
            "the longest read):",
            "",
            "| on/off | " + " | ".join(f"{e * 1e9:g}" for e in s.e_n_v_per_rthz) + " |",
            "|---|" + "---|" * len(s.e_n_v_per_rthz),
        ]
        for j, r in enumerate(s.on_off):
            cells = [
                f"{res.mean[i, j, k]:+.2f} ({float(np.max(res.sigmas[i, j, k])):.3f})"
                for k in range(len(s.e_n_v_per_rthz))
            ]
            out.append(f"| {r:g} | " + " | ".join(cells) + " |")
        out.append("")
    if res.spice:
        out += [
            "## ngspice `.noise` checks (longest line)",
            "",
            "| t_meas | on/off | N | e_n run (nV/√Hz) | σ ngspice | σ analytic "
            "| e_n max ngspice | e_n max analytic |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in res.spice:
            out.append(
                f"| {p.t_meas_s * 1e9:g} ns | {p.on_off_ratio:g} | {p.n_devices} | "
                f"{p.e_n_v_per_rthz * 1e9:.3g} | {p.sigma_spice_w:.4g} | "
                f"{p.sigma_analytic_w:.4g} | "
                f"{_nv(p.e_n_max_spice_v_per_rthz)} | {_nv(p.e_n_max_analytic_v_per_rthz)} |"
            )
        out.append("")
    out += design_rows(res, base)
    out += ["![acceptable op-amp noise](acceptable_opamp_noise.png)", ""]
    return "\n".join(out)


def design_rows(res: OnOffResult, base: CircuitConfig) -> list[str]:
    """The section comparing σ at the base circuit's point per line length: ngspice
    ``.noise``, the analytic budget, the model file's calibrated noise model."""
    if not res.design:
        return []
    p, d = base.periphery, base.device
    out = [
        "## σ at the circuit's own point, per line length",
        "",
        f"On/off {d.on_off_ratio:g}, e_n {p.e_n_v_per_rthz * 1e9:g} nV/√Hz, t_meas "
        f"{p.t_meas_s * 1e9:g} ns (kT/C included; no ADC); the model file's column is its "
        "calibrated σ² = a + b·N + c·N² (— : a preset, or a file without a noise model):",
        "",
        "| N | σ ngspice | σ analytic | σ model file | analytic / ngspice − 1 |",
        "|---|---|---|---|---|",
    ]
    for q in res.design:
        cal = "—" if math.isnan(q.sigma_model_file_w) else f"{q.sigma_model_file_w:.4g}"
        rel = q.sigma_analytic_w / q.sigma_spice_w - 1.0
        out.append(
            f"| {q.n_devices} | {q.sigma_spice_w:.4g} | {q.sigma_analytic_w:.4g} | {cal} | "
            f"{100 * rel:+.1f} % |"
        )
    return [*out, ""]


def plot_onoff(res: OnOffResult, base: CircuitConfig, path: Path) -> Path:
    """Acceptable e_n against on/off per t_meas: training (interval as error bars; at the
    grid's top edge when beyond it), analytic for σ_target, ngspice points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    s = res.study
    r = np.asarray(s.on_off)
    e_top = s.e_n_v_per_rthz[-1] * 1e9
    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(12.0, 4.8), gridspec_kw={"width_ratios": [1.5, 1.0]}
    )
    for i, t in enumerate(s.t_meas_s):
        color = f"C{i}"
        v, lo, hi = (res.e_n_train[i, :, c] * 1e9 for c in range(3))
        shown = np.where(np.isinf(v), e_top, v)
        lo_s = np.where(np.isnan(lo), 0.0, lo)
        hi_s = np.where(np.isinf(hi) | np.isnan(hi), e_top, hi)
        err = np.vstack([np.maximum(shown - lo_s, 0), np.maximum(hi_s - shown, 0)])
        ok = ~np.isnan(v)
        ax.errorbar(
            r[ok],
            shown[ok],
            yerr=err[:, ok],
            fmt="o-",
            color=color,
            capsize=3,
            label=f"{t * 1e9:g} ns: training",
        )
        beyond = np.isinf(v)
        if np.any(beyond):
            ax.plot(r[beyond], shown[beyond], "^", color=color, ms=9)
        if not np.all(ok):  # even a noiseless op-amp misses the threshold: marked on 0
            ax.plot(r[~ok], np.zeros(int(np.sum(~ok))), "x", color=color, ms=9, mew=2)
        rr = np.geomspace(r[0], r[-1], 60)
        lines = s.lines()
        curve = [
            analytic_e_n_max(
                base, lines, on_off_ratio=float(x), t_meas_s=t, sigma_w=s.sigma_target_w
            )
            * 1e9
            for x in rr
        ]
        ax.plot(
            rr,
            curve,
            "--",
            color=color,
            lw=1,
            label=f"{t * 1e9:g} ns: analytic σ = {s.sigma_target_w:g}",
        )
        pts = [p for p in res.spice if p.t_meas_s == t]
        if pts:
            ax.plot(
                [p.on_off_ratio for p in pts],
                [p.e_n_max_spice_v_per_rthz * 1e9 for p in pts],
                "*",
                color=color,
                ms=11,
                mec="k",
                label=f"{t * 1e9:g} ns: ngspice .noise",
            )
    ax.axhline(e_top, color="0.6", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("device on/off ratio")
    ax.set_ylabel("acceptable op-amp noise e_n (nV/√Hz)")
    ax.set_title(
        f"{s.network.upper()}, penalty ≤ {s.penalty_pts:g} points ({s.schedule.name} "
        "schedule); ▲ beyond the grid, × none"
    )
    ax.legend(fontsize=7, ncol=2)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    _plot_design(ax2, res, base)
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


def _plot_design(ax: Any, res: OnOffResult, base: CircuitConfig) -> None:
    """σ against line length at the base circuit's point: analytic curve, ngspice points,
    the model file's calibrated noise model; the network's line lengths marked."""
    n = np.geomspace(8, 4096, 80)
    ax.plot(
        n,
        [line_sigma_w(base, Line(0, "forward", int(k))) for k in n],
        "-",
        color="C0",
        label="analytic budget",
    )
    if res.design:
        ax.plot(
            [q.n_devices for q in res.design],
            [q.sigma_spice_w for q in res.design],
            "*",
            color="C1",
            ms=11,
            mec="k",
            label="ngspice .noise",
        )
        cal = [(q.n_devices, q.sigma_model_file_w) for q in res.design]
        if not any(math.isnan(v) for _, v in cal):
            noise = _model_noise(res.study.model)
            if noise is not None:
                ax.plot(
                    n,
                    [noise.sigma(int(k)) for k in n],
                    "--",
                    color="C2",
                    label="model file: calibrated σ² = a + b·N + c·N²",
                )
    for line in res.study.lines():
        ax.axvline(line.n_devices, color="0.85", lw=0.8, zorder=0)
    ax.axhline(res.study.sigma_target_w, color="C3", ls=":", lw=1, label="σ target")
    p, d = base.periphery, base.device
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("devices per array on the line N (grey: the network's reads)")
    ax.set_ylabel("output noise σ (weight units)")
    ax.set_title(
        f"σ at on/off {d.on_off_ratio:g}, {p.e_n_v_per_rthz * 1e9:g} nV/√Hz, "
        f"{p.t_meas_s * 1e9:g} ns"
    )
    ax.legend(fontsize=7)


def _model_noise(model: str) -> Any:
    """The model file's noise model (None for a preset or without one)."""
    if not model.endswith(".h5"):
        return None
    from rpucircuit.model.modelfile import load_model

    return load_model(model).model.out_noise
