"""Experiments: a base config, named cases times a grid of overrides, run as a sweep.

An *experiment* (:class:`Experiment`, from TOML) names the job function and the config
class, a base config, and the jobs as named cases times a grid of overrides (dotted paths);
:func:`run_experiment` runs its jobs on :func:`rpucircuit.jobs.run_jobs` (a local process
pool or a Dask cluster, cached by key) and writes the results table (HDF5 and CSV), plots
(PNG) and a Markdown summary (:mod:`rpucircuit.training.report`). Nothing here knows about
training beyond the default job function's name: any importable job function and frozen
config class will do.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import itertools
import json
import math
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rpucircuit.config.base import (
    from_dict,
    parse_toml,
    read_toml_file,
    set_path,
)
from rpucircuit.errors import ConfigError
from rpucircuit.jobs import (
    DEFAULT_CONNECT_TIMEOUT_S,
    Job,
    JobFn,
    job_code_digest,
    make_job,
    resolve,
    run_jobs,
)
from rpucircuit.training.report import (
    SWEEP_KIND,
    SWEEP_SCHEMA,
    ExperimentOutput,
    write_report,
)

__all__ = [
    "SWEEP_KIND",
    "SWEEP_SCHEMA",
    "Case",
    "Experiment",
    "ExperimentOutput",
    "linked_values",
    "load_experiment",
    "parse_assignment",
    "parse_experiment",
    "run_experiment",
    "set_path",
]


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
        job = "rpucircuit.training.loop:run_job"          # job function
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
    """Plots and the summary's table show value × yfactor (e.g. 100 turns a fraction into
    %); results.csv, results.h5 and stats.json stay unscaled."""
    ylabel: str = ""
    """Label of the plots' y axis; empty = the metric's (curve's) name. A unit in
    parentheses at its end (``"test error (%)"``) also labels the summary's metric column."""
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
        parts = self.set_texts()
        parts += [f"--grid {a}={_toml_value(list(v))}" for a, v in self.grid_overrides.items()]
        return " ".join(parts)

    def set_texts(self) -> list[str]:
        """Each ``--set`` override as its command-line text, in order."""
        return [f"--set {p}={_toml_value(v)}" for p, v in self.overrides.items()]

    def jobs(self, *, quick: bool = False) -> list[Job]:
        """The experiment's jobs: every case × every grid point (with ``quick`` overrides)."""
        code = job_code_digest(resolve(self.job))
        return [
            make_job(config, params, code=code) for params, config in self._configs(quick=quick)
        ]

    def changed_by(self, *, quick: bool = False) -> list[tuple[str, ...]]:
        """Per job (in :meth:`jobs` order), the ``--set`` overrides that change its config:
        those whose removal gives another config, or one that does not validate. A case
        that sets the same path itself (``model.preset``) keeps its name in the tables;
        this is how the report says the override replaced what the case stands for."""
        configs = [config for _, config in self._configs(quick=quick)]
        changed: list[list[str]] = [[] for _ in configs]
        for path, text in zip(self.overrides, self.set_texts(), strict=True):
            without = self._configs(quick=quick, skip=path)
            for i, (config, (_, other)) in enumerate(zip(configs, without, strict=True)):
                if other is None or other != config:
                    changed[i].append(text)
        return [tuple(c) for c in changed]

    def _configs(self, *, quick: bool, skip: str | None = None) -> list[tuple[dict[str, Any], Any]]:
        """(params, config) of every job. ``skip``: leave that ``--set`` override out, and
        give None for a config that then does not validate (instead of raising)."""
        cls = resolve(self.config)
        apply: Callable[[dict[str, Any], str, Any], None] = getattr(cls, "apply_override", set_path)
        grid = {**self.grid, **self.quick_grid} if quick else dict(self.grid)
        grid.update(self.grid_overrides)
        axes = list(grid)
        cases = self.cases or (Case(name="", set={}),)
        out: list[tuple[dict[str, Any], Any]] = []
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
                    if path != skip:
                        apply(data, path, value)
                where = f"experiment {self.name!r}, case {case.name!r}, {params}"
                try:
                    config = from_dict(cls, data)
                except ConfigError as exc:
                    if skip is not None:
                        config = None
                    else:
                        raise ConfigError(f"{where}: {exc}") from exc
                out.append((params, config))
        return out

    def key(self) -> str:
        """sha256 of the experiment definition and its command-line overrides."""
        text = self.source_toml + ("\n# " + self.overrides_text() if self.customized else "")
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _toml_value(value: Any) -> str:
    """``value`` as TOML value text (what ``--set``/``--grid`` parse back); the JSON text of
    numbers, booleans, strings and lists is valid TOML."""
    return json.dumps(value)


def parse_assignment(text: str, *, option: str, example: str = "epochs=3") -> tuple[str, Any]:
    """``PATH=VALUE`` from the command line; VALUE is a TOML value (``3``, ``0.1``,
    ``true``, ``"fc"``, ``[1, 2]``), a number TOML does not spell (``.001``, ``1.``) is a
    float, and a bare word counts as a string. ``example`` goes into the error message."""
    path, sep, raw = text.partition("=")
    path, raw = path.strip(), raw.strip()
    if not sep or not path or not raw:
        raise ConfigError(f"{option} {text!r}: expected PATH=VALUE, e.g. {option} {example}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        with contextlib.suppress(ValueError):
            return path, float(raw)
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


def run_experiment(
    exp: Experiment,
    out_dir: str | Path,
    *,
    quick: bool = False,
    scheduler: str | None = None,
    n_workers: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> ExperimentOutput:
    """Run an experiment's jobs (cached) and write ``results.h5``, ``results.csv``,
    ``summary.md`` and plots into ``out_dir`` (:func:`rpucircuit.training.report.write_report`).

    ``connect_timeout_s``: how long to try to reach a Dask ``scheduler``; nothing is written
    (no output or cache folder) when it cannot be reached."""
    out = Path(out_dir)
    if quick and not exp.quick and not exp.quick_grid:
        raise ConfigError(
            f"experiment {exp.name!r} has no [quick] or [quick_grid] table: --quick would run "
            "the full schedule under a 'quick' label; add one, or run without --quick"
        )
    jobs = exp.jobs(quick=quick)
    changed = exp.changed_by(quick=quick)
    fn: JobFn = resolve(exp.job)
    run = run_jobs(
        fn,
        jobs,
        cache_dir=Path(cache_dir) if cache_dir is not None else out / "cache",
        scheduler=scheduler,
        n_workers=n_workers,
        progress=progress,
        connect_timeout_s=connect_timeout_s,
    )
    executor = (
        f"Dask at {scheduler}" if scheduler else f"a local pool of {n_workers or os.cpu_count()}"
    )
    table, stats, files = write_report(
        exp, jobs, run, out, quick=quick, executor=executor, changed=changed
    )
    return ExperimentOutput(run=run, jobs=jobs, table=table, stats=stats, files=files)
