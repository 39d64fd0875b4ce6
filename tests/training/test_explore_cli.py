"""``rpucircuit explore noise|onoff`` end to end: real MNIST, real ngspice, tiny schedules.

Each command through the CLI on a tiny schedule (1 epoch of 600 images, η = 0.1, 600 test
images; σ = 0.5 costs points of error there, σ = 0 nothing): the results file read back and
checked against the printed table and against itself; the same sweep on a local Dask
cluster of two workers gives the same numbers as the process pool; a run killed after its
first finished job resumes with only the others.
"""

from __future__ import annotations

import gc
import math
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rpucircuit import cli, store
from rpucircuit.design import explore as ex
from rpucircuit.design import explore_onoff as eo

pytestmark = [pytest.mark.training, pytest.mark.sim, pytest.mark.slow]

TINY = ["--epochs", "1", "--n-train", "600", "--n-test", "600", "--lr", "0.1", "--no-progress"]
NOISE = ["explore", "noise", "--sigmas", "0,0.5", "--seeds", "1,2", *TINY]
ONOFF = [
    "explore",
    "onoff",
    "--on-off",
    "2,8",
    "--e-n",
    "0,300",
    "--t-meas",
    "80",
    "--seeds",
    "1",
    *TINY,
]

NOISE_POINT_REL = 0.02
"""ngspice ``.noise`` against the analytic budget: the extraction's own tolerance
(:data:`rpucircuit.calibration.noise.NOISE_POINT_REL`, the spectrum's finite grid)."""


@pytest.fixture(scope="module")
def noise_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("explore") / "noise"
    code = cli.main([*NOISE, "--jobs", "2", "--out", str(out)])
    assert code == 0
    return {"out": out}


def test_noise_writes_results_report_and_plot(
    noise_run: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    out = noise_run["out"]
    assert isinstance(out, Path)
    tree, prov = store.load(out / "results.h5", kind=ex.NOISE_KIND, schema_version=1)
    assert prov.config_toml  # the study that ran
    np.testing.assert_array_equal(tree["sigma_w"], [0.0, 0.5])
    err = tree["test_error_pct"]
    assert err.shape == (2, 2)
    # penalty = error − the same seed's σ = 0 error, exactly as stored
    np.testing.assert_array_equal(tree["penalty_pts"], err - err[:, :1])
    # σ = 0.5 on every read of a briefly trained net costs well over the 0.3-point threshold
    assert tree["penalty_mean_pts"][1] > 0.3
    assert 0.0 < tree["acceptable_sigma_w"] < 0.5
    assert tree["acceptable_sigma_low_w"] <= tree["acceptable_sigma_w"]
    assert tree["acceptable_sigma_w"] <= tree["acceptable_sigma_high_w"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"{tree['acceptable_sigma_w']:.3g}" in report
    assert (out / "penalty_vs_sigma.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # rerun: every job from the cache, the same table printed
    capsys.readouterr()
    assert cli.main([*NOISE, "--jobs", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 jobs (4 cached)" in printed
    assert f"| 0.5 | {np.mean(err[:, 1]):.2f} ± " in printed


def test_onoff_end_to_end_with_ngspice(tmp_path: Path) -> None:
    out = tmp_path / "onoff"
    assert cli.main([*ONOFF, "--spice-points", "2", "--jobs", "2", "--out", str(out)]) == 0
    tree, _ = store.load(out / "results.h5", kind=eo.ONOFF_KIND, schema_version=1)
    assert tree["sigma_w"].shape == (1, 2, 2, 6)
    assert tree["test_error_pct"].shape == (1, 1, 2, 2)
    # a loud op-amp (300 nV/√Hz: σ ≈ 1.2 on the longest read at on/off 2) costs accuracy
    # even on the tiny schedule, whose seed-to-seed changes reach several points
    assert tree["sigma_w"][0, 0, 1].max() > 1.0
    assert tree["penalty_mean_pts"][0][0, 1] > 0.3
    # ngspice .noise against the budget at the chosen points and at every line length
    spice = tree["spice"]
    np.testing.assert_allclose(
        spice["sigma_spice_w"], spice["sigma_analytic_w"], rtol=NOISE_POINT_REL
    )
    design = tree["design_point"]
    np.testing.assert_array_equal(design["n_devices"], [10, 128, 129, 256, 257, 785])
    np.testing.assert_allclose(
        design["sigma_spice_w"], design["sigma_analytic_w"], rtol=NOISE_POINT_REL
    )
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Acceptable op-amp noise e_n (nV/√Hz)" in report
    assert "## ngspice `.noise` checks (longest line)" in report
    assert (out / "acceptable_opamp_noise.png").is_file()


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    import distributed  # a test dependency: missing it fails, never skips

    gc.collect()  # no finalizer of an earlier test's Client may run inside the start-up
    with distributed.LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize("command", ["noise", "onoff"])
def test_dask_matches_the_pool(command: str, tmp_path: Path, dask_cluster: str) -> None:
    """Same jobs on a local Dask cluster of two workers and on a pool of two: the same
    test errors, bit for bit (training is deterministic in its config)."""
    args = NOISE if command == "noise" else [*ONOFF, "--spice-points", "0"]
    trees = []
    for where in (["--jobs", "2"], ["--scheduler", dask_cluster]):
        out = tmp_path / where[0].strip("-")
        assert cli.main([*args, *where, "--out", str(out)]) == 0
        trees.append(store.load(out / "results.h5")[0])
    pool, dask = trees
    np.testing.assert_array_equal(pool["test_error_pct"], dask["test_error_pct"])
    np.testing.assert_array_equal(pool["job_keys"], dask["job_keys"])
    if command == "onoff":
        np.testing.assert_array_equal(
            pool["e_n_max_train_v_per_rthz"], dask["e_n_max_train_v_per_rthz"]
        )


def test_killed_run_resumes_with_only_the_unfinished_jobs(
    tmp_path: Path,
    cli_killed_at_first_job: Callable[[list[str], Path], None],
    cli_in_process: Callable[[list[str]], subprocess.CompletedProcess[str]],
) -> None:
    """``explore onoff`` in a separate process on one worker, killed (SIGKILL, whole process
    group) once its first job is cached: the rerun takes exactly the cached jobs from the
    cache and trains the rest."""
    out = tmp_path / "onoff"
    cache = out / "cache"
    args = [*ONOFF, "--spice-points", "0", "--jobs", "1", "--out", str(out)]
    cli_killed_at_first_job(args, cache)
    done = len(list(cache.glob("*.h5")))
    distinct = 1 + 2 * 2  # the seed's baseline and the 2 × 2 grid (no two σ sets alike)
    assert 1 <= done < distinct
    assert not (out / "results.h5").exists()
    # the rerun in a fresh process too: a job's key holds the digest of the training code,
    # which a process computes once (both runs must see the same source files)
    rerun = cli_in_process(args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{distinct} jobs ({done} cached)" in rerun.stdout
    assert len(list(cache.glob("*.h5"))) == distinct
    tree, _ = store.load(out / "results.h5")
    assert not math.isnan(float(tree["baseline_test_error_pct"][0]))
