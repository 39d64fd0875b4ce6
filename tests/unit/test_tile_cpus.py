"""The model path imports and runs on platforms without ``os.sched_getaffinity`` (macOS,
Windows): the tile counts usable CPUs on first use, with a fallback, never at import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from rpucircuit.model import tile

_NO_AFFINITY = """
import json, os
del os.sched_getaffinity  # as on macOS: the attribute does not exist
import numpy as np
from rpucircuit.config import rpu
from rpucircuit.model import tile
from rpucircuit.model.network import fully_connected
before = tile.usable_cpus.cache_info().currsize  # nothing counted at import
net = fully_connected((6, 4, 3), rpu.gokmen_vlasov_2016(), rng=np.random.default_rng(0))
net.fused = False  # the layer path, which asks the tile whether to hand over
t = tile.AnalogTile(4, 5, rpu.gokmen_vlasov_2016(), rng=np.random.default_rng(1))
t.update(np.ones(5), np.full(4, 0.1), 0.01)
loss = net.train_step(np.linspace(0.0, 1.0, 6), 1, 0.05)
print(json.dumps({"before": before, "cpus": tile.usable_cpus(), "loss": loss,
                  "expected": (getattr(os, "process_cpu_count", None) or os.cpu_count)()}))
"""


@pytest.fixture
def fresh_count() -> Iterator[None]:
    """The cached CPU count forgotten before and after (each test sees its own platform)."""
    tile.usable_cpus.cache_clear()
    yield
    tile.usable_cpus.cache_clear()


def test_model_path_without_sched_getaffinity_in_a_fresh_interpreter() -> None:
    """A fresh interpreter (so no module is imported yet) without the attribute imports the
    model path, trains a step and counts the CPUs with the fallback."""
    r = subprocess.run(
        [sys.executable, "-c", _NO_AFFINITY],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["before"] == 0
    assert out["cpus"] == max(1, out["expected"] or 1)
    assert out["loss"] > 0.0


@pytest.mark.usefixtures("fresh_count")
def test_usable_cpus_uses_the_affinity_mask_where_there_is_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert tile.usable_cpus() == 3


@pytest.mark.usefixtures("fresh_count")
def test_usable_cpus_falls_back_without_an_affinity_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "process_cpu_count", lambda: 5, raising=False)  # Python 3.13+
    assert tile.usable_cpus() == 5
    tile.usable_cpus.cache_clear()
    monkeypatch.delattr(os, "process_cpu_count", raising=False)  # before 3.13
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert tile.usable_cpus() == 7
    tile.usable_cpus.cache_clear()
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # undeterminable: count one
    assert tile.usable_cpus() == 1
