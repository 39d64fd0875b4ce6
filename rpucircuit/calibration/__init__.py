"""The bridge between the two paths: fits the behavioral array model from a
characterization file and validates it on held-out circuit runs. With the design-answer
commands, the only code that imports both :mod:`rpucircuit.circuit` and
:mod:`rpucircuit.model`.

The fits are pure functions of the tree :func:`rpucircuit.circuit.characterize.load`
returns; each gives :class:`~rpucircuit.calibration.base.FittedParameter` records (value,
unit, source cases, residual against a stated tolerance, 95 % interval, and whether the
value was fitted or taken from the config because SPICE cannot observe it):

- :mod:`~rpucircuit.calibration.read`: read gain per direction, input transfer curve,
  output bound, DAC and ADC steps;
- :mod:`~rpucircuit.calibration.ir_drop`: segment and driver resistance ratios, forward
  and backward;
- :mod:`~rpucircuit.calibration.noise`: output noise ``σ² = a + b·N + c·N²``, kT/C, ADC;
- :mod:`~rpucircuit.calibration.update`: Δw_min, k, up/down ratio, the device-to-device
  spread of Δw_min, the bounds and their soft-bound ramp;
- :mod:`~rpucircuit.calibration.fit`: all of them in one call.

Built on the fits: :mod:`~rpucircuit.calibration.model` (parameters to an RPUConfig and a
model file), :mod:`~rpucircuit.calibration.validate` (held-out cases, validation against the
simulator beside the uncalibrated preset), :mod:`~rpucircuit.calibration.report` (fit report
and plots; the ``rpucircuit calibrate`` command), and :mod:`~rpucircuit.calibration.cosim`
(circuit spot checks of live weights during training).
"""

from rpucircuit.calibration.base import CalibrationError, FittedParameter, MissingCaseError
from rpucircuit.calibration.fit import by_name, fit_all

__all__ = ["CalibrationError", "FittedParameter", "MissingCaseError", "by_name", "fit_all"]
