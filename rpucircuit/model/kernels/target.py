"""The vector width the kernels are compiled for, chosen before numba sets up its CPU target.

LLVM tunes several x86 processors that have 512-bit vector registers (AVX-512) to prefer
256-bit vectors (its ``prefer-256-bit`` tuning, for Intel cores on which 512-bit
instructions once lowered the clock), so on them every vectorized loop of the kernels ran
at half the width the processor offers. On a 2-core Intel Xeon virtual machine (LLVM takes
its cores for Rocket Lake) the full width made the half-select pass over a pulsing row 27 %
faster (2.27 against 3.1 ns per device), paper A's FC network at k = 0.1 8-12 % and the
CNN about 5 % (docs/performance.md has the measurements). Importing this module (the kernels
package does it first) therefore gives numba the host's features without that preference,
as ``NUMBA_CPU_FEATURES`` would (:func:`prefer_wide_vectors`).

It does nothing where it does not apply: a processor without AVX-512 (nothing to widen), a
user who chose numba's target (``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES`` set: theirs
wins), ``RPUCIRCUIT_WIDE_VECTORS=0`` (LLVM's own tuning), or numba's CPU target already set
up by code that compiled before the kernels were imported (its features are then fixed).

The vector width changes no update or random stream (their loops keep their order of
operations; the pinned digests hold with either width); the reads' sums, which may be
reassociated, can round differently, as they can on another processor.
"""

from __future__ import annotations

import os
from typing import Any

OPT_OUT = "RPUCIRCUIT_WIDE_VECTORS"
"""Environment variable: ``0`` keeps LLVM's own vector-width tuning."""

_USERS_CHOICE = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")


def wide_vector_features() -> str | None:
    """numba's target features for this host without LLVM's preference for 256-bit
    vectors, or None where :mod:`this module <rpucircuit.model.kernels.target>` does not
    apply (see its docstring)."""
    if os.environ.get(OPT_OUT, "").strip() == "0":
        return None
    if any(os.environ.get(name) for name in _USERS_CHOICE):
        return None
    try:
        from numba.core import codegen

        host: Any = getattr(codegen, "get_host_cpu_features")  # noqa: B009 (untyped in numba)
        features = str(host())
    except (ImportError, AttributeError):  # another numba: leave its target alone
        return None
    if "+avx512f" not in features.split(","):
        return None
    return f"{features},-prefer-256-bit"


def prefer_wide_vectors() -> bool:
    """Give numba :func:`wide_vector_features` as its target features if they apply and
    the user left numba's own setting alone; returns whether it did."""
    from numba.core import config

    features = wide_vector_features()
    if features is None or getattr(config, "CPU_FEATURES", None) is not None:
        return False
    setattr(config, "CPU_FEATURES", features)  # noqa: B010 (untyped in numba)
    return True


prefer_wide_vectors()
