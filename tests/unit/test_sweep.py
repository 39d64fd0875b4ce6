"""Sweep engine: job keys, the result cache (resume), pool vs a real Dask cluster, reports."""

from __future__ import annotations

import csv
import dataclasses
import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rpucircuit import jobs as engine
from rpucircuit import store
from rpucircuit.config.base import check_nonnegative, config_key
from rpucircuit.errors import ConfigError, StoreError, SweepError
from rpucircuit.training import report, sweep


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ToyConfig:
    """A small config for sweep tests (the engine is generic over configs)."""

    a: float = 1.0
    """Scale of the toy result (dimensionless)."""
    b: int = 3
    """Length of the toy curve."""
    seed: int = 0
    """Seed of the toy noise."""
    fail: bool = False
    """Raise instead of returning (to test failure reporting)."""
    sleep_s: float = 0.0
    """Seconds to sleep (s), for timing tests."""

    def __post_init__(self) -> None:
        check_nonnegative("sleep_s", self.sleep_s)


UPDATE_THREAD_ENV = engine._SINGLE_THREAD_ENV.get("RPUCIRCUIT_UPDATE_THREAD", "unset")
"""What the engine sets the tile's update-thread variable to in its workers ("0"), or
"unset" once the job function turns the thread off itself rather than through it."""


def toy_job(cfg: ToyConfig) -> dict[str, Any]:
    """Deterministic in its config: same config, same result, in any process."""
    if cfg.fail:
        raise RuntimeError(f"toy job a={cfg.a} failed on purpose")
    time.sleep(cfg.sleep_s)
    noise = np.random.default_rng(cfg.seed).normal()
    return {"value": cfg.a * cfg.b + noise, "curve": cfg.a * np.arange(cfg.b), "tag": "toy"}


def reference(cfg: ToyConfig) -> float:
    """The toy value computed independently of the engine."""
    return cfg.a * cfg.b + float(np.random.default_rng(cfg.seed).normal())


def toy_jobs(n: int = 4) -> list[engine.Job]:
    return [engine.make_job(ToyConfig(a=float(i), seed=i), {"a": float(i)}) for i in range(n)]


def test_job_key_is_config_key() -> None:
    job = engine.make_job(ToyConfig(a=2.0), {"a": 2.0})
    assert job.key == config_key(ToyConfig(a=2.0))
    assert job.key != engine.make_job(ToyConfig(a=2.5)).key


def test_pool_runs_and_caches(tmp_path: Path) -> None:
    jobs = toy_jobs(4)
    run = engine.run_jobs(toy_job, jobs, cache_dir=tmp_path, n_workers=2, progress=False)
    # exact: the same float64 arithmetic in a worker process and here
    assert [r["value"] for r in run.results] == [reference(j.config) for j in jobs]
    np.testing.assert_array_equal(run.results[3]["curve"], [0.0, 3.0, 6.0])
    assert run.cached == [False] * 4
    assert all(engine.ResultCache(tmp_path).has(j.key) for j in jobs)
    again = engine.run_jobs(toy_job, jobs, cache_dir=tmp_path, n_workers=2, progress=False)
    assert again.cached == [True] * 4
    assert [r["value"] for r in again.results] == [r["value"] for r in run.results]


def test_resume_does_not_rerun_cached_jobs(tmp_path: Path) -> None:
    """A killed sweep's finished jobs (here: pre-filled cache) are taken, not rerun."""
    jobs = toy_jobs(4)
    cache = engine.ResultCache(tmp_path)
    # a marker no real run of the job function could produce
    cache.save(jobs[1], {"value": -999.0, "curve": np.zeros(1), "tag": "prefilled"})
    run = engine.run_jobs(toy_job, jobs, cache_dir=tmp_path, n_workers=2, progress=False)
    assert run.cached == [False, True, False, False]
    assert run.results[1]["tag"] == "prefilled" and run.results[1]["value"] == -999.0
    assert run.results[2]["value"] == reference(jobs[2].config)


def test_failed_jobs_reported_and_others_cached(tmp_path: Path) -> None:
    jobs = [*toy_jobs(2), engine.make_job(ToyConfig(a=7.0, fail=True), {"a": 7.0})]
    with pytest.raises(
        SweepError, match=r"(?s)1 of 3 job\(s\) failed.*: RuntimeError: toy job a=7.0 failed"
    ):
        engine.run_jobs(toy_job, jobs, cache_dir=tmp_path, n_workers=2, progress=False)
    cache = engine.ResultCache(tmp_path)
    assert cache.has(jobs[0].key) and cache.has(jobs[1].key) and not cache.has(jobs[2].key)


def test_duplicate_configs_run_once(tmp_path: Path) -> None:
    jobs = [
        engine.make_job(ToyConfig(), {"case": "x"}),
        engine.make_job(ToyConfig(), {"case": "y"}),
    ]
    run = engine.run_jobs(toy_job, jobs, cache_dir=tmp_path, n_workers=1, progress=False)
    assert run.results[0]["value"] == run.results[1]["value"] == reference(ToyConfig())
    assert len(list(tmp_path.glob("*.h5"))) == 1


def test_bad_workers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_workers = 0: must be >= 1"):
        engine.run_jobs(toy_job, toy_jobs(1), cache_dir=tmp_path, n_workers=0, progress=False)


def test_unwritable_cache_refused_before_any_job(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create the job cache folder"):
        engine.run_jobs(toy_job, toy_jobs(2), cache_dir=blocker / "cache", progress=False)


def test_cache_entry_of_another_job(tmp_path: Path) -> None:
    a, b = toy_jobs(2)
    cache = engine.ResultCache(tmp_path)
    cache.save(a, {"value": 1.0})
    cache.path(a.key).rename(cache.path(b.key))
    with pytest.raises(StoreError, match="holds the result of job"):
        cache.load(b.key)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "bogus"], ids=["closed", "malformed"])
def test_bad_scheduler_address(address: str, tmp_path: Path) -> None:
    with pytest.raises(SweepError, match=f"cannot connect to the Dask scheduler at '{address}'"):
        engine.run_jobs(
            toy_job,
            toy_jobs(1),
            cache_dir=tmp_path / "cache",
            scheduler=address,
            progress=False,
            connect_timeout_s=1.0,
        )
    assert not (tmp_path / "cache").exists()  # made only once the scheduler answered


def test_cli_sweep_unreachable_scheduler_fails_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A closed port on the loopback interface (nothing listens on port 1): the sweep gives
    up after the default connect timeout (5 s; Dask's own default was 30 s) and leaves no
    output or cache folder behind. Bound 15 s: the timeout plus the Client's start-up and
    its retry back-off on a busy machine."""
    from rpucircuit import cli

    p = tmp_path / "toy.toml"
    p.write_text(EXPERIMENT)
    out = tmp_path / "out"
    args = ["sweep", str(p), "--quick", "--out", str(out), "--no-progress"]
    t0 = time.monotonic()
    assert cli.main([*args, "--scheduler", "tcp://127.0.0.1:1"]) == 1
    assert time.monotonic() - t0 < 15.0
    assert "cannot connect to the Dask scheduler at 'tcp://127.0.0.1:1'" in capsys.readouterr().err
    assert not out.exists()
    # the timeout is an option; a bad value is refused before anything runs
    for bad, message in (("0", "0 must be a finite number of seconds > 0"), ("x", "'x' is not")):
        with pytest.raises(SystemExit, match="2"):
            cli.main([*args, "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", bad])
        assert f"argument --connect-timeout: {message}" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"connect_timeout_s = 0\.0: must be > 0"):
        engine.run_jobs(
            toy_job,
            toy_jobs(1),
            cache_dir=out / "cache",
            scheduler="tcp://127.0.0.1:1",
            progress=False,
            connect_timeout_s=0.0,
        )
    assert not out.exists()


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    import distributed  # a test dependency: missing it fails, never skips

    gc.collect()  # no finalizer of an earlier test's Client may run inside the start-up
    with distributed.LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_matches_pool(tmp_path: Path, dask_cluster: str) -> None:
    jobs = toy_jobs(5)
    pool = engine.run_jobs(toy_job, jobs, cache_dir=tmp_path / "p", n_workers=2, progress=False)
    dask = engine.run_jobs(
        toy_job, jobs, cache_dir=tmp_path / "d", scheduler=dask_cluster, progress=False
    )
    assert dask.cached == [False] * 5
    for rp, rd in zip(pool.results, dask.results, strict=True):
        assert rp["value"] == rd["value"]  # exact: deterministic per config
        np.testing.assert_array_equal(rp["curve"], rd["curve"])


def dask_state_job(cfg: ToyConfig) -> dict[str, Any]:
    """Reports, from inside a Dask worker, what its job runs with."""
    import os

    import distributed

    callbacks = distributed.get_worker().periodic_callbacks
    return {
        "update_thread": os.environ.get("RPUCIRCUIT_UPDATE_THREAD", "unset"),
        "profiling": callbacks["profile"].is_running(),
        "tick_ms": float(callbacks["tick"].callback_time),
    }


def _server_state(dask_worker: Any = None, dask_scheduler: Any = None) -> tuple[float, bool]:
    """(event-loop tick in ms, profiler running) of a Dask worker, nanny or scheduler."""
    server = dask_worker if dask_worker is not None else dask_scheduler
    profile = server.periodic_callbacks.get("profile")
    return float(server.periodic_callbacks["tick"].callback_time), bool(
        profile is not None and profile.is_running()
    )


def test_dask_jobs_run_on_a_quieted_cluster(tmp_path: Path, dask_cluster: str) -> None:
    """While a sweep runs, its jobs have no update thread, the workers' profiler is off and
    every server ticks slowly; afterwards the cluster is exactly as it was."""
    import os

    import distributed

    with distributed.Client(dask_cluster) as client:  # type: ignore[no-untyped-call]

        def servers() -> tuple[Any, Any, Any]:
            return (
                client.run(_server_state),
                client.run(_server_state, nanny=True),
                client.run_on_scheduler(_server_state),
            )

        before = servers()
        env_before = client.run(os.environ.get, "RPUCIRCUIT_UPDATE_THREAD")
        run = engine.run_jobs(
            dask_state_job, toy_jobs(2), cache_dir=tmp_path, scheduler=dask_cluster, progress=False
        )
        # a value the worker's environment sets already is kept (as the pool keeps it)
        assert [r["update_thread"] for r in run.results] == [
            v if v is not None else UPDATE_THREAD_ENV for v in list(env_before.values())[:1] * 2
        ]
        assert [bool(r["profiling"]) for r in run.results] == [False, False]
        assert [float(r["tick_ms"]) for r in run.results] == [engine.DASK_TICK_MS] * 2
        assert servers() == before
        assert client.run(os.environ.get, "RPUCIRCUIT_UPDATE_THREAD") == env_before
    # what the sweep changed and put back: Dask's 20 ms ticks, the workers' profiler on
    assert set(before[0].values()) == {(20.0, True)}
    assert before[2] == (20.0, False)


# --------------------------------------------------------------------------- experiments

EXPERIMENT = """
[experiment]
name = "toy-sweep"
description = "A toy experiment."
job = "test_sweep:toy_job"
config = "test_sweep:ToyConfig"
metric = "value"
curve = "curve"
x = "a"
xscale = "linear"

[base]
b = 2

[grid]
a = [1.0, 2.0]
seed = [1, 2, 3]

[[cases]]
name = "short"
set = { b = 2 }

[[cases]]
name = "long"
set = { b = 5 }

[quick]
b = 1

[quick_grid]
seed = [1, 2]
"""


def test_experiment_jobs() -> None:
    exp = sweep.parse_experiment(EXPERIMENT)
    jobs = exp.jobs()
    assert len(jobs) == 2 * 2 * 3
    assert jobs[0].params == {"case": "short", "a": 1.0, "seed": 1}
    assert jobs[-1].config == ToyConfig(a=2.0, b=5, seed=3)
    quick = exp.jobs(quick=True)
    assert all(j.config.b == 1 for j in quick)
    assert len(quick) == 2 * 2 * 2 and {j.config.seed for j in quick} == {1, 2}
    # quick overrides make different configs, so full and quick results never mix in a cache
    assert {j.key for j in jobs}.isdisjoint({j.key for j in exp.jobs(quick=True)})


def test_quick_without_a_quick_schedule_is_refused(tmp_path: Path) -> None:
    text = EXPERIMENT.split("[quick]")[0]
    exp = sweep.parse_experiment(text)
    with pytest.raises(ConfigError, match=r"has no \[quick\] or \[quick_grid\] table"):
        sweep.run_experiment(exp, tmp_path / "out", quick=True, progress=False)
    assert not (tmp_path / "out").exists()


def test_run_experiment_outputs(tmp_path: Path) -> None:
    exp = sweep.parse_experiment(EXPERIMENT)
    out = sweep.run_experiment(exp, tmp_path, n_workers=2, progress=False)
    with (tmp_path / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    assert set(rows[0]) == {"key", "case", "a", "seed", "value", "tag"}
    for row, job in zip(rows, out.jobs, strict=True):
        # CSV holds repr-exact floats
        assert float(row["value"]) == reference(job.config)
    tree, prov = store.load(tmp_path / "results.h5", kind="sweep")
    assert prov.config_toml == EXPERIMENT
    np.testing.assert_array_equal(tree["table"]["value"], [float(r["value"]) for r in rows])
    # group statistics against a plain numpy reference: case long, a = 2.0 over 3 seeds
    vals = [reference(ToyConfig(a=2.0, b=5, seed=s)) for s in (1, 2, 3)]
    (grp,) = [s for s in out.stats if s["case"] == "long" and s["a"] == 2.0]
    assert grp["n"] == 3
    assert grp["mean"] == pytest.approx(np.mean(vals), rel=1e-12)  # summation-order rounding
    assert grp["std"] == pytest.approx(np.std(vals, ddof=1), rel=1e-12)
    summary = (tmp_path / "summary.md").read_text()
    assert "| case | a | value | n |" in summary and "12 run now" in summary
    assert "![value](value.png)" in summary and "![curve](curve.png)" in summary
    for name in ("value.png", "curve.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = sweep.run_experiment(exp, tmp_path, n_workers=2, progress=False)
    assert all(again.run.cached)


def test_experiment_without_x_makes_a_bar_chart(tmp_path: Path) -> None:
    text = EXPERIMENT.replace('x = "a"\n', "").replace('curve = "curve"\n', "")
    exp = sweep.parse_experiment(text)
    sweep.run_experiment(exp, tmp_path, quick=True, n_workers=2, progress=False)
    assert (tmp_path / "value.png").is_file() and not (tmp_path / "curve.png").exists()
    assert "quick" in (tmp_path / "summary.md").read_text()


def test_experiment_missing_metric(tmp_path: Path) -> None:
    exp = sweep.parse_experiment(EXPERIMENT.replace('metric = "value"', 'metric = "nope"'))
    with pytest.raises(SweepError, match="have no scalar 'nope'"):
        sweep.run_experiment(exp, tmp_path, quick=True, n_workers=1, progress=False)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("[quick]", "[quik]"), r"unknown table\(s\) \['quik'\]"),
        (("seed = [1, 2]\n", "sed = [1]\n"), "quick_grid 'sed' is not a grid axis"),
        (("seed = [1, 2]\n", "seed = 1\n"), "quick_grid 'seed' must be a non-empty list"),
        (('xscale = "linear"', 'xscale = "ln"'), "xscale = 'ln'"),
        (('x = "a"', 'x = "c"'), "x = 'c' is not a grid axis"),
        (('name = "toy-sweep"', 'name = "toy sweep!"'), "use letters, digits"),
        (('metric = "value"', "metric = 3"), "needs a non-empty string 'metric'"),
        (('metric = "value"', 'metric = "value"\ncolour = 1'), r"unknown key\(s\) \['colour'\]"),
        (("a = [1.0, 2.0]", "a = []"), "grid 'a' must be a non-empty list"),
        (('name = "long"', 'name = "short"'), "case names must be unique"),
        (('name = "long"', 'title = "long"'), r"cases\[1\] needs a non-empty string name"),
        (("set = { b = 5 }", "set = 5"), r"cases\[1\]\.set must be a table"),
        (("set = { b = 5 }", "sett = 5"), r"cases\[1\] has unknown key\(s\)"),
        (("set = { b = 5 }", "set = { sleep_s = -1.0 }"), "case 'long'.*sleep_s = -1.0"),
        (("set = { b = 5 }", "set = { c = 1 }"), r"unknown field\(s\) c for ToyConfig"),
        (('job = "test_sweep:toy_job"', 'job = "test_sweep"'), "as 'package.module:attribute'"),
        (('config = "test_sweep:ToyConfig"', 'config = "no_such_mod:X"'), "cannot import"),
        (('config = "test_sweep:ToyConfig"', 'config = "test_sweep:Nope"'), "has no 'Nope'"),
    ],
)
def test_experiment_errors(edit: tuple[str, str], message: str) -> None:
    old, new = edit
    assert old in EXPERIMENT
    with pytest.raises(ConfigError, match=message):
        sweep.parse_experiment(EXPERIMENT.replace(old, new, 1))


def test_top_level_shapes() -> None:
    text = "cases = 3\n" + EXPERIMENT.split("[[cases]]")[0]
    with pytest.raises(ConfigError, match=r"cases must be an array of tables"):
        sweep.parse_experiment(text)
    text = "base = 3\n" + EXPERIMENT.replace("[base]\nb = 2\n", "")
    with pytest.raises(ConfigError, match=r"\[base\] must be a table"):
        sweep.parse_experiment(text)


def test_set_path_errors() -> None:
    data: dict[str, Any] = {"a": 1}
    with pytest.raises(ConfigError, match="'a' is a value, not a table"):
        sweep.set_path(data, "a.b", 2)
    with pytest.raises(ConfigError, match="empty component"):
        sweep.set_path(data, "a..b", 2)
    sweep.set_path(data, "c.d.e", 3)
    assert data == {"a": 1, "c": {"d": {"e": 3}}}


def test_load_experiment_file(tmp_path: Path) -> None:
    p = tmp_path / "e.toml"
    p.write_text(EXPERIMENT)
    assert sweep.load_experiment(p).name == "toy-sweep"
    with pytest.raises(ConfigError, match="cannot read config file"):
        sweep.load_experiment(tmp_path / "missing.toml")


def test_result_named_like_a_parameter() -> None:
    jobs = [engine.make_job(ToyConfig(), {"value": 1})]
    with pytest.raises(SweepError, match="has the name of a parameter column"):
        report.results_table(jobs, [{"value": 2.0}])


def test_cli_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rpucircuit import cli

    p = tmp_path / "toy.toml"
    p.write_text(EXPERIMENT)
    out = tmp_path / "out"
    args = ["sweep", str(p), "--quick", "--jobs", "2", "--out", str(out), "--no-progress"]
    assert cli.main(args) == 0
    assert "toy-sweep: 8 jobs (0 cached)" in capsys.readouterr().out
    assert (out / "results.csv").is_file() and (out / "cache").is_dir()
    assert cli.main([*args, "--cache", str(out / "cache")]) == 0
    assert "8 jobs (8 cached)" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(EXPERIMENT.replace("[quick]", "[quik]"))
    assert cli.main(["sweep", str(bad), "--no-progress"]) == 1
    assert "unknown table(s) ['quik']" in capsys.readouterr().err
    # the pool size means nothing on a Dask cluster: refused, not silently ignored
    with pytest.raises(SystemExit, match="2"):
        cli.main([*args, "--scheduler", "tcp://127.0.0.1:1"])
    assert "argument --scheduler: not allowed with argument --jobs" in capsys.readouterr().err


def test_linked_axes() -> None:
    text = EXPERIMENT.replace("a = [1.0, 2.0]", '"a & sleep_s" = [[1.0, 0.0], [2.0, 0.001]]')
    text = text.replace('x = "a"', 'x = "a & sleep_s"')
    jobs = sweep.parse_experiment(text).jobs()
    assert jobs[3].config == ToyConfig(a=2.0, b=2, seed=1, sleep_s=0.001)
    assert jobs[3].params["a & sleep_s"] == 2.0
    assert sweep.linked_values("a & b", 3) == [("a", 3), ("b", 3)]
    with pytest.raises(ConfigError, match="must give one value per path"):
        sweep.parse_experiment(text.replace("[2.0, 0.001]", "[2.0]"))
    with pytest.raises(ConfigError, match="empty path around '&'"):
        sweep.linked_values("a & ", 1)


def env_job(cfg: ToyConfig) -> dict[str, Any]:
    """Reports the thread settings a pool worker runs with."""
    import os

    return {
        "update_thread": os.environ.get("RPUCIRCUIT_UPDATE_THREAD", "unset"),
        "blas": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
    }


def test_pool_workers_run_single_threaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pool workers fill the cores: no BLAS threads and no background update thread each."""
    monkeypatch.delenv("RPUCIRCUIT_UPDATE_THREAD", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    run = engine.run_jobs(env_job, toy_jobs(2), cache_dir=tmp_path, n_workers=2, progress=False)
    assert [r["update_thread"] for r in run.results] == [UPDATE_THREAD_ENV] * 2
    assert [r["blas"] for r in run.results] == ["1", "1"]


def test_cli_sweep_ctrl_c_says_how_to_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C anywhere in the run: exit 130 and where the finished jobs are kept."""
    from rpucircuit import cli

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_experiment", interrupted)
    p = tmp_path / "toy.toml"
    p.write_text(EXPERIMENT)
    out = tmp_path / "out"
    assert cli.main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert f"finished jobs are cached in {out / 'cache'}" in err
    assert "rpucircuit sweep: interrupted" in err
