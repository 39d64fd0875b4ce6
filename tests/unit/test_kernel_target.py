"""The vector width the kernels are compiled for (kernels.target): when it asks numba for
512-bit vectors, that numba's code generator took the request, that it leaves a target
numba already set up alone, and that the width changes no update bit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import llvmlite.binding as llvm
import pytest
from numba.core import registry
from numba.core.codegen import get_host_cpu_features

from rpucircuit.model import kernels  # noqa: F401  (imported first: sets numba's target)
from rpucircuit.model.kernels import target

_SUFFIX = ",-prefer-256-bit"
_WIDE_HOST = (
    llvm.get_host_cpu_name() in target.WIDE_CPUS
    and "+avx512f" in get_host_cpu_features().split(",")
)
_UNIT = str(Path(__file__).parent)


def _compiled_for() -> str:
    """The target features numba's code generator of this process compiles for."""
    return str(registry.cpu_target.target_context.codegen().magic_tuple()[2])


def _child(code: str, *, wide: bool) -> list[str]:
    """What ``code`` prints, run in a fresh Python without the user's numba target choice
    (and with ``RPUCIRCUIT_WIDE_VECTORS=0`` unless ``wide``), split into words."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    env.pop(target.OPT_OUT, None)
    if not wide:
        env[target.OPT_OUT] = "0"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=500
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


def _clear_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (target.OPT_OUT, "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
        monkeypatch.delenv(name, raising=False)


def test_wide_vectors_only_on_the_listed_cores_and_without_a_choice_of_the_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_choices(monkeypatch)
    if target.APPLIED is None and target.wide_vector_features() is not None:
        pytest.skip("numba's target was chosen before this test process imported the kernels")
    features = target.wide_vector_features()
    if _WIDE_HOST:
        assert features == f"{get_host_cpu_features()}{_SUFFIX}"
    else:
        assert features is None
    monkeypatch.setenv(target.OPT_OUT, "0")
    assert target.wide_vector_features() is None
    monkeypatch.delenv(target.OPT_OUT)
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2")  # the user's choice wins
    assert target.wide_vector_features() is None
    monkeypatch.delenv("NUMBA_CPU_FEATURES")
    monkeypatch.setenv("NUMBA_CPU_NAME", "generic")
    assert target.wide_vector_features() is None


def test_numba_compiles_for_the_features_chosen_at_import() -> None:
    """Where the module gave numba its features, numba's code generator compiles for them
    (it is set up once per process: a request after that would have been ignored);
    where it did not, the generator keeps LLVM's preference."""
    if target.APPLIED is not None:
        assert _compiled_for() == target.APPLIED == target.wide_vector_features()
        assert target.APPLIED.endswith(_SUFFIX)
    else:
        assert not _compiled_for().endswith(_SUFFIX)


_DEFINED_FIRST = """
import numba

@numba.njit
def first(x):
    return x + 1

from numba.core import config, registry
from rpucircuit.model.kernels import target
print(target.APPLIED is None, config.CPU_FEATURES is None,
      registry.cpu_target.target_context.codegen().magic_tuple()[2].endswith({suffix!r}))
"""


@pytest.mark.skipif(not _WIDE_HOST, reason="the wide features apply on the listed cores only")
def test_a_target_numba_set_up_before_the_kernels_is_left_alone() -> None:
    """A numba function defined before the kernels are imported fixes numba's target: the
    module then changes nothing (no features recorded, numba's config untouched)."""
    assert _child(_DEFINED_FIRST.format(suffix=_SUFFIX), wide=True) == ["True", "True", "False"]


_DIGESTS = """
import sys
sys.path.insert(0, {unit!r})
from numba.core import registry
from test_half_select import _hs_digest, _k0_digest
print(registry.cpu_target.target_context.codegen().magic_tuple()[2].endswith({suffix!r}))
print(_hs_digest((1, 64, 200), 1, 0.1, False, "F"))
print(_hs_digest((1, 16, 26), 20, 0.3, True, "C"))
print(_k0_digest(ir=True, batch=True))
"""


@pytest.mark.slow
@pytest.mark.skipif(target.APPLIED is None, reason="this process compiles with LLVM's width")
def test_the_vector_width_changes_no_update_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The half-select update (sample by sample, and in blocks with IR-drop maps) and the
    batched k = 0 update compiled with LLVM's own width (a process with
    RPUCIRCUIT_WIDE_VECTORS=0) give the digests this process's 512-bit code gives: the
    same bits, so runs keep reproducing whichever width a machine compiles for."""
    monkeypatch.syspath_prepend(_UNIT)
    from test_half_select import _hs_digest, _k0_digest

    here = [
        _hs_digest((1, 64, 200), 1, 0.1, False, "F"),
        _hs_digest((1, 16, 26), 20, 0.3, True, "C"),
        _k0_digest(ir=True, batch=True),
    ]
    child = _child(_DIGESTS.format(unit=_UNIT, suffix=_SUFFIX), wide=False)
    assert child == ["False", *here]  # the child compiled for 256 bits
