"""Configs of the behavioral RPU array model (model path) and the papers' presets.

Normalization: every weight-like quantity is in *weight units*, the unit in which the
network's weights live (paper A: weights within about ±0.6, one update step
``dw_min = 0.001``). Inputs are normalized to the DAC range ``[-inp_bound, inp_bound]``
(``inp_bound = 1``: a full-length ``t_meas`` pulse); outputs are in weight units times
input units, exactly what ``W @ x`` gives.

Sources: paper A = Gokmen & Vlasov 2016 (Front. Neurosci. 10:333), paper B = Gokmen, Onen
& Haensch 2017 (Front. Neurosci. 11:538); "aihwkit" = IBM's aihwkit 1.2
``ConstantStepDevice`` / ``IOParameters`` defaults, which state that they implement
paper A's tile (``docs/peers.md`` says how aihwkit is configured to match).

The configs only describe; :mod:`rpucircuit.model.tile` implements. See ``docs/model-api.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.polynomial.polynomial as npoly

from rpucircuit.config.base import (
    check_choice,
    check_finite,
    check_int,
    check_nonnegative,
    check_positive,
    check_range,
)
from rpucircuit.errors import ConfigError

MAX_BL = 64
"""Longest stochastic bit stream: one stream is packed into one uint64 word."""

MAX_TRANSFER_TERMS = 8
"""Most odd coefficients of an input transfer curve (c1 … c15): the read kernels take
them in a fixed-size slot of their parameter vector."""

_MONOTONE_GRID = 2049
"""Points of u² ∈ [0, 1] at which :func:`check_transfer` evaluates f′ besides the real
roots of f″ (the exact minima); the grid only guards against a root finder's rounding."""


def transfer_slope_min(coefficients: tuple[float, ...]) -> float:
    """Minimum over u ∈ [−1, 1] of f′(u) for ``f(u) = Σ c_k·u^(2k+1)``.

    f′ is even, so it is a polynomial g(t) = Σ (2k+1)·c_k·t^k in t = u² ∈ [0, 1]; its
    minimum lies at t = 0, t = 1 or a real root of g′ inside (0, 1)."""
    g = np.array([(2 * k + 1) * c for k, c in enumerate(coefficients)], dtype=np.float64)
    ts = [np.linspace(0.0, 1.0, _MONOTONE_GRID)]
    if g.shape[0] > 2:
        roots = npoly.polyroots(npoly.polyder(g))
        real = roots.real[(np.abs(roots.imag) < 1e-9) & (roots.real > 0.0) & (roots.real < 1.0)]
        ts.append(real)
    return float(np.min(npoly.polyval(np.concatenate(ts), g)))


def check_transfer(name: str, coefficients: tuple[float, ...]) -> None:
    """Raise unless ``coefficients`` (c1, c3, …) make an odd polynomial f that is
    non-decreasing on [−1, 1] with f(1) > 0, with at most :data:`MAX_TRANSFER_TERMS`
    finite terms (() = identity)."""
    if not isinstance(coefficients, tuple):
        raise ConfigError(f"{name} = {coefficients!r}: must be a tuple of floats (c1, c3, ...)")
    if len(coefficients) > MAX_TRANSFER_TERMS:
        raise ConfigError(
            f"{name} = {coefficients!r}: at most {MAX_TRANSFER_TERMS} odd coefficients "
            f"(c1 … c{2 * MAX_TRANSFER_TERMS - 1}), got {len(coefficients)}"
        )
    for k, c in enumerate(coefficients):
        check_finite(f"{name}[{k}] (c{2 * k + 1})", c)
    if not coefficients:
        return
    if sum(coefficients) <= 0.0:
        raise ConfigError(f"{name} = {coefficients!r}: f(1) = {sum(coefficients)!r} must be > 0")
    slope = transfer_slope_min(coefficients)
    if slope < 0.0:
        raise ConfigError(
            f"{name} = {coefficients!r}: f must be non-decreasing on [-1, 1] "
            f"(min f'(u) = {slope:.6g} < 0); fit a monotone curve or use () for the identity"
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class IOConfig:
    """Periphery of one read direction (forward or backward): DAC, noise, bound, ADC.

    The read of one vector runs: noise management (divide by max|x|) → DAC (clip to
    ``±inp_bound``, quantize with step ``inp_res · 2·inp_bound``) → input transfer curve
    ``f`` (``input_transfer``) → MVM → times ``read_gain`` → add Gaussian noise
    ``σ = out_noise`` → clip at ``±out_bound`` → ADC (quantize with step
    ``out_res · 2·out_bound``) → bound management (if any output hit the bound, halve the
    input and read again) → multiply back the management scales.
    """

    is_perfect: bool = False
    """True: exact floating-point MVM; every other field of this config is ignored."""
    inp_bound: float = 1.0
    """DAC range (normalized input units): inputs are clipped to ±inp_bound. 1 = a full
    t_meas pulse (paper A: 80 ns). aihwkit default 1."""
    inp_res: float = 1.0 / 126.0
    """DAC step as a fraction of the full input range 2·inp_bound (0 = no quantization, at
    most 0.5). 1/126 gives 127 levels ≈ 7 bits (paper A: ~1 ns steps of an 80 ns pulse;
    aihwkit inp_res = 1/(2^7 − 2))."""
    out_noise: float = 0.06
    """Standard deviation of the additive Gaussian output noise, in weight units times
    input units, added to every output of every read (paper A: σ = 0.06 acceptable;
    aihwkit out_noise 0.06)."""
    out_bound: float = 12.0
    """Output bound α (weight units): outputs are clipped to ±α, the integrator's swing
    (paper A: α = 12; aihwkit out_bound 12). 0 = unbounded."""
    out_res: float = 1.0 / 510.0
    """ADC step as a fraction of the full output range 2·out_bound (0 = no quantization,
    at most 0.5; ignored when out_bound is 0). 1/510 gives 511 levels ≈ 9 bits (paper A:
    9-bit ADC; aihwkit out_res = 1/(2^9 − 2))."""
    noise_management: bool = True
    """Divide each input vector by its max|x| before the read and multiply the output back
    (paper B; aihwkit NoiseManagementType.ABS_MAX)."""
    bound_management: bool = True
    """If any output hits ±out_bound, halve the input and read again (paper B; aihwkit
    BoundManagementType.ITERATIVE)."""
    bm_max_factor: float = 1000.0
    """Bound management stops halving once the total reduction factor reaches this value
    (dimensionless; the last read is kept even if it still hits the bound). aihwkit stops
    at 1000, so factors up to 1024 occur."""
    read_gain: float = 1.0
    """Read gain κ (dimensionless, 0 < κ ≤ 1): multiplies every analog output after the
    MVM, before the output noise, the bound and the ADC. Physics: the integrator's op-amp
    has a finite gain and bandwidth, so its summing node is not a perfect virtual ground
    and a fraction 1 − κ of the line current is lost, κ = A₀/(1 + A₀)/(1 + G_line·τ_sum/
    C_int). Source: the circuit calibration's fit per read direction
    (``read_gain_forward``/``_backward``, ``docs/calibration.md``); 1 = ideal integrator
    (papers A/B, aihwkit)."""
    input_transfer: tuple[float, ...] = ()
    """Input transfer curve ``f`` as odd polynomial coefficients (c1, c3, c5, …):
    ``f(u) = c1·u + c3·u³ + c5·u⁵ + …`` on the DAC'd input normalized to the DAC range,
    ``u = x_q/inp_bound ∈ [−1, 1]``; the read then computes ``y = W·(inp_bound·f(u))``.
    Dimensionless (input units per input unit). Physics: a nonlinear device I–V (e.g. a
    sinh device read by amplitude) or driver makes the charge a device passes a nonlinear
    function of the pulse amplitude; odd by construction (a negative pulse mirrors a
    positive one), and it must be non-decreasing on [−1, 1] with f(1) > 0 (checked here).
    Source: the circuit calibration's ``input_transfer_c*`` fit (``docs/calibration.md``);
    () = identity (papers A/B, aihwkit). At most :data:`MAX_TRANSFER_TERMS` terms."""

    def __post_init__(self) -> None:
        check_positive("inp_bound", self.inp_bound)
        # a step beyond half the range would put levels outside ±bound
        check_range("inp_res", self.inp_res, 0.0, 0.5)
        check_nonnegative("out_noise", self.out_noise)
        check_nonnegative("out_bound", self.out_bound)
        check_range("out_res", self.out_res, 0.0, 0.5)
        check_range("bm_max_factor", self.bm_max_factor, 1.0, 1e9)
        check_range("read_gain", self.read_gain, 0.0, 1.0, lo_open=True)
        check_transfer("input_transfer", self.input_transfer)
        if self.bound_management and self.out_bound == 0 and not self.is_perfect:
            raise ConfigError(
                "bound_management = True needs a finite out_bound > 0 "
                f"(out_bound = {self.out_bound!r}); set bound_management = False"
            )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PulsedDeviceConfig:
    """Constant-step resistive device of paper A (aihwkit ``ConstantStepDevice``).

    Every device gets, once at tile creation, its own parameters (device-to-device, d2d):
    ``gain = 1 + dw_min_dtod·ξ₁`` (clipped at 0), ``u = up_down + up_down_dtod·ξ₂``,
    ``dw_up = dw_min·gain·(1 + u)``, ``dw_down = dw_min·gain·(1 − u)``,
    ``w_max_dev = w_max·(1 + w_bound_dtod·ξ₃)`` (≥ 0), ``w_min_dev = w_min·(1 +
    w_bound_dtod·ξ₄)`` (≤ 0), with ξ standard normal. Each pulse then changes the device by
    ``±dw_dir·(1 + dw_min_ctoc·ξ)`` (cycle-to-cycle, c2c), clipped to its bounds.
    """

    dw_min: float = 0.001
    """Mean weight change of one full-voltage coincidence (weight units). Paper A baseline
    0.001 (≈ 1000 states over ±0.6); aihwkit dw_min 0.001."""
    dw_min_dtod: float = 0.3
    """Device-to-device spread of dw_min, relative (std / mean). Paper A/aihwkit 0.3."""
    dw_min_ctoc: float = 0.3
    """Cycle-to-cycle spread of each pulse's step, relative (std / mean). Paper A/aihwkit
    0.3."""
    w_max: float = 0.6
    """Mean upper weight bound of a device (weight units). Paper A/aihwkit 0.6."""
    w_min: float = -0.6
    """Mean lower weight bound of a device (weight units). Paper A/aihwkit −0.6."""
    w_bound_dtod: float = 0.3
    """Device-to-device spread of both bounds, relative. Paper A/aihwkit 0.3."""
    up_down: float = 0.0
    """Mean up/down imbalance u: dw_up/dw_down = (1 + u)/(1 − u). 0 after the global
    pulse-width adjustment of paper A/B; aihwkit up_down 0."""
    up_down_dtod: float = 0.01
    """Device-to-device spread of u (absolute). aihwkit up_down_dtod 0.01 (paper A: symmetry
    within ~2 % needed)."""
    k_half_select: float = 0.0
    """Update nonlinearity k = Δg(V_S/2)/Δg(V_S) (paper A): a half-selected device changes by
    k·dw in the direction the pulse polarity it sees drives it (sign convention in
    docs/model-api.md). 0 = ideal rectifying device (aihwkit has no half-select), 0.5 =
    linear, → 1 saturating."""
    soft_bounds: bool = False
    """State-dependent step: up steps scale by (1 − w/w_max_dev), down steps by
    (1 − w/w_min_dev) (aihwkit SoftBoundsDevice); False = constant step (paper A)."""
    bounded: bool = True
    """False: the device has no weight bounds (ideal device of the floating-point preset);
    w_max, w_min and w_bound_dtod are then ignored."""
    n_devices: int = 1
    """Multi-device mapping (paper B): devices per weight, summed. Each device's dw_min and
    bounds are divided by n_devices, so the summed weight keeps the range ±w_max and the
    mean step dw_min, while d2d spreads average down by ~1/√n_devices."""

    def __post_init__(self) -> None:
        check_positive("dw_min", self.dw_min)
        check_range("dw_min_dtod", self.dw_min_dtod, 0.0, 10.0)
        check_range("dw_min_ctoc", self.dw_min_ctoc, 0.0, 10.0)
        check_positive("w_max", self.w_max)
        check_range("w_min", self.w_min, -1e9, 0.0, hi_open=True)
        check_range("w_bound_dtod", self.w_bound_dtod, 0.0, 10.0)
        check_range("up_down", self.up_down, -1.0, 1.0, lo_open=True, hi_open=True)
        check_range("up_down_dtod", self.up_down_dtod, 0.0, 1.0)
        check_range("k_half_select", self.k_half_select, 0.0, 1.0)
        check_int("n_devices", self.n_devices, 1, 64)
        if self.soft_bounds and not self.bounded:
            raise ConfigError("soft_bounds = True needs bounded = True (soft bounds need bounds)")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class UpdateConfig:
    """Stochastic pulsed update (paper A, with paper B's update management)."""

    bl: int = 10
    """Bit-stream length BL (pulses per update cycle), 1 … 64. Paper A/B baseline 10
    (aihwkit default 31)."""
    update_management: bool = True
    """Scale the column/row probabilities by m and 1/m, m = sqrt(δ_max/x_max) (paper B)."""
    pulse_type: Literal["stochastic", "exact"] = "stochastic"
    """"stochastic": bit streams and coincidences (paper A). "exact": the expected update
    W ← W − η·δ·xᵀ applied directly (no granularity, no c2c, still clipped to bounds)."""

    def __post_init__(self) -> None:
        check_int("bl", self.bl, 1, MAX_BL)
        check_choice("pulse_type", self.pulse_type, ("stochastic", "exact"))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RPUConfig:
    """Complete tile model: forward read, backward read, update scheme, device."""

    forward: IOConfig = dataclasses.field(default_factory=IOConfig)
    """Periphery of the forward read y = W x."""
    backward: IOConfig = dataclasses.field(default_factory=IOConfig)
    """Periphery of the backward (transpose) read z = Wᵀ δ."""
    update: UpdateConfig = dataclasses.field(default_factory=UpdateConfig)
    """Stochastic update scheme."""
    device: PulsedDeviceConfig = dataclasses.field(default_factory=PulsedDeviceConfig)
    """Device physics."""

    def __post_init__(self) -> None:
        for name, cls in (
            ("forward", IOConfig),
            ("backward", IOConfig),
            ("update", UpdateConfig),
            ("device", PulsedDeviceConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(
                    f"{name} = {getattr(self, name)!r}: must be an {cls.__name__} instance"
                )


# --------------------------------------------------------------------------- presets


def perfect_io() -> IOConfig:
    """Ideal periphery: exact floating-point reads."""
    return IOConfig(
        is_perfect=True,
        inp_res=0.0,
        out_noise=0.0,
        out_bound=0.0,
        out_res=0.0,
        noise_management=False,
        bound_management=False,
    )


def ideal_device() -> PulsedDeviceConfig:
    """Ideal device: no variation, no bounds, no half-select, one device per weight."""
    return PulsedDeviceConfig(
        dw_min_dtod=0.0,
        dw_min_ctoc=0.0,
        w_bound_dtod=0.0,
        up_down=0.0,
        up_down_dtod=0.0,
        k_half_select=0.0,
        soft_bounds=False,
        bounded=False,
    )


def floating_point() -> RPUConfig:
    """Every non-ideality off: exact FP reads and the exact update W ← W − η·δ·xᵀ.

    The floating-point baseline of both papers (paper A: ≈ 2.0 % test error on the FC
    network; paper B: ≈ 0.8 % on the CNN) run through the same tile code path.
    """
    return RPUConfig(
        forward=perfect_io(),
        backward=perfect_io(),
        update=UpdateConfig(update_management=False, pulse_type="exact"),
        device=ideal_device(),
    )


def gokmen_vlasov_2016(
    *,
    bl: int = 10,
    k_half_select: float = 0.0,
    n_devices: int = 1,
) -> RPUConfig:
    """Paper A's RPU baseline (Gokmen & Vlasov 2016, Table 1 / Fig. 3 baseline model).

    Device: constant step dw_min 0.001 with 30 % d2d and 30 % c2c, bounds ±0.6 with 30 %
    d2d, up/down d2d 0.01 (aihwkit ``ConstantStepDevice`` defaults, which cite paper A).
    Periphery: 7-bit DAC, σ = 0.06 output noise, α = 12, 9-bit ADC; noise management in
    both reads and bound management in the forward read only, as aihwkit's defaults do.
    Update: BL = 10 (paper A; aihwkit defaults to 31) with update management.
    ``k_half_select`` gives paper A's nonlinearity study (Fig. 3D), ``n_devices`` a
    multi-device variant.
    """
    return RPUConfig(
        forward=IOConfig(noise_management=True, bound_management=True),
        backward=IOConfig(noise_management=True, bound_management=False),
        update=UpdateConfig(bl=bl, update_management=True, pulse_type="stochastic"),
        device=PulsedDeviceConfig(k_half_select=k_half_select, n_devices=n_devices),
    )


def gokmen_onen_haensch_2017(
    *,
    noise_management: bool = True,
    bound_management: bool = True,
    update_management: bool = True,
    n_devices: int = 1,
    bl: int = 10,
) -> RPUConfig:
    """Paper B's RPU model with all management on (Gokmen, Onen & Haensch 2017).

    Same device and periphery as paper A's baseline (paper B, Table 1: BL = 10,
    dw_min 0.001 with 30 % d2d/c2c, bounds ±0.6 with 30 % d2d, σ = 0.06, α = 12), with
    noise and bound management in both reads and update management. Switch them off one
    by one for paper B's ablation; ``n_devices`` > 1 is paper B's multi-device mapping
    (it used 4 or more devices on the second convolutional layer only).
    """
    io = IOConfig(noise_management=noise_management, bound_management=bound_management)
    return RPUConfig(
        forward=io,
        backward=io,
        update=UpdateConfig(bl=bl, update_management=update_management),
        device=PulsedDeviceConfig(n_devices=n_devices),
    )


PRESETS: dict[str, Callable[[], RPUConfig]] = {
    "floating_point": floating_point,
    "gokmen_vlasov_2016": gokmen_vlasov_2016,
    "gokmen_onen_haensch_2017": gokmen_onen_haensch_2017,
}
"""Array-model presets by name (the factory functions above)."""
