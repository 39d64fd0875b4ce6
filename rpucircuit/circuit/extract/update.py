"""Update: one stochastic update cycle on one array in ngspice, and the fit of its response.

:func:`update_case` drives random row and column bit streams, reads every device's
conductance change, and fits ``Δg = Δg_min·(n_full + k·n_half)`` (:func:`fit_update_response`,
pure) over the devices.
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
from rpucircuit.circuit.netlist import build_update
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
    ``Δg·(n_full + k·n_half)``; the fit over all devices recovers Δg_min and k.
    """
    t, p = cfg.tile, cfg.periphery
    row_bits = rng.random((t.rows, p.bl)) < p_bit
    col_bits = rng.random((t.cols, p.bl)) < p_bit
    g0 = np.full((t.rows, t.cols), cfg.device.g_mean_s)
    net = build_update(cfg, g0, row_bits, col_bits, polarity=polarity)
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
