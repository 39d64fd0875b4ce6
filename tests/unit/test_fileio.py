"""Atomic writes: all or nothing under the real name, ordinary permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rpucircuit.fileio import atomic_path, atomic_write_text


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
