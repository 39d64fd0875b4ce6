"""Atomic writes: all or nothing under the real name, ordinary permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rpucircuit.fileio import atomic_path, atomic_write_text, save_png


def test_written_file_has_umask_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(umask)
    assert target.read_text() == "hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_failure_keeps_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "b.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]


def test_save_png_writes_a_png_and_closes_the_figure(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    target = save_png(fig, tmp_path / "plots" / "line.png", dpi=50, metadata={"Software": None})
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"matplotlib" not in target.read_bytes()  # the Software entry was left out
    assert not plt.fignum_exists(fig.number)
    assert sorted(p.name for p in target.parent.iterdir()) == ["line.png"]
