"""The main job end to end (``rpucircuit run --quick``): real ngspice, real MNIST.

One run of the quick schedule (the quick campaign, calibration with held-out cases, the FC
network on 300 images × 2 epochs with the calibrated model and with the preset, one 8 × 8
spot check) and a second run on the same folder. The report is checked against the files it
was written from: its final test errors against the histories, its parameters and
validation rows against the model file, its spot checks against the calibrated history.
Bad configs fail in one line before anything is written.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rpucircuit import cli
from rpucircuit.commands import run as run_cmd
from rpucircuit.commands.run_report import read_history
from rpucircuit.config.base import config_key, parse_toml
from rpucircuit.model import modelfile

pytestmark = [pytest.mark.training, pytest.mark.sim, pytest.mark.slow]

SECTIONS = (
    "## 1. Circuit characterization",
    "## 2. Calibrated parameters",
    "## 3. Validation against ngspice (calibrated model vs the preset)",
    "## 4. Training (FC network 784-256-128-10 on MNIST, mini-batch 1)",
    "## 5. Circuit spot checks on the calibrated training",
)


def _run(out: Path, *extra: str) -> int:
    return cli.main(["run", "--quick", "--out", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The quick job run twice on one folder; the second run's progress lines."""
    out = tmp_path_factory.mktemp("run") / "main"
    assert _run(out) == 0
    first = (out / "report.md").read_text(encoding="utf-8")
    return {"out": out, "first": first}


def _row(report: str, first_cell: str) -> list[str]:
    """The cells of the report's table row that starts with ``first_cell``."""
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row {first_cell!r} in the report")


def test_report_has_every_section_and_file(job: dict[str, object]) -> None:
    out = job["out"]
    assert isinstance(out, Path)
    report = (out / "report.md").read_text(encoding="utf-8")
    positions = [report.index(s) for s in SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    for name in (
        "run.toml",
        "test_error.png",
        "characterization/characterization.h5",
        "characterization/report.md",
        "characterization/transfer_scatter.png",
        "calibration/model.h5",
        "calibration/calibrate.txt",
        "train-calibrated/history.h5",
        "train-calibrated/cosim_error.png",
        "train-preset/history.h5",
    ):
        assert (out / name).is_file(), name
    # every image the report shows is there (links are relative to the report)
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (out / link).is_file(), link


def test_final_errors_are_the_histories(job: dict[str, object]) -> None:
    """The report prints each history's test_error_final in % with two decimals: equal
    to it within the rounding (0.005 percentage points)."""
    out = job["out"]
    assert isinstance(out, Path)
    report = (out / "report.md").read_text(encoding="utf-8")
    for name in ("calibrated", "preset"):
        h = read_history(out / f"train-{name}")
        cells = _row(report, name)
        printed = float(cells[1].removesuffix(" %"))
        assert abs(printed - 100 * float(h["test_error_final"])) <= 0.005
        assert len(np.atleast_1d(h["test_error"])) == 2  # --quick: 2 epochs
    # the two trainings had the same schedule and seed, different models
    cal = read_history(out / "train-calibrated")
    assert "model_file" in cal
    assert "model_file" not in read_history(out / "train-preset")


def test_parameters_and_validation_are_the_model_file(job: dict[str, object]) -> None:
    """Every parameter row and validation row of the model file is in the report with the
    printed precision (value 6 significant digits, errors 3)."""
    out = job["out"]
    assert isinstance(out, Path)
    report = (out / "report.md").read_text(encoding="utf-8")
    loaded = modelfile.load_model(out / "calibration" / "model.h5")
    model = loaded.model
    held = parse_toml(loaded.provenance.config_toml)["held_out"]  # what calibration held out
    assert model.parameters and model.validation
    for p in model.parameters:
        cells = _row(report, p.name)
        assert cells[1] == f"{p.value:.6g}", p.name
        assert cells[4] == p.origin
        assert cells[5] == (", ".join(p.sources) or "—")
    for v in model.validation:
        if not v.is_case:
            continue
        cells = _row(report, v.name)
        assert cells[2] == f"{v.rms_error:.3g}" and cells[4] == f"{v.preset_rms_error:.3g}"
        assert cells[7] == ("yes" if v.passed else "no")
        assert cells[8] == ("yes" if v.case in held else "no")
    assert held and all(f"`{c}`" in report for c in held)


def test_spot_checks_are_the_calibrated_history(job: dict[str, object]) -> None:
    out = job["out"]
    assert isinstance(out, Path)
    report = (out / "report.md").read_text(encoding="utf-8")
    rec = read_history(out / "train-calibrated")["cosim"]
    assert list(np.atleast_1d(rec["epoch"])) == [2]  # every_epochs = 2: the last epoch only
    cells = _row(report, "2")
    assert cells[1] == str(int(np.atleast_1d(rec["layer"])[0]))
    rms = float(np.atleast_1d(rec["spice_op_rms_pct"])[0])
    assert not math.isnan(rms)
    assert cells[3].split(" / ")[0] == f"{rms:.3g}"
    assert cells[-1] == "ok"


def test_second_run_reuses_every_stage(
    job: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """Unchanged inputs: all four stages reused, the same numbers reported."""
    out = job["out"]
    assert isinstance(out, Path)
    capsys.readouterr()
    assert _run(out) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert len(lines) == len(run_cmd.STAGES)
    assert all(" reused (ran in " in line for line in lines[:4]), lines
    again = (out / "report.md").read_text(encoding="utf-8")
    first = job["first"]
    assert isinstance(first, str)
    assert _row(again, "calibrated") == _row(first, "calibrated")
    assert _row(again, "preset") == _row(first, "preset")


def test_resolved_config_repeats_the_run(job: dict[str, object]) -> None:
    """run.toml read back as CONFIG (without --quick) gives the same stage configs."""
    out = job["out"]
    assert isinstance(out, Path)
    text = (out / "run.toml").read_text(encoding="utf-8")
    again = run_cmd.make_plan(text, out, source="run.toml", quick=False)
    first = run_cmd.make_plan(None, out, quick=True)
    for field in ("spec", "calibration", "calibrated", "preset"):
        assert config_key(getattr(again, field)) == config_key(getattr(first, field)), field


def test_changed_schedule_reruns_only_the_trainings(
    job: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy of the run folder with another [training]: characterization and calibration
    reused (their keys hold no path or schedule), both trainings run again."""
    out = job["out"]
    assert isinstance(out, Path)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    config = tmp_path / "run.toml"
    config.write_text("[training]\nn_train = 100\nn_test = 100\nepochs = 1\n", encoding="utf-8")
    capsys.readouterr()
    assert _run(copy, str(config)) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("[")]
    assert [" reused (ran in " in x for x in lines[:4]] == [True, True, False, False], lines
    assert len(np.atleast_1d(read_history(copy / "train-preset")["test_error"])) == 1


def test_killed_training_resumes_from_its_checkpoint(
    job: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A training killed after its last checkpoint (no stage key, its running key left):
    the rerun continues it instead of starting over, and reports the same test error."""
    out = job["out"]
    assert isinstance(out, Path)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    folder = copy / "train-preset"
    key = (folder / run_cmd.KEY_FILE).read_text(encoding="utf-8").splitlines()[0]
    (folder / run_cmd.KEY_FILE).unlink()
    (folder / run_cmd.RUNNING_FILE).write_text(key + "\n", encoding="utf-8")
    before = float(read_history(folder)["test_error_final"])
    capsys.readouterr()
    assert _run(copy) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("[")]
    assert "resumed after epoch 2" in lines[3], lines
    assert float(read_history(folder)["test_error_final"]) == before  # exact: nothing retrained
    assert not (folder / run_cmd.RUNNING_FILE).exists()


def test_example_config_is_valid() -> None:
    """examples/main-job.toml builds a plan (every value validated)."""
    path = Path(__file__).resolve().parents[2] / "examples" / "main-job.toml"
    plan = run_cmd.make_plan(path.read_text(encoding="utf-8"), Path("x"), quick=False)
    assert plan.preset.epochs == 1 and plan.calibrated.cosim.layers == (0, 2)
    assert plan.calibration.held_out == ("transfer/fwd_no_line_*",)


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("[campaign]\ntransient_size = 0\n", "transient_size"),
        ("[training]\nepochs = 0\n", "epochs"),
        ('[training]\nmodel = {preset = "floating_point"}\n', "training.model"),
        ('[calibration]\npreset = "nope"\n', "preset"),
        ("[cosim]\nlayers = [7]\n", "layers"),
        ("[tile]\nrows = -4\n", "rows"),
        ("[bogus]\nx = 1\n", "bogus"),
        ("[training\n", "run.toml"),
    ],
)
def test_bad_config_fails_in_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, names: str
) -> None:
    config = tmp_path / "run.toml"
    config.write_text(toml, encoding="utf-8")
    out = tmp_path / "out"
    assert cli.main(["run", str(config), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rpucircuit run: error:"), err
    assert names in err, err
    assert not out.exists()  # nothing written, nothing simulated
