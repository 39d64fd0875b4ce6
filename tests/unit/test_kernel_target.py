"""The vector width the kernels are compiled for (kernels.target): when it asks numba for
512-bit vectors, that numba's code generator took the request, and that the width changes
no update bit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from numba.core import registry
from numba.core.codegen import get_host_cpu_features

from rpucircuit.model import kernels  # noqa: F401  (imported first: sets numba's target)
from rpucircuit.model.kernels import target

_HOST_AVX512 = "+avx512f" in get_host_cpu_features().split(",")


def _clear_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (target.OPT_OUT, "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
        monkeypatch.delenv(name, raising=False)


def test_wide_vectors_only_with_avx512_and_without_a_choice_of_the_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_choices(monkeypatch)
    features = target.wide_vector_features()
    if _HOST_AVX512:
        assert features == f"{get_host_cpu_features()},-prefer-256-bit"
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
    """Importing the kernels set numba's code generator up with the wide features where
    they apply (it is set up once per process: a request after that would be ignored)."""
    compiled_for = registry.cpu_target.target_context.codegen().magic_tuple()[2]
    wanted = None if os.environ.get(target.OPT_OUT, "").strip() == "0" else _HOST_AVX512
    if wanted and not (os.environ.get("NUMBA_CPU_NAME") or os.environ.get("NUMBA_CPU_FEATURES")):
        assert compiled_for == target.wide_vector_features()
    else:
        assert not compiled_for.endswith(",-prefer-256-bit")


_DIGESTS = """
import sys
sys.path.insert(0, {unit!r})
from test_half_select import _hs_digest, _k0_digest
print(_hs_digest((1, 64, 200), 1, 0.1, False, "F"))
print(_hs_digest((1, 16, 26), 20, 0.3, True, "C"))
print(_k0_digest(ir=True, batch=True))
"""


@pytest.mark.skipif(not _HOST_AVX512, reason="without AVX-512 both widths are the same code")
def test_the_vector_width_changes_no_update_bit() -> None:
    """The half-select update (sample by sample, and in blocks with IR-drop maps) and the
    batched k = 0 update compiled with LLVM's own width (a process with
    RPUCIRCUIT_WIDE_VECTORS=0) give the digests this process's 512-bit code gives: the
    same bits, so runs keep reproducing whichever width a machine compiles for."""
    from test_half_select import _hs_digest, _k0_digest

    here = [
        _hs_digest((1, 64, 200), 1, 0.1, False, "F"),
        _hs_digest((1, 16, 26), 20, 0.3, True, "C"),
        _k0_digest(ir=True, batch=True),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    env[target.OPT_OUT] = "0"
    out = subprocess.run(
        [sys.executable, "-c", _DIGESTS.format(unit=str(Path(__file__).parent))],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert out.stdout.split() == here
