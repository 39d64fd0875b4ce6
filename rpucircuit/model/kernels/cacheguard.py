"""Keep numba's on-disk cache of the kernels consistent with their source.

numba (``cache=True``) checks a cached function against the modification time and size of
the file that defines it, not of the files it calls: a compiled ``dense_train_step``
inlines the update kernels of ``updates.py``, so after an edit of ``updates.py`` alone (a
``git pull`` in an editable install) its cached machine code would silently run the old
update. :func:`guard`, run when this module is imported (first thing the kernels package
does), closes that gap: it hashes the source of every kernel module and,
when the hash differs from the one stamped beside the cache, deletes the package's numba
cache files before any kernel is loaded, so that everything compiles afresh once.

Best effort by design: an unwritable cache folder (a read-only install, where every file
of an upgrade is new anyway) is left alone; concurrent processes may both clear (numba
then compiles again, nothing breaks).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

STAMP_NAME = "rpucircuit-kernels.stamp"
"""File beside the cache holding the hash of the kernel sources it was compiled from."""

_CACHE_SUFFIXES = (".nbi", ".nbc")


EXTRA_SOURCES = ("config/rpu.py",)
"""Files outside the kernels whose constants compiled kernels freeze (relative to the
``rpucircuit`` package): ``config/rpu.py`` sizes the parameter layout (``MAX_TRANSFER_TERMS``)."""


def source_digest(package_dir: Path) -> str:
    """sha256 over the names and contents of the ``*.py`` files of ``package_dir`` and, for
    the kernels package itself, of :data:`EXTRA_SOURCES`."""
    h = hashlib.sha256()
    paths = sorted(package_dir.glob("*.py"))
    root = Path(__file__).resolve().parents[2]  # the rpucircuit package
    if package_dir.resolve() == Path(__file__).resolve().parent:
        paths += [root / rel for rel in EXTRA_SOURCES if (root / rel).is_file()]
    for path in paths:
        h.update(path.name.encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def cache_dirs(package_dir: Path) -> list[Path]:
    """Every folder numba may keep this package's cache in, as its locators choose it:
    ``NUMBA_CACHE_DIR`` (mirrored), ``__pycache__`` beside the sources, and the user-wide
    cache folder (used when ``__pycache__`` is not writable)."""
    dirs = [package_dir / "__pycache__"]
    try:
        from numba.core import caching, config  # numba's own locators decide these paths

        locator: Any = getattr(caching, "_CacheLocator")  # noqa: B009 (untyped in numba)
        subpath = str(locator.get_suitable_cache_subpath(str(package_dir / "x.py")))
        cache_dir = str(getattr(config, "CACHE_DIR", "") or "")
        if cache_dir:
            dirs.insert(0, Path(cache_dir) / subpath)
        app_dirs: Any = getattr(caching, "AppDirs")  # noqa: B009 (untyped in numba)
        dirs.append(Path(app_dirs(appname="numba", appauthor=False).user_cache_dir) / subpath)
    except (ImportError, AttributeError, TypeError):  # another numba: the in-tree folder only
        pass
    return dirs


def guard(package_dir: Path) -> bool:
    """Delete the numba cache files of ``package_dir`` if its sources changed since they
    were stamped; stamp the current sources. Returns whether anything was cleared."""
    digest = source_digest(package_dir)
    in_tree = package_dir / "__pycache__"
    cleared = False
    for folder in cache_dirs(package_dir):
        stamp = folder / STAMP_NAME
        try:
            if stamp.read_text().strip() == digest:
                continue
        except OSError:
            pass  # no stamp yet: whatever is cached may predate it
        try:
            if folder == in_tree:
                folder.mkdir(exist_ok=True)  # stamp a fresh install before numba caches
            elif not folder.is_dir():
                continue  # numba never cached here
            for entry in folder.iterdir():
                if entry.suffix in _CACHE_SUFFIXES:
                    entry.unlink(missing_ok=True)
                    cleared = True
            tmp = folder / f"{STAMP_NAME}.{os.getpid()}.tmp"
            tmp.write_text(digest + "\n")
            os.replace(tmp, stamp)
        except OSError:
            continue  # read-only or vanished: numba falls back to its own checks
    return cleared


guard(Path(__file__).resolve().parent)
