"""Rendered netlists of a 2×3 tile, line by line against committed golden files.

Regenerate with ``python tests/golden/regenerate.py`` and review the diff before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from regenerate import DATA, golden_netlists

CASES = sorted(golden_netlists())


@pytest.mark.parametrize("name", CASES)
def test_netlist_matches_golden(name: str) -> None:
    got = golden_netlists()[name].splitlines()
    want = (DATA / name).read_text(encoding="utf-8").splitlines()
    for k, (g, w) in enumerate(zip(got, want, strict=False), start=1):
        assert g == w, f"{name} line {k} differs (regenerate: python tests/golden/regenerate.py)"
    assert len(got) == len(want), f"{name}: {len(got)} lines, golden has {len(want)}"


def test_golden_files_exist() -> None:
    assert {p.name for p in Path(DATA).glob("*.cir")} >= set(CASES)
