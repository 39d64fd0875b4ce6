"""Pulse-level pieces shared by the update kernels: the soft-bounds step, the sign, the
refresh of the read copies after a device changed (:func:`_refresh_copies`, one case per
:data:`COPY_SINGLE` … mode), and the half-select model applied per device, pulse by pulse
for soft bounds (:func:`_half_select_element`; hard bounds go through :mod:`.halfselect`).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from rpucircuit.model.kernels.layout import (
    ATT_B_COLS,
    ATT_B_ROWS,
    ATT_COLS,
    ATT_ROWS,
    PAR_DOWN,
    PAR_UP,
    FloatArray,
    UIntArray,
)
from rpucircuit.model.kernels.reads import _absmax
from rpucircuit.model.kernels.streams import _normal, _popcount

_C2C_BATCH = 512
"""Cycle-to-cycle normals of coincidences are drawn this many at a time (a multiple of
:data:`~rpucircuit.model.kernels.streams.NORMAL_BLOCK`); a call's unused remainder is dropped."""


COPY_SINGLE, COPY_FWD_MAP, COPY_BOTH_MAPS, COPY_FWD_LINES, COPY_BOTH_LINES, COPY_ANY = range(6)
"""How an update refreshes the read copies of a device it changed (:func:`_copy_mode`,
:func:`_refresh_copies`): one device without maps (``wread`` holds its value); one device
and the forward map; one device and both maps (the backward read copy is kept too); the
same two with each map value computed from the tile's line terms (``att_lines``, when
``dp[DP_ATT_LINES]`` says they give the maps bit for bit) instead of loaded from the map;
anything else (several devices summed, the maps as the switches say)."""


@numba.njit(cache=True, nogil=True, inline="always")
def _copy_mode(n_dev: int, use_att: bool, bwd: bool, lines: bool) -> int:  # pragma: no cover
    """The ``COPY_*`` mode of a tile with ``n_dev`` devices per weight and these switches
    (``lines``: ``dp[DP_ATT_LINES]``)."""
    if n_dev == 1 and not use_att and not bwd:
        return COPY_SINGLE
    if n_dev == 1 and use_att:
        if lines:
            return COPY_BOTH_LINES if bwd else COPY_FWD_LINES
        return COPY_BOTH_MAPS if bwd else COPY_FWD_MAP
    return COPY_ANY


@numba.njit(cache=True, nogil=True, inline="always")
def _line_map(row: float, col: float) -> float:  # pragma: no cover - compiled
    """A map value from its line terms: 1 − (row term + column term)."""
    return 1.0 - (row + col)


@numba.njit(cache=True, nogil=True, inline="always")
def _copy_cases(mode: int) -> tuple[bool, bool, bool]:  # pragma: no cover - compiled
    """Whether ``mode`` is :data:`COPY_SINGLE`, one of the two ``*_LINES`` modes, or one of
    the two ``*_MAPS`` modes (else :data:`COPY_ANY`): the cases a loop with a run-time mode
    refreshes through its own inner function, as :func:`_refresh_copies` computes them
    (the backward copy where ``bwd``), so that no call with reference counting is made (see
    there)."""
    lines = mode in (COPY_FWD_LINES, COPY_BOTH_LINES)
    return mode == COPY_SINGLE, lines, mode in (COPY_FWD_MAP, COPY_BOTH_MAPS)


@numba.njit(cache=True, nogil=True, inline="always")
def _refresh_copies(
    mode: int,
    i: int,
    j: int,
    v: float,
    w: FloatArray,
    wread: Any,
    att: FloatArray,
    use_att: bool,
    wread_b: Any,
    att_b: FloatArray,
    bwd: bool,
    al: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Refresh weight (i, j) in the read copies after a device of it took the value ``v``:
    the sum of its devices (0.0 + v for one device, bit for bit the same sum), times the
    forward map into ``wread`` when ``use_att`` and times the backward map into ``wread_b``
    when ``bwd``; in the ``*_LINES`` modes each map value is 1 − (row term + column term)
    from ``al`` (the tile's ``att_lines``), the value the map holds. The k = 0 loop of
    :func:`~.updates.pulsed_update` calls it with a literal ``mode`` (:func:`_copy_mode`)
    from code inlined once per mode, so that in the specialized modes no pulse tests the
    switches (docs/performance.md has the measured gain). With a mode known only at run
    time, the inlined copy costs numba's reference counting: each of its array arguments
    is increfed on entry and decrefed in each branch, pairs the compiler cannot remove (an
    atomic add each, about a dozen per call). The batched updates, whose mode is known only
    at run time, therefore refresh the copies through an inner function of their own (which
    numba inlines with their arrays, without reference counting), its case chosen by
    :func:`_copy_cases`."""
    if mode == COPY_SINGLE:
        wread[i, j] = v
    elif mode == COPY_FWD_MAP:
        wread[i, j] = (v + 0.0) * att[i, j]
    elif mode == COPY_BOTH_MAPS:
        total = v + 0.0
        wread[i, j] = total * att[i, j]
        wread_b[i, j] = total * att_b[i, j]
    elif mode == COPY_FWD_LINES:
        wread[i, j] = (v + 0.0) * _line_map(al[ATT_ROWS, i], al[ATT_COLS, j])
    elif mode == COPY_BOTH_LINES:
        total = v + 0.0
        wread[i, j] = total * _line_map(al[ATT_ROWS, i], al[ATT_COLS, j])
        wread_b[i, j] = total * _line_map(al[ATT_B_ROWS, i], al[ATT_B_COLS, j])
    else:
        total = 0.0
        for dd in range(w.shape[0]):
            total += w[dd, i, j]
        wread[i, j] = total * att[i, j] if use_att else total
        if bwd:
            wread_b[i, j] = total * att_b[i, j]


@numba.njit(cache=True, nogil=True, inline="always")
def _soft_step(v: float, dw: float, up: bool, hi: float, lo: float) -> float:  # pragma: no cover
    """One soft-bounds pulse: up steps scale by (1 − w/w_max), down by (1 − w/w_min)."""
    if up:
        v += dw * (1.0 - v / hi) if hi > 0.0 else 0.0
    else:
        v -= dw * (1.0 - v / lo) if lo < 0.0 else 0.0
    return min(max(v, lo), hi)


@numba.njit(cache=True, nogil=True, inline="always")
def _step_index(sg: int) -> int:  # pragma: no cover - compiled
    """Index in ``par`` of the step of a pulse in direction ``sg`` (+1: :data:`PAR_UP`,
    −1: :data:`PAR_DOWN`), branch-free (the constants fold away when compiled)."""
    return PAR_UP + ((1 - sg) >> 1) * (PAR_DOWN - PAR_UP)


@numba.njit(cache=True, nogil=True, inline="always")
def _sign(v: float) -> int:  # pragma: no cover - compiled
    """−1, 0 or +1, branch-free (signs of activations defeat the branch predictor)."""
    return int(v > 0.0) - int(v < 0.0)


@numba.njit(cache=True, nogil=True)
def _pulse_scales(
    x: FloatArray, d: FloatArray, lr: float, bl: int, dw_min: float, um: bool
) -> tuple[FloatArray, FloatArray]:  # pragma: no cover - compiled
    """Per sample k, the scales (cx_k, cd_k) of the pulse probabilities
    p_j = min(cx_k·|x_kj|, 1) and q_i = min(cd_k·|δ_ki|, 1): C = √(lr / (BL·dw_min)), so
    that E[coincidences]·dw_min = lr·|δ_i·x_j|, split as C·m and C/m by update management
    (m = √(max|δ_k| / max|x_k|)) or evenly (m = 1). Both 0 for a sample that changes
    nothing (x or δ all zero, or lr = 0)."""
    n = x.shape[0]
    c = np.sqrt(lr / (bl * dw_min))
    xmaxs = np.empty(n)
    dmaxs = np.empty(n)
    _absmax(x, xmaxs)
    _absmax(d, dmaxs)
    cxs = np.zeros(n)
    cds = np.zeros(n)
    for k in range(n):
        if xmaxs[k] > 0.0 and dmaxs[k] > 0.0 and lr > 0.0:
            m = np.sqrt(dmaxs[k] / xmaxs[k]) if um else 1.0
            cxs[k] = c * m
            cds[k] = c / m
    return cxs, cds


@numba.njit(cache=True, nogil=True, inline="always")
def _half_select_element(
    v: float,
    rm: np.uint64,
    cm: np.uint64,
    sd: int,
    sx: int,
    up: float,
    down: float,
    hi: float,
    lo: float,
    k: float,
    ctoc: float,
    soft: bool,
    bounded: bool,
    s: UIntArray,
) -> float:  # pragma: no cover - compiled
    """New weight of one device after all pulses it sees in one update (half-select model).

    Phases in order (σ, τ) = (+,+), (+,−), (−,+), (−,−), direction a = −σ·τ; the row takes
    part when sign(δ) = τ, the column when sign(x) = σ. Coincidences change it by a·dw, lone
    pulses by a·k·dw. Hard bounds: the same-direction steps of one phase are summed into
    one Gaussian draw and clipped once (exact in distribution, except that a single step
    made negative by c2c at a bound would leave the bound in the reference). Soft bounds:
    pulse by pulse, full pulses first.
    """
    for ph in range(4):
        sig = 1 if ph < 2 else -1
        tau = 1 if ph % 2 == 0 else -1
        row_in = rm != 0 and sd == tau
        col_in = cm != 0 and sx == sig
        if not (row_in or col_in):
            continue
        if row_in and col_in:
            n_full = int(_popcount(rm & cm))
            n_half = int(_popcount(rm ^ cm))
        elif row_in:
            n_full = 0
            n_half = int(_popcount(rm))
        else:
            n_full = 0
            n_half = int(_popcount(cm))
        a_up = sig * tau < 0
        step = up if a_up else down
        if soft:
            for idx in range(n_full + n_half):
                dw = step if idx < n_full else step * k
                if ctoc > 0.0:
                    dw *= 1.0 + ctoc * _normal(s)
                v = _soft_step(v, dw, a_up, hi, lo)
            continue
        delta = step * (n_full + k * n_half)
        if ctoc > 0.0:
            delta += step * ctoc * np.sqrt(n_full + k * k * n_half) * _normal(s)
        v = v + delta if a_up else v - delta
        if bounded:
            v = min(max(v, lo), hi)
    return v
