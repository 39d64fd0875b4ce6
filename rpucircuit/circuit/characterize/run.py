"""Running a campaign: one job function for every analysis, the campaign's own analytic
curve, and :func:`run_campaign`, which runs the jobs (cached, resumable) and writes the HDF5
file, the plots and the report.

Jobs run on :func:`rpucircuit.jobs.run_jobs` (a process pool, ``--jobs N``, or Dask). The
job function is :func:`run_job` with the SPICE work folder bound as an argument
(``functools.partial(run_job, workdir=...)``: picklable, and no process-wide state); the
folder is not part of a job's key. Each finished job is cached under its key (the job
config's sha256, which includes the circuit config and :func:`code_digest`), so a killed
run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rpucircuit import store
from rpucircuit.circuit import analytic as an
from rpucircuit.circuit import extract as ex
from rpucircuit.circuit import netlist, nodal, spice
from rpucircuit.circuit.characterize.campaign import (
    ANALYSES,
    KIND,
    RESULT_NAME,
    SCHEMA_VERSION,
    CampaignConfig,
    CampaignSpec,
    CharacterizationJob,
    plan,
    spec_toml,
)
from rpucircuit.circuit.characterize.plots import write_plots
from rpucircuit.circuit.characterize.report import write_report
from rpucircuit.config.base import config_key, to_toml
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.errors import ConfigError
from rpucircuit.jobs import make_job, run_jobs

# --------------------------------------------------------------------------- job function


def _tree(obj: object) -> dict[str, Any]:
    """A result dataclass as a store tree (nested dataclasses become groups)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[f.name] = _tree(value)
        elif isinstance(value, bool):
            out[f.name] = int(value)
        elif isinstance(value, (int, float, str, np.ndarray)):
            out[f.name] = value
        else:
            out[f.name] = np.asarray(value)
    return out


def circuit_parameters(cfg: CircuitConfig) -> dict[str, Any]:
    """The numbers needed to recompute the ideal result of a case (stored with each case)."""
    t, d, p = cfg.tile, cfg.device, cfg.periphery
    return {
        "rows": t.rows,
        "cols": t.cols,
        "paired": int(t.paired),
        "r_seg_row_ohm": t.r_seg_row_ohm,
        "r_seg_col_ohm": t.r_seg_col_ohm,
        "c_seg_row_f": t.c_seg_row_f,
        "c_seg_col_f": t.c_seg_col_f,
        "r_driver_ohm": t.r_driver_ohm,
        "g_on_s": d.g_on_s,
        "g_off_s": d.g_off_s,
        "dg_unit_s": d.dg_unit_s,
        "read_iv": d.read_iv,
        "read_v0_v": d.read_v0_v,
        "encoding": p.encoding,
        "v_read_v": p.v_read_v,
        "input_steps": p.input_steps,
        "t_meas_s": p.t_meas_s,
        "c_int_f": cfg.c_int_f,
        "q_unit_c": cfg.q_unit_c,
        "alpha_w": cfg.alpha_effective,
        "a0": p.a0,
        "gbw_hz": p.gbw_hz,
        "v_out_max_v": p.v_out_max_v,
        "e_n_v_per_rthz": p.e_n_v_per_rthz,
        "temperature_k": p.temperature_k,
        "config_toml": to_toml(cfg),
    }


def _weights_inputs(
    job: CharacterizationJob, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    cfg = job.circuit
    rows, cols = cfg.tile.rows, cfg.tile.cols
    w_max = cfg.device.w_max
    n_in = cols if job.direction == "forward" else rows
    if job.pattern == "ramp":
        levels = np.linspace(-w_max, w_max, rows)
        return np.repeat(levels[:, None], cols, axis=1), np.ones(n_in)
    return rng.uniform(-w_max, w_max, size=(rows, cols)), rng.uniform(-1.0, 1.0, size=n_in)


def _nodal_job(job: CharacterizationJob, rng: np.random.Generator, workdir: Path) -> dict[str, Any]:
    del workdir  # the nodal solver runs no simulator
    cfg = job.circuit
    w, x = _weights_inputs(job, rng)
    g_pos, g_neg = ex.weights_to_conductances(cfg, w)
    t0 = time.perf_counter()
    res = nodal.read(cfg, g_pos, g_neg, x, finite_gain=False)
    seconds = time.perf_counter() - t0
    # Worst case for the IR drop: every device at G_on on array p, G_off on m, all x = 1.
    d = cfg.device
    full_p = np.full_like(g_pos, d.g_on_s)
    full_m = np.full_like(g_neg, d.g_off_s)
    worst = nodal.read(cfg, full_p, full_m, np.ones_like(x), finite_gain=False)
    q_unit = cfg.q_unit_c
    return {
        "g_pos_s": g_pos,
        "g_neg_s": g_neg,
        "x": x,
        "y_nodal_w": res.q_c / q_unit,
        "y_ideal_quantized_w": res.q_ideal_c / q_unit,
        "y_worst_nodal_w": worst.q_c / q_unit,
        "y_worst_ideal_w": worst.q_ideal_c / q_unit,
        "solve_s": seconds,
    }


def _transfer_job(
    job: CharacterizationJob, rng: np.random.Generator, workdir: Path
) -> dict[str, Any]:
    w, x = _weights_inputs(job, rng)
    res = ex.transfer_case(
        job.circuit,
        w,
        x,
        name=job.name,
        direction="backward" if job.direction == "backward" else "forward",
        analysis="op" if job.spice_analysis == "op" else "tran",
        workdir=workdir,
        timeout_s=job.timeout_s,
    )
    tree = _tree(res)
    tree["pattern"] = job.pattern
    return tree


def _update_job(
    job: CharacterizationJob, rng: np.random.Generator, workdir: Path
) -> dict[str, Any]:
    res = ex.update_case(
        job.circuit,
        name=job.name,
        polarity=1 if job.polarity >= 0 else -1,
        rng=rng,
        workdir=workdir,
        timeout_s=job.timeout_s,
    )
    return _tree(res)


def _update_dtod_job(
    job: CharacterizationJob, rng: np.random.Generator, workdir: Path
) -> dict[str, Any]:
    """Devices at G_mean with the config's device-to-device spread, every line pulsing in
    every slot (the up and down jobs share their seed, so they draw the same devices)."""
    cfg = job.circuit
    shape = (cfg.tile.rows, cfg.tile.cols)
    res = ex.full_select_case(
        cfg,
        np.full(shape, cfg.device.g_mean_s),
        name=job.name,
        polarity=1 if job.polarity >= 0 else -1,
        rate_factor=netlist.device_rate_factors(cfg, shape, rng=rng),
        workdir=workdir,
        timeout_s=job.timeout_s,
    )
    return _tree(res)


def _update_bound_job(
    job: CharacterizationJob, rng: np.random.Generator, workdir: Path
) -> dict[str, Any]:
    """Identical devices started 0 … ``bound_span_pulses`` pulses from the bound they are
    driven towards, every line pulsing in every slot."""
    del rng  # nothing random: the starts are spaced evenly, every bit is set
    polarity: Literal[1, -1] = 1 if job.polarity >= 0 else -1
    res = ex.full_select_case(
        job.circuit,
        ex.bound_start_conductances(job.circuit, polarity, job.bound_span_pulses),
        name=job.name,
        polarity=polarity,
        workdir=workdir,
        timeout_s=job.timeout_s,
    )
    return _tree(res)


def _noise_job(job: CharacterizationJob, rng: np.random.Generator, workdir: Path) -> dict[str, Any]:
    res = ex.noise_case(
        job.circuit, n_devices=job.n_devices, workdir=workdir, timeout_s=job.timeout_s
    )
    return _tree(res)


def _ktc_job(job: CharacterizationJob, rng: np.random.Generator, workdir: Path) -> dict[str, Any]:
    return _tree(ex.ktc_case(job.circuit, workdir=workdir, timeout_s=job.timeout_s))


def _noise_mc_job(
    job: CharacterizationJob, rng: np.random.Generator, workdir: Path
) -> dict[str, Any]:
    res = ex.noise_monte_carlo(
        job.circuit,
        n_devices=job.n_devices,
        trials=job.trials,
        sources=job.noise_sources,
        seed=job.seed,
        workdir=workdir,
        timeout_s=job.timeout_s,
    )
    return _tree(res)


def _timing_job(
    job: CharacterizationJob, rng: np.random.Generator, workdir: Path
) -> dict[str, Any]:
    res = ex.timing_case(job.circuit, job.sizes, workdir=workdir, timeout_s=job.timeout_s)
    return _tree(res)


JobRunner = Callable[[CharacterizationJob, np.random.Generator, Path], dict[str, Any]]
"""Runs one job of an analysis: (job, its generator, the SPICE work folder) -> result tree."""

RUNNERS: dict[str, JobRunner] = {
    "transfer": _transfer_job,
    "nodal": _nodal_job,
    "update": _update_job,
    "update_dtod": _update_dtod_job,
    "update_bound": _update_bound_job,
    "noise": _noise_job,
    "noise_line": _noise_job,
    "ktc": _ktc_job,
    "noise_mc": _noise_mc_job,
    "timing": _timing_job,
}
"""The job function of each analysis (keys: :data:`ANALYSES`)."""


def run_job(job: CharacterizationJob, *, workdir: str | Path) -> dict[str, Any]:
    """Run one campaign job with its ngspice run folders under ``workdir``; return its result
    tree. Module level, so that ``functools.partial(run_job, workdir=...)`` runs in pool and
    Dask workers."""
    runner = RUNNERS.get(job.analysis)
    if runner is None:
        raise ConfigError(f"analysis = {job.analysis!r}: must be one of {list(ANALYSES)}")
    tree = runner(job, np.random.default_rng(job.seed), Path(workdir))
    tree["parameters"] = circuit_parameters(job.circuit)
    return tree


# --------------------------------------------------------------------------- campaign


@dataclass(frozen=True, slots=True)
class CampaignRun:
    """What :func:`run_campaign` produced."""

    path: Path
    """The HDF5 file."""
    plots: tuple[Path, ...]
    report: Path
    wall_s: float
    jobs: int
    cached: int
    """Jobs whose results came from the cache (a resumed run)."""


def budget_curve(cfg: CircuitConfig, campaign: CampaignConfig) -> dict[str, Any]:
    """Acceptable op-amp input-referred noise density vs on/off ratio and t_meas.

    Paper A's numbers for everything else (mean resistance, w_max, V_read, α, swing, ADC)
    from ``cfg``; ``budget_rows`` devices per line; C_int follows t_meas and the on/off
    ratio through the bound (:func:`rpucircuit.circuit.analytic.acceptable_opamp_noise_v_per_rthz`).
    NaN marks combinations where device noise, kT/C and the ADC alone exceed σ.
    """
    d, p, t = cfg.device, cfg.periphery, cfg.tile
    ratios = np.asarray(campaign.on_off_ratios, dtype=np.float64)
    tms = np.asarray(campaign.t_meas_values_s, dtype=np.float64)
    e_n = np.empty((tms.size, ratios.size))
    e_n_paper = np.empty((tms.size, ratios.size))
    r_floor = np.empty(tms.size)
    r_config = np.empty(tms.size)
    c_in = t.n_arrays * campaign.budget_rows * t.c_seg_row_f
    for i, tm in enumerate(tms):
        common: dict[str, Any] = {
            "sigma_total_w": campaign.sigma_target_w,
            "n_rows": campaign.budget_rows,
            "r_mean_ohm": d.r_mean_ohm,
            "w_max": d.w_max,
            "v_read_v": p.v_read_v,
            "t_meas_s": float(tm),
            "alpha_w": p.alpha,
            "v_swing_v": p.v_out_max_v,
            "c_in_f": c_in,
            "gbw_hz": p.gbw_hz,
            "r_reset_ohm": p.r_reset_ohm,
            "a0": p.a0,
            "n_arrays": t.n_arrays,
            "temperature_k": p.temperature_k,
        }
        for j, r in enumerate(ratios):
            e_n[i, j] = an.acceptable_opamp_noise_v_per_rthz(
                on_off_ratio=float(r), adc_bits=p.adc_bits, **common
            )
            e_n_paper[i, j] = an.acceptable_opamp_noise_v_per_rthz(
                on_off_ratio=float(r), adc_bits=None, include_ktc=False, **common
            )
        r_floor[i] = an.min_on_off_ratio(e_n_v_per_rthz=0.0, adc_bits=p.adc_bits, **common)
        r_config[i] = an.min_on_off_ratio(
            e_n_v_per_rthz=p.e_n_v_per_rthz, adc_bits=p.adc_bits, **common
        )
    line_length_um = campaign.budget_rows * t.pitch_um
    g_line = t.n_arrays * campaign.budget_rows * d.g_mean_s
    return {
        "g_line_s": g_line,
        "signal_gain": an.finite_gain_factor(p.a0)
        * an.gbw_gain_factor(g_line, cfg.c_int_f, p.gbw_hz),
        "gbw_for_1pct_loss_hz": g_line / (2.0 * math.pi * cfg.c_int_f * 0.01),
        "on_off_ratio": ratios,
        "t_meas_s": tms,
        "e_n_max_v_per_rthz": e_n,
        "e_n_max_devices_only_v_per_rthz": e_n_paper,
        "min_on_off_ratio": r_floor,
        "min_on_off_ratio_config_e_n": r_config,
        "config_e_n_v_per_rthz": p.e_n_v_per_rthz,
        "sigma_target_w": campaign.sigma_target_w,
        "n_rows": campaign.budget_rows,
        "r_mean_ohm": d.r_mean_ohm,
        "r_mean_ir_budget_ohm": an.device_resistance_for_ir_budget_ohm(
            campaign.budget_rows, t.row_line.r_ohm_per_um * line_length_um
        ),
        "max_array_elmore": an.max_array_size(
            p.t_pulse_s, t.pitch_um, t.row_line.r_ohm_per_um, t.row_line.c_f_per_um
        ),
        "max_array_distributed_50": an.max_array_size(
            p.t_pulse_s,
            t.pitch_um,
            t.row_line.r_ohm_per_um,
            t.row_line.c_f_per_um,
            definition="distributed_50",
        ),
    }


def spice_workdir(out_dir: str | Path) -> Path:
    """Where a campaign in ``out_dir`` runs ngspice (one run folder per job, removed after a
    successful run): an absolute path, so that workers in other folders find it."""
    return (Path(out_dir) / "cache" / "spice").resolve()


def run_campaign(
    spec: CampaignSpec,
    out_dir: str | Path,
    *,
    n_workers: int | None = None,
    progress: bool = True,
) -> CampaignRun:
    """Run (or resume) the campaign of ``spec``; write the HDF5 file, plots and report.

    Finished jobs are cached in ``out_dir/cache`` by key; a rerun only runs what is
    missing. Every input is validated (when ``spec`` was built) before any simulation.
    ngspice runs under :func:`spice_workdir`, passed to every job as an argument.
    """
    if n_workers is not None and n_workers < 1:
        raise ConfigError(f"jobs = {n_workers}: must be >= 1")
    spice.ngspice_version()  # fail early when the simulator is missing
    out = Path(out_dir)
    t0 = time.perf_counter()
    jobs = plan(spec.circuit, spec.campaign)
    sweep_jobs = [make_job(j, {"analysis": j.analysis, "name": j.name}) for j in jobs]
    result = run_jobs(
        functools.partial(run_job, workdir=spice_workdir(out)),
        sweep_jobs,
        cache_dir=out / "cache",
        n_workers=n_workers or os.cpu_count() or 1,
        progress=progress,
    )
    groups: dict[str, dict[str, Any]] = {a: {} for a in ANALYSES}
    for job, tree in zip(jobs, result.results, strict=True):
        groups[job.analysis][job.name] = tree
    tree_out: dict[str, Any] = {
        "transfer": groups["transfer"],
        "nodal": groups["nodal"],
        "update": groups["update"],
        "update_dtod": groups["update_dtod"],
        "update_bound": groups["update_bound"],
        "noise": groups["noise"]["noise"],
        "noise_lines": groups["noise_line"],
        "ktc": groups["ktc"]["ktc"],
        "noise_mc": groups["noise_mc"]["noise_mc"],
        "timing": groups["timing"]["timing"],
        "budget": budget_curve(spec.circuit, spec.campaign),
        "jobs": {
            "name": np.array([j.name for j in jobs]),
            "analysis": np.array([j.analysis for j in jobs]),
            "key": np.array([s.key for s in sweep_jobs]),
            "seconds": np.asarray(result.seconds, dtype=np.float64),
            "cached": np.asarray(result.cached, dtype=np.int64),
        },
    }
    prov = store.Provenance(
        kind=KIND,
        schema_version=SCHEMA_VERSION,
        config_toml=spec_toml(spec),
        config_key=config_key(spec),
        ngspice_version=spice.ngspice_version(),
    )
    path = store.save(out / RESULT_NAME, tree_out, prov)
    plots = write_plots(tree_out, out)
    wall = time.perf_counter() - t0
    cached = sum(result.cached)
    report = write_report(tree_out, out, prov=prov, wall_s=wall, cached=cached, plots=plots)
    return CampaignRun(
        path=path,
        plots=tuple(plots),
        report=report,
        wall_s=wall,
        jobs=len(jobs),
        cached=cached,
    )


def load(path: str | Path) -> tuple[dict[str, Any], store.Provenance]:
    """Read a campaign file back (checks kind and schema version)."""
    return store.load(path, kind=KIND, schema_version=SCHEMA_VERSION)
