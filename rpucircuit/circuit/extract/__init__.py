"""Extraction: simulator output -> typed results, one module per analysis.

:mod:`.transfer` (a read of a tile against ``W·x`` and the nodal solve), :mod:`.update` (one
stochastic update cycle and the fit of Δg_min and k), :mod:`.noise` (``.noise`` of a line
and of the reset switch against the analytic budget), :mod:`.noise_mc` (the repeatable
transient-noise Monte Carlo), :mod:`.timing` (line delay and integrator settling), and
:mod:`.common` (running a netlist, config variants, the weight -> conductance map). Each
module starts with the pure functions it needs (numpy in, numbers out, no I/O, unit tested
on their own); the analyses build netlists, run ngspice through
:mod:`rpucircuit.circuit.spice` and return frozen result dataclasses. Simulator vector names
never leave this package.

The public names are re-exported here: ``from rpucircuit.circuit import extract as ex;
ex.transfer_case(...)``.
"""

from rpucircuit.circuit.extract.common import (
    RELATIVE_ZERO,
    first_crossing_s,
    weights_to_conductances,
    with_device,
    with_periphery,
    with_tile,
    without_line_resistance,
)
from rpucircuit.circuit.extract.noise import (
    KtcResult,
    NoiseResult,
    current_psd_from_integrator_output,
    ktc_case,
    noise_case,
    opamp_noise_reference_c2,
    windowed_charge_variance_c2,
)
from rpucircuit.circuit.extract.noise_mc import (
    MC_SOURCES,
    NoiseMonteCarloResult,
    noise_monte_carlo,
    noise_time_grid,
    white_noise_on_grid,
    white_noise_samples,
)
from rpucircuit.circuit.extract.timing import TimingResult, timing_case
from rpucircuit.circuit.extract.transfer import (
    TransferErrors,
    TransferResult,
    decompose_transfer_error,
    transfer_case,
)
from rpucircuit.circuit.extract.update import (
    FullSelectResult,
    UpdateResult,
    bound_start_conductances,
    fit_update_response,
    full_select_case,
    up_down_ratio,
    update_case,
)

__all__ = [
    "MC_SOURCES",
    "RELATIVE_ZERO",
    "FullSelectResult",
    "KtcResult",
    "NoiseMonteCarloResult",
    "NoiseResult",
    "TimingResult",
    "TransferErrors",
    "TransferResult",
    "UpdateResult",
    "bound_start_conductances",
    "current_psd_from_integrator_output",
    "decompose_transfer_error",
    "first_crossing_s",
    "fit_update_response",
    "full_select_case",
    "ktc_case",
    "noise_case",
    "noise_monte_carlo",
    "noise_time_grid",
    "opamp_noise_reference_c2",
    "timing_case",
    "transfer_case",
    "up_down_ratio",
    "update_case",
    "weights_to_conductances",
    "white_noise_on_grid",
    "white_noise_samples",
    "windowed_charge_variance_c2",
    "with_device",
    "with_periphery",
    "with_tile",
    "without_line_resistance",
]
