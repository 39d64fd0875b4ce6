"""First-order sensitivity of a read to its line and driver resistances.

First order, ideal virtual grounds: input line j (driven with ``±x_j`` at index 0 through
``r_driver``) carries the device currents ``I_ij = G_ij·x_j`` of its array; segment ``k``
(``k = 0`` next to the driver) carries ``Σ_{i ≥ k} I_ij``, so the device at position ``i``
sees its input lowered by ``r_seg·Σ_{k ≤ i} Σ_{i' ≥ k} I_i'j + r_driver·Σ_i' I_i'j``; output
line i (sensed past its last device) carries ``Σ_{j' ≤ k} I_ij'`` past device ``k``, so
device ``j`` sees its output raised by ``r_seg·Σ_{k ≥ j} Σ_{j' ≤ k} I_ij'``. Each device
loses ``G_ij`` times both, and the output, in weight units, is

    ``y_sim/g = y_q − r_seg·A_seg − r_driver·A_drv``,

linear in the two resistances (``g`` the read gain of a transient case, 1 at DC). The
neglected terms are of relative size ``a_max``, the largest attenuation of a device. With
every device at one conductance this is the model path's map
(:func:`rpucircuit.model.irdrop.first_order_attenuation`) times ``W``.
"""

from __future__ import annotations

import numpy as np

from rpucircuit.calibration.base import FloatArray, Tree, array, scalar, text


def case_arrays(case: Tree) -> list[FloatArray]:
    """The conductance arrays of a case: p, and m when the tile is paired."""
    gp = array(case, "g_pos_s")
    paired = scalar(case, "parameters/paired") != 0.0
    return [gp, array(case, "g_neg_s")] if paired else [gp]


def case_weights(case: Tree) -> FloatArray:
    """``W`` of a case in weight units, tile orientation: ``(G⁺ − G⁻)/ΔG_unit``, or
    ``G⁺/ΔG_unit`` for a single array (as the circuit path defines it)."""
    arrays = case_arrays(case)
    g = arrays[0] - arrays[1] if len(arrays) > 1 else arrays[0]
    out: FloatArray = g / scalar(case, "dg_unit_s")
    return out


def first_order_regressors(
    g_arrays: list[FloatArray], x: FloatArray, dg_unit_s: float, direction: str
) -> tuple[FloatArray, FloatArray]:
    """``(A_seg, A_drv)`` of the module doc, per output, in weight units per ohm.

    ``g_arrays`` are the arrays' conductances in tile orientation (rows, cols), p first (the
    m array is driven with −x); ``x`` the applied inputs; ``direction`` ``forward`` (inputs
    on columns) or ``backward`` (inputs on rows). Drivers at index 0, sense ends last.
    """
    a_seg = 0.0
    a_drv = 0.0
    for sign, g_tile in zip((1.0, -1.0), g_arrays, strict=False):
        g = g_tile if direction == "forward" else g_tile.T  # (outputs, inputs)
        current = g * (sign * x)[None, :]
        seg_in = np.cumsum(current[::-1, :], axis=0)[::-1, :]
        drop_in = np.cumsum(seg_in, axis=0)
        seg_out = np.cumsum(current, axis=1)
        rise_out = np.cumsum(seg_out[:, ::-1], axis=1)[:, ::-1]
        driver = np.broadcast_to(current.sum(axis=0)[None, :], current.shape)
        a_seg = a_seg + (g * (drop_in + rise_out)).sum(axis=1)
        a_drv = a_drv + (g * driver).sum(axis=1)
    return np.asarray(a_seg) / dg_unit_s, np.asarray(a_drv) / dg_unit_s


def case_drop(case: Tree, r_seg_ohm: float, r_driver_ohm: float) -> FloatArray:
    """First-order IR drop ``r_seg·A_seg + r_driver·A_drv`` of a transfer case's outputs for
    the given resistances (weight units)."""
    a_seg, a_drv = first_order_regressors(
        case_arrays(case),
        array(case, "x_applied"),
        scalar(case, "dg_unit_s"),
        text(case, "direction"),
    )
    out: FloatArray = r_seg_ohm * a_seg + r_driver_ohm * a_drv
    return out


__all__ = ["case_arrays", "case_drop", "case_weights", "first_order_regressors"]
