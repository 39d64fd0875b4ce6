"""Atomic file output: write to a temporary name beside the target, then rename.

A crash or a killed process never leaves a half-written file under the real name; the
temporary file is removed when the writer raises.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    The caller writes the complete file to the yielded path (with any library that takes a
    file name: h5py, matplotlib, numpy). If the body raises, the temporary file is deleted
    and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); give the result the permissions any other new
    # file would get under the process umask.
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically; return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def save_png(
    fig: Any, target: str | Path, *, dpi: int, metadata: dict[str, Any] | None = None
) -> Path:
    """Write a matplotlib figure to ``target`` as PNG atomically, close it, return the path.

    ``metadata`` goes to ``savefig`` (``{"Software": None}`` leaves out matplotlib's version,
    for files that must be the same bytes under another matplotlib).
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata=metadata)
    finally:
        plt.close(fig)
    return Path(target)
