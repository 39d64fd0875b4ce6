"""Command-line schedule changes: ``--set PATH=VALUE`` and ``--grid AXIS=[...]``."""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import pytest
from test_sweep import EXPERIMENT, ToyConfig, reference

from rpucircuit.errors import ConfigError
from rpucircuit.training import report, sweep

BASELINES = Path(__file__).parents[2] / "experiments" / "paper-a-baselines.toml"


def test_set_applies_last_and_grid_replaces_values() -> None:
    exp = sweep.parse_experiment(EXPERIMENT).with_overrides({"b": 7}, {"seed": [2]})
    jobs = exp.jobs()
    # every case's own b (2 or 5) is overridden; only seed 2 is left of [1, 2, 3]
    assert [j.config for j in jobs] == [
        ToyConfig(a=a, b=7, seed=2) for _case in ("short", "long") for a in (1.0, 2.0)
    ]
    # the quick schedule's b = 1 is overridden as well (overrides come after [quick])
    assert {j.config.b for j in exp.jobs(quick=True)} == {7}
    assert exp.customized and exp.overrides_text() == "--set b=7 --grid seed=[2]"
    # provenance: the key depends on the overrides, the file's own key does not change
    plain = sweep.parse_experiment(EXPERIMENT)
    assert not plain.customized and exp.key() != plain.key()


def test_overrides_are_validated_before_running() -> None:
    exp = sweep.parse_experiment(EXPERIMENT)
    with pytest.raises(ConfigError, match=r"--grid 'c': not a grid axis .*\['a', 'seed'\]"):
        exp.with_overrides(grid={"c": [1]})
    with pytest.raises(ConfigError, match=r"--grid 'seed': give a non-empty list"):
        exp.with_overrides(grid={"seed": []})
    with pytest.raises(ConfigError, match=r"--grid 'seed': give a non-empty list"):
        exp.with_overrides(grid={"seed": 3})  # type: ignore[dict-item]
    # a bad value for a config field fails when the jobs are built, naming the job
    with pytest.raises(ConfigError, match=r"case 'short'.*sleep_s"):
        exp.with_overrides({"sleep_s": -1.0})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=3", ("epochs", 3)),
        ("rpu.update.bl = 0.5", ("rpu.update.bl", 0.5)),
        ('model.preset="floating_point"', ("model.preset", "floating_point")),
        ("model.preset=floating_point", ("model.preset", "floating_point")),
        ("flag=true", ("flag", True)),
        ("seed=[1, 2]", ("seed", [1, 2])),
        ("rpu.device.w_max & rpu.device.w_min=[[0.3, -0.3]]", (
            "rpu.device.w_max & rpu.device.w_min", [[0.3, -0.3]])),
    ],
)  # fmt: skip
def test_parse_assignment(text: str, expected: tuple[str, object]) -> None:
    assert sweep.parse_assignment(text, option="--set") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs", r"--set 'epochs': expected PATH=VALUE"),
        ("=3", r"expected PATH=VALUE"),
        ("epochs=", r"expected PATH=VALUE"),
        ("seed=[1, 2", r"'\[1, 2' is not a TOML value"),
        ("name=a b", r"'a b' is not a TOML value"),
    ],
)
def test_parse_assignment_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sweep.parse_assignment(text, option="--set")


def test_cli_set_and_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rpucircuit import cli

    p = tmp_path / "toy.toml"
    p.write_text(EXPERIMENT)
    runs = tmp_path / "runs"
    args = ["sweep", str(p), "--jobs", "2", "--no-progress", "--set", "b=4", "--grid", "seed=[3]"]
    cwd = Path.cwd()
    try:
        os.chdir(tmp_path)
        assert cli.main(args) == 0
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "toy-sweep: 4 jobs (0 cached)" in out
    # its own folder: the full schedule's report is never overwritten by a shortened run
    (folder,) = (runs / "sweeps").iterdir()
    assert folder.name.startswith("toy-sweep-set-")
    summary = (folder / "summary.md").read_text()
    assert "`--set b=4 --grid seed=[3]`" in summary
    assert "the experiment file's schedule with command-line changes" in summary
    assert "- `--set b=4` changed the config of 4 of 4 jobs (cases: short, long)" in summary
    with (folder / "results.csv").open(newline="") as f:
        values = sorted(float(row["value"]) for row in csv.DictReader(f))
    want = sorted(reference(ToyConfig(a=a, b=4, seed=3)) for _ in range(2) for a in (1.0, 2.0))
    assert values == pytest.approx(want, rel=0, abs=0)  # same job, same config: exact
    assert cli.main(["sweep", str(p), "--set", "epochs"]) == 1
    assert "expected PATH=VALUE" in capsys.readouterr().err


def test_plot_y_axis_options(tmp_path: Path) -> None:
    """yscale/yfactor/ylabel: the papers plot test error in % on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    head = '[experiment]\nname = "toy-sweep"\n'
    text = EXPERIMENT.replace(
        head, head + 'yscale = "log"\nyfactor = 100\nylabel = "test error (%)"\n'
    )
    exp = sweep.parse_experiment(text)
    assert (exp.yscale, exp.yfactor, exp.ylabel) == ("log", 100.0, "test error (%)")
    fig, ax = plt.subplots()
    report.y_axis(ax, exp, exp.metric)
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "test error (%)"
    plt.close(fig)
    out = sweep.run_experiment(exp, tmp_path, n_workers=1, progress=False)
    assert out.files["plot"].read_bytes()[:4] == b"\x89PNG"
    # the tables keep the unscaled metric
    (grp,) = [s for s in out.stats if s["case"] == "long" and s["a"] == 2.0]
    vals = [reference(ToyConfig(a=2.0, b=5, seed=s)) for s in (1, 2, 3)]
    assert grp["mean"] == pytest.approx(sum(vals) / 3, rel=1e-12)  # summation order only
    default = sweep.parse_experiment(EXPERIMENT)
    assert (default.yscale, default.yfactor, default.ylabel) == ("linear", 1.0, "")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('yscale = "symlog"', r"yscale = 'symlog': must be 'linear' or 'log'"),
        ("yfactor = 0", r"yfactor = 0: must be a number > 0"),
        ("yfactor = true", r"yfactor = True: must be a number > 0"),
        ("yfactor = nan", r"yfactor = nan: must be a number > 0"),
        ("ylabel = 3", r"ylabel = 3: must be a string"),
    ],
)
def test_plot_y_axis_errors(line: str, message: str) -> None:
    head = '[experiment]\nname = "toy-sweep"\n'
    with pytest.raises(ConfigError, match=message):
        sweep.parse_experiment(EXPERIMENT.replace(head, head + line + "\n"))


def test_changed_by_names_the_cases_an_override_changes() -> None:
    """``--set b=2``: the base and case "short" already have b = 2, so only case "long"
    (b = 5) runs something else than its name says; an override without which a config
    does not validate counts as changing it."""
    exp = sweep.parse_experiment(EXPERIMENT).with_overrides({"b": 2})
    jobs, changed = exp.jobs(), exp.changed_by()
    assert [j.params["case"] for j, c in zip(jobs, changed, strict=True) if c] == ["long"] * 6
    assert set(changed) == {(), ("--set b=2",)}
    assert sweep.parse_experiment(EXPERIMENT).changed_by() == [()] * 12
    rescue = dataclasses.replace(
        exp, cases=(sweep.Case(name="bad", set={"sleep_s": -1.0}),), overrides={"sleep_s": 0.0}
    )
    assert set(rescue.changed_by()) == {("--set sleep_s=0.0",)}


def test_preset_override_is_reported_on_the_case_it_replaces() -> None:
    """``--set model.preset=floating_point`` on the baselines experiment: the "RPU baseline"
    case keeps its name but now runs floating point; "FP" is unchanged."""
    exp = sweep.load_experiment(BASELINES).with_overrides({"model.preset": "floating_point"})
    for quick in (False, True):
        got = {
            (j.params["case"], c)
            for j, c in zip(exp.jobs(quick=quick), exp.changed_by(quick=quick), strict=True)
        }
        assert got == {("FP", ()), ("RPU baseline", ('--set model.preset="floating_point"',))}


def test_summary_in_percent_with_overrides_per_case(tmp_path: Path) -> None:
    """yfactor = 100 and ylabel "... (%)": the summary's metric column is in % and says so;
    with ``--set``, a "changed by" column and a line per override name what it changed."""
    head = '[experiment]\nname = "toy-sweep"\n'
    text = EXPERIMENT.replace(head, head + 'yfactor = 100\nylabel = "toy value (%)"\n')
    exp = sweep.parse_experiment(text).with_overrides({"b": 2})
    out = sweep.run_experiment(exp, tmp_path, n_workers=2, progress=False)
    summary = (tmp_path / "summary.md").read_text()
    assert "| case | a | value (%) | n | changed by |" in summary
    assert "- metric: `value` in % (× 100; results.csv and stats.json keep the unscaled" in summary
    assert "- `--set b=2` changed the config of 6 of 12 jobs (cases: long)" in summary
    for row in out.stats:
        mean, std = 100 * row["mean"], 100 * row["std"]  # the same product as the report's
        changed = "`--set b=2`" if row["case"] == "long" else "—"
        line = f"| {row['case']} | {row['a']:.4g} | {mean:.4g} ± {std:.2g} | 3 | {changed} |"
        assert line in summary
    # the tables keep the unscaled metric (mean over the seeds 1, 2, 3)
    (grp,) = [s for s in out.stats if s["case"] == "long" and s["a"] == 2.0]
    vals = [reference(ToyConfig(a=2.0, b=2, seed=s)) for s in (1, 2, 3)]
    assert grp["mean"] == pytest.approx(sum(vals) / 3, rel=1e-12)  # summation order only


@pytest.mark.parametrize(
    ("ylabel", "yfactor", "unit"),
    [("test error (%)", 100.0, "%"), ("", 100.0, "× 100"), ("", 1.0, ""), ("loss", 1.0, "")],
)
def test_metric_unit(ylabel: str, yfactor: float, unit: str) -> None:
    exp = dataclasses.replace(sweep.parse_experiment(EXPERIMENT), ylabel=ylabel, yfactor=yfactor)
    assert report.metric_unit(exp) == unit


def test_shipped_experiments_report_test_error_in_percent() -> None:
    """All shipped experiments plot and summarize the test error in %."""
    for path in sorted(BASELINES.parent.glob("*.toml")):
        exp = sweep.load_experiment(path)
        assert (exp.metric, exp.yfactor, report.metric_unit(exp)) == (
            "test_error_avg",
            100.0,
            "%",
        ), path.name
