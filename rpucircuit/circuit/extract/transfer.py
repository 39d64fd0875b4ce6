"""Transfer: one read of a tile in ngspice against the ideal ``W·x`` and the nodal solve.

:func:`transfer_case` simulates a forward or backward read (transient with integrators, or
a DC operating point), solves the same network with the nodal solver with and without line
resistance, and splits the error (:func:`decompose_transfer_error`, pure) into input
quantization, gain, IR drop, saturation and residual.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rpucircuit.circuit import nodal
from rpucircuit.circuit.extract.common import (
    RELATIVE_ZERO,
    FloatArray,
    real_vector,
    run_netlist,
    weights_to_conductances,
    without_line_resistance,
)
from rpucircuit.circuit.netlist import Direction, ReadAnalysis, build_read, quantize_inputs
from rpucircuit.config.tile import CircuitConfig
from rpucircuit.errors import ExtractionError


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TransferErrors:
    """Decomposition of the error of one set of outputs, all in weight units.

    ``total = sim − ideal`` splits into ``quantization`` (ideal output of the quantized
    inputs minus that of the exact inputs), ``gain`` (the fitted gain times the nodal solve
    without line resistance, minus the quantized ideal output: the integrator's finite
    gain and any overall scale error), ``ir_drop`` (the fitted gain times the nodal solve
    with line resistance minus the one without, position dependent), ``saturation`` (the
    clip at ±α applied to the linear prediction) and ``residual`` (what none of those
    explain: dynamics, op-amp bandwidth, the nonlinear read).
    """

    total_w: FloatArray
    quantization_w: FloatArray
    gain_w: FloatArray
    ir_drop_w: FloatArray
    saturation_w: FloatArray
    residual_w: FloatArray
    gain: float
    """Fitted slope of sim vs the linear prediction over unsaturated outputs (1 = no error)."""
    saturated: NDArray[np.bool_]
    """Outputs whose prediction exceeds the bound α."""


def decompose_transfer_error(
    *,
    y_ideal_w: ArrayLike,
    y_ideal_quantized_w: ArrayLike,
    y_nodal_w: ArrayLike,
    y_nodal_no_line_w: ArrayLike,
    y_sim_w: ArrayLike,
    alpha_w: float,
) -> TransferErrors:
    """Split ``y_sim − y_ideal`` into quantization, gain, IR drop, saturation and residual.

    The linear prediction is ``g·y_nodal`` (the nodal solve of the quantized inputs with
    line resistance, scaled by the fitted gain ``g``); its clip at ±α is the saturation
    term. The pieces add up to the total exactly.
    """
    ideal = np.asarray(y_ideal_w, dtype=np.float64)
    ideal_q = np.asarray(y_ideal_quantized_w, dtype=np.float64)
    nodal = np.asarray(y_nodal_w, dtype=np.float64)
    nodal0 = np.asarray(y_nodal_no_line_w, dtype=np.float64)
    sim = np.asarray(y_sim_w, dtype=np.float64)
    if not (ideal.shape == ideal_q.shape == nodal.shape == nodal0.shape == sim.shape):
        raise ExtractionError("transfer decomposition needs outputs of one shape")
    saturated = np.abs(nodal) >= alpha_w
    free = ~saturated
    # No gain to fit when the unsaturated predictions are all (numerically) zero.
    scale = max(
        float(np.max(np.abs(ideal_q), initial=0.0)), float(np.max(np.abs(sim), initial=0.0))
    )
    size = float(np.max(np.abs(nodal[free]), initial=0.0))
    if size > RELATIVE_ZERO * scale:
        gain = float(np.dot(nodal[free], sim[free]) / np.dot(nodal[free], nodal[free]))
    else:
        gain = 1.0
    linear = gain * nodal
    clipped = np.clip(linear, -alpha_w, alpha_w)
    quant = ideal_q - ideal
    gain_part = gain * nodal0 - ideal_q
    ir = gain * (nodal - nodal0)
    return TransferErrors(
        total_w=sim - ideal,
        quantization_w=quant,
        gain_w=gain_part,
        ir_drop_w=ir,
        saturation_w=clipped - linear,
        residual_w=sim - clipped,
        gain=gain,
        saturated=saturated,
    )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TransferResult:
    """One read (forward or backward) of a tile in ngspice, against the ideal ``W·x``.

    Outputs are in weight units: ``y = Q/Q_unit`` with ``Q`` the charge the integrator
    collected (transient: ``−V_out·C_int``; operating point: ``I·t_meas``).
    """

    name: str
    direction: str
    """``forward`` (inputs on columns, outputs on rows) or ``backward``."""
    analysis: str
    """``tran`` (transient with integrators) or ``op`` (DC operating point)."""
    encoding: str
    read_iv: str
    g_pos_s: FloatArray
    """Conductances of array p (G⁺), ``(rows, cols)``."""
    g_neg_s: FloatArray
    """Conductances of array m (G⁻), ``(rows, cols)``."""
    x: FloatArray
    """Inputs as requested, in [-1, 1]."""
    x_applied: FloatArray
    """Inputs as the drivers apply them (quantized)."""
    dg_unit_s: float
    q_unit_c: float
    alpha_w: float
    """Output bound (weight units) of the integrator swing."""
    y_ideal_w: FloatArray
    """``W·x`` with the exact inputs."""
    y_ideal_quantized_w: FloatArray
    """``W·x`` with the applied inputs."""
    y_sim_w: FloatArray
    """ngspice's outputs."""
    y_nodal_w: FloatArray
    """Nodal solve of the same network with line resistance and the integrator's finite gain."""
    y_nodal_no_line_w: FloatArray
    """Nodal solve with zero line resistance (finite gain kept)."""
    t_s: FloatArray
    """Time points of the transient (empty for an operating point)."""
    v_out_v: FloatArray
    """Integrator outputs over time, ``(n_out, n_t)`` (empty for an operating point)."""
    errors: TransferErrors
    wall_s: float
    """ngspice wall time of the main run (s)."""


def transfer_case(
    cfg: CircuitConfig,
    w: ArrayLike,
    x: ArrayLike,
    *,
    name: str,
    direction: Direction = "forward",
    analysis: ReadAnalysis = "tran",
    workdir: Path,
    timeout_s: float = 600.0,
) -> TransferResult:
    """Simulate one read of weights ``w`` (``rows × cols``, weight units) and inputs ``x``.

    Builds the tile with :func:`weights_to_conductances`, runs it in ngspice, and solves the
    same network with the nodal solver twice (with and without line resistance) for the
    error decomposition (:func:`decompose_transfer_error`). For a sinh read I-V the nodal
    references use the devices' small-signal conductances, so the nonlinearity shows up as
    gain (time encoding) or as residual (amplitude encoding).
    """
    g_pos, g_neg = weights_to_conductances(cfg, w)
    g_neg_arg = g_neg if cfg.tile.paired else None
    xx = np.asarray(x, dtype=np.float64)
    net = build_read(cfg, g_pos, g_neg_arg, xx, direction=direction, analysis=analysis)
    res = run_netlist(net, name=f"read-{name}", workdir=workdir, timeout_s=timeout_s)
    q_unit = cfg.q_unit_c
    if analysis == "tran":
        v_out = np.array([real_vector(res, v) for v in net.role("outputs")])
        t = real_vector(res, "time")
        y_sim = -v_out[:, -1] * cfg.c_int_f / q_unit
    else:
        currents = np.array([real_vector(res, v)[0] for v in net.role("currents")])
        y_sim = currents * cfg.periphery.t_meas_s / q_unit
        v_out, t = np.zeros((0, 0)), np.zeros(0)
    w_eff = (g_pos - g_neg if cfg.tile.paired else g_pos) / cfg.device.dg_unit_s
    x_q = quantize_inputs(cfg, xx)
    mat = w_eff if direction == "forward" else w_eff.T
    gain = cfg.periphery.a0 / (1.0 + cfg.periphery.a0)
    finite = analysis == "tran"

    def nodal_y(c: CircuitConfig) -> FloatArray:
        r = nodal.read(c, g_pos, g_neg_arg, xx, direction=direction, finite_gain=finite)
        return np.asarray(r.q_c * (gain if finite else 1.0) / q_unit, dtype=np.float64)

    y_nodal = nodal_y(cfg)
    y_nodal0 = nodal_y(without_line_resistance(cfg))
    y_ideal = mat @ xx
    y_ideal_q = mat @ x_q
    alpha = cfg.alpha_effective
    errors = decompose_transfer_error(
        y_ideal_w=y_ideal,
        y_ideal_quantized_w=y_ideal_q,
        y_nodal_w=y_nodal,
        y_nodal_no_line_w=y_nodal0,
        y_sim_w=y_sim,
        alpha_w=alpha if analysis == "tran" else math.inf,
    )
    return TransferResult(
        name=name,
        direction=direction,
        analysis=analysis,
        encoding=cfg.periphery.encoding,
        read_iv=cfg.device.read_iv,
        g_pos_s=g_pos,
        g_neg_s=g_neg,
        x=xx,
        x_applied=x_q,
        dg_unit_s=cfg.device.dg_unit_s,
        q_unit_c=q_unit,
        alpha_w=alpha,
        y_ideal_w=y_ideal,
        y_ideal_quantized_w=y_ideal_q,
        y_sim_w=y_sim,
        y_nodal_w=y_nodal,
        y_nodal_no_line_w=y_nodal0,
        t_s=t,
        v_out_v=v_out,
        errors=errors,
        wall_s=res.wall_s,
    )
