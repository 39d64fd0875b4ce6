"""The campaign's plan: what to simulate (:class:`CampaignConfig`), the jobs built from it
(:func:`plan`), and the campaign file's TOML (:func:`load_spec`, :func:`spec_toml`).

A campaign is built from a :class:`~rpucircuit.config.tile.CircuitConfig` and a
:class:`CampaignConfig`. Each :class:`CharacterizationJob` is one analysis of
:mod:`rpucircuit.circuit.extract` on one (small) tile: transients where the dynamics matter,
DC operating points where they answer the same question for a bigger tile, the nodal solver
for tiles ngspice cannot reach. A job's identity is its analysis and name; its seed is
derived from that identity and the campaign seed, so adding or removing one job leaves the
others (their keys, seeds and cached results) as they were.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from rpucircuit.circuit import analytic as an
from rpucircuit.circuit import extract as ex
from rpucircuit.circuit import netlist, nodal, spice
from rpucircuit.config.base import (
    check_int,
    check_positive,
    check_range,
    from_dict,
    parse_toml,
    to_toml,
)
from rpucircuit.config.tile import (
    CircuitConfig,
    check_spice_budget,
    circuit_config_from_data,
    gokmen_vlasov_2016,
)
from rpucircuit.errors import ConfigError
from rpucircuit.jobs import source_digest

KIND = "characterization"
"""HDF5 kind of a campaign file."""
SCHEMA_VERSION = 3
"""Layout version of the campaign file (docs/characterization-schema.md)."""
RESULT_NAME = "characterization.h5"
"""File name of the campaign's HDF5 result in the output folder."""

ANALYSES = (
    "transfer",
    "nodal",
    "update",
    "update_dtod",
    "update_bound",
    "noise",
    "noise_line",
    "ktc",
    "noise_mc",
    "timing",
)

_CODE_MODULES: tuple[ModuleType, ...] = (an, ex, netlist, nodal, spice)
"""Modules and packages whose code decides a job's result (with this package and the .lib
files)."""


def _source_files(module: ModuleType) -> list[Path]:
    """The files of a module, or every ``.py`` file of a package (sorted)."""
    path = Path(module.__file__ or "")
    if path.name == "__init__.py":
        return sorted(path.parent.glob("*.py"))
    return [path]


@functools.cache
def code_digest() -> str:
    """sha256 (first 16 hex digits) of the source that computes a job's result: every file of
    this package, of the analyses (:mod:`rpucircuit.circuit.extract`) and of the netlist
    builders, the simulator backend, the nodal solver, the analytic references and the
    SPICE libraries. Part of every job's key, so a campaign cache is never reused by code
    that would compute something else (editing any of them recomputes)."""
    files = [f for m in _CODE_MODULES for f in _source_files(m)]
    files += sorted(Path(__file__).parent.glob("*.py"))
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
    """Seed of every random weight, input, bit stream and noise sample of the campaign: each
    job's generator is seeded with :func:`job_seed` of this seed and the job's analysis and
    name, so a job draws the same numbers whichever other jobs the campaign has."""
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
    """Nonlinearity factors to characterize: rectifying, linear, saturating (these cases
    run with ``device.dw_min_dtod = 0``: the fit over devices needs identical devices)."""
    update_dtod_size: int = 16
    """Rows = columns of the device-to-device spread cases (``update_dtod/dtod_up``,
    ``dtod_down``): devices at G_mean with the config's ``device.dw_min_dtod`` drawn once
    (the same devices in both), every line pulsing in every slot (256 devices: the
    relative spread is seen to ±5 % of itself, 1/sqrt(2·255))."""
    update_bound_span_pulses: float = 20.0
    """The bound cases (``update_bound/bound_up``, ``bound_down``, on the ``update_size``
    tile) start their devices at distances 0 … this many mean pulses from G_on (up) or
    G_off (down), spaced evenly, and pulse every device BL times: the devices close to the
    bound show the rate's ramp over ``bound_margin``, the far ones the free rate."""
    line_sizes: tuple[int, ...] = (1024, 2048, 4096, 8192)
    """Segments of the simulated lines for the delay-vs-size analysis."""
    noise_mc_trials: int = 200
    """Trials of the transient-noise Monte Carlo."""
    noise_mc_devices: int = 8
    """Devices per array on the Monte Carlo's line."""
    noise_sizes: tuple[int, ...] = (8, 32, 128)
    """Devices per array of the ``.noise`` lines at several lengths (``noise_lines/
    noise_N``, one line of an N × N tile; ``noise_mc_devices`` is added, so the Monte
    Carlo has its ``.noise`` twin): σ² against N for σ² = a + b·N + c·N² (four different
    sizes or more give the fit a residual)."""
    ramp_overdrive: float = 2.0
    """The saturating ramp case (``fwd_ramp_saturating_N``) gets the bound
    ``α = N·w_max/ramp_overdrive`` (its C_int), so its outer rows reach ``ramp_overdrive``
    times the swing and the rows with ``|w| < w_max/ramp_overdrive`` stay linear."""
    ir_stress_backward: bool = True
    """Also run the IR-drop stress case backward (``bwd_ir_stress_N``), for the backward
    read's own attenuation fit."""
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
        check_int("update_dtod_size", self.update_dtod_size, 2, 32)
        check_range(
            "update_bound_span_pulses", self.update_bound_span_pulses, 0.0, 1e4, lo_open=True
        )
        if not self.update_k:
            raise ConfigError("update_k = (): must list at least one k")
        for i, k in enumerate(self.update_k):
            check_range(f"update_k[{i}]", k, 0.0, 1.0, lo_open=True, hi_open=True)
        _check_sizes("line_sizes", self.line_sizes, 8, 65536)
        if len(set(self.line_sizes)) < 2:
            raise ConfigError(f"line_sizes = {self.line_sizes!r}: need two different sizes")
        check_int("noise_mc_trials", self.noise_mc_trials, 2, 100_000)
        check_int("noise_mc_devices", self.noise_mc_devices, 1, 256)
        _check_sizes("noise_sizes", self.noise_sizes, 1, 1024)
        if len(set(self.noise_sizes)) < 3:
            raise ConfigError(
                f"noise_sizes = {self.noise_sizes!r}: need three different sizes (the "
                "coefficients of σ² = a + b·N + c·N²; a fourth gives the fit a residual)"
            )
        check_range("ramp_overdrive", self.ramp_overdrive, 1.0, 100.0, lo_open=True)
        check_range("sigma_target_w", self.sigma_target_w, 0.0, 10.0, lo_open=True)
        check_int("budget_rows", self.budget_rows, 1, 1 << 20)
        for i, r in enumerate(self.on_off_ratios):
            check_range(f"on_off_ratios[{i}]", r, 1.0, 1e9, lo_open=True)
        for i, t in enumerate(self.t_meas_values_s):
            check_positive(f"t_meas_values_s[{i}]", t)
        check_positive("timeout_s", self.timeout_s)


def quick_campaign() -> CampaignConfig:
    """A small campaign for smoke tests (``--quick``): under a minute instead of many. It
    keeps the config's own tile (one ~30 s transient) beside the 8 × 8 cases, so that
    calibration's default policy holds a transient read of another size out (the read gain
    fitted on 8 devices a line, validated on the config's own lines)."""
    return CampaignConfig(
        transient_size=8,
        include_config_tile=True,
        op_sizes=(16,),
        nodal_sizes=(64,),
        update_size=4,
        update_dtod_size=8,
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
    """Seed of this job's generator (weights, inputs, bits, noise); :func:`plan` derives it
    from the campaign seed and the job's own analysis and name (:func:`job_seed`)."""
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
    bound_span_pulses: float = 0.0
    """Start distances of an update_bound job's devices from the bound: 0 … this many
    mean pulses."""
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


def job_seed(campaign_seed: int, analysis: str, name: str) -> int:
    """The seed of the job ``analysis``/``name``: 63 bits of the sha256 of the campaign seed
    and the job's identity. Independent of the other jobs and of the plan's order."""
    digest = hashlib.sha256(f"{campaign_seed}\0{analysis}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _job(
    campaign: CampaignConfig, analysis: str, name: str, circuit: CircuitConfig, **kw: Any
) -> CharacterizationJob:
    return CharacterizationJob(
        analysis=analysis,
        name=name,
        circuit=circuit,
        seed=job_seed(campaign.seed, analysis, name),
        timeout_s=campaign.timeout_s,
        **kw,
    )


def _resized(cfg: CircuitConfig, n: int) -> CircuitConfig:
    """``cfg`` on an ``n × n`` tile (a config of any size builds; ngspice jobs are checked
    against the SPICE budget by :func:`plan`)."""
    return ex.with_tile(cfg, rows=n, cols=n)


IR_STRESS_FACTOR = 100.0
"""The IR-drop stress case multiplies line resistance and divides device resistance by this
(IR drop ×10⁴), so that the position-dependent error is large enough to compare ngspice
with the nodal solve."""


def _ir_stress(cfg: CircuitConfig) -> CircuitConfig:
    t = cfg.tile
    lines = ex.with_tile(
        cfg,
        row_line=dataclasses.replace(
            t.row_line, r_ohm_per_um=IR_STRESS_FACTOR * t.row_line.r_ohm_per_um
        ),
        col_line=dataclasses.replace(
            t.col_line, r_ohm_per_um=IR_STRESS_FACTOR * t.col_line.r_ohm_per_um
        ),
    )
    return ex.with_device(lines, r_mean_ohm=cfg.device.r_mean_ohm / IR_STRESS_FACTOR)


def _transfer_jobs(cfg: CircuitConfig, c: CampaignConfig) -> list[CharacterizationJob]:
    """Reads: the config's own tile, DC points of bigger tiles, and the small tile's cases."""
    jobs: list[CharacterizationJob] = []
    if c.include_config_tile:
        jobs.append(_job(c, "transfer", f"fwd_random_{cfg.tile.rows}x{cfg.tile.cols}", cfg))
    for n in c.op_sizes:
        jobs.append(
            _job(c, "transfer", f"op_fwd_random_{n}", _resized(cfg, n), spice_analysis="op")
        )
    n = c.transient_size
    small = _resized(cfg, n)
    # C_int for a bound that the outer rows (n inputs of 1 at ±w_max) overdrive.
    ramp_bound = ex.with_periphery(small, alpha=n * small.device.w_max / c.ramp_overdrive)
    sinh = ex.with_device(small, read_iv="sinh")
    jobs += [
        _job(c, "transfer", f"fwd_random_{n}", small),
        _job(c, "transfer", f"bwd_random_{n}", small, direction="backward"),
        _job(c, "transfer", f"fwd_no_line_{n}", ex.without_line_resistance(small)),
        _job(c, "transfer", f"fwd_ramp_saturating_{n}", ramp_bound, pattern="ramp"),
        _job(c, "transfer", f"fwd_ir_stress_{n}", _ir_stress(small)),
        _job(c, "transfer", f"fwd_sinh_time_{n}", sinh),
        _job(
            c,
            "transfer",
            f"fwd_sinh_amplitude_{n}",
            ex.with_periphery(sinh, encoding="amplitude"),
        ),
    ]
    if c.ir_stress_backward:
        jobs.append(
            _job(c, "transfer", f"bwd_ir_stress_{n}", _ir_stress(small), direction="backward")
        )
    return jobs


def _update_jobs(cfg: CircuitConfig, c: CampaignConfig) -> list[CharacterizationJob]:
    """One up and one down cycle for every k (identical devices), the device-to-device
    spread (one set of devices, both polarities) and the bounds (identical devices)."""
    upd = ex.with_device(_resized(cfg, c.update_size), dw_min_dtod=0.0)
    jobs: list[CharacterizationJob] = []
    for k in c.update_k:
        dev = ex.with_device(upd, k=k)
        label = f"{dev.device.response}_k{k:g}".replace(".", "p")
        jobs.append(_job(c, "update", f"{label}_up", dev, polarity=1))
        jobs.append(_job(c, "update", f"{label}_down", dev, polarity=-1))
    dtod = _resized(cfg, c.update_dtod_size)
    devices = job_seed(c.seed, "update_dtod", "devices")  # the same devices up and down
    for word, pol in (("up", 1), ("down", -1)):
        job = _job(c, "update_dtod", f"dtod_{word}", dtod, polarity=pol)
        jobs.append(dataclasses.replace(job, seed=devices))
        jobs.append(
            _job(
                c,
                "update_bound",
                f"bound_{word}",
                upd,
                polarity=pol,
                bound_span_pulses=c.update_bound_span_pulses,
            )
        )
    return jobs


def _line_jobs(cfg: CircuitConfig, c: CampaignConfig) -> list[CharacterizationJob]:
    """Noise, kT/C, the noise Monte Carlo and timing: one line of the config's tile; the
    ``.noise`` of lines of every noise size (and the Monte Carlo's)."""
    sizes = sorted({*c.noise_sizes, c.noise_mc_devices})
    lines = [_job(c, "noise_line", f"noise_{n}", _resized(cfg, n), n_devices=n) for n in sizes]
    return [
        *lines,
        _job(c, "noise", "noise", cfg, n_devices=cfg.tile.cols),
        _job(c, "ktc", "ktc", cfg),
        _job(
            c,
            "noise_mc",
            "noise_mc",
            cfg,
            trials=c.noise_mc_trials,
            n_devices=c.noise_mc_devices,
            noise_sources=ex.MC_SOURCES,
        ),
        _job(c, "timing", "timing", cfg, sizes=tuple(c.line_sizes)),
    ]


def _check_spice_budgets(jobs: list[CharacterizationJob]) -> None:
    """Refuse, before anything runs, a job whose ngspice run would not fit the budget."""
    for job in jobs:
        if job.analysis == "transfer":
            check_spice_budget(job.circuit, "op" if job.spice_analysis == "op" else "tran")
        elif job.analysis in ("update", "update_dtod", "update_bound"):
            check_spice_budget(job.circuit, "update")
        elif job.analysis in ("noise", "noise_line"):  # one whole line of the job's tile
            check_spice_budget(job.circuit, "noise")


_OP_COST = 0.02
"""A DC point's cost relative to a transient of the same tile (no time steps)."""
_NODAL_COST = 4e-4
"""A nodal solve's cost per N⁴ relative to a transient's per N⁵ (a 512² nodal tile ranks
with a 32² transient)."""
_LINE_COST = {"timing": 3e6, "noise_mc": 3e6}
"""Jobs on one line: about a 19² transient's cost; the rest (noise, kT/C, update) run last."""


def _cost(job: CharacterizationJob) -> float:
    """Rough cost rank of a job (not seconds): a transient of an N×N tile grows ~N⁵."""
    n = float(max(job.circuit.tile.rows, job.circuit.tile.cols))
    if job.analysis == "transfer":
        return n**5 * (1.0 if job.spice_analysis == "tran" else _OP_COST)
    if job.analysis == "nodal":
        return _NODAL_COST * n**4
    return _LINE_COST.get(job.analysis, 0.0)


def plan(cfg: CircuitConfig, campaign: CampaignConfig) -> list[CharacterizationJob]:
    """The campaign's jobs, most expensive first (so that two workers share the load evenly;
    the order changes neither keys nor seeds)."""
    c = campaign
    nodal_jobs = [_job(c, "nodal", f"nodal_{size}", _resized(cfg, size)) for size in c.nodal_sizes]
    jobs = _transfer_jobs(cfg, c) + nodal_jobs + _update_jobs(cfg, c) + _line_jobs(cfg, c)
    _check_spice_budgets(jobs)
    return sorted(jobs, key=_cost, reverse=True)


# --------------------------------------------------------------------------- config files


@dataclass(frozen=True, kw_only=True, slots=True)
class CampaignSpec:
    """A circuit config and a campaign config, as read from one TOML file."""

    circuit: CircuitConfig = field(default_factory=gokmen_vlasov_2016)
    campaign: CampaignConfig = field(default_factory=CampaignConfig)


def load_spec(text: str | None, *, source: str = "<default>", quick: bool = False) -> CampaignSpec:
    """Parse a campaign TOML: the circuit (read by
    :func:`~rpucircuit.config.tile.circuit_config_from_data`, as ``rpucircuit netlist`` reads
    it) and optionally ``[campaign]``. ``text=None`` is the embedded default. ``quick``
    replaces the campaign by :func:`quick_campaign` (fields given in ``[campaign]`` still
    apply)."""
    data: dict[str, Any] = {} if text is None else parse_toml(text, source=source)
    campaign_data = data.pop("campaign", {})
    if not isinstance(campaign_data, Mapping):
        raise ConfigError(f"{source}: [campaign] must be a table")
    circuit = circuit_config_from_data(data, source=source, extra_tables=("campaign",))
    camp_base = quick_campaign() if quick else CampaignConfig()
    camp_fields = {**dataclasses.asdict(camp_base), **dict(campaign_data)}
    campaign = from_dict(CampaignConfig, camp_fields, path="campaign")
    return CampaignSpec(circuit=circuit, campaign=campaign)


def spec_toml(spec: CampaignSpec) -> str:
    """TOML text of a spec (what provenance records; loads back with :func:`load_spec`)."""
    circuit = to_toml(spec.circuit)
    campaign = to_toml(spec.campaign)
    return circuit + "\n[campaign]\n" + campaign
