"""Held-out cases and validation: the calibrated behavioral read and update against ngspice,
beside the uncalibrated preset.

Held out. The cases given (or, by default, :func:`default_held_out`) are removed from the
tree before any fit, so no fit sees them; :func:`fit_held_out` refuses, naming the
parameter, when a fit needs one of them.

Reads. For each validated transfer case the behavioral read of the calibrated model (noise
off) is compared with the simulator's ``y_sim_w``, output by output::

    y = clip(g·(W ∘ A) · f(DAC(x)), ±α_case)

with ``DAC`` the fitted driver step, ``f`` the fitted input transfer curve of the case's
device and encoding (identity for a linear device), ``A`` the first-order attenuation map of
the case's direction with the calibrated IR-drop ratios (for an IR-stress case, whose lines
are the campaign's stressed ones, the ratios fitted to ``fwd_ir_stress_<N>``), ``g`` the read
gain of the case's own lines from the fitted summing-node time constant (as σ, the gain
depends on the line: the RPUConfig holds the characterized tile's), and ``α_case`` the fitted
swing at the case's integrator capacitor and charge unit. The read is the model path's
own (:func:`rpucircuit.model.kernels.read_batch` with g, f, the DAC and α as an
``IOConfig``'s ``read_gain``, ``input_transfer``, ``inp_res`` and ``out_bound``:
:func:`calibrated_read`). The ADC is left out of both reads: the simulations have none
(their ``y_sim_w`` is the integrator's analog output), so quantizing the model would only
add the ADC step's ±½ LSB to the comparison. The preset's read is the same with paper A's
numbers: its DAC, no gain, no transfer curve, no IR drop, α = its ``out_bound``.

Errors: rms and largest |model − simulator| over the outputs, in % of the case's α.

Updates. For each update cycle of the config's k, the expected Δw of every device for the
cycle's bit streams, ``±Δw_min·(1 ± u)·(n_full + k·n_half)``, against the simulated
``Δg/ΔG_unit``, in % of the cycle's largest expected Δw (its most-pulsed device); the
preset's (k = 0, u = 0, its Δw_min) beside it.

Noise. The noise model's σ at long lines against the analytic budget of the recorded
circuit (:func:`rpucircuit.calibration.noise.analytic_checks`), as figure rows.

Longer than 600 lines: the read, update and noise checks share the Validation record and
its two renderings (targets, model-file rows); split, each would import the others.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from rpucircuit.calibration.base import (
    CalibrationError,
    FittedParameter,
    FloatArray,
    MissingCaseError,
    Tree,
    array,
    case_config,
    scalar,
    text,
)
from rpucircuit.calibration.lines import case_weights
from rpucircuit.calibration.model import Fits, matching, noise_model
from rpucircuit.calibration.noise import AnalyticCheck, analytic_checks
from rpucircuit.calibration.read import case_read_gain, config_tile
from rpucircuit.config.rpu import IOConfig, RPUConfig
from rpucircuit.model import kernels
from rpucircuit.model.irdrop import Direction, IRDropModel
from rpucircuit.model.modelparts import IRDrop, ValidationCheck

READ_RMS_TARGET = 0.3
"""Largest rms error of a held-out read, % of α: a third of the 9-bit ADC's step (2α/512 =
0.39 % of α) would be 0.13 %; 0.3 % keeps the model's error below one ADC step."""

PRESET_OFF = 0.1
"""A case where the preset's rms error exceeds this (% of α) shows physics the preset
lacks; there the calibrated model must be :data:`CLOSER_FACTOR` times closer."""

CLOSER_FACTOR = 5.0
"""How much closer than the preset the calibrated read must be where the preset is off."""

K_TOLERANCE = 0.02
"""Largest relative difference of the fitted k from the device model's k."""

UPDATE_RMS_TARGET = 2.0
"""Largest rms error of a cycle's expected Δw per device, % of the summed step of the
cycle's most-pulsed device: the fit's own tolerance (2 % of the rms Δg,
``rpucircuit.calibration.update.UPDATE_RESIDUAL_TOL``) in the same measure."""

PHYSICS_CASES = (
    "transfer/fwd_ir_stress_*",
    "transfer/bwd_ir_stress_*",
    "transfer/fwd_sinh_amplitude_*",
    "transfer/fwd_sinh_time_*",
    "transfer/fwd_ramp_saturating_*",
)
"""Characterized cases carrying physics the preset lacks (IR stress, sinh read, saturation):
validated besides the held-out ones (the fits have seen those that are not held out)."""

FAMILIES = (r"fwd_random_(\d+)(x\d+)?", r"bwd_random_(\d+)", r"op_fwd_random_(\d+)")
"""Repeated transfer cases (one per size): with more than one in a file, the largest is
held out by default and the fits keep the rest."""

Role = Literal["held-out", "fitted"]


class HeldOutError(CalibrationError):
    """A held-out case is one a fit needs."""


# --------------------------------------------------------------------------- held out


def transfer_paths(tree: Tree) -> tuple[str, ...]:
    """``transfer/<name>`` of every transfer case, sorted."""
    cases = tree.get("transfer")
    if not isinstance(cases, Mapping):
        return ()
    return tuple(f"transfer/{n}" for n in sorted(cases) if isinstance(cases[n], Mapping))


def default_held_out(tree: Tree, fits: Fits) -> tuple[str, ...]:
    """The automatic held-out set: every transfer case no fit reads (on the reference file
    ``fwd_no_line_<N>``, and ``bwd_ir_stress_<N>`` while no fit takes the backward IR drop
    from it), and the largest case of each :data:`FAMILIES` with more than one member. Every
    fit keeps its data: the family's other members serve it."""
    used = {s for p in fits(tree) for s in p.sources}
    paths = transfer_paths(tree)
    held = {p for p in paths if p not in used}
    for pattern in FAMILIES:
        members = [
            (int(m.group(1)), p)
            for p in paths
            if (m := re.fullmatch(pattern, p.removeprefix("transfer/")))
        ]
        if len(members) > 1:
            held.add(max(members)[1])
    return tuple(p for p in paths if p in held)


def resolve_held_out(tree: Tree, patterns: Sequence[str], fits: Fits) -> tuple[str, ...]:
    """The case paths the patterns name (empty patterns: :func:`default_held_out`);
    :class:`HeldOutError` for a pattern that names no case."""
    if not patterns:
        return default_held_out(tree, fits)
    paths = all_case_paths(tree)
    for pattern in patterns:
        if not matching(paths, [pattern]):
            raise HeldOutError(
                "held_out", f"{pattern!r} names no case of the file (cases: {', '.join(paths)})"
            )
    return matching(paths, patterns)


def all_case_paths(tree: Tree) -> tuple[str, ...]:
    """``group/name`` of every case in a case group (transfer, update, update_bound,
    update_dtod, nodal)."""
    out: list[str] = []
    for group in ("transfer", "update", "update_bound", "update_dtod", "nodal"):
        cases = tree.get(group)
        if isinstance(cases, Mapping):
            out += [f"{group}/{n}" for n in sorted(cases) if isinstance(cases[n], Mapping)]
    return tuple(out)


def without(tree: Tree, paths: Sequence[str]) -> dict[str, object]:
    """A copy of ``tree`` without the cases at ``paths`` (``group/name``); the cases
    themselves are shared, not copied."""
    out: dict[str, object] = dict(tree)
    for path in paths:
        group, name = path.split("/", 1)
        cases = out.get(group)
        if isinstance(cases, Mapping):
            out[group] = {k: v for k, v in cases.items() if k != name}
    return out


def fit_held_out(tree: Tree, held: Sequence[str], fits: Fits) -> tuple[FittedParameter, ...]:
    """The fits on ``tree`` less the held-out cases. :class:`HeldOutError` naming the
    parameter when a fit lacks a case because it is held out; any other
    :class:`CalibrationError` as it is."""
    try:
        params = fits(without(tree, held))
    except MissingCaseError as exc:
        pattern = re.escape(exc.case).replace(re.escape("<N>"), r"\d+(x\d+)?")
        needed = [p for p in held if re.fullmatch(pattern, p)]
        if needed:
            raise HeldOutError(
                exc.parameter,
                f"needs the held-out case{'s' if len(needed) > 1 else ''} {', '.join(needed)} "
                f"(no other {exc.case} in the file); hold out another case or add one with "
                f"the campaign field {exc.field}",
            ) from exc
        raise
    leaked = sorted({s for p in params for s in p.sources} & set(held))
    if leaked:  # a fit that reads a case without naming it in find_cases
        raise HeldOutError("held_out", f"fits still name held-out cases {leaked}")
    return params


# --------------------------------------------------------------------------- reads


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ReadModel:
    """The numbers a behavioral read of a characterization case takes."""

    inp_step: float
    """DAC step in input units (``inp_res·2·inp_bound`` of the model's convention; 0 =
    none)."""
    out_bound: float
    """α of the characterized tile, weight units (0 = unbounded)."""
    scale_alpha: bool
    """Scale α to each case's integrator (calibrated) or use it as it is (preset)."""
    tau_sum_s: Mapping[str, float]
    """Summing-node time constant per direction; empty = gain 1."""
    ir_drop: IRDrop | None
    """IR-drop model per direction; None = none."""
    ir_stress: IRDropModel | None
    """IR-drop model of the IR-stress cases' lines; None = use ``ir_drop``."""
    transfer: Mapping[str, tuple[float, ...]]
    """Odd polynomial coefficients of f per ``"<read_iv>/<encoding>"``; missing = identity."""


def calibrated_read_model(
    tree: Tree, params: Mapping[str, FittedParameter], ir: IRDrop
) -> ReadModel:
    """The calibrated model's read numbers (module doc)."""
    stress = None
    if "segment_ratio_ir_stress" in params and "driver_ratio_ir_stress" in params:
        stress = IRDropModel(
            segment_ratio=min(max(params["segment_ratio_ir_stress"].value, 0.0), 1.0),
            driver_ratio=min(max(params["driver_ratio_ir_stress"].value, 0.0), 1.0),
        )
    transfer: dict[str, tuple[float, ...]] = {}
    odd = sorted((n for n in params if n.startswith("input_transfer_c")), key=lambda n: int(n[16:]))
    if odd:
        transfer["sinh/amplitude"] = tuple(params[n].value for n in odd)
    if "input_gain_time" in params:
        transfer["sinh/time"] = (params["input_gain_time"].value,)
    return ReadModel(
        inp_step=params["inp_res"].value * 2.0,
        out_bound=params["out_bound"].value,
        scale_alpha=True,
        tau_sum_s={
            d: params[f"tau_sum_{d}_s"].value
            for d in ("forward", "backward")
            if f"tau_sum_{d}_s" in params
        },
        ir_drop=ir,
        ir_stress=stress,
        transfer=transfer,
    )


def preset_read_model(rpu: RPUConfig) -> ReadModel:
    """The preset's read numbers: its DAC and α, nothing else (module doc)."""
    io = rpu.forward
    return ReadModel(
        inp_step=io.inp_res * 2.0 * io.inp_bound,
        out_bound=io.out_bound,
        scale_alpha=False,
        tau_sum_s={},
        ir_drop=None,
        ir_stress=None,
        transfer={},
    )


def case_alpha(case: Tree, tree: Tree, out_bound: float) -> float:
    """α of the characterized tile scaled to a case's integrator: the swing is a voltage,
    α ∝ C_int/Q_unit."""
    cfg = config_tile(tree)["parameters"]
    scale_cfg = scalar(cfg, "c_int_f") / scalar(cfg, "q_unit_c")
    scale_case = scalar(case, "parameters/c_int_f") / scalar(case, "q_unit_c")
    return out_bound * scale_case / scale_cfg


def calibrated_read(case: Tree, tree: Tree, model: ReadModel) -> FloatArray:
    """The behavioral read of a transfer case (module doc), noise and ADC off: the model
    path's read with the case's DAC step, gain, transfer curve and α."""
    direction = text(case, "direction")
    key = f"{text(case, 'read_iv')}/{text(case, 'encoding')}"
    w = case_weights(case)
    ir = model.ir_drop
    stress = "ir_stress" in text(case, "name")
    ir_model = None
    if stress and model.ir_stress is not None:
        ir_model = model.ir_stress
    elif ir is not None:
        ir_model = ir.forward if direction == "forward" else ir.backward
    if ir_model is not None:
        d: Direction = "forward" if direction == "forward" else "backward"
        w = w * ir_model.attenuation(w.shape[0], w.shape[1], d)
    gain = 1.0  # a DC point has no integrator (as the IR fit takes it: gain 1)
    if direction in model.tau_sum_s and text(case, "analysis") != "op":
        gain = case_read_gain(case, model.tau_sum_s[direction])
    alpha = model.out_bound
    if model.scale_alpha and alpha > 0.0:
        alpha = case_alpha(case, tree, alpha)
    io = IOConfig(
        inp_res=model.inp_step / 2.0, out_noise=0.0, out_bound=max(alpha, 0.0), out_res=0.0,
        noise_management=False, bound_management=False, read_gain=gain,
        input_transfer=tuple(model.transfer.get(key, ())),
    )  # fmt: skip
    wr = w if direction == "forward" else w.T
    x = np.ascontiguousarray(array(case, "x"), dtype=np.float64).reshape(1, -1)
    y = np.empty((1, wr.shape[0]))
    state = kernels.seed_state(np.random.default_rng(0))  # no noise: never drawn from
    kernels.read_batch(np.asarray(wr, dtype=np.float64), x, y, kernels.pack_io(io), state)
    return np.asarray(y[0], dtype=np.float64)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ReadCheck:
    """One case's read errors, calibrated and preset, in % of the case's α."""

    case: str
    """``transfer/<name>``."""
    direction: str
    role: Role
    """``held-out`` (no fit saw it) or ``fitted`` (a fit read it: in-sample)."""
    rms: float
    max: float
    preset_rms: float
    preset_max: float
    y_sim: FloatArray
    y_model: FloatArray
    y_preset: FloatArray
    alpha: float

    @property
    def ratio(self) -> float:
        """How many times closer the calibrated read is than the preset's (rms)."""
        return self.preset_rms / self.rms if self.rms > 0.0 else math.inf

    @property
    def closer_met(self) -> bool | None:
        """Whether the :data:`CLOSER_FACTOR` target is met; None where the preset is not
        off by more than :data:`PRESET_OFF`."""
        if self.preset_rms <= PRESET_OFF:
            return None
        return self.ratio >= CLOSER_FACTOR


def _errors(y: FloatArray, ref: FloatArray, alpha: float) -> tuple[float, float]:
    d = 100.0 * np.abs(y - ref) / alpha
    return float(np.sqrt(np.mean(d**2))), float(d.max())


def check_read(
    path: str, case: Tree, tree: Tree, cal: ReadModel, preset: ReadModel, role: Role
) -> ReadCheck:
    """The calibrated and preset reads of one case against the simulator."""
    y_sim = array(case, "y_sim_w")
    alpha = scalar(case, "alpha_w")
    y_cal = calibrated_read(case, tree, cal)
    y_pre = calibrated_read(case, tree, preset)
    rms, mx = _errors(y_cal, y_sim, alpha)
    prms, pmx = _errors(y_pre, y_sim, alpha)
    return ReadCheck(
        case=path,
        direction=text(case, "direction"),
        role=role,
        rms=rms,
        max=mx,
        preset_rms=prms,
        preset_max=pmx,
        y_sim=y_sim,
        y_model=y_cal,
        y_preset=y_pre,
        alpha=alpha,
    )


def validated_cases(tree: Tree, held: Sequence[str]) -> tuple[str, ...]:
    """Transfer cases to validate: the held-out ones and :data:`PHYSICS_CASES`."""
    paths = transfer_paths(tree)
    chosen = set(matching(paths, PHYSICS_CASES)) | {p for p in held if p in paths}
    return tuple(p for p in paths if p in chosen)


# --------------------------------------------------------------------------- updates


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class UpdateCheck:
    """One update cycle: expected Δw per device vs the simulated Δg/ΔG_unit."""

    case: str
    role: Role
    rms: float
    """rms error, % of the cycle's largest expected Δw (module doc)."""
    max: float
    preset_rms: float
    preset_max: float


def expected_dw(
    n_full: FloatArray, n_half: FloatArray, polarity: float, dw_min: float, k: float, u: float
) -> FloatArray:
    """Expected Δw of each device for its coincident and half-selected pulse counts."""
    step = dw_min * (1.0 + polarity * u)
    out: FloatArray = polarity * step * (n_full + k * n_half)
    return out


def check_update(
    path: str,
    case: Tree,
    params: Mapping[str, FittedParameter],
    preset: RPUConfig,
    role: Role,
) -> UpdateCheck:
    """Calibrated (fitted Δw_min, k, u) and preset expectations of one update cycle."""
    n_full, n_half = array(case, "n_full"), array(case, "n_half")
    pol = scalar(case, "polarity")
    dw_sim = array(case, "dg_s") / scalar(case, "parameters/dg_unit_s")
    cal = expected_dw(
        n_full,
        n_half,
        pol,
        params["dw_min"].value,
        params["k_half_select"].value,
        params["up_down"].value,
    )
    dev = preset.device
    pre = expected_dw(n_full, n_half, pol, dev.dw_min, dev.k_half_select, dev.up_down)
    scale = float(np.max(np.abs(cal)))
    d_cal = 100.0 * np.abs(cal - dw_sim) / scale
    d_pre = 100.0 * np.abs(pre - dw_sim) / scale
    return UpdateCheck(
        case=path,
        role=role,
        rms=float(np.sqrt(np.mean(d_cal**2))),
        max=float(d_cal.max()),
        preset_rms=float(np.sqrt(np.mean(d_pre**2))),
        preset_max=float(d_pre.max()),
    )


def update_cases(tree: Tree, k: float) -> tuple[str, ...]:
    """``update/<name>`` of the cycles whose device model has the config's k."""
    cases = tree.get("update")
    if not isinstance(cases, Mapping):
        return ()
    out = []
    for name in sorted(cases):
        kc = scalar(cases[name], "k_model")
        if abs(kc - k) <= 1e-9 * max(abs(k), 1.0):
            out.append(f"update/{name}")
    return tuple(out)


def config_k(tree: Tree) -> float:
    """The device model's k of the characterized tile (its config)."""
    return float(case_config(config_tile(tree))["device"]["k"])


# --------------------------------------------------------------------------- all


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Validation:
    """Every check of one calibration."""

    reads: tuple[ReadCheck, ...]
    updates: tuple[UpdateCheck, ...]
    k_fitted: float
    k_model: float
    noise: tuple[AnalyticCheck, ...] = ()
    """The noise model's σ against the analytic budget at long lines."""

    @property
    def k_error(self) -> float:
        """Relative difference of the fitted k from the device model's."""
        return abs(self.k_fitted - self.k_model) / abs(self.k_model)

    def targets(self) -> list[tuple[str, bool, str]]:
        """(target, met, the numbers) of each validation target."""
        out: list[tuple[str, bool, str]] = []
        for r in self.reads:
            if r.role == "held-out":
                out.append(
                    (
                        f"held-out read {r.case} ≤ {READ_RMS_TARGET} % of α rms",
                        r.rms <= READ_RMS_TARGET,
                        f"{r.rms:.3g} %",
                    )
                )
            met = r.closer_met
            if met is not None:
                out.append(
                    (
                        f"{r.case}: {CLOSER_FACTOR:g}× closer than the preset",
                        met,
                        f"preset {r.preset_rms:.3g} %, calibrated {r.rms:.3g} %, "
                        f"ratio {r.ratio:.3g}",
                    )
                )
        out.append(
            (
                f"k within {100 * K_TOLERANCE:g} % of the device model's",
                self.k_error <= K_TOLERANCE,
                f"fitted {self.k_fitted:.5g}, model {self.k_model:.5g}, {100 * self.k_error:.3g} %",
            )
        )
        for c in self.noise:
            if math.isfinite(c.tolerance_w):
                out.append(
                    (
                        f"σ at N = {c.n_devices} within {c.tolerance_w:g} w of the analytic budget",
                        abs(c.error_w) <= c.tolerance_w,
                        f"fitted {c.fitted_w:.4g}, analytic {c.analytic_w:.4g}, {c.error_w:+.2g} w",
                    )
                )
        return out

    def checks(self) -> tuple[ValidationCheck, ...]:
        """The model file's validation rows."""
        rows: list[ValidationCheck] = []
        for r in self.reads:
            name = r.case.removeprefix("transfer/")
            rows.append(
                ValidationCheck(
                    name=f"{r.direction}_read/{name}",
                    case=r.case,
                    quantity=f"{r.direction}_read",
                    unit="% of alpha",
                    rms_error=r.rms,
                    max_error=r.max,
                    preset_rms_error=r.preset_rms,
                    preset_max_error=r.preset_max,
                    tolerance=READ_RMS_TARGET,
                )
            )
        for u in self.updates:
            rows.append(
                ValidationCheck(
                    name=f"update/{u.case.removeprefix('update/')}",
                    case=u.case,
                    quantity="update",
                    unit="% of largest step",
                    rms_error=u.rms,
                    max_error=u.max,
                    preset_rms_error=u.preset_rms,
                    preset_max_error=u.preset_max,
                    tolerance=UPDATE_RMS_TARGET,
                )
            )
        rows.append(
            ValidationCheck(
                name="k_half_select",
                quantity="k_half_select vs the device model's k",
                unit="1",
                predicted=self.k_fitted,
                reference=self.k_model,
                tolerance=K_TOLERANCE * abs(self.k_model),
            )
        )
        rows += [
            ValidationCheck(
                name=f"out_noise_sigma_n{c.n_devices}",
                quantity=f"σ of a line of {c.n_devices} devices vs the analytic noise budget",
                unit="w",
                predicted=c.fitted_w,
                reference=c.analytic_w,
                tolerance=c.tolerance_w,
            )
            for c in self.noise
            if math.isfinite(c.tolerance_w)
        ]
        return tuple(rows)


def validate(
    tree: Tree,
    params: Mapping[str, FittedParameter],
    ir: IRDrop,
    preset: RPUConfig,
    held: Sequence[str],
) -> Validation:
    """Every read and update check of a calibration on the full tree (module doc)."""
    used = {s for p in params.values() for s in p.sources}
    cal = calibrated_read_model(tree, params, ir)
    pre = preset_read_model(preset)
    reads = []
    for path in validated_cases(tree, held):
        role: Role = "held-out" if path in held else "fitted"
        case = tree["transfer"][path.removeprefix("transfer/")]
        reads.append(check_read(path, case, tree, cal, pre, role))
    k_model = config_k(tree)
    updates = []
    for path in update_cases(tree, k_model):
        case = tree["update"][path.removeprefix("update/")]
        role = "held-out" if path not in used else "fitted"
        updates.append(check_update(path, case, params, preset, role))
    return Validation(
        reads=tuple(reads),
        updates=tuple(updates),
        k_fitted=params["k_half_select"].value,
        k_model=k_model,
        noise=analytic_checks(tree, noise_model(params)),
    )


__all__ = [
    "CLOSER_FACTOR",
    "K_TOLERANCE",
    "PHYSICS_CASES",
    "PRESET_OFF",
    "READ_RMS_TARGET",
    "UPDATE_RMS_TARGET",
    "HeldOutError",
    "ReadCheck",
    "ReadModel",
    "UpdateCheck",
    "Validation",
    "calibrated_read",
    "calibrated_read_model",
    "default_held_out",
    "fit_held_out",
    "preset_read_model",
    "resolve_held_out",
    "validate",
    "without",
]
