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
thread (and the training job function trains without the model's update thread), so ``N``
workers run close to ``N`` times as fast as one. On
Dask, a sweep also quiets the cluster while it runs (profiler off, slow event-loop ticks;
see :data:`DASK_TICK_MS`) and puts it back when it ends.

Experiments (cases times a grid of overrides, with tables and plots) are built on this in
:mod:`rpucircuit.training.sweep`; the circuit campaign uses it directly.
"""

from __future__ import annotations

import ast
import concurrent.futures
import contextlib
import dataclasses
import gc
import hashlib
import importlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rpucircuit import store
from rpucircuit.config.base import (
    config_key,
    to_toml,
)
from rpucircuit.errors import ConfigError, StoreError, SweepError
from rpucircuit.procs import die_with_parent

JOB_KIND = "sweep-job"
"""HDF5 kind of one cached job result."""
JOB_SCHEMA = 1
"""Layout version of a cached job result."""

JobFn = Callable[[Any], Mapping[str, Any]]
"""A job function: config -> result tree."""

DEFAULT_CONNECT_TIMEOUT_S = 5.0
"""Seconds to keep trying to reach a Dask scheduler before the sweep fails. A scheduler on
the local network answers in milliseconds; a wrong address or port then fails in seconds
(Dask's own default is 30 s of retries, spent before the user learns of the typo)."""

_SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
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


def make_job(config: object, params: Mapping[str, Any] | None = None, *, code: str = "") -> Job:
    """A :class:`Job` for ``config``, keyed by :func:`~rpucircuit.config.config_key` and by
    what else decides its result, so a cache entry is never reused when that changed:
    ``code``, the digest of the code that computes the result (:func:`job_code_digest`), and
    for a config with a ``result_inputs()`` method, what that returns (training: the resolved
    array model of every layer and the model file's contents)."""
    key = config_key(config)
    result_inputs = getattr(config, "result_inputs", None)
    extra = result_inputs() if callable(result_inputs) else ""
    if code or extra:
        key = hashlib.sha256(f"{key}\0{code}\0{extra}".encode()).hexdigest()
    return Job(config=config, params=dict(params or {}), key=key)


def _is_string_statement(node: ast.stmt) -> bool:
    """A statement that is a bare string: a docstring, or an attribute docstring after an
    assignment (Python evaluates and discards it)."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` without its bare string statements (module, class and function docstrings,
    attribute docstrings), in every statement list, in place; a block left empty gets
    ``pass``, which compiles as the strings did."""
    for node in ast.walk(tree):
        for name, value in ast.iter_fields(node):
            if not (isinstance(value, list) and value and isinstance(value[0], ast.stmt)):
                continue
            kept = [v for v in value if not _is_string_statement(v)]
            setattr(node, name, kept or ([] if isinstance(node, ast.Module) else [ast.Pass()]))
    return tree


def code_text(path: Path) -> bytes:
    """What :func:`source_digest` hashes of ``path``: for Python source, its syntax tree
    without docstrings, attribute docstrings included (so comments, docstrings and
    formatting can change without changing the digest; ``ast.dump`` of the tree, which
    depends on the Python version); for other files (SPICE libraries) and source that
    does not parse, the bytes as they are."""
    data = path.read_bytes()
    if path.suffix != ".py":
        return data
    try:
        tree = ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError):
        return data
    return ast.dump(_strip_docstrings(tree), include_attributes=False).encode()


def source_digest(files: Iterable[Path]) -> str:
    """sha256 (first 16 hex digits) of files' names and code (:func:`code_text`), in the
    order given. Part of cached jobs' keys: an edit that changes code gives new keys, one
    that only changes comments, docstrings or layout keeps them."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0" + code_text(path) + b"\0")
    return h.hexdigest()[:16]


def job_code_digest(fn: JobFn) -> str:
    """The digest of the code behind job function ``fn``: its module's ``code_digest()``
    when the module defines one (training and the circuit campaign do), else ``""``."""
    module = importlib.import_module(fn.__module__)
    digest = getattr(module, "code_digest", None)
    return str(digest()) if callable(digest) else ""


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
    processes. Only what is read at run time takes effect here (by processes the job
    starts); the BLAS/OpenMP thread counts are set by Dask's nanny when it starts a worker."""
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
        # a worker dies with this process (a SIGKILL here would leave it training on)
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=n_workers,
            mp_context=ctx,
            initializer=die_with_parent,
            initargs=(signal.SIGKILL, os.getpid()),
        )
        futures = {pool.submit(_timed_call, fn, job.config): job for job in jobs}
    try:
        yield from _outcomes(concurrent.futures.as_completed(futures), futures)
    finally:
        # interrupted (Ctrl-C, an error while caching): drop the jobs not yet started
        pool.shutdown(wait=True, cancel_futures=True)


def _connect_dask(scheduler: str, timeout_s: float) -> Any:
    """A ``distributed.Client`` of the scheduler at ``scheduler``, or a :class:`SweepError`
    once ``timeout_s`` seconds of connection attempts have failed."""
    if not timeout_s > 0:
        raise ConfigError(f"connect_timeout_s = {timeout_s!r}: must be > 0 (seconds)")
    try:
        from distributed import Client
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
    return client


def _run_dask(
    fn: JobFn, jobs: Sequence[Job], client: Any
) -> Iterator[tuple[Job, dict[str, Any] | None, float, BaseException | None]]:
    """Run the jobs on the cluster of ``client`` (closed when the stream ends)."""
    from distributed import as_completed

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
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> SweepRun:
    """Run ``fn`` on every job not yet cached; return all results in job order.

    ``scheduler`` (a Dask scheduler address like ``tcp://host:8786``) selects Dask; else a
    local pool of ``n_workers`` processes (default: the CPU count). Each result is cached
    the moment it arrives. Jobs that raise are reported together in one
    :class:`SweepError` after the others have finished (and been cached). A config that
    appears more than once is run once and its result given to each of its jobs.

    ``connect_timeout_s``: how long to try to reach the Dask scheduler. The cache folder is
    created only once the scheduler answered (and the jobs are about to run), so a wrong
    address leaves nothing behind.
    """
    if n_workers is not None and n_workers < 1:
        raise ConfigError(f"n_workers = {n_workers}: must be >= 1")
    keys = [job.key for job in jobs]
    cache = ResultCache(cache_dir)
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
        client = _connect_dask(scheduler, connect_timeout_s) if scheduler is not None else None
        try:  # before any job runs: a cache that cannot be written would lose every result
            cache.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if client is not None:
                client.close()
            raise StoreError(f"cannot create the job cache folder {cache.folder}: {exc}") from exc
        if client is not None:
            stream = _run_dask(fn, list(todo.values()), client)
        else:
            stream = _run_pool(fn, list(todo.values()), n_workers or os.cpu_count() or 1)
        bar = _progress(len(todo), progress)
        for job, result, secs, error in stream:
            if error is not None or result is None:
                why = "no result" if error is None else f"{type(error).__name__}: {error}"
                why = why.replace("\n", "\n      ")  # a multi-line message stays under its job
                failures.append(f"job {job.key[:12]} {dict(job.params)}: {why}")
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
