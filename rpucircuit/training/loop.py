"""Training on MNIST at mini-batch 1, with per-epoch checkpoints and bit-exact resume.

:func:`train` runs a :class:`~rpucircuit.config.training.TrainingConfig`: builds the network
(:mod:`rpucircuit.model.network`) with each analog layer's array model, then for every epoch walks
the training subset one sample at a time (SGD, as both papers train), evaluates the test
subset, and records the mean training loss, the test error and the speed. With an output
folder it writes, atomically:

* ``checkpoint.h5`` (kind ``checkpoint``) after every ``checkpoint_every`` epochs and after
  the last: the network state (every tile's weights, device parameters and generators), the
  data-order generator and the history so far. ``resume=True`` continues from it and ends
  with exactly the result of an uninterrupted run with the same config;
* ``history.h5`` (kind ``history``): per-epoch arrays and the final figures;
* ``test_error.png``: test error (%) against epoch;
* ``config.toml``: the config that ran.

With ``model.file`` the model file is read and validated before anything else happens
(:func:`load_array_model`), and both ``checkpoint.h5`` and ``history.h5`` carry a
``model_file`` group (its path, resolved path, sha256 and source); ``resume`` refuses a
checkpoint whose model file has changed since. A checkpoint also records the digest of the
code that computes the result (:func:`code_digest`); ``resume`` under other code continues,
with an :class:`~rpucircuit.errors.RpuWarning`: kernels that draw other random numbers
would give a run that is neither version's uninterrupted result.

Randomness: ``SeedSequence(seed)`` spawns one generator for the network (weight init, device
variations, every tile's noise and pulse streams) and one for the data order.

Epoch hooks (``epoch_hooks``: name -> callable, :mod:`rpucircuit.training.hooks`) run after
each epoch's evaluation with an :class:`~rpucircuit.training.hooks.EpochContext` (the
network, the epoch, the epoch's last training sample and the inputs each analog tile reads
for it, computed on a copy of the network). A hook reads and never changes the network; the
rows it returns (columns of equal length) are appended to a table under its name, kept in
the checkpoint (so they survive ``resume``) and written as a group of that name in
``history.h5``. The circuit spot checks of ``[cosim]`` (:mod:`rpucircuit.calibration.cosim`)
are such a hook, built by ``rpucircuit train``: training never imports the circuit path.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rpucircuit import store
from rpucircuit.config.base import config_key, to_toml
from rpucircuit.config.rpu import RPUConfig
from rpucircuit.config.training import TrainingConfig
from rpucircuit.errors import ConfigError, RpuWarning, StoreError, UnsupportedError
from rpucircuit.fileio import atomic_write_text, save_png
from rpucircuit.jobs import source_digest
from rpucircuit.model.modelfile import LoadedModel, TileModel, load_model
from rpucircuit.model.network import Network, cnn_gokmen_2017, fc_784_256_128_10
from rpucircuit.training.data import Mnist, load_mnist
from rpucircuit.training.hooks import (
    EpochContext,
    EpochHook,
    HookRecords,
    add_rows,
    check_hooks,
    records_tree,
)

CHECKPOINT_KIND = "checkpoint"
"""HDF5 kind of a training checkpoint."""
CHECKPOINT_SCHEMA = 1
"""Layout version of a checkpoint."""
HISTORY_KIND = "history"
"""HDF5 kind of a training history."""
HISTORY_SCHEMA = 1
"""Layout version of a history file."""

HISTORY_FIELDS = ("train_loss", "test_error", "train_seconds", "samples_per_s", "eval_seconds")
"""Per-epoch history arrays: mean cross-entropy over the epoch's samples, test error
(fraction), seconds spent training and evaluating, training samples per second."""

TRAIN_RUN = 200
"""Samples per :meth:`~rpucircuit.model.network.Network.train_steps` call of :func:`train`,
and between progress-bar refreshes (keeps the bar's cost negligible)."""

_HISTORY_NAMES = frozenset(
    (*HISTORY_FIELDS, "epoch", "test_error_final", "test_error_avg", "eval_last", "model_file")
)
"""Names in ``history.h5`` besides the epoch hooks' groups (a hook may not take one)."""


def load_hook_records(path: Path) -> HookRecords:
    """The epoch hooks' rows kept in checkpoint ``path`` (empty when it has none)."""
    tree, _ = store.load(path, kind=CHECKPOINT_KIND, schema_version=CHECKPOINT_SCHEMA)
    hooks = tree.get("hooks", {})
    return {
        name: {k: np.atleast_1d(v).tolist() for k, v in table.items()}
        for name, table in hooks.items()
    }


def _model_path_sources() -> list[Path]:
    """The files whose code decides a training run's result (the config's values are in its
    key already): every module of the model path, the training loop and data loader, and the
    configs whose defaults and presets the run resolves."""
    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "model").rglob("*.py"))  # subpackages (model/kernels/) too
    files += [root / "training" / "loop.py", root / "training" / "data.py"]
    files += [root / "config" / name for name in ("base.py", "rpu.py", "training.py")]
    return files


@functools.cache
def code_digest() -> str:
    """sha256 (first 16 hex digits) of the source that computes a training run's result
    (:func:`_model_path_sources`): part of every sweep job's key
    (:func:`rpucircuit.jobs.job_code_digest`), so a job cache is never reused by code that
    would train differently (kernels that draw other random numbers, a changed layer)."""
    return source_digest(_model_path_sources())


@dataclasses.dataclass(slots=True)
class TrainResult:
    """What a training run produced."""

    config: TrainingConfig
    history: dict[str, npt.NDArray[np.float64]]
    """Per-epoch arrays, names in :data:`HISTORY_FIELDS`."""
    network: Network
    """The trained network."""
    epochs_run: int
    """Epochs run in this call (less than ``config.epochs`` after a resume)."""
    model_file: dict[str, str] = dataclasses.field(default_factory=dict)
    """The model file's ``path``, ``resolved_path``, ``sha256`` and ``source``
    (:meth:`rpucircuit.model.modelfile.LoadedModel.record`); empty when a preset was used."""
    hook_records: dict[str, dict[str, npt.NDArray[Any]]] = dataclasses.field(default_factory=dict)
    """The epoch hooks' rows over all epochs run (resumed ones included): hook name ->
    column -> array."""

    @property
    def test_error_final(self) -> float:
        """Test error after the last epoch (fraction)."""
        return float(self.history["test_error"][-1])

    @property
    def test_error_avg(self) -> float:
        """Test error averaged over the last ``eval_last`` epochs (fraction)."""
        n = min(self.config.eval_last, len(self.history["test_error"]))
        return float(np.mean(self.history["test_error"][-n:]))

    def summary(self) -> dict[str, Any]:
        """Scalars and per-epoch arrays, as a sweep job result."""
        h = self.history
        return {
            **{k: np.asarray(v) for k, v in h.items()},
            "test_error_final": self.test_error_final,
            "test_error_avg": self.test_error_avg,
            "train_loss_final": float(h["train_loss"][-1]),
            "test_error_min": float(np.min(h["test_error"])),
            "samples_per_s_mean": float(
                self.config.n_train
                * len(h["train_seconds"])
                / max(np.sum(h["train_seconds"]), 1e-12)
            ),
            "train_seconds_total": float(np.sum(h["train_seconds"])),
        }


def load_array_model(cfg: TrainingConfig) -> LoadedModel | None:
    """Read and validate ``cfg.model.file`` (None when the config uses a preset).

    The settings are applied to the file's RPUConfig, and each tile's model is built, here,
    so a setting the file's model refuses or a tile too large for its IR-drop model fails
    now, naming the file (errors: :func:`rpucircuit.model.modelfile.load_model`).
    """
    if not cfg.model.file:
        return None
    loaded = load_model(cfg.model.file)
    pinned = cfg.model.file_sha256
    if pinned and loaded.sha256 != pinned:
        raise StoreError(
            f"{cfg.model.file}: sha256 {loaded.sha256[:16]}… differs from model.file_sha256 "
            f"{pinned[:16]}…: the file is not the one the config names"
        )
    try:
        cfg.rpu_configs(loaded.model.rpu)
    except ConfigError as exc:
        raise ConfigError(f"{cfg.model.file}: {exc}") from exc
    _file_tiles(cfg, loaded)  # a tile the IR-drop model cannot describe fails now too
    return loaded


TILE_SHAPES: dict[str, tuple[tuple[int, int], ...]] = {
    "fc": ((256, 785), (128, 257), (10, 129)),
    "cnn": ((16, 26), (32, 401), (128, 513), (10, 129)),
}
"""Tile shapes (out, in) of each network's analog layers, in order (bias as the last
column): a model file's RPUConfig depends on the shape through its noise model, and the
configs are needed before the network is built. :func:`build_network` checks them against
the tiles it builds."""


def _file_tiles(
    cfg: TrainingConfig, model: LoadedModel
) -> tuple[tuple[RPUConfig, ...], list[TileModel]]:
    """Each analog layer's RPUConfig (the file's for its shape, settings on top) and the
    file's model of its tile (attenuation maps; the RPUConfig with the file's per-direction
    input transfer curves)."""
    tiles = [model.tile_model(o, i, curves=True) for o, i in TILE_SHAPES[cfg.network]]
    configs = tuple(cfg.rpu_configs(t.rpu)[k] for k, t in enumerate(tiles))
    return configs, tiles


def build_network(
    cfg: TrainingConfig,
    *,
    rng: np.random.Generator,
    model: LoadedModel | None = None,
    update_thread: bool = True,
) -> Network:
    """The config's network with each analog layer's array model; ``update_thread``: whether
    its tiles may use the background update thread (:class:`rpucircuit.model.tile.AnalogTile`).

    With ``model.file``: every tile is built from the file's RPUConfig for its shape (with a
    noise model, each read's σ from its own line length:
    :meth:`rpucircuit.model.modelfile.ArrayModel.rpu_config_for`) with the settings on top,
    and gets the file's IR-drop maps for its shape, the forward map for the forward read and
    the backward map for the backward read; the file's per-direction input transfer curves
    are in that RPUConfig (:meth:`rpucircuit.model.modelfile.ArrayModel.tile_model`).
    ``model``: the file as already read by :func:`load_array_model`, read here when None.
    """
    if cfg.model.file and model is None:
        model = load_array_model(cfg)
    tiles: list[TileModel] = []
    if model is not None:
        configs, tiles = _file_tiles(cfg, model)
    else:
        configs = cfg.rpu_configs()
    if cfg.network == "fc":
        network = fc_784_256_128_10(configs, rng=rng, update_thread=update_thread)
    else:
        network = cnn_gokmen_2017(configs, rng=rng, update_thread=update_thread)
    for tile, shape, tile_model in zip(
        network.tiles, TILE_SHAPES[cfg.network], tiles, strict=False
    ):
        if (tile.out_size, tile.in_size) != shape:
            raise UnsupportedError(
                f"network {cfg.network!r}: a tile is {tile.out_size} × {tile.in_size}, "
                f"TILE_SHAPES says {shape[0]} × {shape[1]}; update TILE_SHAPES"
            )
        if tile_model.forward_attenuation is not None:
            # each read its own map (the backward one: the file's, else the forward one)
            # the line terms let the updates compute map values (same values, faster)
            tile.set_attenuation(
                tile_model.forward_attenuation,
                tile_model.backward_attenuation,
                lines=tile_model.attenuation_lines,
            )
    return network


def _generators(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    net_seq, order_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(net_seq), np.random.default_rng(order_seq)


def _load_data(
    cfg: TrainingConfig, data: Mnist | None
) -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]
]:
    if data is None:
        data = load_mnist(idx_dir=cfg.data.idx_dir or None, cache_dir=cfg.data.cache_dir or None)
    x_train, y_train = data.train(cfg.n_train)
    x_test, y_test = data.test(cfg.n_test)
    flat = (-1, 28 * 28)
    return x_train.reshape(flat), y_train, x_test.reshape(flat), y_test


def _empty_history() -> dict[str, list[float]]:
    return {k: [] for k in HISTORY_FIELDS}


def _as_arrays(history: dict[str, list[float]]) -> dict[str, npt.NDArray[np.float64]]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}


def _provenance(cfg: TrainingConfig, kind: str, schema: int) -> store.Provenance:
    return store.Provenance(
        kind=kind, schema_version=schema, config_toml=to_toml(cfg), config_key=config_key(cfg)
    )


def save_checkpoint(
    path: Path,
    cfg: TrainingConfig,
    network: Network,
    order_rng: np.random.Generator,
    epoch: int,
    history: dict[str, list[float]],
    *,
    model_file: dict[str, str] | None = None,
    hook_records: HookRecords | None = None,
) -> Path:
    """Write everything needed to continue after ``epoch`` epochs (atomic). ``model_file``:
    the model file's record (:meth:`rpucircuit.model.modelfile.LoadedModel.record`), if any;
    ``hook_records``: the epoch hooks' rows so far (:func:`load_hook_records` reads them)."""
    tree: dict[str, Any] = {
        "epoch": epoch,
        "network": network.get_state(),
        "order_rng": json.dumps(order_rng.bit_generator.state),
        "history": _as_arrays(history),
        "code_digest": code_digest(),
    }
    if model_file:
        tree["model_file"] = dict(model_file)
    if hook_records:
        tree["hooks"] = records_tree(hook_records)
    return store.save(path, tree, _provenance(cfg, CHECKPOINT_KIND, CHECKPOINT_SCHEMA))


def load_checkpoint(
    path: Path,
    cfg: TrainingConfig,
    network: Network,
    order_rng: np.random.Generator,
    *,
    model_file: dict[str, str] | None = None,
) -> tuple[int, dict[str, list[float]]]:
    """Restore ``network`` and ``order_rng`` from ``path``; return (epochs done, history).

    The checkpoint must come from the same config (same key) and, with a model file, from
    a file with the same sha256 (``model_file``: its record), else a :class:`StoreError`.
    A checkpoint written by other code (another :func:`code_digest`, or none recorded)
    loads with an :class:`~rpucircuit.errors.RpuWarning`: the run can continue, but maybe
    not bit for bit as either version would have run it.
    """
    tree, prov = store.load(path, kind=CHECKPOINT_KIND, schema_version=CHECKPOINT_SCHEMA)
    key = config_key(cfg)
    if prov.config_key != key:
        raise StoreError(
            f"{path} was written by a different config (key {prov.config_key[:12]}, this "
            f"config {key[:12]}); use another --out folder or run without --resume"
        )
    if model_file:
        then = tree.get("model_file", {}).get("sha256", "")
        if then != model_file["sha256"]:
            raise StoreError(
                f"{path} was written with model file {model_file['path']} of sha256 "
                f"{then[:12] or '(none recorded)'}; it now has {model_file['sha256'][:12]}: "
                "the file changed, so the run cannot continue; start over with --overwrite"
            )
    network.set_state(tree["network"])
    order_rng.bit_generator.state = json.loads(tree["order_rng"])
    history = {k: [float(v) for v in np.atleast_1d(tree["history"][k])] for k in HISTORY_FIELDS}
    then, now = str(tree.get("code_digest", "")), code_digest()
    if then != now:
        warnings.warn(
            f"{path} was written by other rpucircuit code (digest {then or '(none recorded)'}, "
            f"now {now}): the run continues from it, but its result may differ from what an "
            "uninterrupted run would give under either version (start over with --overwrite "
            "for that)",
            RpuWarning,
            stacklevel=3,  # the caller of train()
        )
    return int(tree["epoch"]), history


def save_history(path: Path, result: TrainResult) -> Path:
    """Write the per-epoch history and the final figures (kind ``history``)."""
    tree: dict[str, Any] = {
        "epoch": np.arange(1, len(result.history["test_error"]) + 1),
        **result.history,
        "test_error_final": result.test_error_final,
        "test_error_avg": result.test_error_avg,
        "eval_last": result.config.eval_last,
    }
    if result.model_file:
        tree["model_file"] = dict(result.model_file)
    tree.update(result.hook_records)  # one group per epoch hook
    return store.save(path, tree, _provenance(result.config, HISTORY_KIND, HISTORY_SCHEMA))


def plot_history(path: Path, result: TrainResult) -> Path:
    """Test error (%) against epoch, with the training loss on a second axis (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    h = result.history
    epochs = np.arange(1, len(h["test_error"]) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(epochs, 100 * h["test_error"], marker="o", color="C0", label="test error")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(epochs, h["train_loss"], marker=".", color="C1", label="train loss")
    ax2.set_ylabel("mean training cross-entropy")
    cfg = result.config
    name = cfg.model.file or cfg.model.preset
    ax.set_title(f"{cfg.network}, {name}, seed {cfg.seed}: {100 * result.test_error_final:.2f} %")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper right", fontsize="small")
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


def train(
    cfg: TrainingConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    data: Mnist | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    overwrite: bool = False,
    update_thread: bool = True,
    epoch_hooks: Mapping[str, EpochHook] | None = None,
) -> TrainResult:
    """Run (or, with ``resume``, continue) the training described by ``cfg``.

    ``out_dir`` None: nothing is written (sweep jobs). ``data``: MNIST already loaded
    (default: :func:`rpucircuit.training.data.load_mnist` per ``cfg.data``). ``stop_after``: return
    after that many epochs in total, as if the run were killed right after its checkpoint
    (for tests and for splitting a long run). A fresh run refuses a folder that already
    holds a checkpoint unless ``overwrite`` (so a long run is never lost by mistake).
    ``update_thread``: let the tiles use the background update thread (same results).
    ``epoch_hooks``: name -> hook, called after every epoch's evaluation (module doc); their
    rows go into the checkpoint, ``history.h5`` and :attr:`TrainResult.hook_records`.
    """
    hooks = dict(epoch_hooks or {})
    check_hooks(hooks, reserved=_HISTORY_NAMES)
    out = Path(out_dir) if out_dir is not None else None
    ckpt = out / "checkpoint.h5" if out is not None else None
    # every check on the arguments and the folder comes before the data is loaded
    if stop_after is not None and stop_after < 1:
        raise ConfigError(f"stop_after = {stop_after}: must be >= 1 (epochs in total)")
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other: continue or start over")
    if out is not None and out.exists() and not out.is_dir():
        raise StoreError(f"output folder {out} is a file; give a folder with --out")
    if resume:
        if ckpt is None:
            raise UnsupportedError("resume needs an output folder holding checkpoint.h5")
        if not ckpt.is_file():
            raise StoreError(f"--resume: no checkpoint at {ckpt}; run without --resume first")
    elif ckpt is not None and ckpt.is_file() and not overwrite:
        raise StoreError(
            f"{ckpt} exists: continue it with --resume, or start over with --overwrite"
        )
    net_rng, order_rng = _generators(cfg.seed)
    model = load_array_model(cfg)  # a bad model file is refused before the data loads
    model_file = model.record() if model is not None else {}
    network = build_network(cfg, rng=net_rng, model=model, update_thread=update_thread)
    x_train, y_train, x_test32, y_test = _load_data(cfg, data)
    x_test = x_test32.astype(np.float64)  # once, not every epoch (at most 63 MB)
    history = _empty_history()
    records: HookRecords = {}
    done = 0
    if resume and ckpt is not None:  # (resume without a folder was refused above)
        done, history = load_checkpoint(ckpt, cfg, network, order_rng, model_file=model_file)
        records = load_hook_records(ckpt)
    if out is not None:
        atomic_write_text(out / "config.toml", to_toml(cfg))
    last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    bar = _progress_bar(cfg, done, last, progress)
    n = cfg.n_train
    try:
        for epoch in range(done + 1, last + 1):
            order = order_rng.permutation(n) if cfg.shuffle else np.arange(n)
            loss_sum = 0.0
            t0 = time.perf_counter()
            # the samples in runs of TRAIN_RUN through train_steps (bit-identical to one
            # train_step each; a fully connected network takes a run in one compiled call)
            for s0 in range(0, n, TRAIN_RUN):
                run = order[s0 : s0 + TRAIN_RUN]
                for loss in network.train_steps(x_train[run], y_train[run], cfg.lr).tolist():
                    loss_sum += loss
                if bar is not None and len(run) == TRAIN_RUN:
                    bar.update(TRAIN_RUN)
            t_train = time.perf_counter() - t0
            if bar is not None:
                bar.update(n % TRAIN_RUN)
            t1 = time.perf_counter()
            test_error = network.evaluate(x_test, y_test)
            t_eval = time.perf_counter() - t1
            history["train_loss"].append(loss_sum / n)
            history["test_error"].append(test_error)
            history["train_seconds"].append(t_train)
            history["samples_per_s"].append(n / t_train if t_train > 0 else math.inf)
            history["eval_seconds"].append(t_eval)
            if bar is not None:
                bar.set_postfix(
                    epoch=epoch, loss=f"{loss_sum / n:.4f}", test_error=f"{100 * test_error:.2f}%"
                )
            if hooks:
                ctx = EpochContext(
                    epoch=epoch,
                    last_epoch=cfg.epochs,
                    network=network,
                    last_sample=x_train[order[-1]].astype(np.float64),
                    out_dir=out,
                )
                for name, hook in hooks.items():
                    rows = hook(ctx)
                    if rows:
                        add_rows(records, name, rows)
            if ckpt is not None and (epoch % cfg.checkpoint_every == 0 or epoch == last):
                save_checkpoint(
                    ckpt,
                    cfg,
                    network,
                    order_rng,
                    epoch,
                    history,
                    model_file=model_file,
                    hook_records=records,
                )
    finally:
        if bar is not None:
            bar.close()
    result = TrainResult(
        config=cfg,
        history=_as_arrays(history),
        network=network,
        epochs_run=max(last - done, 0),
        model_file=model_file,
        hook_records=records_tree(records),
    )
    if out is not None and result.history["test_error"].size:
        save_history(out / "history.h5", result)
        plot_history(out / "test_error.png", result)
    return result


def _progress_bar(cfg: TrainingConfig, done: int, last: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=last * cfg.n_train,
        initial=done * cfg.n_train,
        unit="sample",
        unit_scale=True,
        desc=f"train {cfg.network}",
        smoothing=0.05,
    )


def run_job(cfg: TrainingConfig) -> dict[str, Any]:
    """Sweep job function: train ``cfg`` without writing files; return its summary. Runs
    without the update thread: a sweep runs one job per core, so a second thread per job
    would only compete with the other jobs."""
    return train(cfg, None, progress=False, update_thread=False).summary()
