"""``rpucircuit run [CONFIG] --out DIR [--quick]``: the main job, from circuit to training.

On one circuit (paper A's tile by default) it runs, one stage after the other:

1. **characterize**: the characterization campaign (ngspice) into ``DIR/characterization``;
2. **calibrate**: fit and validate an array-model file from it, with held-out cases
   (``DIR/calibration/model.h5``);
3. **train calibrated**: the FC network on MNIST with the calibrated model file and a
   ``[cosim]`` table, so a few circuit spot checks run on its live weights
   (``DIR/train-calibrated``);
4. **train preset**: the same schedule and seed with the hand-set preset the calibration
   started from (``DIR/train-preset``);
5. **report**: ``DIR/report.md`` and ``DIR/test_error.png`` (:mod:`.run_report`).

Every stage is reused when its inputs are unchanged: a key (the sha256 of what decides the
stage's result: configs, the code digest, the input files' contents) is kept in the stage's
folder as ``stage-key.txt`` beside its results. CONFIG is read and every value validated
before anything is simulated or trained. ``docs/main-job.md`` describes the stages, the
config and the outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rpucircuit.commands.run_report import Plan, StageResult
from rpucircuit.config.base import config_key, from_dict, parse_toml, to_toml
from rpucircuit.errors import ConfigError, StoreError
from rpucircuit.jobs import code_text

T = TypeVar("T")

KEY_FILE = "stage-key.txt"
"""Name of the file, in each stage's folder, that holds the key of its finished inputs."""

RUNNING_FILE = "stage-running.txt"
"""Name of the file, in a training's folder, that holds the key of the training under way
(a killed one resumes from its checkpoint when the key is the same)."""

STAGES = ("characterize", "calibrate", "train calibrated", "train preset", "report")
"""The stages, in the order they run (one progress line each)."""

TABLES = ("campaign", "calibration", "training", "cosim")
"""CONFIG's own tables; every other table belongs to the circuit (``[tile]``, ``[device]``,
``[periphery]`` or ``[circuit]``)."""

TRAINING_FIXED = ("model", "cosim")
"""TrainingConfig fields the run sets itself (the model of each training, the spot checks'
own table); ``[training]`` may not give them."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Schedule:
    """The run's defaults for one size (``--quick`` or not); CONFIG's tables apply on top."""

    campaign: dict[str, Any]
    """``[campaign]`` fields on top of :func:`rpucircuit.circuit.characterize.quick_campaign`."""
    training: dict[str, Any]
    """TrainingConfig fields of both trainings."""
    cosim: dict[str, Any]
    """CosimConfig fields of the calibrated training's spot checks."""


DEFAULT = Schedule(
    # the quick campaign: everything calibration fits from, paper A's own 32 × 32 tile included
    campaign={"include_config_tile": True},
    # 2 epochs of 10,000 images, lr 0.1: a short schedule that already separates models
    training={
        "network": "fc",
        "epochs": 2,
        "lr": 0.1,
        "seed": 1,
        "n_train": 10_000,
        "n_test": 10_000,
        "eval_last": 1,
    },
    # one 16 × 16 block of each layer, at mid-image pixels for the first layer
    cosim={"every_epochs": 1, "layers": [], "block_rows": 16, "block_cols": 16,
           "block_offset": [0, 120], "time_limit_s": 300.0},
)  # fmt: skip
"""What ``rpucircuit run`` does without CONFIG (under 10 minutes on 2 cores, cold)."""

QUICK = Schedule(
    # the quick campaign without the 32 × 32 transient (about 30 s of ngspice)
    campaign={"include_config_tile": False},
    training={
        "network": "fc",
        "epochs": 2,
        "lr": 0.1,
        "seed": 1,
        "n_train": 300,
        "n_test": 200,
        "eval_last": 1,
    },
    cosim={"every_epochs": 2, "layers": [2], "block_rows": 8, "block_cols": 8,
           "block_offset": [0, 0], "time_limit_s": 120.0},
)  # fmt: skip
"""``--quick``: the quick campaign, 300 images × 2 epochs, one 8 × 8 block (tests)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG, ``--out``, ``--quick``, ``--jobs``, ``--no-progress``."""
    parser.add_argument(
        "config",
        nargs="?",
        type=Path,
        default=None,
        help="run config TOML (circuit tables, [campaign], [calibration], [training], "
        "[cosim]); default: paper A's tile and the FC network (docs/main-job.md)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/main"), help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small version (tests; under a minute)"
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="worker processes of the campaign (default: cores)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


# --------------------------------------------------------------------------- the plan


def _table(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    table = data.pop(name, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [{name}] must be a table")
    return dict(table)


def _build(cls: type[T], fields: Mapping[str, Any], where: str, source: str) -> T:
    try:
        return from_dict(cls, fields, path=where)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def make_plan(text: str | None, out: Path, *, source: str = "<default>", quick: bool) -> Plan:
    """Read CONFIG's text (None: the embedded default) and validate every stage's config.

    Raises ConfigError (one line naming the field) before anything is written or run.
    """
    from rpucircuit.calibration import cosim
    from rpucircuit.calibration.model import CalibrationConfig
    from rpucircuit.circuit import characterize
    from rpucircuit.config.tile import circuit_config_from_data
    from rpucircuit.config.training import CosimConfig, TrainingConfig

    schedule = QUICK if quick else DEFAULT
    data: dict[str, Any] = {} if text is None else parse_toml(text, source=source)
    tables = {name: _table(data, name, source) for name in TABLES}
    circuit = circuit_config_from_data(data, source=source, extra_tables=TABLES)
    if not circuit.tile.paired:
        raise ConfigError(
            f"{source}: tile.paired = false; the run's spot checks need a pair of arrays "
            "(G+ and G-) for signed weights"
        )
    base = dataclasses.asdict(characterize.quick_campaign())
    campaign = _build(
        characterize.CampaignConfig,
        {**base, **schedule.campaign, **tables["campaign"]},
        "campaign",
        source,
    )
    spec = characterize.CampaignSpec(circuit=circuit, campaign=campaign)
    cal = _build(CalibrationConfig, tables["calibration"], "calibration", source)
    train = tables["training"]
    for name in TRAINING_FIXED:
        if name in train:
            raise ConfigError(
                f"{source}: training.{name}: set by the run (the calibrated model file and "
                "the preset of [calibration]; spot checks in [cosim])"
            )
    if "circuit_file" in tables["cosim"]:
        raise ConfigError(f"{source}: cosim.circuit_file: the run checks against its own circuit")
    cosim_cfg = _build(CosimConfig, {**schedule.cosim, **tables["cosim"]}, "cosim", source)
    if circuit != characterize.CampaignSpec().circuit:  # not paper A's: the run's own file
        cosim_cfg = dataclasses.replace(cosim_cfg, circuit_file=str(out / "circuit.toml"))
    fields = {**schedule.training, **train}
    model_file = out / "calibration" / "model.h5"
    calibrated = _build(
        TrainingConfig,
        {**fields, "model": {"file": str(model_file)}, "cosim": dataclasses.asdict(cosim_cfg)},
        "training",
        source,
    )
    preset = _build(TrainingConfig, {**fields, "model": {"preset": cal.preset}}, "training", source)
    # layers and block checked now (against paper A's circuit; the run's own file is
    # written, and read by the hook, when the run starts)
    cosim.build_hook(
        dataclasses.replace(calibrated, cosim=dataclasses.replace(cosim_cfg, circuit_file=""))
    )
    return Plan(
        out=out,
        source=source,
        quick=quick,
        spec=spec,
        calibration=cal,
        calibrated=calibrated,
        preset=preset,
    )


# --------------------------------------------------------------------------- stage keys


def _sha256(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _sources_digest(*packages: str) -> str:
    """sha256 over the Python sources of the named subpackages of rpucircuit, each as
    :func:`rpucircuit.jobs.code_text` gives it (comments and docstrings do not count)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(code_text(f))
    return h.hexdigest()


def _read(path: Path) -> str:
    """A small text file's content, stripped; empty when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _finished(folder: Path, key: str, needed: tuple[str, ...]) -> tuple[float, str] | None:
    """The run time and summary of a finished stage of this key whose ``needed`` files are
    all in ``folder``; None when the stage must run."""
    try:
        lines = (folder / KEY_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if len(lines) < 3 or lines[0] != key or not all((folder / n).is_file() for n in needed):
        return None
    try:
        return float(lines[1]), lines[2]
    except ValueError:
        return None


def staged(
    name: str, folder: Path, key: str, needed: tuple[str, ...], work: Callable[[], str]
) -> StageResult:
    """Run ``work`` (which returns the stage's one-line summary) unless ``folder`` holds a
    finished stage of ``key``. The key file (key, seconds, summary) is written only after
    the work finished, and deleted before it starts, so a killed stage is never reused."""
    done = _finished(folder, key, needed)
    if done is not None:
        return StageResult(name=name, seconds=done[0], reused=True, summary=done[1])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / KEY_FILE).unlink(missing_ok=True)
    t0 = time.perf_counter()
    summary = work()
    seconds = time.perf_counter() - t0
    (folder / KEY_FILE).write_text(f"{key}\n{seconds:.3f}\n{summary}\n", encoding="utf-8")
    return StageResult(name=name, seconds=seconds, reused=False, summary=summary)


# --------------------------------------------------------------------------- the stages


def characterize_stage(plan: Plan, *, jobs: int | None, progress: bool) -> StageResult:
    """The campaign, reused when the folder holds one of the same config and code."""
    from rpucircuit.circuit import characterize

    def work() -> str:
        result = characterize.run_campaign(
            plan.spec, plan.char_dir, n_workers=jobs, progress=progress
        )
        return f"{result.jobs} jobs ({result.cached} from its cache) -> {result.path}"

    key = _sha256(config_key(plan.spec), characterize.code_digest())
    needed = (characterize.RESULT_NAME, "report.md")
    return staged("characterize", plan.char_dir, key, needed, work)


def calibrate_stage(plan: Plan) -> StageResult:
    """``rpucircuit calibrate`` on the characterization, reused when the file, the
    calibration config and the calibration code are unchanged. Its printed tables go to
    ``calibrate.txt``."""
    from rpucircuit.commands import calibrate
    from rpucircuit.model import modelfile

    folder = plan.cal_dir
    char = plan.char_dir / "characterization.h5"
    cal_toml = to_toml(plan.calibration)

    def work() -> str:
        config = folder / "calibration.toml"
        config.write_text(cal_toml, encoding="utf-8")
        args = argparse.Namespace(
            characterization=char, out=plan.model_file, config=config, held_out=None,
            plots=folder / "plots",
        )  # fmt: skip
        printed, log = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(log):
            calibrate.run(args)
        (folder / "calibrate.txt").write_text(printed.getvalue(), encoding="utf-8")
        model = modelfile.load_model(plan.model_file).model
        fitted = sum(1 for p in model.parameters if p.origin == "fitted")
        cases = sum(1 for v in model.validation if v.is_case)
        return f"{fitted} parameters fitted, {cases} validation cases -> {plan.model_file}"

    key = _sha256(
        modelfile.file_sha256(char), cal_toml, _sources_digest("calibration", "model", "config")
    )
    return staged("calibrate", folder, key, ("model.h5",), work)


def _training_key(cfg: Any) -> str:
    from rpucircuit.model import modelfile
    from rpucircuit.training.loop import code_digest

    sha = modelfile.file_sha256(cfg.model.file) if cfg.model.file else ""
    return _sha256(config_key(cfg), sha, code_digest(), _sources_digest("calibration"))


def train_stage(plan: Plan, which: str, *, progress: bool) -> StageResult:
    """One training; reused when its folder's history has the same config, model file
    contents and code (the report reads its ``history.h5``)."""
    from rpucircuit.commands.train import epoch_hooks
    from rpucircuit.training.loop import train

    cfg = plan.calibrated if which == "calibrated" else plan.preset
    folder = plan.train_dirs[which]

    key = _training_key(cfg)

    def work() -> str:
        hooks = epoch_hooks(cfg)
        # a training of this key that was killed continues from its last checkpoint
        running = folder / RUNNING_FILE
        resume = (folder / "checkpoint.h5").is_file() and _read(running) == key
        running.write_text(key + "\n", encoding="utf-8")
        try:
            result = train(
                cfg, folder, resume=resume, overwrite=not resume, progress=progress,
                epoch_hooks=hooks,
            )  # fmt: skip
        except StoreError:
            if not resume:
                raise
            resume = False  # the checkpoint cannot continue: start over
            result = train(cfg, folder, overwrite=True, progress=progress, epoch_hooks=hooks)
        running.unlink()
        records = result.hook_records.get("cosim")
        if records is not None and len(records["epoch"]):
            from rpucircuit.calibration import cosim

            cosim.plot_records(records, folder / "cosim_error.png")
        how = f" (resumed after epoch {len(result.history['test_error']) - result.epochs_run})"
        return (
            f"test error {100 * result.test_error_final:.2f} % after "
            f"{len(result.history['test_error'])} epochs{how if resume else ''} -> {folder}"
        )

    needed = ("history.h5", "checkpoint.h5")
    return staged(f"train {which}", folder, key, needed, work)


# --------------------------------------------------------------------------- the command


def _line(i: int, stage: StageResult) -> None:
    how = (
        f"reused (ran in {stage.seconds:.1f} s)"
        if stage.reused
        else f"done in {stage.seconds:.1f} s"
    )
    print(
        f"[{i}/{len(STAGES)}] {stage.name:<16} {how}  {stage.summary}",
        file=sys.stderr,
        flush=True,
    )


def _read_config(path: Path | None) -> tuple[str | None, str]:
    if path is None:
        return None, "<default>"
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc


def run(args: argparse.Namespace) -> int:
    """Validate CONFIG, then run the stages; print one line per stage and the report's path."""
    from rpucircuit.circuit import spice
    from rpucircuit.commands import run_report

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs = {args.jobs}: must be >= 1")
    text, source = _read_config(args.config)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder")
    plan = make_plan(text, out, source=source, quick=args.quick)
    spice.ngspice_version()  # a missing simulator fails before anything is written
    progress = not args.no_progress
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.toml").write_text(run_report.resolved_toml(plan), encoding="utf-8")
    if plan.calibrated.cosim.circuit_file:
        Path(plan.calibrated.cosim.circuit_file).write_text(
            to_toml(plan.spec.circuit), encoding="utf-8"
        )
    t_all = time.perf_counter()
    steps: list[Callable[[], StageResult]] = [
        lambda: characterize_stage(plan, jobs=args.jobs, progress=progress),
        lambda: calibrate_stage(plan),
        lambda: train_stage(plan, "calibrated", progress=progress),
        lambda: train_stage(plan, "preset", progress=progress),
    ]
    done: list[StageResult] = []
    for i, step in enumerate(steps, start=1):
        done.append(step())
        _line(i, done[-1])
    t0 = time.perf_counter()
    report = run_report.write(plan, done)
    done.append(
        StageResult(name="report", seconds=time.perf_counter() - t0, reused=False,
                    summary=f"-> {report}")
    )  # fmt: skip
    _line(len(STAGES), done[-1])
    print(f"report {report}")
    print(f"total  {time.perf_counter() - t_all:.1f} s")
    return 0
