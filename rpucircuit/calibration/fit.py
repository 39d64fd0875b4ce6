"""All fits of one characterization tree, in one call, in a fixed order."""

from __future__ import annotations

from rpucircuit.calibration.base import FittedParameter, Tree
from rpucircuit.calibration.ir_drop import dc_resistances, fit_ir_drop
from rpucircuit.calibration.noise import adc_sigma, fit_output_noise, ktc_sigma
from rpucircuit.calibration.read import (
    fit_input_transfer,
    fit_output_bound,
    fit_read_gain,
    periphery_steps,
)
from rpucircuit.calibration.update import fit_update


def fit_all(tree: Tree) -> tuple[FittedParameter, ...]:
    """Every parameter calibration determines, from a tree of
    :func:`rpucircuit.circuit.characterize.load`: read gain per direction, IR-drop ratios
    (forward and backward), input transfer curve, output bound and DAC/ADC steps, output
    noise, update (k, Δw_min, up/down, bounds and margin, device-to-device spread).

    The first error (a missing case, a residual beyond its tolerance) is raised as it is;
    names are unique in the result.
    """
    r_seg, r_drv = dc_resistances(tree)
    tau_fwd, gain_fwd = fit_read_gain(tree, "forward", r_seg_ohm=r_seg, r_driver_ohm=r_drv)
    tau_bwd, gain_bwd = fit_read_gain(tree, "backward", r_seg_ohm=r_seg, r_driver_ohm=r_drv)
    tau = tau_fwd.value
    params: list[FittedParameter] = [tau_fwd, gain_fwd, tau_bwd, gain_bwd]
    params += fit_ir_drop(tree, tau, tau_backward_s=tau_bwd.value)
    params += fit_input_transfer(tree, tau)
    params.append(fit_output_bound(tree, tau))
    params += periphery_steps(tree)
    params += fit_output_noise(tree, tau)
    params += [ktc_sigma(tree, tau), adc_sigma(tree, tau)]
    params += fit_update(tree)
    return tuple(params)


def by_name(params: tuple[FittedParameter, ...]) -> dict[str, FittedParameter]:
    """The parameters keyed by name."""
    return {p.name: p for p in params}


__all__ = ["by_name", "fit_all"]
