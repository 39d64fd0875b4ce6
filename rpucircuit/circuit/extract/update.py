"""Update: one stochastic update cycle on one array in ngspice, and the fit of its response.

:func:`update_case` drives random row and column bit streams, reads every device's
conductance change, and fits ``Δg = Δg_min·(n_full + k·n_half)`` (:func:`fit_update_response`,
pure) over the devices. :func:`full_select_case` pulses every line in every slot, so each
device's Δg is its own rate: the device-to-device spread (devices at ``G_mean``) or the
soft bound (devices started near ``G_on`` or ``G_off``, :func:`bound_start_conductances`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rpucircuit.circuit.extract.common import (
    RELATIVE_ZERO,
    FloatArray,
    real_vector,
    run_netlist,
)
from rpucircuit.circuit.netlist import build_update, device_rate_factors
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.errors import ExtractionError


def fit_update_response(
    n_full: ArrayLike, n_half: ArrayLike, dg_s: ArrayLike
) -> tuple[float, float, float]:
    """Least-squares ``Δg = a·n_full + b·n_half`` over devices; returns ``(a, k, rms)``.

    ``n_full`` counts the coincident (fully selected, V_S) pulses each device saw,
    ``n_half`` the pulses on its row or its column alone (V_S/2). ``a`` is Δg per full
    pulse (S), ``k = b/a`` the nonlinearity factor, ``rms`` the fit residual (S).
    """
    nf = np.asarray(n_full, dtype=np.float64).ravel()
    nh = np.asarray(n_half, dtype=np.float64).ravel()
    dg = np.asarray(dg_s, dtype=np.float64).ravel()
    if not (nf.shape == nh.shape == dg.shape):
        raise ExtractionError(f"shapes differ: n_full {nf.shape}, n_half {nh.shape}, dg {dg.shape}")
    design = np.column_stack([nf, nh])
    if nf.size < 2 or np.linalg.matrix_rank(design) < 2:
        raise ExtractionError(
            "cannot separate full and half-selected response: need devices with different "
            "ratios of coincident to half-selected pulses"
        )
    coef, *_ = np.linalg.lstsq(design, dg, rcond=None)
    a, b = float(coef[0]), float(coef[1])
    # An exact zero is lost to rounding (lstsq returns ~1e-16 of the data for "none"): the
    # coincident response counts as absent when it explains less than RELATIVE_ZERO of the
    # largest change.
    if abs(a) * float(np.max(np.abs(nf))) <= RELATIVE_ZERO * float(np.max(np.abs(dg))):
        raise ExtractionError("fitted Δg per coincident pulse is 0: no update was seen")
    rms = float(np.sqrt(np.mean((design @ coef - dg) ** 2)))
    return a, b / a, rms


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class UpdateResult:
    """Per-device conductance changes of one stochastic update cycle (one polarity)."""

    name: str
    response: str
    """``saturating``, ``linear`` or ``rectifying`` (from the model's k)."""
    polarity: int
    """+1 (up: rows +V_S/2, columns −V_S/2) or −1."""
    k_model: float
    up_down_ratio_model: float
    """The model's Δg_up/Δg_down."""
    dg_model_s: float
    """The model's Δg per coincident pulse for this polarity (S, signed)."""
    row_bits: NDArray[np.bool_]
    col_bits: NDArray[np.bool_]
    n_full: NDArray[np.int64]
    """Coincident (fully selected) pulses per device, ``(rows, cols)``."""
    n_half: NDArray[np.int64]
    """Half-selected pulses per device."""
    dg_s: FloatArray
    """Simulated conductance change per device (S), ``(rows, cols)``."""
    dg_min_s: float
    """Fitted Δg per coincident pulse (S, signed)."""
    k: float
    """Fitted nonlinearity factor k = Δg(V_S/2)/Δg(V_S)."""
    fit_rms_s: float
    half_only_ratio: FloatArray
    """For devices that saw only half-selected pulses: Δg/(n_half·Δg_min), each ≈ k."""
    rate_factor: FloatArray
    """Each device's factor on the mean rate, ``(rows, cols)`` (all 1 without a spread)."""
    wall_s: float


def update_case(
    cfg: CircuitConfig,
    *,
    name: str,
    polarity: Literal[1, -1],
    rng: np.random.Generator,
    p_bit: float = 0.3,
    workdir: Path,
    timeout_s: float = 600.0,
) -> UpdateResult:
    """Random row and column bit streams (probability ``p_bit``) on one array of ``cfg``.

    Devices start at ``G_mean`` (far from both bounds), so the response is the model's
    ``Δg·(n_full + k·n_half)``; the fit over all devices recovers Δg_min and k. A config
    with ``device.dw_min_dtod > 0`` gives each device its own rate (drawn from ``rng``
    after the bits), which the fit over devices sees as residual: characterize k with
    ``dw_min_dtod = 0`` and the spread with :func:`full_select_case`.
    """
    t, p = cfg.tile, cfg.periphery
    row_bits = rng.random((t.rows, p.bl)) < p_bit
    col_bits = rng.random((t.cols, p.bl)) < p_bit
    g0 = np.full((t.rows, t.cols), cfg.device.g_mean_s)
    factor = device_rate_factors(cfg, (t.rows, t.cols), rng=rng)
    spread = None if cfg.device.dw_min_dtod == 0.0 else factor
    net = build_update(cfg, g0, row_bits, col_bits, polarity=polarity, rate_factor=spread)
    res = run_netlist(net, name=f"upd-{name}", workdir=workdir, timeout_s=timeout_s)
    states = np.array([real_vector(res, v)[-1] for v in net.role("states")])
    dg = states.reshape(t.rows, t.cols) * 1e-9  # 1 V on the state capacitor = 1 nS
    rb, cb = row_bits.astype(np.int64), col_bits.astype(np.int64)
    n_full = rb @ cb.T
    n_half = rb.sum(axis=1)[:, None] + cb.sum(axis=1)[None, :] - 2 * n_full
    a, k, rms = fit_update_response(n_full, n_half, dg)
    only_half = (n_full == 0) & (n_half > 0)
    ratio = dg[only_half] / (n_half[only_half] * a)
    d = cfg.device
    return UpdateResult(
        name=name,
        response=d.response,
        polarity=int(polarity),
        k_model=d.k,
        up_down_ratio_model=d.up_down_ratio,
        dg_model_s=d.dg_up_s if polarity == 1 else -d.dg_down_s,
        row_bits=row_bits,
        col_bits=col_bits,
        n_full=n_full,
        n_half=n_half,
        dg_s=dg,
        dg_min_s=a,
        k=k,
        fit_rms_s=rms,
        half_only_ratio=np.asarray(ratio, dtype=np.float64),
        rate_factor=factor,
        wall_s=res.wall_s,
    )


def up_down_ratio(up: UpdateResult, down: UpdateResult) -> float:
    """Extracted Δg_up/Δg_down per coincident pulse from an up and a down cycle."""
    if up.polarity != 1 or down.polarity != -1:
        raise ExtractionError(
            f"polarities {up.polarity:+d}, {down.polarity:+d}: "
            "need an up (+1) and a down (-1) cycle"
        )
    return up.dg_min_s / -down.dg_min_s


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FullSelectResult:
    """One update cycle with every row and column pulsing in every bit slot: each device
    sees ``BL`` coincident pulses and no half-selected one, so its Δg is its own rate (the
    device-to-device spread) and, near a bound, the bound's shape."""

    name: str
    polarity: int
    """+1 (up, towards G_on) or −1 (down, towards G_off)."""
    n_pulses: int
    """Coincident pulses every device saw (``BL``)."""
    g0_s: FloatArray
    """Initial conductance per device (S), ``(rows, cols)``."""
    rate_factor: FloatArray
    """The device-to-device factor each device's rate was given (drawn,
    :func:`~rpucircuit.circuit.netlist.device_rate_factors`; all 1 without a spread)."""
    dw_min_dtod_model: float
    """The config's relative device-to-device spread of Δw_min."""
    dg_model_s: float
    """The model's Δg per coincident pulse of a mean device for this polarity (S, signed)."""
    g_on_s: float
    g_off_s: float
    bound_margin_model: float
    """The model's fraction of (G_on − G_off) over which the rate ramps to zero at a bound."""
    distance_pulses: FloatArray
    """Distance of each device's start from the bound it moves towards, in pulses of the
    mean device: ``(G_on − g0)/Δg_up`` up, ``(g0 − G_off)/Δg_down`` down."""
    dg_s: FloatArray
    """Simulated conductance change per device (S, signed), ``(rows, cols)``."""
    dg_per_pulse_s: FloatArray
    """``dg_s / n_pulses``: each device's own Δg per coincident pulse (S, signed)."""
    spread_rel: float
    """Relative std (ddof = 1) of ``dg_per_pulse_s`` over the devices (the observed
    device-to-device spread when every device starts away from the bounds)."""
    wall_s: float


def full_select_case(
    cfg: CircuitConfig,
    g0: ArrayLike,
    *,
    name: str,
    polarity: Literal[1, -1],
    rate_factor: ArrayLike | None = None,
    workdir: Path,
    timeout_s: float = 600.0,
) -> FullSelectResult:
    """Every line pulses in all ``BL`` slots on one array of ``cfg`` with initial
    conductances ``g0`` and the devices' ``rate_factor`` (None: all 1)."""
    t, p, d = cfg.tile, cfg.periphery, cfg.device
    shape = (t.rows, t.cols)
    factor = np.ones(shape) if rate_factor is None else np.asarray(rate_factor, dtype=np.float64)
    bits_r = np.ones((t.rows, p.bl), dtype=np.bool_)
    bits_c = np.ones((t.cols, p.bl), dtype=np.bool_)
    g = np.asarray(g0, dtype=np.float64)
    net = build_update(cfg, g, bits_r, bits_c, polarity=polarity, rate_factor=factor)
    res = run_netlist(net, name=f"upd-{name}", workdir=workdir, timeout_s=timeout_s)
    states = np.array([real_vector(res, v)[-1] for v in net.role("states")])
    dg = states.reshape(shape) * 1e-9  # 1 V on the state capacitor = 1 nS
    per_pulse = dg / p.bl
    mean = float(np.mean(per_pulse))
    if mean == 0.0:
        raise ExtractionError(f"update/{name}: no device changed: no update was seen")
    spread = float(np.std(per_pulse, ddof=1) / abs(mean)) if per_pulse.size > 1 else 0.0
    if polarity == 1:
        dg_model, distance = d.dg_up_s, (d.g_on_s - g) / d.dg_up_s
    else:
        dg_model, distance = -d.dg_down_s, (g - d.g_off_s) / d.dg_down_s
    return FullSelectResult(
        name=name,
        polarity=int(polarity),
        n_pulses=p.bl,
        g0_s=g,
        rate_factor=factor,
        dw_min_dtod_model=d.dw_min_dtod,
        dg_model_s=dg_model,
        g_on_s=d.g_on_s,
        g_off_s=d.g_off_s,
        bound_margin_model=d.bound_margin,
        distance_pulses=np.asarray(distance, dtype=np.float64),
        dg_s=dg,
        dg_per_pulse_s=per_pulse,
        spread_rel=spread,
        wall_s=res.wall_s,
    )


def bound_start_conductances(
    cfg: CircuitConfig, polarity: Literal[1, -1], span_pulses: float
) -> FloatArray:
    """Initial conductances ``(rows, cols)`` of a bound case: row-major, the devices start
    at distances ``linspace(0, span_pulses, rows·cols)`` pulses (of the mean device) from
    the bound the cycle moves them towards (G_on up, G_off down)."""
    t, d = cfg.tile, cfg.device
    dist = np.linspace(0.0, span_pulses, t.rows * t.cols).reshape(t.rows, t.cols)
    g = d.g_on_s - dist * d.dg_up_s if polarity == 1 else d.g_off_s + dist * d.dg_down_s
    # The end at distance 0 sits on the bound exactly (rounding may not).
    out: FloatArray = np.clip(g, d.g_off_s, d.g_on_s)
    return out
