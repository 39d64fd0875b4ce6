"""The numba cache guard: a cache compiled from other kernel sources is dropped.

numba checks a cached function only against its own file; the end-to-end test below shows
the stale result numba gives without the guard (a caller compiled against an old callee)
and the fresh one with it, in separate interpreters as a user would see it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from rpucircuit.model.kernels import cacheguard

CALLEE = """
import numba

@numba.njit(cache=True)
def f(x):
    return x + {inc}
"""

CALLER = """
import numba
from pk.callee import f

@numba.njit(cache=True)
def g(x):
    return 2 * f(x)
"""


def _package(root: Path, *, guarded: bool, inc: int) -> None:
    pk = root / "pk"
    pk.mkdir(exist_ok=True)
    init = "from pathlib import Path\n"
    if guarded:
        init += (
            "from rpucircuit.model.kernels.cacheguard import guard\n"
            "guard(Path(__file__).resolve().parent)\n"
        )
    (pk / "__init__.py").write_text(init)
    (pk / "callee.py").write_text(textwrap.dedent(CALLEE.format(inc=inc)))
    (pk / "caller.py").write_text(textwrap.dedent(CALLER))


def _g_of_1(root: Path) -> int:
    repo = Path(cacheguard.__file__).parents[3]
    out = subprocess.run(
        [sys.executable, "-c", "import pk.caller; print(pk.caller.g(1))"],
        cwd=root, capture_output=True, text=True, timeout=300, check=True,
        env={"PYTHONPATH": f"{root}:{repo}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1])


def test_unguarded_numba_keeps_a_stale_caller_and_the_guard_drops_it(tmp_path: Path) -> None:
    plain, guarded = tmp_path / "plain", tmp_path / "guarded"
    plain.mkdir()
    guarded.mkdir()
    for root, is_guarded in ((plain, False), (guarded, True)):
        _package(root, guarded=is_guarded, inc=1)
        assert _g_of_1(root) == 4  # compiled and cached
        _package(root, guarded=is_guarded, inc=10)  # only the callee's file changes
    assert _g_of_1(plain) == 4  # numba alone: the caller's cache still holds the old callee
    assert _g_of_1(guarded) == 22  # guarded: recompiled against the new callee
    assert (guarded / "pk" / "__pycache__" / cacheguard.STAMP_NAME).is_file()


def test_guard_clears_only_when_the_sources_change(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    (cache / "a.f-1.py311.nbi").write_bytes(b"old")
    (cache / "a.f-1.py311.1.nbc").write_bytes(b"old")
    (cache / "a.cpython-311.pyc").write_bytes(b"keep")
    assert cacheguard.guard(tmp_path)  # no stamp: cleared
    assert sorted(p.name for p in cache.iterdir()) == [
        "a.cpython-311.pyc",
        cacheguard.STAMP_NAME,
    ]
    (cache / "a.f-1.py311.nbi").write_bytes(b"new")
    assert not cacheguard.guard(tmp_path)  # same sources: kept
    assert (cache / "a.f-1.py311.nbi").is_file()
    (tmp_path / "a.py").write_text("x = 2\n")
    assert cacheguard.guard(tmp_path)  # changed: cleared again
    assert not (cache / "a.f-1.py311.nbi").exists()
    assert (cache / cacheguard.STAMP_NAME).read_text().strip() == cacheguard.source_digest(tmp_path)


def test_guard_leaves_an_unwritable_cache_alone(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").write_text("not a folder")  # mkdir and listing both fail
    assert not cacheguard.guard(tmp_path)


def test_the_kernels_digest_covers_the_config_their_layout_freezes() -> None:
    kernels_dir = Path(cacheguard.__file__).resolve().parent
    root = kernels_dir.parents[1]
    assert all((root / rel).is_file() for rel in cacheguard.EXTRA_SOURCES)
    # the same folder's files alone give another digest: the extra sources count
    assert cacheguard.source_digest(kernels_dir) != _digest_of(sorted(kernels_dir.glob("*.py")))


def _digest_of(paths: list[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()
