"""The shipped experiment definitions parse, and every job of both schedules validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpucircuit.config.training import TrainingConfig
from rpucircuit.training import sweep

EXPERIMENTS = sorted((Path(__file__).parents[2] / "experiments").glob("*.toml"))


def test_there_are_experiments() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {"paper-a-baselines", "paper-a-nonlinearity", "paper-b-cnn-management"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_file(path: Path) -> None:
    exp = sweep.load_experiment(path)
    assert exp.name == path.stem
    full, quick = exp.jobs(), exp.jobs(quick=True)
    assert all(isinstance(j.config, TrainingConfig) for j in full + quick)
    # full schedule: the papers' 30 epochs on all images; quick: shorter, fewer seeds
    assert {(j.config.epochs, j.config.n_train) for j in full} == {(30, 60000)}
    assert all(j.config.epochs < 30 and j.config.n_train < 60000 for j in quick)
    assert {j.config.seed for j in full} == {1, 2, 3}
    assert {j.config.seed for j in quick} == {1}
    assert len(quick) * 3 <= len(full)
