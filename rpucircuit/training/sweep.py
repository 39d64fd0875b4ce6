"""Experiments: a base config, named cases times a grid of overrides, run as a sweep.

An *experiment* (:class:`Experiment`, from TOML) names the job function and the config
class, a base config, and the jobs as named cases times a grid of overrides (dotted paths);
:func:`run_experiment` runs its jobs on :func:`rpucircuit.jobs.run_jobs` (a local process
pool or a Dask cluster, cached by key) and writes the results table (HDF5 and CSV), plots
(PNG) and a Markdown summary. Nothing here knows about training beyond the default job
function's name: any importable job function and frozen config class will do.
"""

from __future__ import annotations

import copy
import csv
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

import numpy as np
import tomli_w

from rpucircuit import store
from rpucircuit.config.base import (
    from_dict,
    parse_toml,
    read_toml_file,
    set_path,
)
from rpucircuit.errors import ConfigError, SweepError
from rpucircuit.fileio import atomic_path, atomic_write_text
from rpucircuit.jobs import Job, JobFn, SweepRun, job_code_digest, make_job, resolve, run_jobs

SWEEP_KIND = "sweep"
"""HDF5 kind of a sweep's results table."""
SWEEP_SCHEMA = 1
"""Layout version of the results file."""


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
        code = job_code_digest(resolve(self.job))
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
                out.append(make_job(config, params, code=code))
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
