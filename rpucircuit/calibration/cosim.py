"""Circuit spot checks during training: the ``[cosim]`` table of a training config
(``docs/cosim.md``).

After chosen epochs, for each chosen analog layer, a block of the live weights is mapped to
conductances of a circuit config's devices and read in ngspice (DC operating point and
transient) with the inputs the layer's tile reads for the epoch's last training sample,
restricted to the block's columns; the whole layer is solved by the nodal solver; each is
compared with the behavioral read of the same weights and inputs with the noise off
(:func:`behavioral_read`). The differences, RMS and largest, in % of the circuit's output
bound α, are one row per layer and epoch.

The comparison, in the normalized units both sides share. The tile reads ``x`` with noise
management by scaling it to ``x/s`` (``s = max|x|``; ``s = 1`` without it); that is the
vector the DAC quantizes, and the circuit's drivers get the same ``x/s`` (cut at ±1, their
full scale). Outputs are then in weight units of that vector (``Q/Q_unit`` on the circuit
side), where α is the bound of both sides; the DC solves (operating point, nodal) have no
integrator, so their outputs are cut at ±α as the integrator's swing cuts the transient's.
The behavioral read is one pass of the tile's forward periphery
(:func:`rpucircuit.model.kernels.reference_read` with noise, noise management and bound
management off): DAC clip and step, the weights times the tile's attenuation map, the clip
at the output bound and the ADC step. Weights beyond the circuit's ``±w_max`` cannot be
programmed: both sides then read the weights cut to it, and the row counts them. Conv
layers read one patch vector per output pixel: the check takes the patch with the largest
sum of ``|x|`` over the block's columns.

What runs where: the behavioral read and the bookkeeping here, in the training process;
the circuit in a worker process with a deadline (:mod:`rpucircuit.calibration.cosim_worker`),
so a hung or slow simulation is killed and recorded (``timeout``), and an error is recorded
(``failed``) instead of raised. Nothing here draws a random number or writes to the
network: training gives the same weights with and without the checks.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rpucircuit.calibration.cosim_worker import CircuitJob, CircuitOutcome, run_in_worker
from rpucircuit.config import rpu
from rpucircuit.config.rpu import IOConfig
from rpucircuit.config.tile import CircuitConfig, load_circuit_config
from rpucircuit.config.training import CosimConfig, TrainingConfig
from rpucircuit.errors import ConfigError
from rpucircuit.fileio import save_png
from rpucircuit.model.kernels import pack_io, reference_read
from rpucircuit.model.network import Network, cnn_gokmen_2017, fc_784_256_128_10

FloatArray = npt.NDArray[np.float64]

HOOK_NAME = "cosim"
"""Name of the hook, and of its group in ``history.h5``."""

ANALYSES = ("spice_op", "spice_tran", "nodal")
"""The compared reads, in the records' column names."""

COLUMNS = (
    "epoch",
    "layer",
    "block_row",
    "block_col",
    "block_rows",
    "block_cols",
    "alpha_w",
    "weights_clipped",
    *(f"{a}_{m}_pct" for a in ANALYSES for m in ("rms", "max")),
    "wall_s",
    "status",
    "message",
)
"""Columns of the records (one row per layer and epoch), in ``history.h5``'s ``cosim``
group: the block (first row and column, size), α (weight units), how many weights were cut
to ±w_max, each analysis's RMS and largest difference from the behavioral read (% of α;
NaN when not run), the check's wall time (s), status (``ok``, ``timeout``, ``failed``,
``skipped``) and notes."""


@dataclasses.dataclass(frozen=True, slots=True)
class Block:
    """Where the simulated block sits in a layer's tile (rows = outputs)."""

    row: int
    col: int
    rows: int
    cols: int

    @property
    def index(self) -> tuple[slice, slice]:
        return slice(self.row, self.row + self.rows), slice(self.col, self.col + self.cols)


def block_of(spec: CosimConfig, shape: tuple[int, int], *, layer: int) -> Block:
    """The block of ``spec`` in a tile of ``shape``, cut at the tile's edge; a ConfigError
    when its top-left weight lies outside."""
    r0, c0 = spec.block_offset
    rows, cols = shape
    if r0 >= rows or c0 >= cols:
        raise ConfigError(
            f"cosim.block_offset = {[r0, c0]}: analog layer {layer} has a {rows} × {cols} tile "
            "(rows = outputs, columns = inputs with the bias last); the block must start inside"
        )
    return Block(r0, c0, min(spec.block_rows, rows - r0), min(spec.block_cols, cols - c0))


def tile_shapes(network: str) -> tuple[tuple[int, int], ...]:
    """(rows, columns) of every analog tile of the config's network (built once, cheaply,
    with floating-point tiles and a generator of its own)."""
    fp = rpu.floating_point()
    rng = np.random.default_rng(0)
    net: Network = (
        fc_784_256_128_10(fp, rng=rng, update_thread=False)
        if network == "fc"
        else cnn_gokmen_2017(fp, rng=rng, update_thread=False)
    )
    return tuple((t.out_size, t.in_size) for t in net.tiles)


# --------------------------------------------------------------------------- one layer


def plain_io(io: IOConfig) -> IOConfig:
    """``io`` with output noise, noise management and bound management off: one pass of
    DAC, weights, output clip and ADC."""
    return dataclasses.replace(io, out_noise=0.0, noise_management=False, bound_management=False)


def behavioral_read(weights: FloatArray, io: IOConfig, x_n: FloatArray) -> FloatArray:
    """The tile's forward periphery, noise off, for the normalized input ``x_n`` (module
    doc): :func:`rpucircuit.model.kernels.reference_read` (which draws no random number
    without noise; the generator it is handed is never used)."""
    packed = pack_io(plain_io(io))
    unused = np.random.default_rng(0)
    return reference_read(np.asarray(weights, dtype=np.float64), x_n, packed, unused)


def input_scale(io: IOConfig, x: FloatArray) -> float:
    """``s`` of the module doc: ``max|x|`` with noise management (1 for a zero vector or a
    perfect read), else 1."""
    m = float(np.max(np.abs(x), initial=0.0))
    return m if (io.noise_management and not io.is_perfect and m > 0) else 1.0


def pick_vector(inputs: FloatArray, block: Block) -> FloatArray:
    """The input vector to check: the only one (FC), or the patch with the largest sum of
    ``|x|`` over the block's columns (conv)."""
    a: FloatArray = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
    k = 0 if a.shape[0] == 1 else int(np.argmax(np.abs(a[:, block.index[1]]).sum(axis=1)))
    row: FloatArray = a[k]
    return row


def differences_pct(y: FloatArray, reference: FloatArray, alpha_w: float) -> tuple[float, float]:
    """(RMS, largest) of ``|y − reference|`` in % of ``alpha_w``; NaN for an empty ``y``."""
    if y.size == 0:
        return math.nan, math.nan
    d = np.asarray(y, dtype=np.float64) - reference
    return (
        float(100.0 * np.sqrt(np.mean(d * d)) / alpha_w),
        float(100.0 * np.max(np.abs(d)) / alpha_w),
    )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class LayerCheck:
    """One layer's spot check: the reads (weight units, normalized inputs) and their
    differences."""

    block: Block
    alpha_w: float
    """The circuit's output bound α (weight units): what the differences are relative to."""
    weights_clipped: int
    """Weights (block, and the layer when it is solved) cut to the circuit's ±w_max."""
    x_n: FloatArray
    """The normalized input vector of the whole tile (module doc)."""
    y_behavioral_block_w: FloatArray
    y_behavioral_layer_w: FloatArray
    circuit: CircuitOutcome
    errors_pct: dict[str, tuple[float, float]]
    """(RMS, largest) difference from the behavioral read per analysis (% of α)."""
    wall_s: float
    status: str
    message: str

    def row(self, *, epoch: int, layer: int) -> dict[str, Any]:
        """The record of :data:`COLUMNS`."""
        out: dict[str, Any] = {
            "epoch": epoch,
            "layer": layer,
            "block_row": self.block.row,
            "block_col": self.block.col,
            "block_rows": self.block.rows,
            "block_cols": self.block.cols,
            "alpha_w": self.alpha_w,
            "weights_clipped": self.weights_clipped,
        }
        for a in ANALYSES:
            out[f"{a}_rms_pct"], out[f"{a}_max_pct"] = self.errors_pct[a]
        out.update(wall_s=self.wall_s, status=self.status, message=self.message)
        return out


def check_layer(
    weights: FloatArray,
    attenuation: FloatArray,
    io: IOConfig,
    x: FloatArray,
    *,
    circuit: CircuitConfig,
    block: Block,
    spec: CosimConfig,
    name: str = "cosim",
) -> LayerCheck:
    """Spot-check one tile: ``weights`` and ``attenuation`` (out, in) as the tile holds them,
    ``io`` its forward periphery, ``x`` (in,) the vector it reads."""
    t0 = time.perf_counter()
    notes: list[str] = []
    w_max = circuit.device.w_max
    w = np.clip(weights, -w_max, w_max)
    layer_devices = w.size
    run_nodal = spec.nodal and layer_devices <= spec.nodal_max_devices
    if spec.nodal and not run_nodal:
        notes.append(
            f"nodal: skipped, the {w.shape[0]} × {w.shape[1]} layer exceeds "
            f"cosim.nodal_max_devices = {spec.nodal_max_devices}"
        )
    bi = block.index
    clipped = int(np.count_nonzero(weights[bi] != w[bi]))
    if run_nodal:
        clipped = int(np.count_nonzero(weights != w))
    if clipped:
        notes.append(f"{clipped} weights cut to the circuit's ±w_max = ±{w_max:g}")
    x_n = np.asarray(x, dtype=np.float64) / input_scale(io, x)
    x_c = np.clip(x_n, -1.0, 1.0)
    if io.inp_bound != 1.0 and not io.is_perfect:
        notes.append(f"the tile's inp_bound {io.inp_bound:g} differs from the drivers' 1")
    w_read = w * attenuation
    y_b_block = behavioral_read(w_read[bi], io, x_n[bi[1]])
    y_b_layer = behavioral_read(w_read, io, x_n) if run_nodal else np.zeros(0)
    job = CircuitJob(
        circuit=circuit,
        w_block=np.ascontiguousarray(w[bi]),
        x_block=np.ascontiguousarray(x_c[bi[1]]),
        w_layer=w if run_nodal else None,
        x_layer=x_c if run_nodal else None,
        op=spec.op,
        tran=spec.tran,
        deadline=time.monotonic() + spec.time_limit_s,
        name=name,
    )
    outcome = (
        run_in_worker(job)
        if (spec.op or spec.tran or run_nodal)
        else CircuitOutcome(
            y_op_w=np.zeros(0), y_tran_w=np.zeros(0), y_nodal_w=np.zeros(0), status="skipped"
        )
    )
    alpha = circuit.alpha_effective
    if not np.any(x_c[bi[1]]):
        notes.append("the block's inputs are all zero (choose cosim.block_offset)")
    errors = _errors(outcome, y_b_block, y_b_layer, alpha, notes)
    return LayerCheck(
        block=block,
        alpha_w=alpha,
        weights_clipped=clipped,
        x_n=x_n,
        y_behavioral_block_w=y_b_block,
        y_behavioral_layer_w=y_b_layer,
        circuit=outcome,
        errors_pct=errors,
        wall_s=time.perf_counter() - t0,
        status=outcome.status,
        message="; ".join([*notes, *outcome.notes]),
    )


def _errors(
    outcome: CircuitOutcome,
    y_b_block: FloatArray,
    y_b_layer: FloatArray,
    alpha: float,
    notes: list[str],
) -> dict[str, tuple[float, float]]:
    """Each analysis's (RMS, largest) difference from the behavioral read, % of α; the DC
    solves, which have no integrator, cut at ±α as its output swing would (noted)."""
    y_op = np.clip(outcome.y_op_w, -alpha, alpha)
    y_nodal = np.clip(outcome.y_nodal_w, -alpha, alpha)
    at_bound = int(np.count_nonzero(np.abs(outcome.y_nodal_w) >= alpha))
    if at_bound:
        notes.append(f"nodal: {at_bound} of {y_nodal.size} outputs at the bound ±α")
    return {
        "spice_op": differences_pct(y_op, y_b_block, alpha),
        "spice_tran": differences_pct(outcome.y_tran_w, y_b_block, alpha),
        "nodal": differences_pct(y_nodal, y_b_layer, alpha),
    }


# --------------------------------------------------------------------------- the hook


class EpochView(Protocol):
    """What the hook reads of :class:`rpucircuit.training.hooks.EpochContext` (not imported:
    the calibration package does not import training)."""

    @property
    def epoch(self) -> int: ...
    @property
    def last_epoch(self) -> int: ...
    @property
    def network(self) -> Network: ...
    def layer_inputs(self) -> tuple[FloatArray | None, ...]: ...


def _failed_row(epoch: int, layer: int, block: Block, alpha_w: float, why: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "epoch": epoch,
        "layer": layer,
        "block_row": block.row,
        "block_col": block.col,
        "block_rows": block.rows,
        "block_cols": block.cols,
        "alpha_w": alpha_w,
        "weights_clipped": 0,
    }
    row.update({f"{a}_{m}_pct": math.nan for a in ANALYSES for m in ("rms", "max")})
    row.update(wall_s=0.0, status="failed", message=why)
    return row


class CosimHook:
    """The epoch hook of ``cfg.cosim`` (:data:`rpucircuit.training.loop.EpochHook`).

    Built before training starts, so a bad table fails first: the circuit file is read, an
    unpaired circuit tile is refused (a signed weight needs a pair of devices), and the
    block must start inside every chosen layer.
    """

    def __init__(self, cfg: TrainingConfig) -> None:
        if cfg.cosim is None:
            raise ConfigError("the training config has no [cosim] table")
        self.spec = cfg.cosim
        try:
            self.circuit = load_circuit_config(self.spec.circuit_file or None)
        except ConfigError as exc:
            raise ConfigError(f"cosim.circuit_file: {exc}") from exc
        if not self.circuit.tile.paired:
            raise ConfigError(
                f"cosim.circuit_file = {self.spec.circuit_file!r}: tile.paired = false; the "
                "spot checks need a pair of arrays (G+ and G-) for signed weights"
            )
        shapes = tile_shapes(cfg.network)
        self.layers = self.spec.layers or tuple(range(len(shapes)))
        self.blocks = {i: block_of(self.spec, shapes[i], layer=i) for i in self.layers}

    def due(self, epoch: int, last_epoch: int) -> bool:
        """Whether the checks run after ``epoch``: every ``every_epochs`` and the last."""
        return epoch % self.spec.every_epochs == 0 or epoch == last_epoch

    def __call__(self, ctx: EpochView) -> dict[str, list[Any]] | None:
        """Check every chosen layer after a due epoch; rows as columns (:data:`COLUMNS`)."""
        epoch = int(ctx.epoch)
        if not self.due(epoch, int(ctx.last_epoch)):
            return None
        alpha = self.circuit.alpha_effective
        rows: list[dict[str, Any]] = []
        try:
            inputs = ctx.layer_inputs()
        except Exception as exc:  # a spot check never stops training
            why = f"layer inputs: {type(exc).__name__}: {exc}"
            rows = [_failed_row(epoch, i, self.blocks[i], alpha, why) for i in self.layers]
            return _columns(rows)
        for i in self.layers:
            block = self.blocks[i]
            try:
                x = inputs[i]
                if x is None:
                    rows.append(_failed_row(epoch, i, block, alpha, "not a linear or conv layer"))
                    continue
                tile = ctx.network.tiles[i]
                check = check_layer(
                    tile.get_weights(),
                    tile.get_attenuation(),
                    tile.config.forward,
                    pick_vector(x, block),
                    circuit=self.circuit,
                    block=block,
                    spec=self.spec,
                    name=f"cosim-e{epoch}-l{i}",
                )
                rows.append(check.row(epoch=epoch, layer=i))
            except Exception as exc:  # a spot check never stops training
                rows.append(_failed_row(epoch, i, block, alpha, f"{type(exc).__name__}: {exc}"))
        return _columns(rows)


def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {c: [r[c] for r in rows] for c in COLUMNS}


def build_hook(cfg: TrainingConfig) -> CosimHook:
    """The spot-check hook of ``cfg`` (a ConfigError now when ``[cosim]`` is wrong)."""
    return CosimHook(cfg)


# --------------------------------------------------------------------------- the plot


def plot_records(records: Mapping[str, Any], path: str | Path) -> Path:
    """Difference from the behavioral read (% of α) against epoch, one panel per layer:
    RMS (solid, filled marks) and largest (dashed, open marks) per analysis; checks that
    did not finish are listed in the panel's title (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    layer = np.asarray(records["layer"], dtype=np.int64)
    epoch = np.asarray(records["epoch"], dtype=np.int64)
    status = np.asarray(records["status"]).astype(str)
    layers = sorted(set(layer.tolist()))
    fig, axes = plt.subplots(
        1, len(layers), figsize=(4.2 * len(layers), 3.8), squeeze=False, sharey=True
    )
    for ax, li in zip(axes[0], layers, strict=True):
        sel = layer == li
        for k, a in enumerate(ANALYSES):
            for m, style, face in (("rms", "-", None), ("max", "--", "none")):
                y = np.asarray(records[f"{a}_{m}_pct"], dtype=np.float64)[sel]
                if np.all(np.isnan(y)):
                    continue
                ax.plot(
                    epoch[sel],
                    y,
                    style,
                    marker="o",
                    color=f"C{k}",
                    markerfacecolor=face,
                    label=f"{a} {m}",
                )
        bad = [f"e{e}: {s}" for e, s in zip(epoch[sel], status[sel], strict=True) if s != "ok"]
        title = f"layer {li}" + (f" ({', '.join(bad[:3])})" if bad else "")
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("circuit − behavioral (% of α)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][-1].legend(handles, labels, fontsize="x-small", loc="best")
    fig.tight_layout()
    out = Path(path)
    return save_png(fig, out, dpi=110)
