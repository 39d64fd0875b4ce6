"""One exception hierarchy for the whole package.

Every error the package raises on purpose derives from :class:`RpuError`, so a caller can
catch everything of ours with one clause and still tell the kinds apart.
"""

from __future__ import annotations

from pathlib import Path


class RpuError(Exception):
    """Base class of every error raised on purpose by rpucircuit."""


class RpuWarning(UserWarning):
    """Base class of the warnings rpucircuit issues: something worked, but not quite as the
    caller may assume (the message says what differs)."""


class ConfigError(RpuError, ValueError):
    """A config value is invalid; the message names the field, the value and what is allowed."""


class NetlistError(RpuError):
    """A netlist could not be built or rendered (bad element value, unsafe name)."""


class UnsupportedError(RpuError, NotImplementedError):
    """A combination of options this implementation refuses, with what to do instead."""


class SimulatorNotFoundError(RpuError):
    """The ngspice executable is not installed or not runnable."""


class SimulationError(RpuError):
    """A simulation failed. Carries the run folder, the simulator log and the netlist text."""

    def __init__(
        self,
        message: str,
        *,
        run_dir: Path | None = None,
        log: str = "",
        netlist: str = "",
    ) -> None:
        tail = "\n".join(log.strip().splitlines()[-15:])
        full = message
        if run_dir is not None:
            full += f"\n  run folder: {run_dir}"
        if tail:
            full += f"\n  simulator log (last lines):\n{tail}"
        super().__init__(full)
        self.run_dir = run_dir
        self.log = log
        self.netlist = netlist


class SimulationTimeoutError(SimulationError):
    """The simulator ran past its time limit and was killed."""


class TileShapeError(RpuError, ValueError):
    """An array passed to an analog tile or network has the wrong shape, dtype or values
    (NaN, infinity), or an update's learning rate is invalid."""


class ExtractionError(RpuError):
    """Simulator output did not contain what the analysis needs (missing vector, bad shape)."""


class StoreError(RpuError):
    """An HDF5 file is missing, has the wrong schema, or could not be written."""


class DataError(RpuError):
    """A data set (MNIST) is missing, corrupt or has the wrong shape."""


class SweepError(RpuError):
    """One or more jobs of a sweep failed; the finished ones stay cached for a rerun."""


class CalibrationError(RpuError):
    """A fit failed: its residual is outside the stated tolerance, or the data cannot
    determine it. The message names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class MissingCaseError(CalibrationError):
    """The characterization tree lacks a case a parameter needs. The message names the
    case and the campaign field (``[campaign]`` of ``rpucircuit characterize``) that
    produces it."""

    def __init__(self, parameter: str, case: str, field: str) -> None:
        super().__init__(
            parameter,
            f"the characterization file has no case {case!r}; it is produced by the campaign "
            f"field {field} (rerun `rpucircuit characterize` with it)",
        )
        self.case = case
        self.field = field
