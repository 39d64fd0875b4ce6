"""What output noise a network can afford: train over σ, measure the test-error penalty.

``rpucircuit explore noise`` trains the network (``fc``: paper A's 784-256-128-10; ``cnn``:
paper B's) once per output-noise σ of both reads (forward and backward, every analog
layer) and seed, on the sweep engine (:func:`rpucircuit.jobs.run_jobs`: a local process
pool or a Dask cluster, each result cached by the job's key, so a killed run resumes with
the unfinished jobs only). ``rpucircuit explore onoff``
(:mod:`rpucircuit.design.explore_onoff`) maps circuit parameters to per-layer σ and uses
the same statistics.

Statistics (pure functions, :func:`penalty_curve`, :func:`crossing`). The *penalty* of a
run is its test error minus the test error of the noiseless run with the same seed (same
initial weights, data order and device draws), in percentage points; pairing by seed
removes most of the seed-to-seed spread of the error itself. Per σ the seeds give a mean
penalty ``m`` and a sample standard deviation ``s``. The *acceptable σ* is where the mean
penalty first rises through the threshold (default 0.3 points), linearly interpolated
between the two grid points around the crossing; its interval is where ``m + s`` and
``m − s`` cross the threshold (the seed spread moved onto the σ axis). A curve that never
crosses gives "beyond the grid" (+inf): widen the σ grid to locate it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rpucircuit.config.base import check_int, check_positive
from rpucircuit.config.training import (
    MNIST_TEST,
    MNIST_TRAIN,
    N_ANALOG_LAYERS,
    PRESETS,
    Setting,
    TrainingConfig,
)
from rpucircuit.errors import ConfigError
from rpucircuit.jobs import (
    DEFAULT_CONNECT_TIMEOUT_S,
    Job,
    SweepRun,
    job_code_digest,
    make_job,
    run_jobs,
)
from rpucircuit.training.loop import load_array_model, run_job
from rpucircuit.training.sweep import parse_assignment

FloatArray = npt.NDArray[np.float64]

PAPER_A_SIGMA = 0.06
"""Paper A's acceptable output noise σ of both reads (weight units × input units, Fig. 5)."""

DEFAULT_PENALTY_PTS = 0.3
"""Test-error penalty (percentage points) still called acceptable: paper A's criterion of an
error "close to the baseline" in its sweeps."""

DEFAULT_SIGMAS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2)
"""σ grid of ``explore noise``: the noiseless baseline, paper A's 0.06 with points on both
sides, out to where paper A's Fig. 5 shows a clear penalty."""

DEFAULT_SEEDS = (1, 2, 3)
"""Seeds of every grid point (their spread gives the intervals)."""

METRIC = "test_error_avg"
"""The job result compared: test error averaged over the schedule's last ``eval_last``
epochs (a fraction)."""

NOISE_KIND = "explore-noise"
"""HDF5 kind of ``explore noise`` results."""
NOISE_SCHEMA = 1
"""Layout version of ``explore noise`` results."""

Network = Literal["fc", "cnn"]


# --------------------------------------------------------------------------- schedule


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Schedule:
    """A training schedule (SGD at mini-batch 1, as both papers train)."""

    name: str
    """``full`` (the papers' schedule) or ``quick``."""
    epochs: int
    """Passes over the training subset."""
    lr: float
    """SGD learning rate η."""
    n_train: int
    """Training images (the first ``n_train`` of MNIST's 60,000)."""
    n_test: int
    """Test images (the first ``n_test`` of MNIST's 10,000)."""
    eval_last: int
    """Epochs at the end whose test errors are averaged into the metric."""

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1)
        check_positive("lr", self.lr)
        check_int("n_train", self.n_train, 1, MNIST_TRAIN)
        check_int("n_test", self.n_test, 1, MNIST_TEST)
        check_int("eval_last", self.eval_last, 1)


def full_schedule() -> Schedule:
    """Paper A's schedule (and paper B's): 30 epochs of all 60,000 images, η = 0.01, the
    test error over all 10,000 test images averaged over the last 5 epochs."""
    return Schedule(name="full", epochs=30, lr=0.01, n_train=60000, n_test=10000, eval_last=5)


def quick_schedule() -> Schedule:
    """A shortened schedule that still shows the noise penalty: 3 epochs of the first
    8,000 images at η = 0.1 (the quick experiments' rate, so that so short a run learns;
    a larger η also makes the backward read's noise weigh more per update, as a long run
    at η = 0.01 accumulates it), the test error over all 10,000 test images (the penalty
    is a difference of errors: the binomial spread of a 2,000-image test would hide 0.3
    points), averaged over the last 2 epochs. Its errors are not the paper's; the
    acceptable σ it finds is an estimate for a network trained briefly."""
    return Schedule(name="quick", epochs=3, lr=0.1, n_train=8000, n_test=10000, eval_last=2)


# --------------------------------------------------------------------------- model and configs


def model_table(model: str) -> dict[str, Any]:
    """The ``[model]`` table of a training config for ``model``: a preset name
    (:data:`rpucircuit.config.training.PRESETS`) or a model file (``*.h5``, e.g. a
    calibrated one, read when each job starts)."""
    if model in PRESETS:
        return {"preset": model}
    if model.endswith(".h5"):
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"--model {model!r}: no such model file")
        return {"file": str(path)}
    raise ConfigError(
        f"--model {model!r}: give a preset ({', '.join(sorted(PRESETS))}) or a model file (.h5)"
    )


SIGMA_PATHS = ("forward.out_noise", "backward.out_noise")
"""The array-model fields the studies set per grid point (not available to ``settings``)."""
STUDY_PATHS = (*SIGMA_PATHS, "forward.is_perfect", "backward.is_perfect")
"""Fields ``settings`` may not change: the σ grid, and the exact reads that would ignore it."""


def parse_setting(text: str) -> dict[str, Any]:
    """One ``PATH=VALUE`` array-model change (``--set``) as a ``model.settings`` entry for
    every analog layer. VALUE is a TOML value as in ``rpucircuit sweep --set`` (``false``,
    ``31``, ``0.002``; a bare word is a string); it must have the field's type. The path
    must name a field of :class:`~rpucircuit.config.rpu.RPUConfig` other than the read
    noise the study sets (:data:`SIGMA_PATHS`)."""
    path, value = parse_assignment(text, option="--set", example="backward.noise_management=false")
    if path in SIGMA_PATHS:
        raise ConfigError(f"--set {text!r}: the study sets {path} itself (its σ grid)")
    if path in STUDY_PATHS:
        raise ConfigError(f"--set {text!r}: exact reads would ignore the study's σ")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"--set {text!r}: the value must be finite")
    setting = Setting(path=path, value=value)  # a field of the array model, of its type
    return {"path": setting.path, "value": setting.value}


def check_settings(settings: Sequence[str], model: str, network: Network) -> None:
    """Every entry parses (:func:`parse_setting`), no path repeats, and the array model
    ``model`` (a preset, or a model file's, read now) takes the values on every analog
    layer of ``network``, so that a value out of range fails here and not in every job."""
    paths = [parse_setting(s)["path"] for s in settings]
    if len(set(paths)) != len(paths):
        raise ConfigError(f"settings {list(settings)}: a field is set twice")
    if not settings:
        return
    n = N_ANALOG_LAYERS[network]
    cfg = training_config(
        network=network,
        schedule=quick_schedule(),
        seed=0,
        model=model,
        forward=[0.0] * n,
        backward=[0.0] * n,
        settings=settings,
    )  # a preset validates every layer's array model here
    load_array_model(cfg)  # a model file: its RPUConfig with the settings, every layer


def layer_sigma_settings(
    forward: Sequence[float], backward: Sequence[float]
) -> list[dict[str, Any]]:
    """``model.settings`` that give analog layer ``i`` the forward read σ ``forward[i]`` and
    the backward read σ ``backward[i]`` (on top of the preset's or the model file's, whose
    noise model they replace)."""
    out: list[dict[str, Any]] = []
    for i, (f, b) in enumerate(zip(forward, backward, strict=True)):
        out.append({"path": "forward.out_noise", "value": float(f), "layers": [i]})
        out.append({"path": "backward.out_noise", "value": float(b), "layers": [i]})
    return out


def training_config(
    *,
    network: Network,
    schedule: Schedule,
    seed: int,
    model: str,
    forward: Sequence[float],
    backward: Sequence[float],
    settings: Sequence[str] = (),
) -> TrainingConfig:
    """The training config of one job: ``network`` on ``schedule`` with ``seed``, the array
    model ``model`` (:func:`model_table`) with ``settings`` (``PATH=VALUE``,
    :func:`parse_setting`) on every analog layer, and per-layer read σ
    (:func:`layer_sigma_settings`)."""
    from rpucircuit.config.base import from_dict

    n = N_ANALOG_LAYERS[network]
    if len(forward) != n or len(backward) != n:
        raise ConfigError(
            f"the {network} network has {n} analog layers; got {len(forward)} forward and "
            f"{len(backward)} backward σ"
        )
    data = {
        "network": network,
        "epochs": schedule.epochs,
        "lr": schedule.lr,
        "n_train": schedule.n_train,
        "n_test": schedule.n_test,
        "eval_last": schedule.eval_last,
        "seed": seed,
        "model": {
            **model_table(model),
            "settings": [parse_setting(t) for t in settings]
            + layer_sigma_settings(forward, backward),
        },
    }
    return from_dict(TrainingConfig, data)


def training_job(config: TrainingConfig, params: dict[str, Any]) -> Job:
    """A sweep job of :func:`rpucircuit.training.loop.run_job`, keyed by its config and the
    training code (so a cache is never reused by code that trains differently)."""
    return make_job(config, params, code=job_code_digest(run_job))


def run_training(
    jobs: Sequence[Job],
    *,
    cache_dir: Path,
    scheduler: str | None,
    n_workers: int | None,
    progress: bool,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> SweepRun:
    """Run the training jobs on the sweep engine (cached; a resumed run trains only the
    jobs not in ``cache_dir``)."""
    return run_jobs(
        run_job,
        jobs,
        cache_dir=cache_dir,
        scheduler=scheduler,
        n_workers=n_workers,
        progress=progress,
        connect_timeout_s=connect_timeout_s,
    )


# --------------------------------------------------------------------------- statistics


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PenaltyCurve:
    """Test error and penalty against a grid variable x, over seeds."""

    x: FloatArray
    """The grid (increasing)."""
    error_pct: FloatArray
    """Test error (%) per seed and x, shape (seeds, x)."""
    baseline_pct: FloatArray
    """Test error (%) of each seed's noiseless run, shape (seeds,)."""

    @property
    def penalty_pts(self) -> FloatArray:
        """Penalty per seed and x (percentage points): error minus its seed's baseline."""
        return paired_penalty(self.error_pct, self.baseline_pct)

    @property
    def mean(self) -> FloatArray:
        """Mean penalty over seeds (points)."""
        out: FloatArray = np.mean(self.penalty_pts, axis=0)
        return out

    @property
    def spread(self) -> FloatArray:
        """Sample standard deviation of the penalty over seeds (points; 0 for one seed)."""
        return seed_spread(self.penalty_pts)


def paired_penalty(error_pct: FloatArray, baseline_pct: FloatArray) -> FloatArray:
    """Test error minus the same seed's noiseless error: ``error_pct`` (seeds, ...),
    ``baseline_pct`` (seeds,), in percentage points."""
    shape = (-1,) + (1,) * (error_pct.ndim - 1)
    out: FloatArray = error_pct - baseline_pct.reshape(shape)
    return out


def seed_spread(penalty: FloatArray) -> FloatArray:
    """Sample standard deviation over seeds (axis 0); zeros for a single seed."""
    if penalty.shape[0] < 2:
        return np.zeros(penalty.shape[1:])
    out: FloatArray = np.std(penalty, axis=0, ddof=1)
    return out


def penalty_curve(
    x: Sequence[float] | FloatArray,
    error: Sequence[Sequence[float]] | FloatArray,
    baseline: Sequence[float] | FloatArray,
) -> PenaltyCurve:
    """A :class:`PenaltyCurve` from test errors as fractions: ``error[s][k]`` at ``x[k]``
    for seed ``s``, ``baseline[s]`` the noiseless run of seed ``s``."""
    xa = np.asarray(x, dtype=np.float64)
    ea = np.asarray(error, dtype=np.float64)
    ba = np.asarray(baseline, dtype=np.float64)
    if xa.ndim != 1 or xa.size < 2 or np.any(np.diff(xa) <= 0):
        raise ConfigError(f"grid {xa.tolist()}: give at least 2 strictly increasing values")
    if ea.ndim != 2 or ea.shape[1] != xa.size or ba.shape != (ea.shape[0],):
        raise ConfigError(
            f"errors of shape {ea.shape} and baselines of shape {ba.shape} do not match "
            f"{xa.size} grid points"
        )
    return PenaltyCurve(x=xa, error_pct=100.0 * ea, baseline_pct=100.0 * ba)


def crossing(x: FloatArray, y: FloatArray, threshold: float, *, log_x: bool = False) -> float:
    """The x where ``y`` first rises above ``threshold``, linearly interpolated between the
    last grid point at or below it and the first above (in log x with ``log_x``).

    ``y[0]`` above the threshold gives ``x[0]`` (the curve starts outside); a curve that
    never rises above gives +inf (beyond the grid)."""
    above = np.flatnonzero(y > threshold)
    if above.size == 0:
        return math.inf
    k = int(above[0])
    if k == 0:
        return float(x[0])
    x0, x1, y0, y1 = float(x[k - 1]), float(x[k]), float(y[k - 1]), float(y[k])
    frac = (threshold - y0) / (y1 - y0)
    if log_x and x0 > 0:
        return float(math.exp(math.log(x0) + frac * (math.log(x1) - math.log(x0))))
    return x0 + frac * (x1 - x0)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Acceptable:
    """The largest x within the penalty, with its interval from the seed spread."""

    value: float
    """Where the mean penalty crosses the threshold (+inf: beyond the grid)."""
    low: float
    """Where mean + spread crosses it (the pessimistic end)."""
    high: float
    """Where mean − spread crosses it (the optimistic end; +inf: beyond the grid)."""


def acceptable(curve: PenaltyCurve, threshold: float, *, log_x: bool = False) -> Acceptable:
    """The acceptable x of ``curve`` at ``threshold`` points (:func:`crossing` of the mean,
    of mean + spread and of mean − spread)."""
    m, s = curve.mean, curve.spread
    return Acceptable(
        value=crossing(curve.x, m, threshold, log_x=log_x),
        low=crossing(curve.x, m + s, threshold, log_x=log_x),
        high=crossing(curve.x, m - s, threshold, log_x=log_x),
    )


def fmt_limit(value: float, digits: int = 3) -> str:
    """A crossing as text: ``> grid`` for +inf."""
    return "beyond the grid" if math.isinf(value) else f"{value:.{digits}g}"


# --------------------------------------------------------------------------- explore noise


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NoiseStudy:
    """What ``explore noise`` trains: σ grid × seeds on one network and schedule."""

    network: Network = "fc"
    """``fc`` (paper A) or ``cnn`` (paper B)."""
    model: str = "gokmen_vlasov_2016"
    """Array model: a preset name or a model file (its read noise is replaced by σ)."""
    schedule: Schedule = dataclasses.field(default_factory=full_schedule)
    """Training schedule."""
    sigmas: tuple[float, ...] = DEFAULT_SIGMAS
    """Output noise σ of both reads of every analog layer (weight units); must include 0."""
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    """Seeds of every σ."""
    penalty_pts: float = DEFAULT_PENALTY_PTS
    """Acceptable test-error penalty (percentage points)."""
    settings: tuple[str, ...] = ()
    """Array-model changes on every analog layer, ``PATH=VALUE`` (:func:`parse_setting`),
    e.g. ``backward.noise_management=false``."""

    def __post_init__(self) -> None:
        if self.network not in N_ANALOG_LAYERS:
            raise ConfigError(f"network = {self.network!r}: must be one of {list(N_ANALOG_LAYERS)}")
        check_grid("sigmas", self.sigmas, lo=0.0)
        if self.sigmas[0] != 0.0:
            raise ConfigError(
                f"sigmas = {list(self.sigmas)}: must start at 0 (the noiseless baseline the "
                "penalty is measured from)"
            )
        check_seeds(self.seeds)
        check_positive("penalty_pts", self.penalty_pts)
        model_table(self.model)
        check_settings(self.settings, self.model, self.network)


def check_grid(name: str, values: Sequence[float], *, lo: float, lo_open: bool = False) -> None:
    """A grid: at least 2 finite, strictly increasing values ≥ ``lo`` (> with ``lo_open``)."""
    if len(values) < 2:
        raise ConfigError(f"{name} = {list(values)}: give at least 2 values")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{name} = {list(values)}: {v!r} is not a finite number")
        if v < lo or (lo_open and v == lo):
            raise ConfigError(
                f"{name} = {list(values)}: {v!r} must be {'>' if lo_open else '>='} {lo:g}"
            )
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ConfigError(f"{name} = {list(values)}: must be strictly increasing")


def check_seeds(seeds: Sequence[int]) -> None:
    """At least one seed, each an integer ≥ 0, none repeated."""
    if not seeds:
        raise ConfigError("seeds: give at least one seed")
    for i, s in enumerate(seeds):
        check_int(f"seeds[{i}]", s, 0)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds = {list(seeds)}: repeated")


def noise_jobs(study: NoiseStudy) -> list[Job]:
    """One job per (seed, σ), seeds outer; σ = 0 is every seed's baseline."""
    n = N_ANALOG_LAYERS[study.network]
    jobs = []
    for seed in study.seeds:
        for sigma in study.sigmas:
            cfg = training_config(
                network=study.network,
                schedule=study.schedule,
                seed=seed,
                model=study.model,
                forward=[sigma] * n,
                backward=[sigma] * n,
                settings=study.settings,
            )
            jobs.append(training_job(cfg, {"seed": seed, "sigma": sigma}))
    return jobs


def noise_table(study: NoiseStudy, curve: PenaltyCurve) -> str:
    """Markdown table: σ, test error and penalty (mean ± spread over seeds)."""
    lines = [
        "| σ (w) | test error (%) | penalty (points) | per seed (points) |",
        "|---|---|---|---|",
    ]
    err_m, err_s = np.mean(curve.error_pct, axis=0), _std(curve.error_pct)
    for k, sigma in enumerate(curve.x):
        seeds = ", ".join(f"{p:+.2f}" for p in curve.penalty_pts[:, k])
        lines.append(
            f"| {sigma:g} | {err_m[k]:.2f} ± {err_s[k]:.2f} | "
            f"{curve.mean[k]:+.2f} ± {curve.spread[k]:.2f} | {seeds} |"
        )
    return "\n".join(lines)


def _std(a: FloatArray) -> FloatArray:
    if a.shape[0] < 2:
        return np.zeros(a.shape[1])
    out: FloatArray = np.std(a, axis=0, ddof=1)
    return out


def acceptable_text(acc: Acceptable, threshold: float, unit: str = "") -> str:
    """One line: the acceptable value and its interval."""
    u = f" {unit}" if unit else ""
    if math.isinf(acc.value):
        return (
            f"the penalty stays within {threshold:g} points over the whole grid (beyond the grid)"
        )
    return (
        f"{fmt_limit(acc.value)}{u} (interval from the seed spread: "
        f"{fmt_limit(acc.low)} … {fmt_limit(acc.high)}{u})"
    )


def model_text(model: str, settings: Sequence[str]) -> str:
    """The array model in words: the preset or file, and the changes on every layer."""
    if not settings:
        return model
    return f"{model} with {', '.join(f'`{t}`' for t in settings)} on every analog layer"


def schedule_text(s: Schedule) -> str:
    """The schedule in words."""
    return (
        f"{s.name}: {s.epochs} epochs of {s.n_train} training images, η = {s.lr:g}, test error "
        f"on {s.n_test} test images averaged over the last {min(s.eval_last, s.epochs)} epochs"
    )
