"""``explore noise``: run the study (:mod:`rpucircuit.design.explore`) and write its results,
report (Markdown) and plot (PNG)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit import store
from rpucircuit.config.base import config_key, to_toml
from rpucircuit.design.explore import (
    METRIC,
    NOISE_KIND,
    NOISE_SCHEMA,
    PAPER_A_SIGMA,
    Acceptable,
    NoiseStudy,
    PenaltyCurve,
    acceptable,
    acceptable_text,
    model_text,
    noise_jobs,
    noise_table,
    penalty_curve,
    run_training,
    schedule_text,
)
from rpucircuit.fileio import atomic_write_text, save_png
from rpucircuit.jobs import DEFAULT_CONNECT_TIMEOUT_S, Job, SweepRun


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NoiseResult:
    """What ``explore noise`` found."""

    study: NoiseStudy
    curve: PenaltyCurve
    acceptable: Acceptable
    run: SweepRun
    files: tuple[Path, ...]


def noise_curve(study: NoiseStudy, results: Sequence[dict[str, Any]]) -> PenaltyCurve:
    """The penalty curve from the job results (in :func:`noise_jobs` order)."""
    k = len(study.sigmas)
    err = np.array([float(r[METRIC]) for r in results]).reshape(len(study.seeds), k)
    return penalty_curve(study.sigmas, err, err[:, 0])


def run_noise(
    study: NoiseStudy,
    out: Path,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> NoiseResult:
    """Train the study's jobs (cached in ``cache_dir``, default ``out/cache``) and write
    ``results.h5``, ``report.md`` and ``penalty_vs_sigma.png`` into ``out``."""
    jobs = noise_jobs(study)
    run = run_training(
        jobs,
        cache_dir=cache_dir if cache_dir is not None else out / "cache",
        scheduler=scheduler,
        n_workers=n_workers,
        progress=progress,
        connect_timeout_s=connect_timeout_s,
    )
    curve = noise_curve(study, run.results)
    acc = acceptable(curve, study.penalty_pts)
    out.mkdir(parents=True, exist_ok=True)
    h5 = store.save(
        out / "results.h5",
        noise_tree(study, curve, acc, run, jobs),
        store.Provenance(
            kind=NOISE_KIND,
            schema_version=NOISE_SCHEMA,
            config_toml=to_toml(study),
            config_key=config_key(study),
        ),
    )
    png = plot_noise(study, curve, acc, out / "penalty_vs_sigma.png")
    md = atomic_write_text(out / "report.md", noise_report(study, curve, acc, run))
    return NoiseResult(study=study, curve=curve, acceptable=acc, run=run, files=(h5, md, png))


def noise_tree(
    study: NoiseStudy, curve: PenaltyCurve, acc: Acceptable, run: SweepRun, jobs: Sequence[Job]
) -> dict[str, Any]:
    """The HDF5 tree of an ``explore noise`` result."""
    return {
        "sigma_w": curve.x,
        "seeds": np.asarray(study.seeds, dtype=np.int64),
        "test_error_pct": curve.error_pct,
        "penalty_pts": curve.penalty_pts,
        "penalty_mean_pts": curve.mean,
        "penalty_spread_pts": curve.spread,
        "threshold_pts": study.penalty_pts,
        "acceptable_sigma_w": acc.value,
        "acceptable_sigma_low_w": acc.low,
        "acceptable_sigma_high_w": acc.high,
        "paper_a_sigma_w": PAPER_A_SIGMA,
        "job_keys": np.asarray([j.key for j in jobs]),
        "job_seconds": np.asarray(run.seconds, dtype=np.float64),
        "wall_s": run.wall_s,
    }


def noise_report(study: NoiseStudy, curve: PenaltyCurve, acc: Acceptable, run: SweepRun) -> str:
    """``report.md`` of ``explore noise``."""
    where = (
        "above" if acc.value < PAPER_A_SIGMA else ("below" if acc.value > PAPER_A_SIGMA else "at")
    )
    at_paper = float(np.interp(PAPER_A_SIGMA, curve.x, curve.mean))
    return "\n".join(
        [
            f"# Acceptable output noise σ: {study.network.upper()} network",
            "",
            f"- array model: {model_text(study.model, study.settings)}; σ of the forward and "
            "backward read of every analog layer set to each grid value",
            f"- schedule: {schedule_text(study.schedule)}",
            f"- seeds: {', '.join(str(s) for s in study.seeds)}; penalty = test error minus "
            "the same seed's σ = 0 run (percentage points), mean ± sample std over seeds",
            f"- jobs: {len(run.results)} ({sum(run.cached)} from the cache), wall time "
            f"{run.wall_s:.0f} s, training time {sum(run.seconds):.0f} s",
            "",
            noise_table(study, curve),
            "",
            f"Largest σ within a penalty of {study.penalty_pts:g} points: "
            + acceptable_text(acc, study.penalty_pts, "w")
            + ".",
            "",
            f"Paper A: σ ≈ {PAPER_A_SIGMA:g}. Here the mean penalty at σ = {PAPER_A_SIGMA:g} is "
            f"{at_paper:+.2f} points (interpolated); paper A's σ lies {where} the point where "
            "the penalty reaches the threshold."
            if not math.isinf(acc.value)
            else f"Paper A: σ ≈ {PAPER_A_SIGMA:g}; mean penalty there {at_paper:+.2f} points.",
            "",
            "![penalty against σ](penalty_vs_sigma.png)",
            "",
        ]
    )


def plot_noise(study: NoiseStudy, curve: PenaltyCurve, acc: Acceptable, path: Path) -> Path:
    """Penalty against σ (mean ± spread, each seed faint), the threshold, the acceptable σ
    with its interval and paper A's σ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s in range(len(study.seeds)):
        ax.plot(
            curve.x,
            curve.penalty_pts[s],
            "o",
            color="0.7",
            ms=3,
            label="each seed" if s == 0 else None,
        )
    ax.errorbar(
        curve.x,
        curve.mean,
        yerr=curve.spread,
        fmt="o-",
        color="C0",
        capsize=3,
        label="mean ± seed spread",
    )
    ax.axhline(
        study.penalty_pts,
        color="C3",
        ls="--",
        lw=1,
        label=f"threshold {study.penalty_pts:g} points",
    )
    if not math.isinf(acc.value):
        hi = acc.high if not math.isinf(acc.high) else float(curve.x[-1])
        ax.axvspan(acc.low, hi, color="C2", alpha=0.15)
        ax.axvline(acc.value, color="C2", lw=1.5, label=f"acceptable σ = {acc.value:.3g}")
    ax.axvline(PAPER_A_SIGMA, color="k", ls=":", lw=1, label=f"paper A σ = {PAPER_A_SIGMA:g}")
    ax.set_xlabel("output noise σ of both reads (weight units)")
    ax.set_ylabel("test-error penalty (percentage points)")
    ax.set_title(
        f"{study.network.upper()}, {study.schedule.name} schedule, {len(study.seeds)} seed(s)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path, dpi=120)
