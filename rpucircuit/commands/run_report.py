"""The main job's records and report (``rpucircuit run``): the validated plan of a run
(:class:`Plan`), each stage's result (:class:`StageResult`), and the files a peripheral
designer reads: ``report.md``, top to bottom, and ``test_error.png`` with both trainings'
curves.

Everything in the report is read back from the stages' files, never from memory, so a reused stage
reports exactly what it reported when it ran: the characterization's report and plots, the
model file's parameters and validation, each training's ``history.h5`` (its test errors
and the spot checks' rows).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from rpucircuit import store
from rpucircuit.config.base import config_key, to_dict
from rpucircuit.fileio import save_png

REPORT_NAME = "report.md"
PLOT_NAME = "test_error.png"
NETWORKS = {"fc": "FC network 784-256-128-10", "cnn": "CNN (paper B)"}
"""How the report names the training config's ``network``."""
MODELS = ("calibrated", "preset")
"""The two trainings, in the report's order."""


# --------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """Everything the run does, validated, before any work."""

    out: Path
    source: str
    """CONFIG's path, or ``<default>``."""
    quick: bool
    spec: Any
    """The campaign (:class:`rpucircuit.circuit.characterize.CampaignSpec`)."""
    calibration: Any
    """:class:`rpucircuit.calibration.model.CalibrationConfig`."""
    calibrated: Any
    """TrainingConfig of the calibrated model, with ``[cosim]``."""
    preset: Any
    """TrainingConfig of the hand-set preset (same schedule, seed and data)."""

    @property
    def char_dir(self) -> Path:
        return self.out / "characterization"

    @property
    def cal_dir(self) -> Path:
        return self.out / "calibration"

    @property
    def model_file(self) -> Path:
        return self.cal_dir / "model.h5"

    @property
    def train_dirs(self) -> dict[str, Path]:
        return {"calibrated": self.out / "train-calibrated", "preset": self.out / "train-preset"}


@dataclasses.dataclass(kw_only=True, slots=True)
class StageResult:
    """One progress line and the stage's record in the report."""

    name: str
    seconds: float
    """Wall time of the stage when it ran (a reused stage: the run that computed it)."""
    reused: bool
    summary: str


def resolved_toml(plan: Plan) -> str:
    """The run's whole config as a CONFIG file (``run.toml``): rerunning it with
    ``rpucircuit run run.toml`` repeats this run."""
    train = {k: v for k, v in to_dict(plan.preset).items() if k not in ("model", "cosim")}
    cosim = {k: v for k, v in to_dict(plan.calibrated.cosim).items() if k != "circuit_file"}
    doc = {
        **to_dict(plan.spec.circuit),
        "campaign": to_dict(plan.spec.campaign),
        "calibration": to_dict(plan.calibration),
        "training": train,
        "cosim": cosim,
    }
    return "# rpucircuit run: the resolved config of this run (docs/main-job.md)\n" + tomli_w.dumps(
        doc
    )


# --------------------------------------------------------------------------- reading back


def read_history(folder: Path) -> dict[str, Any]:
    """A training folder's ``history.h5`` as a tree."""
    tree, _ = store.load(folder / "history.h5", kind="history")
    return tree


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.2f} %"


def _g(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.3g}"


# --------------------------------------------------------------------------- sections


def _stages(plan: Plan, stages: Sequence[StageResult]) -> list[str]:
    lines = ["| stage | result | time when it ran | this run |", "|---|---|---|---|"]
    for s in stages:
        summary = s.summary.replace(str(plan.out) + "/", "")
        how = "reused" if s.reused else "ran"
        lines.append(f"| {s.name} | {summary} | {s.seconds:.1f} s | {how} |")
    return lines


def _circuit(plan: Plan) -> list[str]:
    folder = plan.char_dir
    text = (folder / "report.md").read_text(encoding="utf-8")
    body = text.split("\n", 1)[1] if text.startswith("# ") else text
    # the campaign report's plots and files live in characterization/
    body = re.sub(r"\]\(([\w.-]+\.(?:png|h5))\)", r"](characterization/\1)", body)
    body = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", body, flags=re.M)
    plots = sorted(p.name for p in folder.glob("*.png"))
    lines = [
        "## 1. Circuit characterization",
        "",
        f"The campaign ran ngspice on the circuit in `run.toml` (`characterization/`, "
        f"config key `{config_key(plan.spec)[:16]}`). Its figures:",
        "",
    ]
    lines += [f"![{p}](characterization/{p})" for p in plots]
    lines += ["", "The campaign's own report follows (`characterization/report.md`).", ""]
    return [*lines, body.strip(), ""]


def _parameters(model: Any) -> list[str]:
    lines = [
        "## 2. Calibrated parameters",
        "",
        f"Model file `calibration/model.h5`: {model.description}",
        "",
        "`fitted`: determined by the simulations (95 % interval from the fit); `config`: taken "
        "from the circuit config or the preset, which the simulations cannot observe.",
        "",
        "| parameter | value | unit | 95 % interval | origin | sources |",
        "|---|---|---|---|---|---|",
    ]
    for p in model.parameters:
        lo, hi = p.interval
        sources = ", ".join(p.sources) or "—"
        lines.append(
            f"| {p.name} | {p.value:.6g} | {p.unit} | [{lo:.6g}, {hi:.6g}] | {p.origin} | "
            f"{sources} |"
        )
    return [*lines, ""]


def _held_out(loaded: Any) -> tuple[str, ...]:
    """The cases calibration kept out of every fit (its provenance records them)."""
    from rpucircuit.config.base import parse_toml

    origin = parse_toml(loaded.provenance.config_toml, source=str(loaded.path))
    return tuple(str(c) for c in origin.get("held_out", ()))


def _validation(plan: Plan, model: Any, held: tuple[str, ...]) -> list[str]:
    cases = [v for v in model.validation if v.is_case]
    figures = [v for v in model.validation if not v.is_case]
    lines = [
        "## 3. Validation against ngspice (calibrated model vs the preset)",
        "",
        f"The behavioral model's read or update on each case against the simulator, beside "
        f"the hand-set preset `{plan.calibration.preset}` (reads in % of the output bound α, "
        "updates in % of the largest step). Held-out cases were kept out of every fit: "
        + (", ".join(f"`{c}`" for c in held) or "none")
        + ".",
        "",
        "| check | case | calibrated rms | calibrated max | preset rms | preset max | tolerance "
        "| passed | held out |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in cases:
        lines.append(
            f"| {v.name} | {v.case} | {_g(v.rms_error)} | {_g(v.max_error)} | "
            f"{_g(v.preset_rms_error)} | {_g(v.preset_max_error)} | {_g(v.tolerance)} "
            f"{v.unit} | {'yes' if v.passed else 'no'} | {'yes' if v.case in held else 'no'} |"
        )
    if figures:
        lines += [
            "",
            "| figure | calibrated | reference | tolerance | passed |",
            "|---|---|---|---|---|",
        ]
        for v in figures:
            lines.append(
                f"| {v.name} | {v.predicted:.6g} | {v.reference:.6g} | {v.tolerance:.3g} {v.unit} "
                f"| {'yes' if v.passed else 'no'} |"
            )
    plots = sorted((plan.cal_dir / "plots").glob("*.png"))
    lines += ["", *(f"![{p.name}](calibration/plots/{p.name})" for p in plots)]
    lines += ["", "Calibration's printed tables: `calibration/calibrate.txt`.", ""]
    return lines


def _training(plan: Plan, histories: Mapping[str, Mapping[str, Any]]) -> list[str]:
    cfg = plan.preset
    lines = [
        f"## 4. Training ({NETWORKS.get(cfg.network, cfg.network)} on MNIST, mini-batch 1)",
        "",
        f"Same schedule and seed for both: network `{cfg.network}`, {cfg.epochs} epochs of "
        f"{cfg.n_train} training images, tested on {cfg.n_test}, lr {cfg.lr}, seed {cfg.seed}. "
        f"Calibrated: `model.file = {plan.calibrated.model.file}`; preset: "
        f"`model.preset = {cfg.model.preset}`.",
        "",
        f"![test error vs epoch]({PLOT_NAME})",
        "",
        "| model | final test error | test error per epoch | samples/s (last epoch) | folder |",
        "|---|---|---|---|---|",
    ]
    for name in MODELS:
        h = histories[name]
        per_epoch = ", ".join(_pct(float(e)) for e in np.atleast_1d(h["test_error"]))
        speed = float(np.atleast_1d(h["samples_per_s"])[-1])
        lines.append(
            f"| {name} | {_pct(float(h['test_error_final']))} | {per_epoch} | {speed:.0f} | "
            f"`{plan.train_dirs[name].name}/` |"
        )
    return [*lines, ""]


def _spot_checks(plan: Plan, history: Mapping[str, Any]) -> list[str]:
    from rpucircuit.calibration.cosim import ANALYSES

    lines = [
        "## 5. Circuit spot checks on the calibrated training",
        "",
        "A block of each chosen layer's live weights, read by ngspice (operating point and "
        "transient) and the whole layer by the nodal solver, against the behavioral read "
        "(noise off): RMS / largest difference in % of α (docs/cosim.md).",
        "",
    ]
    rec = history.get("cosim")
    if not rec or not len(np.atleast_1d(rec["epoch"])):
        return [*lines, "No spot checks ran.", ""]
    cols = {k: np.atleast_1d(v) for k, v in rec.items()}
    head = " | ".join(ANALYSES)
    lines += [
        f"| epoch | layer | block (row, col, size) | {head} | status |",
        "|---|---|---|" + "---|" * len(ANALYSES) + "---|",
    ]
    for k in range(len(cols["epoch"])):
        block = (
            f"{int(cols['block_row'][k])}, {int(cols['block_col'][k])}, "
            f"{int(cols['block_rows'][k])} × {int(cols['block_cols'][k])}"
        )
        diffs = " | ".join(
            f"{_g(float(cols[a + '_rms_pct'][k]))} / {_g(float(cols[a + '_max_pct'][k]))}"
            for a in ANALYSES
        )
        status = str(cols["status"][k])
        if status != "ok":
            status += f": {cols['message'][k]}"
        lines.append(
            f"| {int(cols['epoch'][k])} | {int(cols['layer'][k])} | {block} | {diffs} | {status} |"
        )
    rms = [float(v) for a in ANALYSES for v in cols[a + "_rms_pct"] if not math.isnan(float(v))]
    if rms:
        lines += ["", f"Largest RMS difference over all checks: {max(rms):.3g} % of α."]
    plot = plan.train_dirs["calibrated"] / "cosim_error.png"
    if plot.is_file():
        lines += ["", f"![spot checks](train-calibrated/{plot.name})"]
    return [*lines, ""]


# --------------------------------------------------------------------------- the files


def plot_curves(histories: Mapping[str, Mapping[str, Any]], path: Path, network: str) -> Path:
    """Test error (%) against epoch of both trainings on one plot, final errors labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, marker in zip(MODELS, ("o", "s"), strict=True):
        h = histories[name]
        err = 100 * np.atleast_1d(h["test_error"]).astype(float)
        epochs = np.arange(1, len(err) + 1)
        ax.plot(epochs, err, marker=marker, label=f"{name}: {err[-1]:.2f} % after epoch {len(err)}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_xticks(
        np.arange(1, max(len(np.atleast_1d(h["test_error"])) for h in histories.values()) + 1)
    )
    ax.set_title(f"{network} on MNIST: calibrated model vs preset")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


def write(plan: Plan, stages: Sequence[StageResult]) -> Path:
    """Write ``report.md`` and ``test_error.png`` into the run folder; return the report."""
    from rpucircuit.model import modelfile

    histories = {name: read_history(plan.train_dirs[name]) for name in MODELS}
    loaded = modelfile.load_model(plan.model_file)
    model = loaded.model
    plot_curves(histories, plan.out / PLOT_NAME, NETWORKS.get(plan.preset.network, ""))
    cases = [v for v in model.validation if v.is_case]
    passed = sum(v.passed for v in model.validation)
    final = {n: float(histories[n]["test_error_final"]) for n in MODELS}
    lines = [
        "# Main job: circuit → calibrated model → training",
        "",
        f"Config: `{plan.source}`{' (--quick)' if plan.quick else ''}; resolved in `run.toml` "
        "(rerun it with `rpucircuit run run.toml`).",
        "",
        "**Summary.** "
        f"Calibration: {sum(p.origin == 'fitted' for p in model.parameters)} parameters fitted "
        f"from ngspice; {passed} of {len(model.validation)} validation checks passed "
        f"({len(cases)} case comparisons). Final test error: calibrated "
        f"{_pct(final['calibrated'])}, preset {_pct(final['preset'])}.",
        "",
        *_stages(plan, stages),
        "",
        *_circuit(plan),
        *_parameters(model),
        *_validation(plan, model, _held_out(loaded)),
        *_training(plan, histories),
        *_spot_checks(plan, histories["calibrated"]),
    ]
    path = plan.out / REPORT_NAME
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
