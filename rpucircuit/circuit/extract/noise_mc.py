"""Transient-noise Monte Carlo of one output line, repeatable from a seed.

All three noise sources of a read are drawn in numpy (ngspice's own ``trnoise`` is not
repeatable): the devices' thermal noise as series PWL sources, the op-amp's e_n as a PWL
source on its non-inverting input (fine samples only near the read, :func:`noise_time_grid`),
and the reset's kT/C as a sampled capacitor voltage. :func:`noise_monte_carlo` runs the
trials in batches of copies per netlist and compares their spread with ``.noise`` of the same
line and of the reset switch (:mod:`.noise`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from rpucircuit.circuit import analytic as an
from rpucircuit.circuit.extract.common import (
    RELATIVE_ZERO,
    FloatArray,
    real_vector,
    run_netlist,
    with_periphery,
)
from rpucircuit.circuit.extract.noise import (
    current_psd_from_integrator_output,
    flat_band_hz,
    ktc_case,
    line_spectrum,
    noise_line_g,
    opamp_noise_reference_c2,
    reset_opamp_var_c2,
    windowed_charge_variance_c2,
)
from rpucircuit.circuit.netlist import (
    Capacitor,
    Element,
    Instance,
    Netlist,
    Resistor,
    Tran,
    VSource,
    build_noise,
)
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.errors import ExtractionError

OPAMP_STEPS_PER_GBW = 100.0
"""Default op-amp noise samples per 1/GBW: the closed loop passes e_n up to ~GBW, where the
sinc⁴ of linearly interpolated samples then costs < 0.1 % of the density."""
OPAMP_FINE_STEPS = 200
"""Op-amp samples at the fine step before the read (2/GBW at the default step, about 12
closed-loop time constants 1/(2π·GBW)); earlier samples use the device step, because
ngspice scans a PWL's points from the start at every time step."""
MAX_STEP_OPAMP_STEPS = 20.0
"""The solver's largest step in op-amp steps (one closed-loop time constant at the default
step), so that the loop's response is followed between the coarse samples."""
REFERENCE_F_STOP_HZ = 100e9
"""Upper end of the ``.noise`` sweeps of the reference (well above GBW)."""


def white_noise_samples(
    density_per_rthz: float, dt_s: float, n_steps: int, *, rng: np.random.Generator
) -> FloatArray:
    """Samples of white noise of one-sided density ``density_per_rthz`` every ``dt_s``.

    Returns ``n_steps + 1`` values for a piecewise-linear source at ``0, dt, ..., n·dt``;
    each is Gaussian with variance ``density²/(2·dt)`` (the noise band-limited to the
    Nyquist frequency ``1/(2dt)``), except the first, which is exactly 0 so the circuit
    starts at its operating point.
    """
    if dt_s <= 0 or n_steps < 1:
        raise ExtractionError(f"dt_s = {dt_s!r}, n_steps = {n_steps!r}: need dt > 0, n >= 1")
    values = rng.normal(0.0, density_per_rthz / math.sqrt(2.0 * dt_s), size=n_steps + 1)
    values[0] = 0.0
    return values


def noise_time_grid(
    t_end_s: float, dt_coarse_s: float, dt_fine_s: float, t_fine_s: float
) -> FloatArray:
    """Sample times ``0 … t_end``: every ``dt_coarse`` up to ``t_end − t_fine``, then every
    ``dt_fine`` to ``t_end`` (a white source that must be broadband only near ``t_end``).

    ngspice looks a PWL value up by scanning its points from the start, so a source's cost
    per time step grows with its length; the fine tail keeps it short.
    """
    if not (0.0 < dt_fine_s <= dt_coarse_s and t_fine_s >= 0.0 and t_end_s > 0.0):
        raise ExtractionError(
            f"dt_coarse_s = {dt_coarse_s!r}, dt_fine_s = {dt_fine_s!r}, t_fine_s = {t_fine_s!r}: "
            "need 0 < dt_fine <= dt_coarse, t_fine >= 0, t_end > 0"
        )
    n_fine = min(math.ceil(t_fine_s / dt_fine_s), math.floor(t_end_s / dt_fine_s * (1 + 1e-12)))
    t_split = t_end_s - n_fine * dt_fine_s
    # A time within rounding of 0 (t_end a multiple of the fine step gives ±1e-25 s, not 0)
    # is 0: neither a first step of 1e-25 s nor a grid starting below 0.
    snap = RELATIVE_ZERO * dt_fine_s
    if t_split <= snap:
        fine: FloatArray = dt_fine_s * np.arange(n_fine + 1, dtype=np.float64)
        return fine
    n_coarse = math.ceil(t_split / dt_coarse_s * (1 - 1e-12))
    coarse = t_split - dt_coarse_s * np.arange(n_coarse, 0, -1, dtype=np.float64)
    coarse = coarse[coarse > snap]
    fine = t_split + dt_fine_s * np.arange(n_fine + 1, dtype=np.float64)
    out: FloatArray = np.concatenate([[0.0], coarse, fine])
    return out


def white_noise_on_grid(
    density_per_rthz: float, times_s: ArrayLike, *, rng: np.random.Generator
) -> FloatArray:
    """White noise of one-sided density ``density_per_rthz`` sampled at ``times_s`` (any
    increasing grid starting at 0) for a piecewise-linear source.

    Sample ``i`` has variance ``density²/(2·w_i)``, ``w_i`` the mean of its neighbouring
    steps (its trapezoid weight; one step at the ends), so the PWL waveform's integral
    over any span has variance ``density²·span/2`` as white noise does; on a uniform grid
    this is :func:`white_noise_samples`. The first value is exactly 0.
    """
    t = np.asarray(times_s, dtype=np.float64)
    if t.ndim != 1 or t.size < 2 or t[0] != 0.0 or np.any(np.diff(t) <= 0.0):
        raise ExtractionError("noise times must be an increasing 1-D grid from 0")
    d = np.diff(t)
    w = np.concatenate([[d[0]], 0.5 * (d[:-1] + d[1:]), [d[-1]]])
    values: FloatArray = rng.normal(0.0, 1.0, size=t.size) * (density_per_rthz / np.sqrt(2.0 * w))
    values[0] = 0.0
    return values


MC_SOURCES: tuple[str, ...] = ("device", "opamp", "ktc")
"""Noise sources of the transient-noise Monte Carlo (all of them by default)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NoiseMonteCarloResult:
    """Transient-noise Monte Carlo of one output line against ``.noise`` of the same column.

    Each trial is the ``opamp_noise="source"`` variant of :func:`build_noise`: the reset
    switch is closed until ``t_open_s`` and holds the integrating capacitor at a sampled
    kT/C voltage ``v_reset_v`` (σ = √(kT/C_int)); the devices' thermal noise (series PWL
    sources of density ``√(4kT·R)``, step ``dt_s``) and the op-amp's input-referred noise
    (a PWL source of density e_n, step ``dt_amp_s``, on the non-inverting input) run from
    t = 0, their first value 0 V. The charge is read single-ended at the end of the
    window: ``q = −C_int·v(out)`` at ``t_open_s + t_meas``. All samples come from
    ``numpy.random.default_rng(seed)``, trial by trial, so the same seed repeats the same
    charges.

    The reference is ngspice's ``.noise`` of the same column (the ``rpu_integrator``
    variant, whose series resistor carries e_n) through the t_meas window, plus ngspice's
    ``.noise`` of the reset switch across C_int (kT/C). The window ``sin²(πfT)/(πf)²``
    counts the op-amp's broadband output noise (gain 1 + C_in/C_int) at both ends of the
    window; a single-ended read from a reset sees it once, so the op-amp's part is
    ``(window + low-frequency part)/2``, the low-frequency part being its flat current
    density ``e_n²·G²`` (read from the spectra) times T/2. The op-amp spectrum is weighted
    by ``sinc⁴(f·dt_amp)``, the spectrum of linearly interpolated white samples. Added to
    it is the op-amp's e_n frozen on the line capacitance when the switch opens (``.noise``
    of the summing node with the switch closed). This is the same single-ended read as
    :func:`rpucircuit.circuit.analytic.noise_budget` and :func:`noise_case`.
    """

    n_devices: int
    trials: int
    seed: int
    sources: str
    """Comma-separated noise sources injected (``device``, ``opamp``, ``ktc``)."""
    dt_s: float
    """Time step of the devices' noise samples (s)."""
    dt_amp_s: float
    """Time step of the op-amp's noise samples and the largest simulation step (s)."""
    t_open_s: float
    """When the reset switch opens and integration starts (s)."""
    q_c: FloatArray
    """Integrated charge of each trial over t_meas (C), ``−C_int·v(out0)`` at the end."""
    v_reset_v: FloatArray
    """The sampled kT/C capacitor voltage of each trial (V; zeros without ``ktc``)."""
    sigma_mc_w: float
    """Sample standard deviation of the trials (weight units)."""
    sigma_mc_stderr_w: float
    """Its standard error, ``σ/√(2(M−1))``."""
    sigma_noise_w: float
    """σ of the same column and sources from ``.noise`` (weight units)."""
    sigma_device_w: float
    """Devices' part of ``sigma_noise_w`` (0 when not injected)."""
    sigma_opamp_w: float
    """Op-amp's part of ``sigma_noise_w`` (0 when not injected)."""
    sigma_ktc_w: float
    """Reset kT/C part of ``sigma_noise_w``: ``.noise`` of the switch (0 when not injected)."""
    wall_s: float

    @property
    def z_score(self) -> float:
        """(MC − .noise)/standard error."""
        return (self.sigma_mc_w - self.sigma_noise_w) / self.sigma_mc_stderr_w


def _prefixed(el: Element, prefix: str) -> Element:
    def node(n: str) -> str:
        return n if n == "0" else f"{prefix}{n}"

    if isinstance(el, Resistor | Capacitor):
        return dataclasses.replace(el, name=f"{prefix}{el.name}", n1=node(el.n1), n2=node(el.n2))
    if isinstance(el, VSource):
        return dataclasses.replace(
            el, name=f"{prefix}{el.name}", np_=node(el.np_), nn=node(el.nn), ac=None
        )
    return dataclasses.replace(el, name=f"{prefix}{el.name}", nodes=tuple(map(node, el.nodes)))


def _pwl(times: ArrayLike, values: ArrayLike) -> tuple[float, ...]:
    pairs = np.stack([np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)])
    return tuple(float(v) for v in pairs.T.ravel())


def _check_arguments(
    trials: int, per_netlist: int, steps: int, sources: Sequence[str]
) -> tuple[str, ...]:
    """The chosen sources, after refusing sizes and names the Monte Carlo cannot use."""
    if trials < 2 or per_netlist < 1 or steps < 10:
        raise ExtractionError(
            f"trials = {trials}, per_netlist = {per_netlist}, steps = {steps}: need trials >= 2, "
            "per_netlist >= 1, steps >= 10"
        )
    chosen = tuple(sources)
    bad = [s for s in chosen if s not in MC_SOURCES]
    if bad or not chosen or len(set(chosen)) != len(chosen):
        raise ExtractionError(
            f"sources = {chosen!r}: need distinct names out of {list(MC_SOURCES)}"
        )
    return chosen


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Trials:
    """What every trial shares: the line, its time grids and which sources it carries."""

    base: Netlist
    """The ``opamp_noise="source"`` line that each trial copies."""
    devices: tuple[Resistor, ...]
    """The line's device resistors (each gets a series noise source)."""
    t_open_s: float
    t_end_s: float
    """When the charge is read: t_open + t_meas (s)."""
    dt_s: float
    dt_amp_s: float
    t_dev_s: FloatArray
    """Sample times of the devices' noise (uniform, step ``dt_s``)."""
    t_amp_s: FloatArray
    """Sample times of the op-amp's noise (coarse, then ``dt_amp_s`` near the read)."""
    kt_j: float
    c_int_f: float
    e_n_v_per_rthz: float
    use_device: bool
    use_opamp: bool
    use_ktc: bool


def _trials_setup(
    cfg: CircuitConfig,
    n_devices: int,
    steps: int,
    dt_amp_s: float | None,
    chosen: tuple[str, ...],
) -> _Trials:
    p = cfg.periphery
    t_open = p.t_reset_s
    t_end = t_open + p.t_meas_s
    dt = p.t_meas_s / steps
    default_amp = 1.0 / (OPAMP_STEPS_PER_GBW * p.gbw_hz)
    dt_amp = min(dt, default_amp) if dt_amp_s is None else float(dt_amp_s)
    if not (math.isfinite(dt_amp) and 0.0 < dt_amp <= dt * (1 + RELATIVE_ZERO)):
        raise ExtractionError(f"dt_amp_s = {dt_amp_s!r}: need 0 < dt_amp_s <= t_meas/steps")
    g_pos, g_neg = noise_line_g(cfg, n_devices)
    base = build_noise(cfg, g_pos, g_neg, opamp_noise="source")
    devices = tuple(
        el for el in base.elements if isinstance(el, Resistor) and el.name.startswith("d_")
    )
    use_dev, use_amp, use_ktc = (s in chosen for s in MC_SOURCES)
    return _Trials(
        base=base,
        devices=devices,
        t_open_s=t_open,
        t_end_s=t_end,
        dt_s=dt,
        dt_amp_s=dt_amp,
        t_dev_s=np.arange(math.ceil(t_end / dt * (1 - 1e-12)) + 1, dtype=np.float64) * dt,
        t_amp_s=noise_time_grid(t_end, dt, dt_amp, min(OPAMP_FINE_STEPS * dt_amp, t_end)),
        kt_j=an.BOLTZMANN_J_PER_K * p.temperature_k,
        c_int_f=cfg.c_int_f,
        e_n_v_per_rthz=p.e_n_v_per_rthz,
        use_device=use_dev,
        use_opamp=use_amp,
        use_ktc=use_ktc,
    )


def _trial_elements(
    tr: _Trials, prefix: str, rng: np.random.Generator
) -> tuple[list[Element], float]:
    """One trial's copy of the line (names and nodes prefixed) with its noise drawn, and its
    sampled reset voltage. Draws in a fixed order (reset voltage, then the sources in the
    order of the line's elements), so a seed repeats the same trials."""
    v0 = float(rng.normal(0.0, math.sqrt(tr.kt_j / tr.c_int_f))) if tr.use_ktc else 0.0
    els: list[Element] = []
    for el in tr.base.elements:
        if isinstance(el, Instance):
            params = dict(el.params)
            params.update(treset=tr.t_open_s, vreset=v0)
            el = dataclasses.replace(el, params=tuple(params.items()))
        elif isinstance(el, VSource) and el.name == "en0":
            if tr.use_opamp:
                wave = white_noise_on_grid(tr.e_n_v_per_rthz, tr.t_amp_s, rng=rng)
                el = dataclasses.replace(el, pwl=_pwl(tr.t_amp_s, wave), comment="")
        elif tr.use_device and isinstance(el, Resistor) and el in tr.devices:
            series = f"{el.n2}_n"
            density = math.sqrt(4 * tr.kt_j * el.ohm)
            wave = white_noise_samples(density, tr.dt_s, tr.t_dev_s.size - 1, rng=rng)
            source = VSource(f"nz_{el.name}", series, el.n2, pwl=_pwl(tr.t_dev_s, wave))
            els.append(_prefixed(dataclasses.replace(el, n2=series, comment=""), prefix))
            els.append(_prefixed(source, prefix))
            continue
        els.append(_prefixed(el, prefix))
    return els, v0


def _run_batch(
    tr: _Trials,
    count: int,
    *,
    batch: int,
    n_devices: int,
    rng: np.random.Generator,
    workdir: Path,
    timeout_s: float,
) -> tuple[list[float], list[float], float]:
    """``count`` trials in one ngspice run: their charges (C), reset voltages (V), wall time."""
    els: list[Element] = []
    outs: list[str] = []
    resets: list[float] = []
    for c in range(count):
        pre = f"t{c}_"
        trial, v0 = _trial_elements(tr, pre, rng)
        els.extend(trial)
        resets.append(v0)
        outs.append(f"v({pre}out0)")
    max_step = min(tr.dt_s, MAX_STEP_OPAMP_STEPS * tr.dt_amp_s)
    net = Netlist(
        title=f"rpucircuit transient noise, {count} copies of a {n_devices}-device line",
        libs=tr.base.libs,
        elements=tuple(els),
        analyses=(Tran(step_s=tr.dt_amp_s, stop_s=tr.t_end_s, max_step_s=max_step),),
        vectors=tuple(outs),
    )
    res = run_netlist(net, name=f"noise-mc{batch}", workdir=workdir, timeout_s=timeout_s)
    t = real_vector(res, "time")
    charges = [-float(np.interp(tr.t_end_s, t, real_vector(res, v))) * tr.c_int_f for v in outs]
    return charges, resets, res.wall_s


def _reference_variances_c2(
    cfg: CircuitConfig, n_devices: int, tr: _Trials, *, workdir: Path, timeout_s: float
) -> tuple[float, float, float]:
    """Charge variances (C²) of the injected sources from ``.noise``: devices, op-amp, kT/C
    (0 for a source not injected)."""
    var_dev = var_amp = var_ktc = 0.0
    t_meas = cfg.periphery.t_meas_s
    if tr.use_device or tr.use_opamp:
        quiet = with_periphery(cfg, e_n_v_per_rthz=0.0)
        f0, s_v0, _ = line_spectrum(
            quiet,
            n_devices,
            name="noise-mc-quiet",
            workdir=workdir,
            timeout_s=timeout_s,
            f_stop_hz=REFERENCE_F_STOP_HZ,
        )
        s_i0 = current_psd_from_integrator_output(f0, s_v0, tr.c_int_f)
        if tr.use_device:
            var_dev = windowed_charge_variance_c2(f0, s_i0, t_meas)
        if tr.use_opamp:
            f, s_v, _ = line_spectrum(
                cfg,
                n_devices,
                name="noise-mc-ref",
                workdir=workdir,
                timeout_s=timeout_s,
                f_stop_hz=REFERENCE_F_STOP_HZ,
            )
            if f.shape != f0.shape or not np.allclose(f, f0, rtol=1e-9):
                raise ExtractionError("the two noise sweeps have different frequency grids")
            g_pos, g_neg = noise_line_g(cfg, n_devices)
            g_tot = float(np.sum(g_pos) + (0.0 if g_neg is None else np.sum(g_neg)))
            c_in = cfg.tile.n_arrays * n_devices * cfg.tile.c_seg_row_f
            var_amp = opamp_noise_reference_c2(
                f,
                current_psd_from_integrator_output(f, s_v, tr.c_int_f),
                s_i0,
                t_meas_s=t_meas,
                dt_amp_s=tr.dt_amp_s,
                f_flat_hz=flat_band_hz(cfg, g_tot, c_in),
            ) + reset_opamp_var_c2(
                cfg, n_devices, workdir=workdir, timeout_s=timeout_s, f_stop_hz=REFERENCE_F_STOP_HZ
            )
    if tr.use_ktc:
        ktc = ktc_case(cfg, workdir=workdir, timeout_s=timeout_s)
        var_ktc = ktc.v2_sim * tr.c_int_f**2
    return var_dev, var_amp, var_ktc


def noise_monte_carlo(
    cfg: CircuitConfig,
    *,
    n_devices: int = 8,
    trials: int = 200,
    per_netlist: int = 25,
    steps: int = 100,
    dt_amp_s: float | None = None,
    sources: Sequence[str] = MC_SOURCES,
    seed: int,
    workdir: Path,
    timeout_s: float = 600.0,
) -> NoiseMonteCarloResult:
    """Repeatable transient-noise Monte Carlo (see :class:`NoiseMonteCarloResult`).

    ``trials`` independent copies of the line (``per_netlist`` per ngspice run); the
    devices' noise has ``steps`` samples per t_meas, the op-amp's one every ``dt_amp_s``
    (default ``1/(100·GBW)``, :data:`OPAMP_STEPS_PER_GBW`, capped at the device step: the
    closed loop passes e_n up to ~GBW) in the last :data:`OPAMP_FINE_STEPS` samples before
    the read. ``sources`` picks what is injected (and referenced). ngspice's own
    ``trnoise`` is not repeatable; these samples come from ``numpy.random.default_rng(seed)``.
    """
    chosen = _check_arguments(trials, per_netlist, steps, sources)
    tr = _trials_setup(cfg, n_devices, steps, dt_amp_s, chosen)
    rng = np.random.default_rng(seed)
    charges: list[float] = []
    resets: list[float] = []
    wall = 0.0
    batch = 0
    while len(charges) < trials:
        count = min(per_netlist, trials - len(charges))
        q, v, seconds = _run_batch(
            tr,
            count,
            batch=batch,
            n_devices=n_devices,
            rng=rng,
            workdir=workdir,
            timeout_s=timeout_s,
        )
        charges += q
        resets += v
        wall += seconds
        batch += 1
    var_dev, var_amp, var_ktc = _reference_variances_c2(
        cfg, n_devices, tr, workdir=workdir, timeout_s=timeout_s
    )
    q_unit = cfg.q_unit_c
    sigma = float(np.std(charges, ddof=1)) / q_unit
    return NoiseMonteCarloResult(
        n_devices=n_devices,
        trials=trials,
        seed=seed,
        sources=",".join(chosen),
        dt_s=tr.dt_s,
        dt_amp_s=tr.dt_amp_s,
        t_open_s=tr.t_open_s,
        q_c=np.asarray(charges, dtype=np.float64),
        v_reset_v=np.asarray(resets, dtype=np.float64),
        sigma_mc_w=sigma,
        sigma_mc_stderr_w=sigma / math.sqrt(2.0 * (trials - 1)),
        sigma_noise_w=math.sqrt(var_dev + var_amp + var_ktc) / q_unit,
        sigma_device_w=math.sqrt(var_dev) / q_unit,
        sigma_opamp_w=math.sqrt(var_amp) / q_unit,
        sigma_ktc_w=math.sqrt(var_ktc) / q_unit,
        wall_s=wall,
    )
