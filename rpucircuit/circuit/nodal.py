"""Fast nodal solver of a tile's linear resistive network (the read, without SPICE).

The network is the one :func:`rpucircuit.circuit.netlist.build_read` writes, at DC: for each array
``a`` (p with sign +1, m with sign −1) the input lines (forward: columns) are chains of
segment resistances fed at index 0 by their driver (driver resistance plus the first
segment, in series), the output lines (forward: rows) are chains whose far end joins the
summing node ``S_k``, and each cross point has the device conductance between the two
lines. Line capacitances carry no charge at DC and do not appear.

Volt-seconds instead of volts. The network is linear, so driving input line ``j`` with
the volt-seconds ``u_j = ∫V_j dt`` gives node "voltages" in V·s and branch "currents" in
coulombs: the charge each integrator collects, whatever the pulse shapes (time or
amplitude encoding alike), as long as the devices are linear and the line RC settles
within the window.

Integrators. Ideal (``g_int_s=None``): ``S_k`` is a virtual ground. Finite op-amp, first
order: the op-amp has gain ``A(s) = A0/(1 + s/ω_p)`` with ``ω_p = 2π·GBW/A0``, so the
integrator's input admittance ``s·C_int·(1 + A(s))`` is ``s·C_int`` in parallel with a
branch of a resistor ``R_gbw = 1/(2π·GBW·C_int)`` in series with a capacitor ``A0·C_int``
(their time constant is 1/ω_p). Within the window (t_meas ≪ 1/ω_p for A0 = 1e4, GBW = 1
GHz: 80 ns vs 1.6 µs) the summing node therefore sits at ``R_gbw·I(t)`` (instantaneous,
linear in the current: exact for any pulse shape as a resistor) plus the capacitor's
``Q(t)/(A0·C_int)``, whose mean over a linear charge ramp is ``Q/(2·A0·C_int)`` — a
resistor ``t_meas/(2·(1+A0)·C_int)`` to first order. The two in series give the summing
node's conductance to ground that :func:`integrator_conductance` returns,
``g_int = 1/(1/(2π·GBW·C_int) + t_meas/(2·(1+A0)·C_int))``; the output is then
``V_out = −Q·A0/((1+A0)·C_int)`` (:class:`NodalResult`). For the paper-A periphery the GBW
term dominates: a column of total conductance G_tot loses a fraction ≈ G_tot·R_gbw of its
charge (2e-3 for 32 devices of 41 nS); the DC-gain term adds ~1e-4.

Parasitics. The lines' and driver's resistances come from
:class:`~rpucircuit.config.parasitics.TileParasitics` (:func:`parasitic_solver`;
:func:`solver_for` builds it from the circuit config), the record the model path's
closed-form IR-drop map is built from too.

Structure and speed. Nodes are numbered line by line (each input line's nodes, then each
output line's nodes, array by array), so the conductance matrix is symmetric positive
definite with tridiagonal line blocks coupled by the device conductances (a 2-D grid
graph). It is factored once with SuperLU using a minimum-degree ordering of A + Aᵀ (no
pivoting needed: the matrix is SPD and diagonally dominant) and the factorization is
reused for any number of input vectors. With ideal integrators the two arrays decouple
into independent blocks. Zero line or driver resistances merge nodes exactly instead of
using tiny resistors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from rpucircuit.config.parasitics import TileParasitics
from rpucircuit.config.tile import CircuitConfig, input_volt_seconds
from rpucircuit.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Direction = Literal["forward", "backward"]
Method = Literal["auto", "direct", "cg"]

AUTO_DIRECT_MAX = 20_000
"""``method="auto"`` factors systems up to this many unknowns directly, larger ones by CG."""
CG_MAX_ITER = 2000


def integrator_conductance(c_int_f: float, a0: float, gbw_hz: float, t_meas_s: float) -> float:
    """First-order summing-node conductance of a single-pole op-amp integrator (S):
    ``1/(1/(2π·GBW·C_int) + t_meas/(2·(1+A0)·C_int))`` (derivation in the module doc)."""
    r_gbw = 1.0 / (2.0 * math.pi * gbw_hz * c_int_f)
    r_a0 = t_meas_s / (2.0 * (1.0 + a0) * c_int_f)
    return 1.0 / (r_gbw + r_a0)


def _check_g(g: npt.ArrayLike, what: str) -> FloatArray:
    try:
        a = np.asarray(g, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: not a numeric array ({exc})") from exc
    if a.ndim != 2 or a.size == 0:
        raise ConfigError(f"{what}: shape {a.shape} must be (rows, cols)")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ConfigError(f"{what}: conductances must be finite and > 0")
    return a


def _check_r(r: float, what: str) -> float:
    v = float(r)
    if not np.isfinite(v) or v < 0:
        raise ConfigError(f"{what} = {r!r}: must be finite and >= 0")
    return v


class NodalSolver:
    """Factored conductance network of one tile read (forward orientation).

    ``g_arrays``: device conductances (S) of each array, shape ``(n_out, n_in)`` — output
    line k, input line j (forward: ``(rows, cols)``; for backward pass the transposes).
    ``signs``: drive polarity of each array's inputs (+1, −1). ``r_seg_in_ohm`` /
    ``r_seg_out_ohm``: segment resistance of input / output lines; ``r_driver_ohm``: driver
    output resistance; ``g_int_s``: summing-node conductance (None = virtual ground).
    ``method``: ``direct`` (sparse LU, reused for every input), ``cg`` (conjugate gradients
    preconditioned by the exact solve of every line on its own), or ``auto`` (direct up to
    :data:`AUTO_DIRECT_MAX` unknowns). ``cg_rtol``: CG's relative residual target.
    """

    def __init__(
        self,
        g_arrays: tuple[FloatArray, ...],
        signs: tuple[float, ...],
        *,
        r_seg_in_ohm: float,
        r_seg_out_ohm: float,
        r_driver_ohm: float,
        g_int_s: float | None = None,
        method: Method = "auto",
        cg_rtol: float = 1e-13,
    ) -> None:
        if len(g_arrays) != len(signs) or not g_arrays:
            raise ConfigError("g_arrays and signs must be non-empty and of equal length")
        self.g_arrays = tuple(_check_g(g, f"g_arrays[{k}]") for k, g in enumerate(g_arrays))
        shape = self.g_arrays[0].shape
        if any(g.shape != shape for g in self.g_arrays):
            raise ConfigError(f"g_arrays: all arrays must have shape {shape}")
        self.n_out, self.n_in = shape
        self.signs = tuple(float(s) for s in signs)
        r_in = _check_r(r_seg_in_ohm, "r_seg_in_ohm")
        r_out = _check_r(r_seg_out_ohm, "r_seg_out_ohm")
        r_drv = _check_r(r_driver_ohm, "r_driver_ohm")
        if g_int_s is not None and not (np.isfinite(g_int_s) and g_int_s > 0):
            raise ConfigError(f"g_int_s = {g_int_s!r}: must be finite and > 0, or None")
        self.g_int_s = g_int_s
        n_out, n_in, n_arr = self.n_out, self.n_in, len(self.g_arrays)

        # ---- node ids: 0 = ground, 1 + a*n_in + j = source of input j of array a, then
        # unknowns. Zero resistances merge nodes (same id).
        n_src = n_arr * n_in
        next_id = 1 + n_src
        if g_int_s is None:
            s_ids = np.zeros(n_out, dtype=np.int64)  # virtual ground
        else:
            s_ids = next_id + np.arange(n_out, dtype=np.int64)
            next_id += n_out
        v_ids: list[IntArray] = []
        w_ids: list[IntArray] = []
        for a in range(n_arr):
            src = 1 + a * n_in + np.arange(n_in, dtype=np.int64)
            if r_in == 0.0:
                if r_drv == 0.0:
                    v = np.broadcast_to(src, (n_out, n_in)).copy()
                else:
                    v = np.broadcast_to(next_id + np.arange(n_in), (n_out, n_in)).copy()
                    next_id += n_in
            else:
                v = (next_id + np.arange(n_out * n_in, dtype=np.int64)).reshape(n_in, n_out).T
                next_id += n_out * n_in
            v_ids.append(np.ascontiguousarray(v))
            if r_out == 0.0:
                w = np.broadcast_to(s_ids[:, None], (n_out, n_in)).copy()
            else:
                w = (next_id + np.arange(n_out * n_in, dtype=np.int64)).reshape(n_out, n_in)
                next_id += n_out * n_in
            w_ids.append(w)
        self._v_ids, self._w_ids = v_ids, w_ids
        n_nodes = next_id
        n_known = 1 + n_src

        # ---- edges (n1, n2, g)
        e1: list[IntArray] = []
        e2: list[IntArray] = []
        eg: list[FloatArray] = []

        def add(a_ids: IntArray, b_ids: IntArray, g: FloatArray | float) -> None:
            e1.append(a_ids.ravel())
            e2.append(b_ids.ravel())
            eg.append(np.broadcast_to(np.asarray(g, dtype=np.float64), a_ids.shape).ravel())

        for a in range(n_arr):
            v, w, g = v_ids[a], w_ids[a], self.g_arrays[a]
            src = 1 + a * n_in + np.arange(n_in, dtype=np.int64)
            if r_in > 0.0:
                add(v[:-1, :], v[1:, :], 1.0 / r_in)
            if r_drv + r_in > 0.0 and not (r_in == 0.0 and r_drv == 0.0):
                add(src, v[0, :], 1.0 / (r_drv + r_in))
            if r_out > 0.0:
                add(w[:, :-1], w[:, 1:], 1.0 / r_out)
                add(w[:, -1], s_ids, 1.0 / r_out)
            add(v, w, g)
        if g_int_s is not None:
            add(s_ids, np.zeros(n_out, dtype=np.int64), g_int_s)
        i1 = np.concatenate(e1)
        i2 = np.concatenate(e2)
        gg = np.concatenate(eg)
        keep = i1 != i2
        i1, i2, gg = i1[keep], i2[keep], gg[keep]
        rows_ = np.concatenate([i1, i2, i1, i2])
        cols_ = np.concatenate([i1, i2, i2, i1])
        vals = np.concatenate([gg, gg, -gg, -gg])
        lap = sp.coo_matrix((vals, (rows_, cols_)), shape=(n_nodes, n_nodes)).tocsc()
        self._a_uu = lap[n_known:, n_known:].tocsc()
        self._a_uk = lap[n_known:, :n_known].tocsc()
        self.n_known = n_known
        self.n_unknown = n_nodes - n_known
        if method == "auto":
            method = "direct" if self.n_unknown <= AUTO_DIRECT_MAX else "cg"
        if method not in ("direct", "cg"):
            raise ConfigError(f"method = {method!r}: must be 'auto', 'direct' or 'cg'")
        self.method = method
        self.cg_rtol = cg_rtol
        self.cg_iterations = 0
        self._lu = None
        self._tri: tuple[FloatArray, FloatArray] | None = None
        if self.n_unknown > 0 and method == "direct":
            self._lu = spla.splu(
                self._a_uu,
                permc_spec="MMD_AT_PLUS_A",
                diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
        elif self.n_unknown > 0:
            # Preconditioner: the tridiagonal band of A_uu. Nodes are numbered line by line,
            # so the band holds every line's own chain (segments, plus all conductances on
            # the diagonal) and nothing else: a block-diagonal, SPD line preconditioner,
            # factored once with LAPACK's pttrf.
            self._a_uu = self._a_uu.tocsr()
            d = self._a_uu.diagonal()
            e = self._a_uu.diagonal(1)
            df, ef, info = sla.lapack.dpttrf(d, e)
            if info != 0:  # pragma: no cover - the band is diagonally dominant
                raise ConfigError(f"line preconditioner is not positive definite ({info})")
            self._tri = (df, ef)

    def potentials(self, u: npt.ArrayLike) -> FloatArray:
        """Potentials of all nodes (known first), shape ``(n_nodes, K)``, for inputs ``u``."""
        uu = np.asarray(u, dtype=np.float64)
        one = uu.ndim == 1
        if one:
            uu = uu[:, None]
        if uu.ndim != 2 or uu.shape[0] != self.n_in:
            raise ConfigError(f"u: shape {np.shape(u)} must be ({self.n_in},) or ({self.n_in}, K)")
        if not np.all(np.isfinite(uu)):
            raise ConfigError("u: contains non-finite values")
        k = uu.shape[1]
        known = np.zeros((self.n_known, k))
        for a, s in enumerate(self.signs):
            known[1 + a * self.n_in : 1 + (a + 1) * self.n_in] = s * uu
        if self._lu is None and self._tri is None:
            return known
        rhs = -(self._a_uk @ known)
        if self._lu is not None:
            x = self._lu.solve(np.asfortranarray(rhs))
        else:
            x = self._cg(np.asarray(rhs))
        return np.vstack([known, x.reshape(self.n_unknown, k)])

    def _precondition(self, r: FloatArray) -> FloatArray:
        assert self._tri is not None
        z, info = sla.lapack.dpttrs(self._tri[0], self._tri[1], r)
        if info != 0:  # pragma: no cover
            raise ConfigError(f"line preconditioner solve failed ({info})")
        out: FloatArray = z
        return out

    def _cg(self, b: FloatArray) -> FloatArray:
        """Preconditioned conjugate gradients, one independent recursion per column of
        ``b``, vectorized; stops when every column's residual is below cg_rtol·|b|."""
        a = self._a_uu
        x = np.zeros_like(b)
        r = b.copy()
        norm_b = np.linalg.norm(b, axis=0)
        target = self.cg_rtol * np.where(norm_b > 0, norm_b, 1.0)
        z = self._precondition(r)
        p = z.copy()
        rz = np.einsum("ij,ij->j", r, z)
        for it in range(1, CG_MAX_ITER + 1):
            ap = a @ p
            pap = np.einsum("ij,ij->j", p, ap)
            alpha = np.divide(rz, pap, out=np.zeros_like(rz), where=pap > 0)
            x += alpha * p
            r -= alpha * ap
            if np.all(np.linalg.norm(r, axis=0) <= target):
                self.cg_iterations = it
                return x
            z = self._precondition(r)
            rz_new = np.einsum("ij,ij->j", r, z)
            beta = np.divide(rz_new, rz, out=np.zeros_like(rz), where=rz > 0)
            p = z + beta * p
            rz = rz_new
        raise ConfigError(  # pragma: no cover - SPD systems converge in far fewer steps
            f"conjugate gradients did not converge in {CG_MAX_ITER} iterations; use method='direct'"
        )

    def charges(self, u: npt.ArrayLike) -> FloatArray:
        """Charge (C) into each summing node for input volt-seconds ``u`` (V·s), shape
        ``(n_out,)`` or ``(n_out, K)`` for ``u`` of shape ``(n_in,)`` / ``(n_in, K)``.

        By charge conservation it is the sum of the device charges into output line k.
        Called with volts it returns the summing-node currents (A).
        """
        uu = np.asarray(u, dtype=np.float64)
        pot = self.potentials(uu)
        q = np.zeros((self.n_out, pot.shape[1]))
        for a, g in enumerate(self.g_arrays):
            dv = pot[self._v_ids[a]] - pot[self._w_ids[a]]  # (n_out, n_in, K)
            q += np.einsum("kj,kjm->km", g, dv)
        return q[:, 0] if uu.ndim == 1 else q


def parasitic_solver(
    par: TileParasitics,
    g_arrays: tuple[FloatArray, ...],
    signs: tuple[float, ...],
    *,
    direction: Direction = "forward",
    g_int_s: float | None = None,
    method: Method = "auto",
) -> NodalSolver:
    """A :class:`NodalSolver` of a tile whose lines and driver are ``par``
    (:class:`~rpucircuit.config.parasitics.TileParasitics`, the record the model path's
    closed-form IR-drop map is built from too). ``g_arrays`` are the arrays' conductances in
    tile orientation ``(rows, cols)``; ``direction`` picks which lines are driven (forward:
    the columns, at their row-0 end; backward: the rows, at their column-0 end).

    The solver's network has our netlists' geometry; ``par`` with another ``drive_end`` or
    ``sense_end`` is refused (ConfigError)."""
    if par.drive_end != "first" or par.sense_end != "last":
        raise ConfigError(
            f"drive_end = {par.drive_end!r}, sense_end = {par.sense_end!r}: the nodal network "
            "drives each input line at its first end and senses past the last device"
        )
    if direction not in ("forward", "backward"):
        raise ConfigError(f"direction = {direction!r}: must be 'forward' or 'backward'")
    r_in, r_out = par.lines(direction)
    arrays = tuple(g if direction == "forward" else g.T for g in g_arrays)
    return NodalSolver(
        arrays,
        signs,
        r_seg_in_ohm=r_in,
        r_seg_out_ohm=r_out,
        r_driver_ohm=par.r_driver_ohm,
        g_int_s=g_int_s,
        method=method,
    )


@dataclass(frozen=True, slots=True)
class NodalResult:
    """A nodal read: per output line charges, currents and integrator outputs."""

    q_c: FloatArray
    """Charge into each summing node (C)."""
    i_mean_a: FloatArray
    """Mean current over the window, q/t_meas (A)."""
    v_out_v: FloatArray
    """Integrator output (V), −q·A0/((1+A0)·C_int) (ideal: −q/C_int); not clipped."""
    q_ideal_c: FloatArray
    """The ideal W·x charge (no line resistance, ideal integrator): (G⁺−G⁻)·u (C)."""


def solver_for(
    cfg: CircuitConfig,
    g_pos: npt.ArrayLike,
    g_neg: npt.ArrayLike | None,
    *,
    direction: Direction = "forward",
    finite_gain: bool = False,
    method: Method = "auto",
) -> NodalSolver:
    """A :class:`NodalSolver` for ``cfg``'s tile with conductances ``(rows, cols)`` (S)."""
    tile = cfg.tile
    gp = _check_g(g_pos, "g_pos")
    if gp.shape != (tile.rows, tile.cols):
        raise ConfigError(f"g_pos: shape {gp.shape} must be ({tile.rows}, {tile.cols})")
    arrays = [gp]
    if tile.paired:
        if g_neg is None:
            raise ConfigError("g_neg = None: a paired tile needs the G- conductances")
        gn = _check_g(g_neg, "g_neg")
        if gn.shape != gp.shape:
            raise ConfigError(f"g_neg: shape {gn.shape} must be {gp.shape}")
        arrays.append(gn)
    elif g_neg is not None:
        raise ConfigError("g_neg given but tile.paired = false")
    p = cfg.periphery
    g_int = integrator_conductance(cfg.c_int_f, p.a0, p.gbw_hz, p.t_meas_s) if finite_gain else None
    return parasitic_solver(
        TileParasitics.from_circuit(cfg),
        tuple(arrays),
        (1.0, -1.0)[: len(arrays)],
        direction=direction,
        g_int_s=g_int,
        method=method,
    )


def read(
    cfg: CircuitConfig,
    g_pos: npt.ArrayLike,
    g_neg: npt.ArrayLike | None,
    x: npt.ArrayLike,
    *,
    direction: Direction = "forward",
    finite_gain: bool = True,
    method: Method = "auto",
) -> NodalResult:
    """Nodal read of inputs ``x`` in [-1, 1] (quantized like the drivers), one vector
    ``(n_in,)`` or many ``(n_in, K)``."""
    solver = solver_for(
        cfg, g_pos, g_neg, direction=direction, finite_gain=finite_gain, method=method
    )
    xx = np.asarray(x, dtype=np.float64)
    if xx.shape[0] != solver.n_in or np.any(np.abs(xx) > 1) or not np.all(np.isfinite(xx)):
        raise ConfigError(f"x: shape {xx.shape} must start with {solver.n_in}, |x| <= 1")
    u = input_volt_seconds(cfg, xx)
    q = solver.charges(u)
    gain = cfg.periphery.a0 / (1.0 + cfg.periphery.a0) if finite_gain else 1.0
    w = solver.g_arrays[0] - (solver.g_arrays[1] if len(solver.g_arrays) > 1 else 0.0)
    return NodalResult(
        q_c=q,
        i_mean_a=q / cfg.periphery.t_meas_s,
        v_out_v=-q * gain / cfg.c_int_f,
        q_ideal_c=w @ u,
    )


__all__ = [
    "NodalResult",
    "NodalSolver",
    "integrator_conductance",
    "parasitic_solver",
    "read",
    "solver_for",
]
