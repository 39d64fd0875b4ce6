"""The characterization campaign: a list of jobs from a config, run in parallel, cached,
written to one HDF5 file with plots and a Markdown report.

A campaign (:func:`plan`) is built from a :class:`~rpucircuit.config.tile.CircuitConfig`
and a :class:`CampaignConfig`. Each :class:`CharacterizationJob` is one analysis of
:mod:`rpucircuit.circuit.extract` on one (small) tile: transients where the dynamics matter,
DC operating points where they answer the same question for a bigger tile, the nodal solver
for tiles ngspice cannot reach. Jobs run on :func:`rpucircuit.jobs.run_jobs` (a process
pool, ``--jobs N``), and each finished job is cached under its key (the job config's
sha256, which includes the circuit config), so a killed run resumes where it stopped.

The output folder gets ``characterization.h5`` (schema in
``docs/characterization-schema.md``), one PNG per analysis and ``report.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit import store
from rpucircuit.circuit import analytic as an
from rpucircuit.circuit import extract as ex
from rpucircuit.circuit import netlist, nodal, spice
from rpucircuit.config.base import (
    check_int,
    check_positive,
    check_range,
    config_key,
    from_dict,
    parse_toml,
    to_toml,
)
from rpucircuit.config.tile import CircuitConfig, check_spice_budget, gokmen_vlasov_2016
from rpucircuit.errors import ConfigError
from rpucircuit.fileio import atomic_path, atomic_write_text
from rpucircuit.jobs import make_job, run_jobs, source_digest

KIND = "characterization"
"""HDF5 kind of a campaign file."""
SCHEMA_VERSION = 3
"""Layout version of the campaign file (docs/characterization-schema.md)."""
RESULT_NAME = "characterization.h5"
"""File name of the campaign's HDF5 result in the output folder."""

ANALYSES = ("transfer", "nodal", "update", "noise", "ktc", "noise_mc", "timing")

_CODE_MODULES = (an, ex, nodal, spice)
"""Modules whose code decides a job's result (with this one, netlist and the .lib files)."""


@functools.cache
def code_digest() -> str:
    """sha256 (first 16 hex digits) of the source that computes a job's result: this module,
    the analyses, the netlist renderer, the simulator backend, the nodal solver, the analytic
    references and the SPICE libraries. Part of every job's key, so a campaign cache is never
    reused by code that would compute something else (editing any of them recomputes)."""
    files = [Path(m.__file__ or "") for m in _CODE_MODULES] + [Path(__file__)]
    files += sorted(Path(netlist.__file__ or "").parent.glob("*.py"))  # a package
    return source_digest(files + sorted(netlist.NETLIST_DIR.glob("*.lib")))


def _check_sizes(name: str, values: tuple[int, ...], lo: int, hi: int) -> None:
    if not values:
        raise ConfigError(f"{name} = (): must list at least one size")
    for k, v in enumerate(values):
        check_int(f"{name}[{k}]", v, lo, hi)


@dataclass(frozen=True, kw_only=True, slots=True)
class CampaignConfig:
    """What the campaign simulates besides the circuit itself (TOML table ``[campaign]``)."""

    seed: int = 20161231
    """Seed of every random weight, input, bit stream and noise sample of the campaign."""
    transient_size: int = 16
    """Rows = columns of the tiles for transient transfer cases (ngspice ~1 s at 16)."""
    include_config_tile: bool = True
    """Also run one forward transient on the config's own tile (32 × 32: ~30 s)."""
    op_sizes: tuple[int, ...] = (32, 64)
    """Tile sizes for DC operating-point transfer cases (ngspice; 64: ~10-20 s)."""
    nodal_sizes: tuple[int, ...] = (128, 256, 512)
    """Tile sizes solved by the nodal solver only (IR drop beyond ngspice's reach)."""
    update_size: int = 8
    """Rows = columns of the update-cycle tiles."""
    update_k: tuple[float, ...] = (0.1, 0.5, 0.9)
    """Nonlinearity factors to characterize: rectifying, linear, saturating."""
    line_sizes: tuple[int, ...] = (1024, 2048, 4096, 8192)
    """Segments of the simulated lines for the delay-vs-size analysis."""
    noise_mc_trials: int = 200
    """Trials of the transient-noise Monte Carlo."""
    noise_mc_devices: int = 8
    """Devices per array on the Monte Carlo's line."""
    sigma_target_w: float = 0.06
    """Acceptable output noise (weight units) for the acceptable-op-amp-noise curve.
    Paper A: σ ≈ 0.06."""
    budget_rows: int = 4096
    """Devices per line for the acceptable-op-amp-noise curve. Paper A: 4096."""
    on_off_ratios: tuple[float, ...] = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0)
    """On/off ratios of the acceptable-op-amp-noise curve."""
    t_meas_values_s: tuple[float, ...] = (20e-9, 40e-9, 80e-9, 160e-9, 320e-9)
    """Integration times (s) of the acceptable-op-amp-noise curve."""
    timeout_s: float = 600.0
    """Time limit (s) of each ngspice run."""

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0)
        check_int("transient_size", self.transient_size, 1, 48)
        _check_sizes("op_sizes", self.op_sizes, 1, 96)
        _check_sizes("nodal_sizes", self.nodal_sizes, 1, 2048)
        check_int("update_size", self.update_size, 2, 32)
        if not self.update_k:
            raise ConfigError("update_k = (): must list at least one k")
        for i, k in enumerate(self.update_k):
            check_range(f"update_k[{i}]", k, 0.0, 1.0, lo_open=True, hi_open=True)
        _check_sizes("line_sizes", self.line_sizes, 8, 65536)
        if len(set(self.line_sizes)) < 2:
            raise ConfigError(f"line_sizes = {self.line_sizes!r}: need two different sizes")
        check_int("noise_mc_trials", self.noise_mc_trials, 2, 100_000)
        check_int("noise_mc_devices", self.noise_mc_devices, 1, 256)
        check_range("sigma_target_w", self.sigma_target_w, 0.0, 10.0, lo_open=True)
        check_int("budget_rows", self.budget_rows, 1, 1 << 20)
        for i, r in enumerate(self.on_off_ratios):
            check_range(f"on_off_ratios[{i}]", r, 1.0, 1e9, lo_open=True)
        for i, t in enumerate(self.t_meas_values_s):
            check_positive(f"t_meas_values_s[{i}]", t)
        check_positive("timeout_s", self.timeout_s)


def quick_campaign() -> CampaignConfig:
    """A small campaign for smoke tests (``--quick``): seconds instead of minutes."""
    return CampaignConfig(
        transient_size=8,
        include_config_tile=False,
        op_sizes=(16,),
        nodal_sizes=(64,),
        update_size=4,
        line_sizes=(1024, 4096),
        noise_mc_trials=50,
        noise_mc_devices=4,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class CharacterizationJob:
    """One analysis of one tile: the unit of parallelism and of caching."""

    analysis: str
    """One of :data:`ANALYSES`."""
    name: str
    """Unique name within the campaign (the HDF5 group name)."""
    circuit: CircuitConfig
    """The circuit this job simulates (the campaign's config with the tile resized and,
    for some cases, one field changed)."""
    seed: int = 0
    """Seed of this job's generator (weights, inputs, bits, noise)."""
    direction: str = "forward"
    """Read direction of a transfer job: ``forward`` or ``backward``."""
    pattern: str = "random"
    """Weights/inputs: ``random`` or ``ramp`` (rows of equal weights from −w_max to w_max,
    all inputs 1, driving the outer rows into the output bound)."""
    spice_analysis: str = "tran"
    """ngspice analysis of a transfer job: ``tran`` (integrators) or ``op`` (DC point)."""
    polarity: int = 1
    """Update polarity: +1 (up) or −1 (down)."""
    sizes: tuple[int, ...] = ()
    """Line lengths (segments) of a timing job."""
    trials: int = 0
    """Monte Carlo trials of a noise_mc job."""
    n_devices: int = 0
    """Devices per array on the line of a noise or noise_mc job."""
    noise_sources: tuple[str, ...] = ()
    """Noise sources a noise_mc job injects (``device``, ``opamp``, ``ktc``; see
    :func:`rpucircuit.circuit.extract.noise_monte_carlo`)."""
    timeout_s: float = 600.0
    """Time limit (s) of each ngspice run of the job."""
    result_schema: int = SCHEMA_VERSION
    """Layout version of the job's result. Part of the job's key, so a cache written by an
    rpucircuit with another result layout is never taken for this one."""
    code: str = field(default_factory=code_digest)
    """:func:`code_digest` of the code that runs the job (part of its key: a cache is
    reused only by the same analysis code, netlists and libraries)."""


def _resized(cfg: CircuitConfig, n: int, *, nodal_only: bool = False) -> CircuitConfig:
    changes: dict[str, Any] = {"rows": n, "cols": n}
    if nodal_only:
        # The nodal solver does not run ngspice; lift the SPICE budget so the config builds.
        changes["spice_limit_s"] = max(cfg.tile.spice_limit_s, 1e12)
    return ex.with_tile(cfg, **changes)


def plan(cfg: CircuitConfig, campaign: CampaignConfig) -> list[CharacterizationJob]:
    """The campaign's jobs, in a fixed order (most expensive first)."""
    c = campaign
    seed = c.seed
    jobs: list[CharacterizationJob] = []

    def add(analysis: str, name: str, circuit: CircuitConfig, **kw: Any) -> None:
        jobs.append(
            CharacterizationJob(
                analysis=analysis,
                name=name,
                circuit=circuit,
                seed=seed + len(jobs),
                timeout_s=c.timeout_s,
                **kw,
            )
        )

    if c.include_config_tile:
        add("transfer", f"fwd_random_{cfg.tile.rows}x{cfg.tile.cols}", cfg)
    for n in c.op_sizes:
        add("transfer", f"op_fwd_random_{n}", _resized(cfg, n), spice_analysis="op")
    small = _resized(cfg, c.transient_size)
    n = c.transient_size
    add("transfer", f"fwd_random_{n}", small)
    add("transfer", f"bwd_random_{n}", small, direction="backward")
    add("transfer", f"fwd_no_line_{n}", ex.without_line_resistance(small))
    # C_int for half the bound, so that n inputs at full weight reach it.
    half_bound = ex.with_periphery(small, alpha=small.periphery.alpha / 2.0)
    add("transfer", f"fwd_ramp_saturating_{n}", half_bound, pattern="ramp")
    # IR-drop stress: line resistance ×100 and device resistance ÷100 (IR drop ×10⁴), so the
    # position-dependent error is large enough to compare ngspice with the nodal solve.
    stress = ex.with_device(
        ex.with_tile(
            small,
            row_line=dataclasses.replace(
                small.tile.row_line, r_ohm_per_um=100 * small.tile.row_line.r_ohm_per_um
            ),
            col_line=dataclasses.replace(
                small.tile.col_line, r_ohm_per_um=100 * small.tile.col_line.r_ohm_per_um
            ),
        ),
        r_mean_ohm=small.device.r_mean_ohm / 100,
    )
    add("transfer", f"fwd_ir_stress_{n}", stress)
    sinh = ex.with_device(small, read_iv="sinh")
    add("transfer", f"fwd_sinh_time_{n}", sinh)
    add("transfer", f"fwd_sinh_amplitude_{n}", ex.with_periphery(sinh, encoding="amplitude"))
    for size in c.nodal_sizes:
        add("nodal", f"nodal_{size}", _resized(cfg, size, nodal_only=True))
    upd = _resized(cfg, c.update_size)
    for k in c.update_k:
        dev = ex.with_device(upd, k=k)
        label = dev.device.response
        add("update", f"{label}_k{k:g}_up".replace(".", "p"), dev, polarity=1)
        add("update", f"{label}_k{k:g}_down".replace(".", "p"), dev, polarity=-1)
    add("noise", "noise", cfg, n_devices=cfg.tile.cols)
    add("ktc", "ktc", cfg)
    add(
        "noise_mc",
        "noise_mc",
        cfg,
        trials=c.noise_mc_trials,
        n_devices=c.noise_mc_devices,
        noise_sources=ex.MC_SOURCES,
    )
    add("timing", "timing", cfg, sizes=tuple(c.line_sizes))
    # Refuse, before anything runs, a job whose ngspice run would not fit the budget.
    for job in jobs:
        if job.analysis == "transfer":
            check_spice_budget(job.circuit, "op" if job.spice_analysis == "op" else "tran")
        elif job.analysis == "update":
            check_spice_budget(job.circuit, "update")
    # Start the expensive jobs first so that two workers share the load evenly (rough
    # ngspice/nodal cost ranks; the order changes neither keys nor seeds).
    first = {"transfer": 2, "nodal": 1, "timing": 3, "noise_mc": 3}

    def cost(job: CharacterizationJob) -> float:
        n = max(job.circuit.tile.rows, job.circuit.tile.cols)
        if job.analysis == "transfer":
            return float(n) ** 5 * (1.0 if job.spice_analysis == "tran" else 0.02)
        if job.analysis == "nodal":
            return 4e-4 * float(n) ** 4
        return 1e6 * first.get(job.analysis, 0)

    return sorted(jobs, key=cost, reverse=True)


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


def _nodal_job(job: CharacterizationJob, rng: np.random.Generator) -> dict[str, Any]:
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


def run_job(job: CharacterizationJob) -> dict[str, Any]:
    """Run one campaign job; return its result tree (module level: runs in workers)."""
    cfg = job.circuit
    rng = np.random.default_rng(job.seed)
    default = Path(tempfile.gettempdir()) / "rpucircuit-spice"
    workdir = Path(os.environ.get("RPUCIRCUIT_SPICE_DIR", str(default)))
    tree: dict[str, Any]
    if job.analysis == "transfer":
        w, x = _weights_inputs(job, rng)
        res = ex.transfer_case(
            cfg,
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
    elif job.analysis == "nodal":
        tree = _nodal_job(job, rng)
    elif job.analysis == "update":
        upd = ex.update_case(
            cfg,
            name=job.name,
            polarity=1 if job.polarity >= 0 else -1,
            rng=rng,
            workdir=workdir,
            timeout_s=job.timeout_s,
        )
        tree = _tree(upd)
    elif job.analysis == "noise":
        tree = _tree(
            ex.noise_case(cfg, n_devices=job.n_devices, workdir=workdir, timeout_s=job.timeout_s)
        )
    elif job.analysis == "ktc":
        tree = _tree(ex.ktc_case(cfg, workdir=workdir, timeout_s=job.timeout_s))
    elif job.analysis == "noise_mc":
        mc = ex.noise_monte_carlo(
            cfg,
            n_devices=job.n_devices,
            trials=job.trials,
            sources=job.noise_sources,
            seed=job.seed,
            workdir=workdir,
            timeout_s=job.timeout_s,
        )
        tree = _tree(mc)
    elif job.analysis == "timing":
        tree = _tree(ex.timing_case(cfg, job.sizes, workdir=workdir, timeout_s=job.timeout_s))
    else:
        raise ConfigError(f"analysis = {job.analysis!r}: must be one of {list(ANALYSES)}")
    tree["parameters"] = circuit_parameters(cfg)
    return tree


# --------------------------------------------------------------------------- config files


@dataclass(frozen=True, kw_only=True, slots=True)
class CampaignSpec:
    """A circuit config and a campaign config, as read from one TOML file."""

    circuit: CircuitConfig = field(default_factory=gokmen_vlasov_2016)
    campaign: CampaignConfig = field(default_factory=CampaignConfig)


def load_spec(text: str | None, *, source: str = "<default>", quick: bool = False) -> CampaignSpec:
    """Parse a campaign TOML: tables ``[tile]``, ``[device]``, ``[periphery]`` (the circuit,
    missing fields from the paper-A preset) and optionally ``[campaign]``. ``text=None``
    is the embedded default. ``quick`` replaces the campaign by :func:`quick_campaign`
    (fields given in ``[campaign]`` still apply)."""
    data: dict[str, Any] = {} if text is None else parse_toml(text, source=source)
    campaign_data = data.pop("campaign", {})
    if not isinstance(campaign_data, Mapping):
        raise ConfigError(f"{source}: [campaign] must be a table")
    base = gokmen_vlasov_2016()
    merged: dict[str, Any] = {}
    preset = {
        "tile": dataclasses.asdict(base.tile),
        "device": dataclasses.asdict(base.device),
        "periphery": dataclasses.asdict(base.periphery),
    }
    for key, value in data.items():
        if key not in preset:
            raise ConfigError(
                f"{source}: unknown table [{key}]; known: tile, device, periphery, campaign"
            )
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: [{key}] must be a table")
    for key, defaults in preset.items():
        table = dict(defaults)
        given = data.get(key, {})
        for name, value in given.items():
            if isinstance(value, Mapping) and isinstance(table.get(name), dict):
                table[name] = {**table[name], **value}
            else:
                table[name] = value
        merged[key] = table
    circuit = from_dict(CircuitConfig, merged)
    camp_base = quick_campaign() if quick else CampaignConfig()
    camp_fields = {**dataclasses.asdict(camp_base), **dict(campaign_data)}
    campaign = from_dict(CampaignConfig, camp_fields, path="campaign")
    return CampaignSpec(circuit=circuit, campaign=campaign)


def spec_toml(spec: CampaignSpec) -> str:
    """TOML text of a spec (what provenance records; loads back with :func:`load_spec`)."""
    circuit = to_toml(spec.circuit)
    campaign = to_toml(spec.campaign)
    return circuit + "\n[campaign]\n" + campaign


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
    """
    if n_workers is not None and n_workers < 1:
        raise ConfigError(f"jobs = {n_workers}: must be >= 1")
    spice.ngspice_version()  # fail early when the simulator is missing
    out = Path(out_dir)
    t0 = time.perf_counter()
    jobs = plan(spec.circuit, spec.campaign)
    sweep_jobs = [make_job(j, {"analysis": j.analysis, "name": j.name}) for j in jobs]
    spice_dir = out / "cache" / "spice"
    old = os.environ.get("RPUCIRCUIT_SPICE_DIR")
    os.environ["RPUCIRCUIT_SPICE_DIR"] = str(spice_dir.resolve())
    try:
        result = run_jobs(
            run_job,
            sweep_jobs,
            cache_dir=out / "cache",
            n_workers=n_workers or os.cpu_count() or 1,
            progress=progress,
        )
    finally:
        if old is None:
            os.environ.pop("RPUCIRCUIT_SPICE_DIR", None)
        else:
            os.environ["RPUCIRCUIT_SPICE_DIR"] = old
    groups: dict[str, dict[str, Any]] = {a: {} for a in ANALYSES}
    for job, tree in zip(jobs, result.results, strict=True):
        groups[job.analysis][job.name] = tree
    tree_out: dict[str, Any] = {
        "transfer": groups["transfer"],
        "nodal": groups["nodal"],
        "update": groups["update"],
        "noise": groups["noise"]["noise"],
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
    text = spec_toml(spec)
    prov = store.Provenance(
        kind=KIND,
        schema_version=SCHEMA_VERSION,
        config_toml=text,
        config_key=config_key(spec),
        ngspice_version=spice.ngspice_version(),
    )
    path = store.save(out / RESULT_NAME, tree_out, prov)
    plots = write_plots(tree_out, out)
    wall = time.perf_counter() - t0
    report = write_report(
        tree_out, out, prov=prov, wall_s=wall, cached=sum(result.cached), plots=plots
    )
    return CampaignRun(
        path=path,
        plots=tuple(plots),
        report=report,
        wall_s=wall,
        jobs=len(jobs),
        cached=sum(result.cached),
    )


# --------------------------------------------------------------------------- plots, report


def _save_figure(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_plots(tree: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per analysis next to the HDF5 file; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    transfer = tree["transfer"]

    fig, ax = plt.subplots(figsize=(6, 5))
    for name, case in transfer.items():
        ax.plot(case["y_ideal_w"], case["y_sim_w"], ".", ms=4, label=name)
    lim = max(float(np.max(np.abs(c["y_ideal_w"]))) for c in transfer.values()) * 1.05
    ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.6)
    ax.set_xlabel("ideal W·x (weight units)")
    ax.set_ylabel("ngspice output (weight units)")
    ax.set_title("Transfer: simulated vs ideal")
    ax.legend(fontsize=6)
    paths.append(_save_figure(fig, out_dir / "transfer_scatter.png"))

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, case in transfer.items():
        if case["read_iv"] != "linear":
            continue
        ir = np.asarray(case["errors"]["ir_drop_w"]) / case["alpha_w"] * 100
        ax.plot(np.arange(ir.size), ir, ".-", ms=3, lw=0.6, label=name)
    for name, case in tree["nodal"].items():
        alpha = case["parameters"]["alpha_w"]
        err = (case["y_nodal_w"] - case["y_ideal_quantized_w"]) / alpha * 100
        ax.plot(np.arange(err.size), err, "-", lw=0.8, label=f"{name} random (nodal)")
        rel = (case["y_worst_nodal_w"] / case["y_worst_ideal_w"] - 1) * 100
        ax2.plot(np.arange(rel.size), rel, "-", lw=1.0, label=name)
    ax.set_xlabel("output line index (forward: row; drivers at row 0)")
    ax.set_ylabel("IR-drop error (% of full scale α)")
    ax.set_title("Error vs position: random weights and inputs")
    ax.legend(fontsize=6)
    ax2.set_xlabel("output line index")
    ax2.set_ylabel("relative error of the output (%)")
    ax2.set_title("Worst case: all G⁺ at G_on, G⁻ at G_off, x = 1")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save_figure(fig, out_dir / "error_vs_position.png"))

    noise = tree["noise"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6, 7), sharex=True)
    ax1.loglog(noise["f_hz"], np.sqrt(noise["onoise_v2_per_hz"]))
    ax1.set_ylabel("integrator output noise (V/√Hz)")
    ax1.set_title(f"Noise of one output line ({noise['n_devices']} devices per array)")
    ax2.loglog(noise["f_hz"], np.sqrt(noise["s_i_a2_per_hz"]), label="ngspice, referred to input")
    kt = an.BOLTZMANN_J_PER_K * noise["parameters"]["temperature_k"]
    ax2.axhline(
        math.sqrt(4 * kt * noise["g_line_s"]), color="k", ls="--", lw=0.8, label="√(4kT·ΣG)"
    )
    ax2.set_xlabel("frequency (Hz)")
    ax2.set_ylabel("current noise (A/√Hz)")
    ax2.legend(fontsize=7)
    paths.append(_save_figure(fig, out_dir / "noise_spectrum.png"))

    timing = tree["timing"]
    fig, ax = plt.subplots(figsize=(6, 5))
    n = timing["n_segments"]
    ax.loglog(n, timing["t50_sim_s"] * 1e12, "o", label="ngspice 50 % (bare line)")
    ax.loglog(n, timing["t50_loaded_sim_s"] * 1e12, "x", label="ngspice 50 % (with devices)")
    ax.loglog(n, timing["t50_distributed_s"] * 1e12, "-", label="0.377·RC + driver terms")
    ax.loglog(n, timing["elmore_s"] * 1e12, "--", label="Elmore")
    budget = timing["budget_fraction"] * timing["pulse_width_s"] * 1e12
    ax.axhline(budget, color="k", lw=0.8, label=f"{timing['budget_fraction']:g} × update pulse")
    ax.set_xlabel("cross points per line")
    ax.set_ylabel("far-end delay (ps)")
    ax.set_title("Line delay vs size")
    ax.legend(fontsize=7)
    paths.append(_save_figure(fig, out_dir / "delay_vs_size.png"))

    update = tree["update"]
    fig, axes = plt.subplots(1, len(update), figsize=(3 * len(update), 3.5), squeeze=False)
    for ax, (name, case) in zip(axes[0], update.items(), strict=True):
        nf, nh, dg = case["n_full"], case["n_half"], case["dg_s"]
        ref = abs(case["dg_model_s"])
        full = nf > 0
        per_full = (dg[full] - case["k"] * case["dg_min_s"] * nh[full]) / nf[full] / ref
        half = (nf == 0) & (nh > 0)
        per_half = dg[half] / nh[half] / ref
        bins = np.linspace(0.0, 1.2, 61)
        ax.hist(np.clip(np.abs(per_full), 0, 1.2), bins=bins, alpha=0.7, label="coincident")
        ax.hist(np.clip(np.abs(per_half), 0, 1.2), bins=bins, alpha=0.7, label="half-selected")
        ax.axvline(case["k_model"], color="k", ls=":", lw=0.8)
        ax.set_title(f"{name}\nk = {case['k']:.3f}", fontsize=8)
        ax.set_xlabel("|Δg| per pulse / model Δg")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save_figure(fig, out_dir / "update_dg_histogram.png"))

    budget_tree = tree["budget"]
    fig, ax = plt.subplots(figsize=(6, 5))
    for i, tm in enumerate(budget_tree["t_meas_s"]):
        (line,) = ax.semilogx(
            budget_tree["on_off_ratio"],
            budget_tree["e_n_max_v_per_rthz"][i] * 1e9,
            "o-",
            label=f"t_meas = {tm * 1e9:g} ns",
        )
        ax.semilogx(
            budget_tree["on_off_ratio"],
            budget_tree["e_n_max_devices_only_v_per_rthz"][i] * 1e9,
            "--",
            color=line.get_color(),
            lw=0.8,
        )
    ax.set_xticks(budget_tree["on_off_ratio"])
    ax.set_xticklabels([f"{r:g}" for r in budget_tree["on_off_ratio"]])
    ax.minorticks_off()
    ax.set_xlabel("on/off ratio")
    ax.set_ylabel("acceptable op-amp noise (nV/√Hz)")
    ax.set_title(
        f"σ = {budget_tree['sigma_target_w']:g}, {budget_tree['n_rows']} devices per line "
        "(dashed: devices + op-amp only)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    paths.append(_save_figure(fig, out_dir / "opamp_noise_budget.png"))
    return paths


def _ratio(r: float) -> str:
    return "not reachable" if math.isnan(r) else f"{r:.2f}"


def _noise_table(header: str, t_meas_s: Any, e_n_v_per_rthz: Any) -> list[str]:
    """Markdown rows of an acceptable-noise table (t_meas down, on/off across; nV/√Hz)."""
    n_cols = header.count("|") - 1
    rows = [header, "|" + "---|" * n_cols]
    for tm, row in zip(t_meas_s, e_n_v_per_rthz, strict=True):
        cells = " | ".join("—" if math.isnan(v) else f"{v * 1e9:.2f}" for v in row)
        rows.append(f"| {tm * 1e9:g} ns | {cells} |")
    return rows


def write_report(
    tree: Mapping[str, Any],
    out_dir: Path,
    *,
    prov: store.Provenance,
    wall_s: float,
    cached: int,
    plots: list[Path],
) -> Path:
    """A short Markdown summary of the campaign next to the HDF5 file."""
    lines = [
        "# Circuit characterization",
        "",
        f"Config key `{prov.config_key[:16]}`, {prov.ngspice_version}, "
        f"rpucircuit {prov.package_version}. Wall time {wall_s:.1f} s "
        f"({cached} job(s) from the cache). Data: `{RESULT_NAME}` "
        "(schema: docs/characterization-schema.md).",
        "",
        "## Transfer (outputs in weight units; errors in % of the bound α)",
        "",
        "| case | analysis | rms error | max error | gain | max IR drop | max saturation "
        "| max residual |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in tree["transfer"].items():
        e, alpha = c["errors"], c["alpha_w"]
        total = np.asarray(e["total_w"])
        lines.append(
            f"| {name} | {c['analysis']} | {np.sqrt(np.mean(total**2)) / alpha * 100:.3f} | "
            f"{np.max(np.abs(total)) / alpha * 100:.3f} | {e['gain']:.5f} | "
            f"{np.max(np.abs(e['ir_drop_w'])) / alpha * 100:.4f} | "
            f"{np.max(np.abs(e['saturation_w'])) / alpha * 100:.3f} | "
            f"{np.max(np.abs(e['residual_w'])) / alpha * 100:.4f} |"
        )
    lines += [
        "",
        "| nodal tile | solve time (s) | random: max IR drop (% of α) "
        "| worst case: max relative error (%) |",
        "|---|---|---|---|",
    ]
    for name, c in tree["nodal"].items():
        alpha = c["parameters"]["alpha_w"]
        rand = np.max(np.abs(c["y_nodal_w"] - c["y_ideal_quantized_w"])) / alpha * 100
        worst = np.max(np.abs(c["y_worst_nodal_w"] / c["y_worst_ideal_w"] - 1)) * 100
        lines.append(f"| {name} | {c['solve_s']:.2f} | {rand:.3f} | {worst:.3f} |")
    lines += [
        "",
        "## Update (one cycle, BL pulses, devices at G_mean)",
        "",
        "| case | model k | extracted k | Δg_min / model | mean half-selected Δg/(n·Δg_min) |",
        "|---|---|---|---|---|",
    ]
    updates = tree["update"]
    for name, c in updates.items():
        ratio = np.asarray(c["half_only_ratio"])
        mean_half = float(np.mean(ratio)) if ratio.size else float("nan")
        lines.append(
            f"| {name} | {c['k_model']:g} | {c['k']:.4f} | "
            f"{c['dg_min_s'] / c['dg_model_s']:.4f} | {mean_half:.4f} |"
        )
    lines += ["", "Up/down ratio (Δg_up/Δg_down per coincident pulse):", ""]
    for name, c in updates.items():
        if name.endswith("_up") and f"{name[:-3]}_down" in updates:
            down = updates[f"{name[:-3]}_down"]
            lines.append(
                f"- {name[:-3]}: {c['dg_min_s'] / -down['dg_min_s']:.4f} "
                f"(model {c['up_down_ratio_model']:g})"
            )
    nz, ktc, mc = tree["noise"], tree["ktc"], tree["noise_mc"]
    b = nz["budget"]
    lines += [
        "",
        "## Noise (one output line, σ in weight units over t_meas)",
        "",
        "Read model everywhere (analytic budget, `.noise` reference, Monte Carlo): "
        "single-ended — reset C_int, integrate t_meas, read −C_int·v(out) once; kT/C counts "
        "once, the op-amp's broadband output noise once, plus its e_n frozen on the line "
        "capacitance when the reset opens.",
        "",
        f"- `.noise` for that read: σ = {nz['sigma_sim_w']:.5f}; analytic "
        f"device + op-amp: {math.hypot(b['device_thermal_w'], b['opamp_w']):.5f} "
        f"(device {b['device_thermal_w']:.5f}, op-amp {b['opamp_w']:.5f}). A start-to-end "
        f"read (the plain window of the spectrum, op-amp broadband noise at both ends) "
        f"would give {nz['sigma_window_w']:.5f}.",
        f"- Device thermal noise alone: `.noise` {nz['sigma_sim_no_opamp_w']:.5f} vs "
        f"analytic {b['device_thermal_w']:.5f}. Both are referred through the line's "
        f"measured charge gain {nz['signal_gain']:.4f} (finite A0 and the GBW-limited "
        "virtual ground take the rest of every current, signal and noise alike).",
        f"- kT/C of the reset: ngspice {ktc['v2_sim']:.4g} V², analytic kT/C "
        f"{ktc['v2_analytic']:.4g} V² (ratio {ktc['v2_sim'] / ktc['v2_analytic']:.4f}); "
        f"σ_kTC = {b['ktc_w']:.5f}. ADC quantization σ = {b['adc_w']:.5f}.",
        f"- Transient-noise Monte Carlo ({mc['trials']} trials, seed {mc['seed']}, "
        f"{mc['n_devices']} devices per array; sources {mc['sources'].replace(',', ' + ')}; "
        f"seeded PWL noise, kT/C as a sampled reset voltage, single-ended read): "
        f"σ = {mc['sigma_mc_w']:.5f} ± {mc['sigma_mc_stderr_w']:.5f} vs `.noise` of the "
        f"line and the reset switch {mc['sigma_noise_w']:.5f} (device "
        f"{mc['sigma_device_w']:.5f}, op-amp {mc['sigma_opamp_w']:.5f}, kT/C "
        f"{mc['sigma_ktc_w']:.5f}; z = "
        f"{(mc['sigma_mc_w'] - mc['sigma_noise_w']) / mc['sigma_mc_stderr_w']:+.2f}).",
    ]
    bt = tree["budget"]
    ratios = list(bt["on_off_ratio"])
    header = "| t_meas \\ on/off | " + " | ".join(f"{r:g}" for r in ratios) + " |"
    lines += [
        "",
        f"## Acceptable op-amp noise (nV/√Hz) for σ = {bt['sigma_target_w']:g}, "
        f"{bt['n_rows']} devices per line",
        "",
        *_noise_table(header, bt["t_meas_s"], bt["e_n_max_v_per_rthz"]),
        "",
        "Counting only the devices' thermal noise and the op-amp (paper A's split, no kT/C, "
        "no ADC):",
        "",
        *_noise_table(header, bt["t_meas_s"], bt["e_n_max_devices_only_v_per_rthz"]),
    ]
    lines += [
        "",
        f"On a {bt['n_rows']}-device line (ΣG = {bt['g_line_s'] * 1e6:.0f} µS) only "
        f"{bt['signal_gain'] * 100:.1f} % of each line current reaches C_int: the op-amp's "
        f"GBW-limited virtual ground (1/(2π·GBW·C_int)) competes with the line; keeping the "
        f"loss under 1 % needs GBW ≥ {bt['gbw_for_1pct_loss_hz'] / 1e9:.0f} GHz at this "
        "C_int. The devices' noise and the op-amp's e_n·G lose alike with the signal; kT/C, "
        "the op-amp's broadband and reset parts and the ADC act at the output and grow by "
        "1/gain in weight units; the tables count them so.",
    ]
    lines += ["", "Smallest on/off ratio that meets σ (all sources counted):", ""]
    for i, tm in enumerate(bt["t_meas_s"]):
        lines.append(
            f"- t_meas = {tm * 1e9:g} ns: {_ratio(bt['min_on_off_ratio'][i])} with a "
            f"noiseless op-amp, {_ratio(bt['min_on_off_ratio_config_e_n'][i])} with the "
            f"config's {bt['config_e_n_v_per_rthz'] * 1e9:g} nV/√Hz"
        )
    tm = tree["timing"]
    lines += [
        "",
        "(— : device noise, kT/C and the ADC alone exceed σ.) IR-drop budget "
        f"N·R_line/R_dev = 0.1 gives R_dev = {bt['r_mean_ir_budget_ohm'] / 1e6:.2f} MΩ.",
        "",
        "## Timing",
        "",
        "| segments | ngspice 50 % (ps) | 0.377·RC + driver (ps) | Elmore (ps) "
        "| with devices (ps) |",
        "|---|---|---|---|---|",
    ]
    for k, n in enumerate(tm["n_segments"]):
        lines.append(
            f"| {n} | {tm['t50_sim_s'][k] * 1e12:.2f} | {tm['t50_distributed_s'][k] * 1e12:.2f} | "
            f"{tm['elmore_s'][k] * 1e12:.2f} | {tm['t50_loaded_sim_s'][k] * 1e12:.2f} |"
        )
    lines += [
        "",
        f"Largest line within {tm['budget_fraction']:g} × {tm['pulse_width_s'] * 1e9:g} ns: "
        f"{tm['n_max_sim']} cross points from ngspice (50 % delay), {tm['n_max_distributed']} "
        f"from the distributed formula, {tm['n_max_elmore']} from the Elmore delay (paper A's "
        "rule: 4096). Integrator closed-loop time constant "
        f"{tm['settle_tau_s'] * 1e12:.0f} ps; after the input pulses end the output settles "
        f"to {tm['settle_tol']:g} of its value in {tm['settle_sim_s'] * 1e12:.0f} ps "
        f"(ngspice) vs τ·ln(lag/tol) = {tm['settle_analytic_s'] * 1e12:.0f} ps.",
        "",
        "## Plots",
        "",
    ]
    lines += [f"- [{p.name}]({p.name})" for p in plots]
    return atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n")


def load(path: str | Path) -> tuple[dict[str, Any], store.Provenance]:
    """Read a campaign file back (checks kind and schema version)."""
    return store.load(path, kind=KIND, schema_version=SCHEMA_VERSION)


__all__ = [
    "ANALYSES",
    "KIND",
    "RESULT_NAME",
    "SCHEMA_VERSION",
    "CampaignConfig",
    "CampaignRun",
    "CampaignSpec",
    "CharacterizationJob",
    "budget_curve",
    "circuit_parameters",
    "load",
    "load_spec",
    "plan",
    "quick_campaign",
    "run_campaign",
    "run_job",
    "spec_toml",
    "write_plots",
    "write_report",
]
