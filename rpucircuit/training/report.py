"""What a sweep writes: the results table (HDF5 and CSV), group statistics, plots (PNG) and
a Markdown summary.

:func:`write_report` is called by :func:`rpucircuit.training.sweep.run_experiment` once
every job has a result. The tables (``results.csv``, ``results.h5``, ``stats.json``) hold
the metric as the job function returns it (training: test error as a fraction); the plots
and the summary's table show it times the experiment's ``yfactor``, with the unit its
``ylabel`` names (the shipped experiments: ``yfactor = 100``, ``ylabel = "test error
(%)"``, so the summary reads in %, like the README's tables).

With command-line overrides (``--set``), the summary says which groups of jobs each one
changed: a case that sets ``model.preset`` itself keeps its name in the table while
``--set model.preset=...`` replaces its array model, and the ``changed by`` column is where
a reader sees that.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tomli_w

from rpucircuit import store
from rpucircuit.errors import SweepError
from rpucircuit.fileio import atomic_path, atomic_write_text, save_png
from rpucircuit.jobs import Job, SweepRun

SWEEP_KIND = "sweep"
"""HDF5 kind of a sweep's results table."""
SWEEP_SCHEMA = 1
"""Layout version of the results file."""


class Experiment(Protocol):
    """What a report reads of an experiment (:class:`rpucircuit.training.sweep.Experiment`,
    which imports this module)."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def curve(self) -> str: ...
    @property
    def x(self) -> str: ...
    @property
    def xscale(self) -> str: ...
    @property
    def yscale(self) -> str: ...
    @property
    def yfactor(self) -> float: ...
    @property
    def ylabel(self) -> str: ...
    @property
    def source_toml(self) -> str: ...
    @property
    def overrides(self) -> Mapping[str, Any]: ...
    @property
    def customized(self) -> bool: ...
    def overrides_text(self) -> str: ...
    def set_texts(self) -> list[str]: ...
    def key(self) -> str: ...


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


def column_array(values: Sequence[Any]) -> np.ndarray:
    """A table column as one numpy array: bool, float64, or else strings."""
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


def y_axis(ax: Any, exp: Experiment, name: str) -> None:
    """Label and scale a plot's y axis as the experiment asks (``ylabel``, ``yscale``)."""
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
    y_axis(ax, exp, exp.metric)
    ax.set_title(exp.name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


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
    y_axis(ax, exp, exp.curve)
    ax.set_title(exp.name)
    ax.grid(alpha=0.3)
    if 1 < len(groups) <= 20:
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


# --------------------------------------------------------------------------- summary

_QUICK_NOTE = "quick (shortened; see [quick] in the experiment file)"


def _schedule_note(exp: Experiment, quick: bool) -> str:
    note = _QUICK_NOTE if quick else "full"
    if exp.customized:
        base = "the quick schedule" if quick else "the experiment file's schedule"
        note = f"{base} with command-line changes (`{exp.overrides_text()}`)"
    return note


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


_UNIT_IN_LABEL = re.compile(r"\(([^()]+)\)\s*$")
"""The unit at the end of an axis label: ``"test error (%)"`` -> ``%``."""


def metric_unit(exp: Experiment) -> str:
    """The unit of the summary's metric column: what the end of ``ylabel`` names in
    parentheses (``"test error (%)"`` -> ``"%"``), else ``"× yfactor"`` for a scaled metric,
    else ``""`` (the metric as the job returns it)."""
    found = _UNIT_IN_LABEL.search(exp.ylabel)
    if found:
        return found.group(1).strip()
    return f"× {exp.yfactor:g}" if exp.yfactor != 1.0 else ""


def group_key(params: Mapping[str, Any], by: Sequence[str]) -> tuple[Any, ...]:
    """A job's group in :func:`group_stats` (its parameters but the seed), from its params."""
    return tuple(params.get(p, "") for p in by)


def changed_by_group(
    jobs: Sequence[Job], changed: Sequence[Sequence[str]], by: Sequence[str]
) -> dict[tuple[Any, ...], list[str]]:
    """Per group (:func:`group_key`), the overrides that changed the config of any of its
    jobs (``changed``: per job, from :meth:`~rpucircuit.training.sweep.Experiment.changed_by`),
    in first-seen order."""
    out: dict[tuple[Any, ...], list[str]] = {}
    for job, names in zip(jobs, changed, strict=True):
        seen = out.setdefault(group_key(job.params, by), [])
        seen += [n for n in names if n not in seen]
    return out


def _override_lines(
    exp: Experiment, jobs: Sequence[Job], changed: Sequence[Sequence[str]]
) -> list[str]:
    """One bullet per ``--set``: how many jobs (and which cases) it changed."""
    lines = []
    for text in exp.set_texts():
        hit = [job for job, names in zip(jobs, changed, strict=True) if text in names]
        cases = list(dict.fromkeys(str(j.params["case"]) for j in hit if "case" in j.params))
        where = f" (cases: {', '.join(cases)})" if cases else ""
        lines.append(f"- `{text}` changed the config of {len(hit)} of {len(jobs)} jobs{where}")
    return lines


def summary_markdown(
    exp: Experiment,
    stats: Sequence[Mapping[str, Any]],
    params: Sequence[str],
    run: SweepRun,
    *,
    quick: bool,
    executor: str,
    figures: Sequence[str] = (),
    jobs: Sequence[Job] = (),
    changed: Sequence[Sequence[str]] = (),
) -> str:
    """A short Markdown report: what ran, the metric per group (mean ± std, n), figures.

    The metric is shown times ``exp.yfactor`` with its unit in the column heading
    (:func:`metric_unit`). ``jobs`` and ``changed`` (per job, the ``--set`` overrides that
    changed its config): with any override, a ``changed by`` column and a line per override
    say which groups and cases it changed."""
    by = [p for p in params if p != "seed"]
    unit = metric_unit(exp)
    heading = f"{exp.metric} ({unit})" if unit else exp.metric
    scale = ""
    if exp.yfactor != 1.0:
        scaled = f"in {unit} (× {exp.yfactor:g}" if unit[:1] != "×" else f"{unit} ("
        scale = f" {scaled}; results.csv and stats.json keep the unscaled values)"
    lines = [f"# {exp.name}", ""]
    if exp.description:
        lines += [exp.description.strip(), ""]
    lines += [
        f"- schedule: {_schedule_note(exp, quick)}",
        f"- jobs: {len(run.results)} ({sum(run.cached)} from the cache, "
        f"{len(run.results) - sum(run.cached)} run now) on {executor}",
        f"- wall time: {run.wall_s:.1f} s; job time: {sum(run.seconds):.1f} s",
        f"- metric: `{exp.metric}`{scale}, mean ± sample std over seeds (n = number of seeds)",
    ]
    columns = [*by, heading, "n"]
    by_group: dict[tuple[Any, ...], list[str]] = {}
    if exp.overrides:
        lines += _override_lines(exp, jobs, changed)
        by_group = changed_by_group(jobs, changed, by)
        columns.append("changed by")
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in stats:
        cells = [_fmt(row[p]) for p in by]
        mean, std = row["mean"] * exp.yfactor, row["std"] * exp.yfactor
        cells += [f"{mean:.4g} ± {std:.2g}", str(row["n"])]
        if exp.overrides:
            names = by_group.get(tuple(row[p] for p in by), [])
            cells.append(", ".join(f"`{n}`" for n in names) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"![{Path(name).stem}]({name})" for name in figures]
    if figures:
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- all files


def write_report(
    exp: Experiment,
    jobs: Sequence[Job],
    run: SweepRun,
    out: Path,
    *,
    quick: bool,
    executor: str,
    changed: Sequence[Sequence[str]] = (),
) -> tuple[dict[str, list[Any]], list[dict[str, Any]], dict[str, Path]]:
    """Write ``results.csv``, ``results.h5``, ``stats.json``, the plots and ``summary.md``
    into ``out``; return the results table, the group statistics and the files by role.
    ``changed``: per job, the ``--set`` overrides that changed its config."""
    table = results_table(jobs, run.results)
    params = [c for c in table if c != "key" and any(c in j.params for j in jobs)]
    if exp.metric not in table:
        raise SweepError(
            f"the job results have no scalar {exp.metric!r} (they have: "
            f"{sorted(c for c in table if c not in params and c != 'key')})"
        )
    stats = group_stats(table, params, exp.metric)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["csv"] = write_csv(table, out / "results.csv")
    tree = {
        "table": {name: column_array(values) for name, values in table.items()},
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
    figures = [files[k].name for k in ("plot", "curves") if k in files]
    text = summary_markdown(
        exp,
        stats,
        params,
        run,
        quick=quick,
        executor=executor,
        figures=figures,
        jobs=jobs,
        changed=changed if changed else [()] * len(jobs),
    )
    files["summary"] = atomic_write_text(out / "summary.md", text)
    files["stats"] = atomic_write_text(out / "stats.json", json.dumps(stats, indent=1, default=str))
    return table, stats, files


@dataclasses.dataclass(frozen=True, slots=True)
class ExperimentOutput:
    """Files written by :func:`rpucircuit.training.sweep.run_experiment` and the run itself."""

    run: SweepRun
    jobs: list[Job]
    table: dict[str, list[Any]]
    stats: list[dict[str, Any]]
    files: dict[str, Path]
