"""The vector width the kernels are compiled for, chosen before numba sets up its CPU target.

LLVM tunes the x86 processors that have 512-bit vector registers (AVX-512) of Intel's
Skylake line and later to prefer 256-bit vectors (its ``prefer-256-bit`` tuning: on
Skylake-SP and Cascade Lake 512-bit instructions lower the clock), so on them every
vectorized loop of the kernels runs at half the width the processor offers. On a 2-core
Intel Xeon virtual machine (LLVM takes its cores for Rocket Lake) the full width made the
half-select pass over a pulsing row take 27 % less time (2.25-2.27 against 3.04-3.14 ns per
device), paper A's FC network at k = 0.1 8-12 % less and the CNN about 5 % less
(docs/performance.md has the measurements). Importing this module (the kernels package
does it before defining any compiled function: numba sets up its CPU target at the first)
therefore gives numba the host's features without that preference, as
``NUMBA_CPU_FEATURES`` would (:func:`prefer_wide_vectors`), on the cores of
:data:`WIDE_CPUS` only.

The setting is numba's, so it holds for every numba function the process compiles after
it, not only for the kernels (another package's ``cache=True`` functions then compile once
more for it). It changes nothing where it does not apply: a processor outside
:data:`WIDE_CPUS` or without AVX-512, a user who chose numba's target (``NUMBA_CPU_NAME``
or ``NUMBA_CPU_FEATURES``, in the environment or numba's config file: theirs wins),
``RPUCIRCUIT_WIDE_VECTORS=0`` (LLVM's own tuning), or numba's CPU target already set up by
a numba function defined before the kernels were imported (its features are then fixed).

The vector width changes no update or random stream (their loops keep their order of
operations; the pinned digests hold with either width); the reads' sums, which may be
reassociated, can round differently, as they can on another processor.
"""

from __future__ import annotations

import os
from typing import Any

OPT_OUT = "RPUCIRCUIT_WIDE_VECTORS"
"""Environment variable: ``0`` keeps LLVM's own vector-width tuning."""

WIDE_CPUS = frozenset(
    {
        "icelake-client",
        "icelake-server",
        "tigerlake",
        "rocketlake",
        "sapphirerapids",
        "emeraldrapids",
        "graniterapids",
        "graniterapids-d",
        "diamondrapids",
    }
)
"""LLVM's names of the cores whose kernels get 512-bit vectors: Intel's from Ice Lake on,
whose 512-bit instructions lower the clock little or not at all (measured: rocketlake).
Skylake-SP, Cascade Lake and Cooper Lake keep LLVM's choice, and so do AMD's cores (not
measured)."""

APPLIED: str | None = None
"""The target features this module gave numba, or None where it left numba's target alone."""


def _numba_config() -> Any:
    from numba.core import config

    return config


def _users_choice() -> bool:
    """Whether numba's CPU or features were chosen outside this module."""
    if any(os.environ.get(name) for name in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")):
        return True
    config = _numba_config()
    features = getattr(config, "CPU_FEATURES", None)
    return getattr(config, "CPU_NAME", None) is not None or features not in (None, APPLIED)


def wide_vector_features() -> str | None:
    """numba's target features for this host without LLVM's preference for 256-bit
    vectors, or None where this module does not apply (see its docstring)."""
    if os.environ.get(OPT_OUT, "").strip() == "0" or _users_choice():
        return None
    try:
        import llvmlite.binding as llvm  # type: ignore[import-untyped]
        from numba.core import codegen

        host: Any = getattr(codegen, "get_host_cpu_features")  # noqa: B009 (untyped in numba)
        features = str(host())
        name = str(llvm.get_host_cpu_name())
    except (ImportError, AttributeError, RuntimeError):  # another numba: leave it alone
        return None
    if name not in WIDE_CPUS or "+avx512f" not in features.split(","):
        return None
    return f"{features},-prefer-256-bit"


def target_set_up() -> bool:
    """Whether numba's CPU target exists already (its features are then fixed); True for a
    numba whose registry this module does not know."""
    try:
        from numba.core import registry

        return "_toplevel_target_context" in vars(registry.cpu_target)
    except (ImportError, AttributeError, TypeError):
        return True


def prefer_wide_vectors() -> bool:
    """Give numba :func:`wide_vector_features` as its target features if they apply and
    numba's CPU target is not set up yet; returns whether it did (:data:`APPLIED`)."""
    global APPLIED
    features = wide_vector_features()
    if features is None or target_set_up():
        return False
    setattr(_numba_config(), "CPU_FEATURES", features)  # noqa: B010 (untyped in numba)
    APPLIED = features
    return True


prefer_wide_vectors()
