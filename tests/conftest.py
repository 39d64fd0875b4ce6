"""Shared fixtures: explicit random generators, temporary folders."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test (tests never seed globally)."""
    return np.random.default_rng(20161231)
