"""Epoch hooks of a training run (:func:`rpucircuit.training.loop.train`'s ``epoch_hooks``).

A hook is called after each epoch's evaluation with an :class:`EpochContext` and returns
rows (columns of equal length: numbers or strings) or None; the loop appends them to a
table under the hook's name (:data:`HookRecords`), keeps it in the checkpoint and writes it
as a group of ``history.h5``. A hook reads the network and never changes it, and
:meth:`EpochContext.layer_inputs` works on a copy, so hooks leave the training result as it
is. The circuit spot checks of ``[cosim]`` (:mod:`rpucircuit.calibration.cosim`) are such a
hook; this module, like all of training, never imports the circuit path.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rpucircuit.errors import ConfigError
from rpucircuit.model.layers import AnalogConv2d, AnalogLinear
from rpucircuit.model.network import Network

Rows = Mapping[str, Sequence[Any] | npt.NDArray[Any]]
"""What a hook returns: columns of equal length (lists or 1-D arrays of numbers or strings)."""

HookRecords = dict[str, dict[str, list[Any]]]
"""Rows the epoch hooks returned so far: hook name -> column name -> values."""


@dataclasses.dataclass(frozen=True, slots=True)
class EpochContext:
    """What an epoch hook sees, after the epoch's evaluation."""

    epoch: int
    """The epoch just finished (1-based)."""
    last_epoch: int
    """The config's last epoch (``epochs``)."""
    network: Network
    """The live network: read it (weights, attenuation, configs), never change it."""
    last_sample: npt.NDArray[np.float64]
    """The epoch's last training image (784 values)."""
    out_dir: Path | None
    """The run's folder (None: nothing is written)."""

    def layer_inputs(self) -> tuple[npt.NDArray[np.float64] | None, ...]:
        """The vectors each analog tile reads forward for :attr:`last_sample`, per analog
        layer: ``(1, in + 1)`` for an ``AnalogLinear`` (bias input 1 last), the patch matrix
        ``(pixels, k·k·C + 1)`` for an ``AnalogConv2d``, None for another layer kind.

        Computed by a forward pass through a copy of the network (its reads are noisy like
        training's, from the copy's own generators), so the network, its generators and
        therefore the training result stay untouched.
        """
        return layer_inputs(self.network, self.last_sample)


EpochHook = Callable[[EpochContext], Rows | None]
"""An epoch hook: returns rows as columns of equal length (numbers or strings), or None."""


def layer_inputs(
    network: Network, x: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64] | None, ...]:
    """:meth:`EpochContext.layer_inputs` of ``network`` for sample ``x``."""
    twin = copy.deepcopy(network)
    out: list[npt.NDArray[np.float64] | None] = []
    z = np.asarray(x, dtype=np.float64)
    for layer in twin.layers:
        if isinstance(layer, AnalogLinear):
            out.append(np.append(z.reshape(-1), 1.0)[None, :])
        z = layer.forward(z)
        if isinstance(layer, AnalogConv2d):
            out.append(np.array(layer.patches, dtype=np.float64))
        elif layer.tile is not None and not isinstance(layer, AnalogLinear):
            out.append(None)
    return tuple(out)


def check_hooks(hooks: Mapping[str, EpochHook], *, reserved: frozenset[str]) -> None:
    """Refuse a hook that is not callable or whose name is empty, holds '/' or is one of
    ``reserved`` (history.h5's own entries)."""
    for name, hook in hooks.items():
        if not isinstance(name, str) or not name or "/" in name or name in reserved:
            raise ConfigError(
                f"epoch hook name {name!r}: must be a non-empty name without '/' that is not "
                f"one of history.h5's own entries ({', '.join(sorted(reserved))})"
            )
        if not callable(hook):
            raise ConfigError(f"epoch hook {name!r} = {hook!r}: must be callable")


def add_rows(records: HookRecords, name: str, rows: Rows) -> None:
    """Append a hook's returned rows to its table (same columns every time)."""
    lengths = {len(v) for v in rows.values()}
    table = records.setdefault(name, {})
    if len(lengths) > 1 or (table and set(table) != set(rows)):
        raise ConfigError(
            f"epoch hook {name!r} returned columns {sorted(rows)} of lengths {sorted(lengths)}: "
            f"need equal lengths and the same columns every epoch ({sorted(table)})"
        )
    for key, values in rows.items():
        table.setdefault(key, []).extend(
            values.tolist() if isinstance(values, np.ndarray) else values
        )


def records_tree(records: HookRecords) -> dict[str, dict[str, npt.NDArray[Any]]]:
    return {name: {k: np.asarray(v) for k, v in table.items()} for name, table in records.items()}
