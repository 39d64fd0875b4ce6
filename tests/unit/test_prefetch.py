"""The software prefetch of the compiled loops (kernels.prefetch): it compiles to a prefetch
instruction, changes no value, and refuses what it cannot address."""

from __future__ import annotations

import platform
import re

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from rpucircuit.model.kernels.prefetch import prefetch_for_write


@numba.njit
def _column_sum(a: np.ndarray, j: int, ahead: int) -> float:  # pragma: no cover - compiled
    total = 0.0
    for i in range(a.shape[0]):
        if ahead > 0 and i + ahead < a.shape[0]:  # ahead = 0: no prefetch
            prefetch_for_write(a, i + ahead, j)
        a[i, j] += 1.0
        total += a[i, j]
    return total


def test_prefetch_changes_no_value() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=(40, 13))
    b = a.copy()
    assert _column_sum(a, 3, 8) == _column_sum(b, 3, 0)  # the same loop, with and without
    np.testing.assert_array_equal(a, b)
    expected = b.copy()
    expected[:, 3] += 1.0
    assert _column_sum(b, 3, 5) == pytest.approx(float(np.sum(expected[:, 3])), rel=1e-15)
    np.testing.assert_array_equal(b, expected)


def test_prefetch_reaches_llvm() -> None:
    a = np.zeros((4, 4))
    _column_sum(a, 0, 2)
    ir = "\n".join(_column_sum.inspect_llvm().values())
    assert re.search(r"call void @llvm\.prefetch\.\w+\(", ir)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 assembly")
def test_prefetch_is_an_instruction() -> None:
    a = np.zeros((4, 4))
    _column_sum(a, 0, 2)
    asm = "\n".join(_column_sum.inspect_asm().values()).lower()
    # the instruction, not a symbol name (numba's mangled names hold the module's name)
    assert re.search(r"^\s*prefetch(w|wt1|t0|t1|t2|nta)\s", asm, re.MULTILINE)


def test_prefetch_refuses_other_arguments() -> None:
    @numba.njit
    def on_vector(v: np.ndarray) -> None:  # pragma: no cover - compiled
        prefetch_for_write(v, 0, 0)

    @numba.njit
    def float_index(a: np.ndarray) -> None:  # pragma: no cover - compiled
        prefetch_for_write(a, 1.5, 0)

    with pytest.raises(TypingError):
        on_vector(np.zeros(3))
    with pytest.raises(TypingError):
        float_index(np.zeros((3, 3)))
