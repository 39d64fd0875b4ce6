"""From fitted parameters to the behavioral model: the calibrated :class:`RPUConfig`, the
per-read IR-drop models, the output-noise model and the input transfer curve.

The calibrated RPUConfig keeps the structure of a preset (paper A's
:func:`~rpucircuit.config.rpu.gokmen_vlasov_2016` by default: which reads use noise and
bound management, the update scheme) and takes every number the circuit gives from the
fit (:data:`CIRCUIT_FIELDS`); the numbers the circuit cannot give (BL, the DAC range,
spreads a deterministic SPICE device does not show) stay the preset's and are listed in
the parameters table with origin ``config``.

Output noise: the file's noise model ``σ² = a + b·N + c·N²`` gives each tile its σ; the
RPUConfig's ``out_noise`` is σ at the characterized tile (forward N = its columns,
backward N = its rows), what a reader without the noise model gets.

Read gain and input transfer: set on the RPUConfig's ``IOConfig`` (``read_gain`` of each
direction, the forward read's ``input_transfer``), which the model path's reads apply; the
parameters table holds them too. The input transfer curve describes the characterized
tile's own device: the fitted sinh curve (amplitude encoding) or gain (time encoding) of the
campaign's sinh cases describes a sinh device, so it enters the model only when the
characterized tile reads with ``read_iv = "sinh"``; a linear tile's transfer is the
identity.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rpucircuit.calibration.base import (
    CalibrationError,
    FittedParameter,
    Tree,
    case_config,
    config_parameter,
    scalar,
)
from rpucircuit.calibration.read import config_tile
from rpucircuit.config.base import check_choice
from rpucircuit.config.rpu import PRESETS, IOConfig, PulsedDeviceConfig, RPUConfig, UpdateConfig
from rpucircuit.errors import ConfigError
from rpucircuit.model.irdrop import IRDropModel
from rpucircuit.model.modelparts import InputTransfer, IRDrop, NoiseModel

PRESET = "gokmen_vlasov_2016"
"""The preset whose structure a calibrated model keeps and that validation compares with:
paper A's hand-set, uncalibrated baseline."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CalibrationConfig:
    """What ``rpucircuit calibrate`` does with a characterization file (``--config``
    TOML; its TOML and key are the model file's provenance)."""

    preset: str = PRESET
    """RPUConfig preset whose structure the model keeps and which the validation compares
    with (:data:`rpucircuit.config.rpu.PRESETS`)."""
    held_out: tuple[str, ...] = ()
    """Cases kept out of every fit and used only for validation, as paths or shell
    patterns (``transfer/bwd_ir_stress_*``). Empty = the automatic policy
    (:func:`rpucircuit.calibration.validate.default_held_out`); the model file's provenance
    records the cases actually held out."""

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, tuple(PRESETS))
        for pattern in self.held_out:
            if not isinstance(pattern, str) or "/" not in pattern:
                raise ConfigError(
                    f"held_out entry {pattern!r}: give a case path such as "
                    "'transfer/fwd_no_line_8' (group/name, patterns allowed)"
                )


def matching(paths: Sequence[str], patterns: Sequence[str]) -> tuple[str, ...]:
    """The paths matching any of the shell patterns, in the order of ``paths``."""
    return tuple(p for p in paths if any(fnmatch.fnmatchcase(p, pat) for pat in patterns))


# --------------------------------------------------------------------------- the RPUConfig

CIRCUIT_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "out_bound": (("forward", "out_bound"), ("backward", "out_bound")),
    "inp_res": (("forward", "inp_res"), ("backward", "inp_res")),
    "out_res": (("forward", "out_res"), ("backward", "out_res")),
    "read_gain_forward": (("forward", "read_gain"),),
    "read_gain_backward": (("backward", "read_gain"),),
    "dw_min": (("device", "dw_min"),),
    "dw_min_dtod": (("device", "dw_min_dtod"),),
    "dw_min_ctoc": (("device", "dw_min_ctoc"),),
    "w_bound_dtod": (("device", "w_bound_dtod"),),
    "up_down_dtod": (("device", "up_down_dtod"),),
    "k_half_select": (("device", "k_half_select"),),
    "up_down": (("device", "up_down"),),
    "w_max": (("device", "w_max"),),
    "w_min": (("device", "w_min"),),
    "bound_margin": (("device", "bound_margin"),),
}
"""Parameter name → the RPUConfig fields (section, field) it sets. A field the model path
does not have (yet) is skipped; a parameter the fits did not return leaves the preset's
value."""

_SECTIONS: dict[str, type[Any]] = {
    "forward": IOConfig,
    "backward": IOConfig,
    "update": UpdateConfig,
    "device": PulsedDeviceConfig,
}


def _has_field(cls: type[Any], name: str) -> bool:
    return any(f.name == name for f in dataclasses.fields(cls))


def noise_model(params: Mapping[str, FittedParameter]) -> NoiseModel:
    """The output-noise model σ² = a + b·N + c·N² from ``out_noise_a``, ``out_noise_b`` and
    ``out_noise_c`` (0 when the fits gave none)."""
    for name in ("out_noise_a", "out_noise_b"):
        if name not in params:
            raise CalibrationError(name, "the fits returned no output-noise model")
    return NoiseModel(
        a=params["out_noise_a"].value,
        b=params["out_noise_b"].value,
        c=params["out_noise_c"].value if "out_noise_c" in params else 0.0,
    )


def tile_shape(tree: Tree) -> tuple[int, int]:
    """(rows, cols) of the characterized tile (the config's own)."""
    node = config_tile(tree)
    return int(scalar(node, "parameters/rows")), int(scalar(node, "parameters/cols"))


def tile_read(tree: Tree) -> tuple[str, str]:
    """(read_iv, encoding) of the characterized tile's device and drivers."""
    cfg = case_config(config_tile(tree))
    return str(cfg["device"]["read_iv"]), str(cfg["periphery"]["encoding"])


def input_transfer(tree: Tree, params: Mapping[str, FittedParameter]) -> InputTransfer | None:
    """The characterized tile's forward input transfer curve (module doc), or None for
    the identity."""
    read_iv, encoding = tile_read(tree)
    if read_iv != "sinh":
        return None
    if encoding == "amplitude":
        names = sorted(
            (n for n in params if n.startswith("input_transfer_c")), key=lambda n: int(n[16:])
        )
        return InputTransfer(odd_coefficients=tuple(params[n].value for n in names))
    return InputTransfer(odd_coefficients=(params["input_gain_time"].value,))


def _ratio(params: Mapping[str, FittedParameter], name: str, fallback: str) -> float:
    p = params.get(name) or params.get(fallback)
    if p is None:
        raise CalibrationError(fallback, "the fits returned no IR-drop ratio")
    return min(max(p.value, 0.0), 1.0)


def ir_drop(params: Mapping[str, FittedParameter]) -> IRDrop:
    """Per-read IR-drop models from the DC fit's ratios (``segment_ratio``,
    ``driver_ratio``); the backward read takes ``segment_ratio_backward`` and
    ``driver_ratio_backward`` when the fits give them and the forward ones otherwise
    (the same lines). A ratio is clipped to [0, 1] (a fit can return a tiny negative
    driver ratio within its interval)."""
    fwd = IRDropModel(
        segment_ratio=_ratio(params, "segment_ratio", "segment_ratio"),
        driver_ratio=_ratio(params, "driver_ratio", "driver_ratio"),
    )
    bwd = IRDropModel(
        segment_ratio=_ratio(params, "segment_ratio_backward", "segment_ratio"),
        driver_ratio=_ratio(params, "driver_ratio_backward", "driver_ratio"),
    )
    return IRDrop(forward=fwd, backward=bwd)


def calibrated_rpu(
    tree: Tree, params: Mapping[str, FittedParameter], preset: str = PRESET
) -> tuple[RPUConfig, tuple[FittedParameter, ...]]:
    """The calibrated RPUConfig and the parameters table's extra rows: one ``config``
    row per numeric RPUConfig field that kept the preset's value (named
    ``<section>.<field>``)."""
    base = PRESETS[preset]()
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    set_by_circuit: set[tuple[str, str]] = set()
    for name, targets in CIRCUIT_FIELDS.items():
        if name not in params:
            continue
        for section, field in targets:
            if _has_field(_SECTIONS[section], field):
                sections[section][field] = params[name].value
                set_by_circuit.add((section, field))
    rows, cols = tile_shape(tree)
    noise = noise_model(params)
    sections["forward"]["out_noise"] = noise.sigma(cols)
    sections["backward"]["out_noise"] = noise.sigma(rows)
    set_by_circuit |= {("forward", "out_noise"), ("backward", "out_noise")}
    transfer = input_transfer(tree, params)
    if _has_field(IOConfig, "input_transfer"):
        sections["forward"]["input_transfer"] = (
            () if transfer is None else tuple(transfer.odd_coefficients)
        )
        set_by_circuit.add(("forward", "input_transfer"))
    replaced = {
        section: dataclasses.replace(getattr(base, section), **fields)
        for section, fields in sections.items()
    }
    try:
        rpu = dataclasses.replace(base, **replaced)
    except ConfigError as exc:
        raise CalibrationError(
            "rpu_config", f"the fitted values make no valid RPUConfig: {exc}"
        ) from exc
    extra = tuple(_preset_rows(rpu, preset, set_by_circuit, set(params)))
    return rpu, extra


def _preset_rows(
    rpu: RPUConfig, preset: str, set_by_circuit: set[tuple[str, str]], names: set[str]
) -> list[FittedParameter]:
    out: list[FittedParameter] = []
    for section in _SECTIONS:
        obj = getattr(rpu, section)
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            name = f"{section}.{f.name}"
            if (
                (section, f.name) in set_by_circuit
                or name in names
                or isinstance(value, bool)
                or not isinstance(value, int | float)
            ):
                continue
            out.append(
                config_parameter(
                    name,
                    float(value),
                    "1",
                    (f"preset {preset}",),
                    note=f"not characterized: RPUConfig.{name} kept from the preset {preset}",
                )
            )
    return out


def noise_rows(tree: Tree, noise: NoiseModel) -> tuple[float, float]:
    """(forward σ, backward σ) of the characterized tile from the noise model."""
    rows, cols = tile_shape(tree)
    return noise.sigma(cols), noise.sigma(rows)


def describe(tree: Tree, params: Mapping[str, FittedParameter]) -> str:
    """One line for the model file's ``description``."""
    rows, cols = tile_shape(tree)
    read_iv, encoding = tile_read(tree)
    alpha = params["out_bound"].value if "out_bound" in params else math.nan
    return (
        f"Calibrated from ngspice: {rows} x {cols} tile, {read_iv} device, {encoding} "
        f"encoding, alpha {alpha:.4g}, read gain {params['read_gain_forward'].value:.6f} "
        f"forward, k {params['k_half_select'].value:.4g}, dw_min {params['dw_min'].value:.4g}."
    )


Fits = Callable[[Tree], tuple[FittedParameter, ...]]
"""What fits a tree (:func:`rpucircuit.calibration.fit.fit_all`)."""

__all__ = [
    "CIRCUIT_FIELDS",
    "PRESET",
    "CalibrationConfig",
    "Fits",
    "calibrated_rpu",
    "describe",
    "input_transfer",
    "ir_drop",
    "matching",
    "noise_model",
    "noise_rows",
    "tile_read",
    "tile_shape",
]
