"""Speed work on paper B's CNN must not change a single bit.

* The reads' DAC and ADC pick their quantization level by multiplying with a reciprocal
  and fall back to division near rounding ties: compared here element by element, bit for
  bit, with the division formula (the definition) on values built to sit on and next to
  ties, at the clip bounds, signed zeros and extreme divisors.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from rpucircuit.config.rpu import IOConfig
from rpucircuit.model import kernels
from rpucircuit.model.kernels.reads import _adc_row, _dac_row

# --------------------------------------------------------------------------- quantizers


@numba.njit(cache=False)
def _dac_rows(x: np.ndarray, bound: float, step: float, divisors: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape)
    for k in range(x.shape[0]):
        _dac_row(x, k, out, bound, step, divisors[k])
    return out


@numba.njit(cache=False)
def _adc_rows(raw: np.ndarray, z: np.ndarray, io: np.ndarray, mult: float) -> np.ndarray:
    out = np.empty(raw.shape)
    for k in range(raw.shape[0]):
        _adc_row(raw, k, z, k * raw.shape[1], out, io, mult)
    return out


def _dac_definition(x: np.ndarray, bound: float, step: float, divisors: np.ndarray) -> np.ndarray:
    v = np.clip(x / divisors[:, None], -bound, bound)
    return np.asarray(np.rint(v / step) * step)


def _tie_values(rng: np.random.Generator, step: float, levels: int, n: int) -> np.ndarray:
    """Quotients (in steps) exactly on half-integers, a few ulp either side, at and past
    the clip bound, zeros of both signs, and random values."""
    halves = rng.integers(-levels - 2, levels + 2, size=n) + 0.5
    ulps = rng.integers(-4, 5, size=n)
    near = halves * (1.0 + ulps * np.finfo(float).eps)
    bound_q = levels * np.array([1.0, 1.0 - 1e-16, 1.0 + 1e-16, 1.0 + 1e-9, 1.5, 400.0])
    special = np.concatenate([bound_q, -bound_q, [0.0, -0.0, 1e-300, -1e-300]])
    rand = rng.uniform(-1.2 * levels, 1.2 * levels, size=n)
    return np.concatenate([near, special, rand]) * step


@pytest.mark.parametrize("step", [1.0 / 63.0, 1.0 / 126.0, 2.0 / 255.0, 0.047058823529411764])
def test_dac_quantizer_is_bit_identical_to_division(rng: np.random.Generator, step: float) -> None:
    bound = 1.0
    levels = round(bound / step)
    q = _tie_values(rng, step, levels, 2000)  # clipped quotient v = x / divisor
    divisors = np.array([1.0, 0.37, 3.0e-5, 7.5, 1.0e-310, 2.0e300])
    x = np.stack([q * d for d in divisors])  # so that x / divisor lands on the values above
    x[4] = q * 1e-300  # subnormal divisor: the reciprocal overflows, division is used
    got = _dac_rows(x, bound, step, divisors)
    want = _dac_definition(x, bound, step, divisors)
    assert np.array_equal(got.view(np.int64), want.view(np.int64))  # bits, signed zeros too


def test_adc_quantizer_is_bit_identical_to_division(rng: np.random.Generator) -> None:
    io = kernels.pack_io(IOConfig(out_noise=0.06, out_bound=12.0, out_res=1.0 / 510.0))
    step, bound, sigma = io[kernels.IO_OUT_STEP], io[kernels.IO_OUT_BOUND], io[kernels.IO_NOISE]
    target = _tie_values(rng, step, round(bound / step), 3000)
    z = rng.standard_normal(target.size)
    raw = (target - sigma * z).reshape(1, -1)  # raw + σ·z lands next to the targets
    for mult in (1.0, 0.3, 17.0):
        got = _adc_rows(raw, z, io, mult)
        v = np.clip(raw[0] + sigma * z, -bound, bound)
        want = (np.rint(v / step) * step) * mult
        assert np.array_equal(got[0].view(np.int64), want.view(np.int64))
