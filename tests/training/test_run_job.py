"""The sweep's training job (:func:`rpucircuit.training.loop.run_job`) on a tiny real run, and
``test_error_avg``, the metric every shipped experiment reports, from the job to the summary.

Runs: paper A's FC network and RPU preset on the first 300 MNIST training images, 100 test
images, 3 epochs (a few seconds each).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rpucircuit.config.training import ModelSpec, TrainingConfig
from rpucircuit.training import sweep
from rpucircuit.training.data import Mnist
from rpucircuit.training.loop import HISTORY_FIELDS, run_job, train

pytestmark = pytest.mark.training

TINY = TrainingConfig(
    network="fc",
    epochs=3,
    lr=0.1,
    n_train=300,
    n_test=100,
    seed=3,
    eval_last=2,
    model=ModelSpec(preset="gokmen_vlasov_2016"),
)

SCALARS = {
    "test_error_final",
    "test_error_avg",
    "train_loss_final",
    "test_error_min",
    "samples_per_s_mean",
    "train_seconds_total",
}


def test_run_job_result(mnist: Mnist) -> None:
    """Keys, shapes and the scalars against the per-epoch history they summarize."""
    result = run_job(TINY)
    assert set(result) == set(HISTORY_FIELDS) | SCALARS
    for name in HISTORY_FIELDS:
        assert np.asarray(result[name]).shape == (TINY.epochs,), name
    errors = np.asarray(result["test_error"])
    # test errors are counts of misclassified test images over n_test
    np.testing.assert_allclose(errors * TINY.n_test, np.round(errors * TINY.n_test), atol=1e-9)
    assert np.all((errors >= 0.0) & (errors <= 1.0))
    # copies of history entries: exact
    assert result["test_error_final"] == errors[-1]
    assert result["test_error_min"] == errors.min()
    assert result["train_loss_final"] == result["train_loss"][-1]
    # the mean of the last eval_last = 2 test errors; 1e-12: summation order only
    assert result["test_error_avg"] == pytest.approx((errors[-2] + errors[-1]) / 2, rel=1e-12)
    seconds = np.asarray(result["train_seconds"])
    assert result["train_seconds_total"] == pytest.approx(seconds.sum(), rel=1e-12)
    want_speed = TINY.n_train * TINY.epochs / seconds.sum()
    assert result["samples_per_s_mean"] == pytest.approx(want_speed, rel=1e-12)
    # the job is a plain training run: the same numbers as train() in this process (same
    # seed, same generators, same kernels: exact)
    direct = train(TINY, None, data=mnist, progress=False).summary()
    for name in ("test_error", "train_loss"):
        np.testing.assert_array_equal(result[name], direct[name])
    assert result["test_error_avg"] == direct["test_error_avg"]


def test_eval_last_longer_than_the_run_averages_every_epoch(mnist: Mnist) -> None:
    """eval_last = 5 on a 2-epoch run: the mean of both epochs."""
    cfg = dataclasses.replace(TINY, epochs=2, eval_last=5)
    summary = train(cfg, None, data=mnist, progress=False).summary()
    errors = np.asarray(summary["test_error"])
    assert summary["test_error_avg"] == pytest.approx(errors.mean(), rel=1e-12)  # sum order


EXPERIMENT = f"""
[experiment]
name = "tiny-fc"
job = "rpucircuit.training.loop:run_job"
config = "rpucircuit.config.training:TrainingConfig"
metric = "test_error_avg"
curve = "test_error"
yfactor = 100
ylabel = "test error (%)"

[base]
network = "fc"
epochs = {TINY.epochs}
lr = {TINY.lr}
n_train = {TINY.n_train}
n_test = {TINY.n_test}
eval_last = {TINY.eval_last}

[base.model]
preset = "gokmen_vlasov_2016"

[grid]
seed = [1, 2]
"""


def test_summary_reports_test_error_avg(tmp_path: Path) -> None:
    """Two seeds through the sweep (a pool of 2): each job's test_error_avg is the mean of
    its last eval_last test errors, the group's mean and std are taken over those, and the
    summary prints them in %."""
    exp = sweep.parse_experiment(EXPERIMENT)
    out = sweep.run_experiment(exp, tmp_path, n_workers=2, progress=False)
    per_job = []
    for res in out.run.results:
        errors = np.asarray(res["test_error"])
        assert errors.shape == (TINY.epochs,)
        # 1e-12: summation order only
        assert res["test_error_avg"] == pytest.approx(errors[-TINY.eval_last :].mean(), rel=1e-12)
        per_job.append(float(res["test_error_avg"]))
    assert out.table["test_error_avg"] == per_job  # the results table holds them unchanged
    (group,) = out.stats
    assert group["n"] == 2
    assert group["mean"] == pytest.approx(np.mean(per_job), rel=1e-12)
    assert group["std"] == pytest.approx(np.std(per_job, ddof=1), rel=1e-12, abs=1e-15)
    summary = (tmp_path / "summary.md").read_text()
    assert "| test_error_avg (%) | n |" in summary
    mean, std = 100 * group["mean"], 100 * group["std"]  # the report's own product
    assert f"| {mean:.4g} ± {std:.2g} | 2 |" in summary
