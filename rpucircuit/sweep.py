"""The sweep engine: many independent jobs, cached by config key, on a process pool or Dask.

A *job* is one config (a frozen config dataclass) plus the parameter values that made it
(for the results table); its identity is :func:`rpucircuit.config.config_key` of the config.
A *job function* takes the config and returns a result tree (``str`` -> scalar, string or
numpy array; what :mod:`rpucircuit.store` can write). :func:`run_jobs` runs the job function
on every job whose result is not yet in the cache folder, stores each result as soon as it
arrives (``<cache>/<key>.h5``, written atomically), and returns all results in job order, so
a killed sweep resumes where it stopped and a finished one is free to rerun.

Executors: a local process pool (``spawn``; the default) or a ``dask.distributed`` cluster
given its scheduler address. The job function must be importable by the workers (a
module-level function). Each worker runs one job at a time with its BLAS pinned to one
thread and no update thread, so ``N`` workers run close to ``N`` times as fast as one. On
Dask, a sweep also quiets the cluster while it runs (profiler off, slow event-loop ticks;
see :data:`DASK_TICK_MS`) and puts it back when it ends.

An *experiment* (:class:`Experiment`, from TOML) names the job function and the config
class, a base config, and the jobs as named cases times a grid of overrides (dotted paths);
:func:`run_experiment` runs it and writes the results table (HDF5 and CSV), plots (PNG) and
a Markdown summary. Nothing here knows about training: the circuit campaign can reuse it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import csv
import dataclasses
import gc
import hashlib
import importlib
import itertools
import json
import math
import multiprocessing
import os
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from rpucircuit import store
from rpucircuit.config.base import (
    config_key,
    from_dict,
    parse_toml,
    read_toml_file,
    set_path,
    to_toml,
)
from rpucircuit.errors import ConfigError, StoreError, SweepError
from rpucircuit.fileio import atomic_path, atomic_write_text

JOB_KIND = "sweep-job"
"""HDF5 kind of one cached job result."""
JOB_SCHEMA = 1
"""Layout version of a cached job result."""
SWEEP_KIND = "sweep"
"""HDF5 kind of a sweep's results table."""
SWEEP_SCHEMA = 1
"""Layout version of the results file."""

JobFn = Callable[[Any], Mapping[str, Any]]
"""A job function: config -> result tree."""

_SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    # rpucircuit.array's background update thread (its UPDATE_THREAD_ENV): pool workers
    # already fill every core, so a second thread per worker only competes with them.
    "RPUCIRCUIT_UPDATE_THREAD": "0",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One job: a config, the parameter values that define it, and its stable key."""

    config: Any
    params: Mapping[str, Any]
    """Parameter name -> value (scalars), the columns this job adds to the results table."""
    key: str
    """Names the cache entry: ``config_key(config)``, with what else decides the result
    (:func:`make_job`)."""


def make_job(config: object, params: Mapping[str, Any] | None = None) -> Job:
    """A :class:`Job` for ``config``, keyed by :func:`~rpucircuit.config.config_key` and, for
    a config with a ``result_inputs()`` method (training: the model-path code digest and the
    model file's contents), by what else decides its result, so a cache entry is never
    reused when that changed."""
    key = config_key(config)
    result_inputs = getattr(config, "result_inputs", None)
    if callable(result_inputs):
        key = hashlib.sha256(f"{key}\0{result_inputs()}".encode()).hexdigest()
    return Job(config=config, params=dict(params or {}), key=key)


def resolve(name: str) -> Any:
    """The object named ``"package.module:attribute"``."""
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{name!r}: must name an object as 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{name!r}: cannot import {module_name}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{name!r}: module {module_name} has no {attr!r}") from None


# --------------------------------------------------------------------------- cache


class ResultCache:
    """Finished job results, one HDF5 file per config key in a folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        """Where the result of the job with ``key`` is (or will be) stored."""
        return self.folder / f"{key}.h5"

    def has(self, key: str) -> bool:
        """Whether a result for ``key`` is stored."""
        return self.path(key).is_file()

    def load(self, key: str) -> dict[str, Any]:
        """The stored result tree of job ``key``."""
        tree, prov = store.load(self.path(key), kind=JOB_KIND, schema_version=JOB_SCHEMA)
        if prov.config_key != key:
            raise StoreError(f"{self.path(key)} holds the result of job {prov.config_key}")
        return tree

    def save(self, job: Job, result: Mapping[str, Any]) -> Path:
        """Store ``result`` of ``job`` atomically."""
        prov = store.Provenance(
            kind=JOB_KIND,
            schema_version=JOB_SCHEMA,
            config_toml=to_toml(job.config),
            config_key=job.key,
        )
        return store.save(self.path(job.key), dict(result), prov)


# --------------------------------------------------------------------------- executors


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Environment for worker processes started inside: one BLAS/OpenMP thread each."""
    saved = {k: os.environ.get(k) for k in _SINGLE_THREAD_ENV}
    for k, v in _SINGLE_THREAD_ENV.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def _timed_call(fn: JobFn, config: Any) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    result = dict(fn(config))
    return result, time.perf_counter() - t0


def _timed_call_single_threaded(fn: JobFn, config: Any) -> tuple[dict[str, Any], float]:
    """:func:`_timed_call` in a Dask worker, under the environment the pool gives its
    processes. Only what is read at run time takes effect here (the array's update thread);
    the BLAS/OpenMP thread counts are set by Dask's nanny when it starts a worker."""
    with _single_threaded_children():
        return _timed_call(fn, config)


DASK_TICK_MS = 1000.0
"""Event-loop tick interval (ms) of the Dask scheduler, nannies and workers while a sweep
runs on them; Dask's default is 20 ms. A tick wakes the process's event loop, which in a
worker must take the GIL from the running job; measured on the 2-core machine, the ticks and
the worker's statistical profiler (a stack walk of the job's thread every 10 ms) cost each
training job 5-10 % of its time and put thousands of involuntary context switches into it."""

_CALM_ATTR = "_rpucircuit_calm"


def _calm_dask_server(
    dask_worker: Any = None, dask_scheduler: Any = None, calm: bool = True
) -> int:
    """Run on a Dask worker, nanny or scheduler (``Client.run``, in its event loop).

    ``calm=True``: stop the worker's statistical profiler and slow the event-loop tick to
    :data:`DASK_TICK_MS`; ``calm=False`` puts back what the first ``calm=True`` changed,
    once as many sweeps have ended as began (overlapping sweeps on one cluster). Returns the
    number of sweeps still using the server.
    """
    server = dask_worker if dask_worker is not None else dask_scheduler
    callbacks = getattr(server, "periodic_callbacks", {})
    state: dict[str, Any] | None = getattr(server, _CALM_ATTR, None)
    if calm:
        if state is None:
            saved: dict[str, float | None] = {}
            tick = callbacks.get("tick")
            if tick is not None and tick.callback_time < DASK_TICK_MS:
                saved["tick"] = tick.callback_time
                tick.callback_time = DASK_TICK_MS
            for name in ("profile", "profile-cycle"):
                pc = callbacks.get(name)
                if pc is not None and pc.is_running():
                    pc.stop()
                    saved[name] = None
            state = {"users": 0, "saved": saved}
            setattr(server, _CALM_ATTR, state)
        state["users"] += 1
        return int(state["users"])
    if state is None:
        return 0
    state["users"] -= 1
    if state["users"] > 0:
        return int(state["users"])
    for name, value in state["saved"].items():
        pc = callbacks.get(name)
        if pc is None:
            continue
        if value is None:
            pc.start()
        else:
            pc.callback_time = value
    delattr(server, _CALM_ATTR)
    return 0


def _calm_cluster(client: Any, *, calm: bool) -> None:
    """:func:`_calm_dask_server` on every worker, nanny and the scheduler of ``client``'s
    cluster. Best effort: a cluster that refuses (an older Dask, a dying worker) runs the
    sweep untuned. Workers that join during the sweep are not tuned."""
    with contextlib.suppress(Exception):
        client.run(_calm_dask_server, calm=calm, on_error="ignore")
    with contextlib.suppress(Exception):
        client.run(_calm_dask_server, calm=calm, nanny=True, on_error="ignore")
    with contextlib.suppress(Exception):
        client.run_on_scheduler(_calm_dask_server, calm=calm)


def _outcomes(
    done: Iterable[Any], futures: Mapping[Any, Job]
) -> Iterator[tuple[Job, dict[str, Any] | None, float, BaseException | None]]:
    """(job, result, seconds, error) for each finished future (a pool's or Dask's), in the
    order they finish; a job that raised gives its exception instead of a result."""
    for fut in done:
        job = futures[fut]
        try:
            result, seconds = fut.result()
        except Exception as exc:
            yield job, None, 0.0, exc
        else:
            yield job, result, seconds, None


def _run_pool(
    fn: JobFn, jobs: Sequence[Job], n_workers: int
) -> Iterator[tuple[Job, dict[str, Any] | None, float, BaseException | None]]:
    ctx = multiprocessing.get_context("spawn")
    with _single_threaded_children():
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx)
        futures = {pool.submit(_timed_call, fn, job.config): job for job in jobs}
    try:
        yield from _outcomes(concurrent.futures.as_completed(futures), futures)
    finally:
        # interrupted (Ctrl-C, an error while caching): drop the jobs not yet started
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(
    fn: JobFn, jobs: Sequence[Job], scheduler: str, timeout_s: float
) -> Iterator[tuple[Job, dict[str, Any] | None, float, BaseException | None]]:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - dask is a test dependency
        raise SweepError(
            "a scheduler address needs dask.distributed: pip install 'rpucircuit[dask]'"
        ) from exc
    failure = ""
    try:
        client = Client(scheduler, timeout=timeout_s)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a malformed address
        failure = str(exc)
    if failure:
        # The half-built Client's finalizer closes its event-loop runner. Left to a later
        # garbage collection it can fire inside another Client's or LocalCluster's loop
        # start-up, which then deadlocks (seen with distributed 2026.8): collect it here,
        # now that the traceback holding it is gone.
        gc.collect()
        raise SweepError(
            f"cannot connect to the Dask scheduler at {scheduler!r}: {failure} "
            "(give an address like tcp://HOST:8786)"
        )
    with client:
        _calm_cluster(client, calm=True)
        try:
            futures = {
                client.submit(
                    _timed_call_single_threaded,
                    fn,
                    job.config,
                    key=f"rpucircuit-job-{job.key}",
                    pure=False,
                ): job
                for job in jobs
            }
            done = as_completed(list(futures))  # type: ignore[no-untyped-call]
            yield from _outcomes(done, futures)
        finally:
            _calm_cluster(client, calm=False)


@dataclasses.dataclass(frozen=True, slots=True)
class SweepRun:
    """What :func:`run_jobs` did: results in job order, which came from the cache, timings."""

    results: list[dict[str, Any]]
    cached: list[bool]
    """Per job: True when its result was already in the cache (not rerun)."""
    seconds: list[float]
    """Per job: seconds the job function ran (0 for cached jobs)."""
    wall_s: float
    """Wall-clock seconds of the whole run."""


def run_jobs(
    fn: JobFn,
    jobs: Sequence[Job],
    *,
    cache_dir: str | Path,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    connect_timeout_s: float = 30.0,
) -> SweepRun:
    """Run ``fn`` on every job not yet cached; return all results in job order.

    ``scheduler`` (a Dask scheduler address like ``tcp://host:8786``) selects Dask; else a
    local pool of ``n_workers`` processes (default: the CPU count). Each result is cached
    the moment it arrives. Jobs that raise are reported together in one
    :class:`SweepError` after the others have finished (and been cached). A config that
    appears more than once is run once and its result given to each of its jobs.
    """
    if n_workers is not None and n_workers < 1:
        raise ConfigError(f"n_workers = {n_workers}: must be >= 1")
    keys = [job.key for job in jobs]
    cache = ResultCache(cache_dir)
    try:  # before any job runs: a cache that cannot be written would lose every result
        cache.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the job cache folder {cache.folder}: {exc}") from exc
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    todo: dict[str, Job] = {}
    for job in jobs:
        if job.key in results or job.key in todo:
            continue  # the same config twice (e.g. cases a quick schedule makes equal): run once
        if cache.has(job.key):
            results[job.key] = cache.load(job.key)
        else:
            todo[job.key] = job
    failures: list[str] = []
    if todo:
        if scheduler is not None:
            stream = _run_dask(fn, list(todo.values()), scheduler, connect_timeout_s)
        else:
            stream = _run_pool(fn, list(todo.values()), n_workers or os.cpu_count() or 1)
        bar = _progress(len(todo), progress)
        for job, result, secs, error in stream:
            if error is not None or result is None:
                failures.append(f"job {job.key[:12]} {dict(job.params)}: {error!r}")
            else:
                cache.save(job, result)
                results[job.key] = cache.load(job.key)  # what a resumed run would see
                seconds[job.key] = secs
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    if failures:
        raise SweepError(
            f"{len(failures)} of {len(jobs)} job(s) failed (the others are cached in "
            f"{cache.folder}; rerun to retry only the failed ones):\n  " + "\n  ".join(failures)
        )
    return SweepRun(
        results=[results[k] for k in keys],
        cached=[k not in seconds for k in keys],
        seconds=[seconds.get(k, 0.0) for k in keys],
        wall_s=time.perf_counter() - t0,
    )


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep jobs", unit="job")


# --------------------------------------------------------------------------- experiments


def linked_values(axis: str, value: Any) -> list[tuple[str, Any]]:
    """The (path, value) pairs one grid value sets.

    An axis may link several paths with ``&`` (``"forward.out_noise & backward.out_noise"``):
    a single value goes to every path, a list gives one value per path in order (e.g.
    ``[0.6, -0.6]`` for ``"device.w_max & device.w_min"``). The results table shows the
    first value under the axis name.
    """
    paths = [p.strip() for p in axis.split("&")]
    if not all(paths):
        raise ConfigError(f"grid axis {axis!r}: empty path around '&'")
    if isinstance(value, list):
        if len(value) != len(paths):
            raise ConfigError(
                f"grid axis {axis!r}: value {value!r} must give one value per path ({len(paths)})"
            )
        return list(zip(paths, value, strict=True))
    return [(p, value) for p in paths]


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    """A named set of overrides (dotted path -> value)."""

    name: str
    set: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Experiment:
    """A sweep definition: base config, cases × grid of overrides, and how to report it.

    TOML layout::

        [experiment]
        name = "paper-a-bl"            # names the output folder
        description = "..."
        job = "rpucircuit.training:run_job"          # job function
        config = "rpucircuit.config.training:TrainingConfig"   # config class
        metric = "test_error_final"    # scalar result summarized and plotted
        curve = "test_error"           # optional per-step array result, plotted per group
        x = "rpu.update.bl"            # optional: grid axis for the x of the plot
        xscale = "log"                 # "linear" (default) or "log"
        yscale = "log"                 # y axis of both plots: "linear" (default) or "log"
        yfactor = 100                  # plotted y = value × yfactor (e.g. fraction -> %)
        ylabel = "test error (%)"      # y-axis label of both plots (default: the names)
        [base]                          # the base config (a table of the config class)
        [grid]                          # dotted path -> list of values (cartesian product);
                                        # "a & b" links paths (see linked_values)
        [[cases]]                       # optional named override sets
        name = "..."
        set = { "path.to.field" = value }
        [quick]                         # overrides applied to every job with quick=True
        [quick_grid]                    # grid axes replaced with quick=True (e.g. seed = [1])

    The config class may define ``apply_override(data, path, value)`` (a staticmethod) to
    interpret override paths itself; otherwise a path sets a nested key of the base table.
    """

    name: str
    description: str
    job: str
    config: str
    metric: str
    base: Mapping[str, Any]
    grid: Mapping[str, Sequence[Any]]
    cases: tuple[Case, ...]
    quick: Mapping[str, Any]
    quick_grid: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    """Grid axes replaced in the quick schedule (e.g. fewer seeds)."""
    curve: str = ""
    x: str = ""
    xscale: str = "linear"
    yscale: str = "linear"
    """Scale of the plots' y axis: ``linear`` or ``log``."""
    yfactor: float = 1.0
    """Plotted y = value × yfactor (e.g. 100 turns a fraction into %); tables stay unscaled."""
    ylabel: str = ""
    """Label of the plots' y axis; empty = the metric's (curve's) name."""
    source_toml: str = ""
    """The experiment file's text (for provenance)."""
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Changes applied last to every job (``--set PATH=VALUE``), after cases, grid and quick."""
    grid_overrides: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    """Grid axes whose values are replaced (``--grid AXIS=[...]``), in both schedules."""

    def with_overrides(
        self,
        overrides: Mapping[str, Any] | None = None,
        grid: Mapping[str, Sequence[Any]] | None = None,
    ) -> Experiment:
        """This experiment with command-line changes: ``overrides`` set a config path in every
        job (applied last); ``grid`` replaces the values of existing grid axes. Every job is
        validated now, so a bad path or value fails before anything runs."""
        overrides = dict(overrides or {})
        grid = dict(grid or {})
        for axis, values in grid.items():
            if axis not in self.grid:
                raise ConfigError(
                    f"--grid {axis!r}: not a grid axis of experiment {self.name!r} "
                    f"(axes: {sorted(self.grid)})"
                )
            if not isinstance(values, list) or not values:
                raise ConfigError(f"--grid {axis!r}: give a non-empty list of values, e.g. [1, 2]")
            for value in values:
                linked_values(axis, value)
        exp = dataclasses.replace(
            self,
            overrides={**self.overrides, **overrides},
            grid_overrides={**self.grid_overrides, **grid},
        )
        exp.jobs(quick=False)
        if exp.quick or exp.quick_grid:
            exp.jobs(quick=True)
        return exp

    @property
    def customized(self) -> bool:
        """Whether command-line overrides change the experiment file's schedule."""
        return bool(self.overrides or self.grid_overrides)

    def overrides_text(self) -> str:
        """The command-line overrides as ``--set``/``--grid`` arguments (for reports)."""
        parts = [f"--set {p}={_toml_value(v)}" for p, v in self.overrides.items()]
        parts += [f"--grid {a}={_toml_value(list(v))}" for a, v in self.grid_overrides.items()]
        return " ".join(parts)

    def jobs(self, *, quick: bool = False) -> list[Job]:
        """The experiment's jobs: every case × every grid point (with ``quick`` overrides)."""
        cls = resolve(self.config)
        apply: Callable[[dict[str, Any], str, Any], None] = getattr(cls, "apply_override", set_path)
        grid = {**self.grid, **self.quick_grid} if quick else dict(self.grid)
        grid.update(self.grid_overrides)
        axes = list(grid)
        cases = self.cases or (Case(name="", set={}),)
        out: list[Job] = []
        for case in cases:
            for values in itertools.product(*(grid[a] for a in axes)):
                data = copy.deepcopy(dict(self.base))
                params: dict[str, Any] = {}
                if case.name:
                    params["case"] = case.name
                for path, value in case.set.items():
                    apply(data, path, value)
                for axis, value in zip(axes, values, strict=True):
                    for path, v in linked_values(axis, value):
                        apply(data, path, v)
                    params[axis] = value[0] if isinstance(value, list) else value
                if quick:
                    for path, value in self.quick.items():
                        apply(data, path, value)
                for path, value in self.overrides.items():
                    apply(data, path, value)
                where = f"experiment {self.name!r}, case {case.name!r}, {params}"
                try:
                    config = from_dict(cls, data)
                except ConfigError as exc:
                    raise ConfigError(f"{where}: {exc}") from exc
                out.append(make_job(config, params))
        return out

    def key(self) -> str:
        """sha256 of the experiment definition and its command-line overrides."""
        text = self.source_toml + ("\n# " + self.overrides_text() if self.customized else "")
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _toml_value(value: Any) -> str:
    """``value`` as TOML value text (what ``--set``/``--grid`` parse back); the JSON text of
    numbers, booleans, strings and lists is valid TOML."""
    return json.dumps(value)


def parse_assignment(text: str, *, option: str) -> tuple[str, Any]:
    """``PATH=VALUE`` from the command line; VALUE is a TOML value (``3``, ``0.1``,
    ``true``, ``"fc"``, ``[1, 2]``), a bare word counts as a string."""
    path, sep, raw = text.partition("=")
    path, raw = path.strip(), raw.strip()
    if not sep or not path or not raw:
        raise ConfigError(f"{option} {text!r}: expected PATH=VALUE, e.g. {option} epochs=3")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if not all(c.isalnum() or c in "_-." for c in raw):
            raise ConfigError(
                f"{option} {text!r}: {raw!r} is not a TOML value (numbers, true/false, "
                '"strings", [lists])'
            ) from None
        value = raw
    return path, value


def _table(raw: Mapping[str, Any], name: str, source: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: [{name}] must be a table")
    return dict(value)


def parse_experiment(text: str, *, source: str = "<string>") -> Experiment:
    """Parse an experiment TOML text (see :class:`Experiment` for the layout)."""
    raw = parse_toml(text, source=source)
    tables = {"experiment", "base", "grid", "cases", "quick", "quick_grid"}
    unknown = sorted(set(raw) - tables)
    if unknown:
        raise ConfigError(
            f"{source}: unknown table(s) {unknown}; allowed: {', '.join(sorted(tables))}"
        )
    head = _table(raw, "experiment", source)
    allowed = {"name", "description", "job", "config", "metric", "curve", "x", "xscale"}
    allowed |= {"yscale", "yfactor", "ylabel"}
    bad = sorted(set(head) - allowed)
    if bad:
        raise ConfigError(
            f"{source}: unknown key(s) {bad} in [experiment]; allowed {sorted(allowed)}"
        )
    for required in ("name", "job", "config", "metric"):
        if not isinstance(head.get(required), str) or not head[required]:
            raise ConfigError(f"{source}: [experiment] needs a non-empty string {required!r}")
    name = head["name"]
    if not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"{source}: experiment name {name!r}: use letters, digits, - _ . only")
    grid = _table(raw, "grid", source)
    for path, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: grid {path!r} must be a non-empty list of values")
        for value in values:
            linked_values(path, value)
    quick_grid = _table(raw, "quick_grid", source)
    for path, values in quick_grid.items():
        if path not in grid:
            raise ConfigError(f"{source}: quick_grid {path!r} is not a grid axis")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: quick_grid {path!r} must be a non-empty list of values")
    cases_raw = raw.get("cases", [])
    if not isinstance(cases_raw, list):
        raise ConfigError(f"{source}: cases must be an array of tables [[cases]]")
    cases: list[Case] = []
    for i, c in enumerate(cases_raw):
        if not isinstance(c, Mapping) or not isinstance(c.get("name"), str) or not c["name"]:
            raise ConfigError(f"{source}: cases[{i}] needs a non-empty string name")
        extra = sorted(set(c) - {"name", "set"})
        if extra:
            raise ConfigError(f"{source}: cases[{i}] has unknown key(s) {extra}; allowed name, set")
        overrides = c.get("set", {})
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{source}: cases[{i}].set must be a table")
        cases.append(Case(name=c["name"], set=dict(overrides)))
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: case names must be unique, got {names}")
    xscale = head.get("xscale", "linear")
    if xscale not in ("linear", "log"):
        raise ConfigError(f"{source}: xscale = {xscale!r}: must be 'linear' or 'log'")
    yscale = head.get("yscale", "linear")
    if yscale not in ("linear", "log"):
        raise ConfigError(f"{source}: yscale = {yscale!r}: must be 'linear' or 'log'")
    yfactor = head.get("yfactor", 1.0)
    if (
        isinstance(yfactor, bool)
        or not isinstance(yfactor, (int, float))
        or not math.isfinite(yfactor)
        or yfactor <= 0
    ):
        raise ConfigError(f"{source}: yfactor = {yfactor!r}: must be a number > 0")
    ylabel = head.get("ylabel", "")
    if not isinstance(ylabel, str):
        raise ConfigError(f"{source}: ylabel = {ylabel!r}: must be a string")
    x = head.get("x", "")
    if x and x not in grid:
        raise ConfigError(f"{source}: x = {x!r} is not a grid axis (axes: {sorted(grid)})")
    exp = Experiment(
        name=name,
        description=str(head.get("description", "")),
        job=head["job"],
        config=head["config"],
        metric=head["metric"],
        curve=str(head.get("curve", "")),
        x=x,
        xscale=xscale,
        yscale=yscale,
        yfactor=float(yfactor),
        ylabel=ylabel,
        base=_table(raw, "base", source),
        grid=grid,
        cases=tuple(cases),
        quick=_table(raw, "quick", source),
        quick_grid=quick_grid,
        source_toml=text,
    )
    resolve(exp.job)  # the job function must exist
    exp.jobs(quick=False)  # validate every job config now, before anything runs
    exp.jobs(quick=True)
    return exp


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment TOML file."""
    path = Path(path)
    read_toml_file(path)  # a clear error for a missing or malformed file
    return parse_experiment(path.read_text(encoding="utf-8"), source=str(path))


# --------------------------------------------------------------------------- reporting


def _scalar(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str, np.integer, np.floating, np.bool_)):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0


def results_table(
    jobs: Sequence[Job], results: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    """Columns ``key``, the jobs' parameters, then every scalar result (in first-seen order)."""
    columns: dict[str, list[Any]] = {"key": [job.key for job in jobs]}
    param_names: list[str] = []
    result_names: list[str] = []
    for job, res in zip(jobs, results, strict=True):
        param_names += [p for p in job.params if p not in param_names]
        result_names += [r for r, v in res.items() if _scalar(v) and r not in result_names]
    for p in param_names:
        columns[p] = [job.params.get(p, "") for job in jobs]
    for r in result_names:
        if r in columns:
            raise SweepError(f"result {r!r} has the name of a parameter column")
        columns[r] = [_py(res.get(r, math.nan)) for res in results]
    return columns


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic | np.ndarray) else value


def write_csv(columns: Mapping[str, Sequence[Any]], path: str | Path) -> Path:
    """Write a column table as CSV (atomic)."""
    names = list(columns)
    n = len(next(iter(columns.values()))) if columns else 0
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(names)
        for i in range(n):
            w.writerow([columns[c][i] for c in names])
    return Path(path)


def _column_array(values: Sequence[Any]) -> np.ndarray:
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.asarray(values, dtype=bool)
    if all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in values
    ):
        return np.asarray(values, dtype=np.float64)
    return np.asarray([str(v) for v in values])


def group_stats(
    columns: Mapping[str, Sequence[Any]],
    params: Sequence[str],
    metric: str,
    seed_param: str = "seed",
) -> list[dict[str, Any]]:
    """Mean, sample std and count of ``metric`` per combination of ``params`` (not the seed)."""
    groups: dict[tuple[Any, ...], list[float]] = {}
    by = [p for p in params if p != seed_param]
    n = len(columns["key"])
    for i in range(n):
        gkey = tuple(columns[p][i] for p in by)
        groups.setdefault(gkey, []).append(float(columns[metric][i]))
    out = []
    for gkey, vals in groups.items():
        arr = np.asarray(vals)
        row = dict(zip(by, gkey, strict=True))
        row.update(
            mean=float(arr.mean()),
            std=float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            n=int(arr.size),
        )
        out.append(row)
    return out


def _label(row: Mapping[str, Any], names: Sequence[str]) -> str:
    return ", ".join(f"{n}={row[n]}" if n != "case" else str(row[n]) for n in names) or "all"


def _y_axis(ax: Any, exp: Experiment, name: str) -> None:
    ax.set_ylabel(exp.ylabel or name)
    if exp.yscale == "log":
        from matplotlib.ticker import FormatStrFormatter

        ax.set_yscale("log")  # non-positive values are masked by matplotlib
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))  # 5, not 5×10⁰
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))


def plot_metric(
    exp: Experiment, stats: Sequence[Mapping[str, Any]], params: Sequence[str], path: Path
) -> Path:
    """Metric (mean ± std over seeds) vs the x axis, one line per other parameter group;
    a bar chart per group when the experiment has no x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = [p for p in params if p != "seed"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if exp.x:
        others = [p for p in by if p != exp.x]
        series: dict[str, list[Mapping[str, Any]]] = {}
        for row in stats:
            series.setdefault(_label(row, others), []).append(row)
        for label, rows in series.items():
            rows = sorted(rows, key=lambda r: float(r[exp.x]))
            ax.errorbar(
                [float(r[exp.x]) for r in rows],
                [r["mean"] * exp.yfactor for r in rows],
                yerr=[r["std"] * exp.yfactor for r in rows],
                marker="o",
                capsize=3,
                label=label,
            )
        ax.set_xlabel(exp.x)
        ax.set_xscale(exp.xscale)
        if len(series) > 1 or others:
            ax.legend(fontsize="small")
    else:
        labels = [_label(r, by) for r in stats]
        ax.bar(
            range(len(stats)),
            [r["mean"] * exp.yfactor for r in stats],
            yerr=[r["std"] * exp.yfactor for r in stats],
            capsize=3,
        )
        ax.set_xticks(range(len(stats)), labels, rotation=30, ha="right", fontsize="small")
    _y_axis(ax, exp, exp.metric)
    ax.set_title(exp.name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def plot_curves(
    exp: Experiment,
    jobs: Sequence[Job],
    results: Sequence[Mapping[str, Any]],
    params: Sequence[str],
    path: Path,
) -> Path:
    """The ``curve`` array result (mean over seeds) against its index + 1, one line per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    by = [p for p in params if p != "seed"]
    groups: dict[str, list[np.ndarray]] = {}
    for job, res in zip(jobs, results, strict=True):
        curve = np.asarray(res.get(exp.curve, []), dtype=np.float64)
        if curve.ndim == 1 and curve.size:
            groups.setdefault(_label(job.params, by), []).append(curve)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, curves in groups.items():
        length = min(c.size for c in curves)
        mean = np.mean([c[:length] for c in curves], axis=0)
        ax.plot(np.arange(1, length + 1), mean * exp.yfactor, marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _y_axis(ax, exp, exp.curve)
    ax.set_title(exp.name)
    ax.grid(alpha=0.3)
    if 1 < len(groups) <= 20:
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


_QUICK_NOTE = "quick (shortened; see [quick] in the experiment file)"


def _schedule_note(exp: Experiment, quick: bool) -> str:
    note = _QUICK_NOTE if quick else "full"
    if exp.customized:
        base = "the quick schedule" if quick else "the experiment file's schedule"
        note = f"{base} with command-line changes (`{exp.overrides_text()}`)"
    return note


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def summary_markdown(
    exp: Experiment,
    stats: Sequence[Mapping[str, Any]],
    params: Sequence[str],
    run: SweepRun,
    *,
    quick: bool,
    executor: str,
    figures: Sequence[str] = (),
) -> str:
    """A short Markdown report: what ran, the metric per group (mean ± std, n), figures."""
    by = [p for p in params if p != "seed"]
    lines = [f"# {exp.name}", ""]
    if exp.description:
        lines += [exp.description.strip(), ""]
    lines += [
        f"- schedule: {_schedule_note(exp, quick)}",
        f"- jobs: {len(run.results)} ({sum(run.cached)} from the cache, "
        f"{len(run.results) - sum(run.cached)} run now) on {executor}",
        f"- wall time: {run.wall_s:.1f} s; job time: {sum(run.seconds):.1f} s",
        f"- metric: `{exp.metric}`, mean ± sample std over seeds (n = number of seeds)",
        "",
        "| " + " | ".join([*by, exp.metric, "n"]) + " |",
        "|" + "---|" * (len(by) + 2),
    ]
    for row in stats:
        cells = [_fmt(row[p]) for p in by]
        cells += [f"{row['mean']:.4g} ± {row['std']:.2g}", str(row["n"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"![{Path(name).stem}]({name})" for name in figures]
    if figures:
        lines.append("")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True, slots=True)
class ExperimentOutput:
    """Files written by :func:`run_experiment` and the run itself."""

    run: SweepRun
    jobs: list[Job]
    table: dict[str, list[Any]]
    stats: list[dict[str, Any]]
    files: dict[str, Path]


def run_experiment(
    exp: Experiment,
    out_dir: str | Path,
    *,
    quick: bool = False,
    scheduler: str | None = None,
    n_workers: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> ExperimentOutput:
    """Run an experiment's jobs (cached) and write ``results.h5``, ``results.csv``,
    ``summary.md`` and plots into ``out_dir``."""
    out = Path(out_dir)
    if quick and not exp.quick and not exp.quick_grid:
        raise ConfigError(
            f"experiment {exp.name!r} has no [quick] or [quick_grid] table: --quick would run "
            "the full schedule under a 'quick' label; add one, or run without --quick"
        )
    jobs = exp.jobs(quick=quick)
    fn: JobFn = resolve(exp.job)
    run = run_jobs(
        fn,
        jobs,
        cache_dir=Path(cache_dir) if cache_dir is not None else out / "cache",
        scheduler=scheduler,
        n_workers=n_workers,
        progress=progress,
    )
    table = results_table(jobs, run.results)
    params = [c for c in table if c != "key" and any(c in j.params for j in jobs)]
    if exp.metric not in table:
        raise SweepError(
            f"the job results have no scalar {exp.metric!r} (they have: "
            f"{sorted(c for c in table if c not in params and c != 'key')})"
        )
    stats = group_stats(table, params, exp.metric)
    files: dict[str, Path] = {}
    files["csv"] = write_csv(table, out / "results.csv")
    tree = {
        "table": {name: _column_array(values) for name, values in table.items()},
        "jobs": {job.key: dict(res) for job, res in zip(jobs, run.results, strict=True)},
        "job_seconds": np.asarray(run.seconds),
        "cached": np.asarray(run.cached),
    }
    prov = store.Provenance(
        kind=SWEEP_KIND,
        schema_version=SWEEP_SCHEMA,
        config_toml=exp.source_toml or tomli_w.dumps({"experiment": {"name": exp.name}}),
        config_key=exp.key(),
    )
    files["h5"] = store.save(out / "results.h5", tree, prov)
    files["plot"] = plot_metric(exp, stats, params, out / f"{exp.metric}.png")
    if exp.curve:
        files["curves"] = plot_curves(exp, jobs, run.results, params, out / f"{exp.curve}.png")
    executor = (
        f"Dask at {scheduler}" if scheduler else f"a local pool of {n_workers or os.cpu_count()}"
    )
    figures = [files[k].name for k in ("plot", "curves") if k in files]
    text = summary_markdown(
        exp, stats, params, run, quick=quick, executor=executor, figures=figures
    )
    files["summary"] = atomic_write_text(out / "summary.md", text)
    files["stats"] = atomic_write_text(out / "stats.json", json.dumps(stats, indent=1, default=str))
    return ExperimentOutput(run=run, jobs=jobs, table=table, stats=stats, files=files)
