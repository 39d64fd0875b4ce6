"""The packed parameter vectors the compiled kernels take, and their index layout.

The kernels take their parameters as small float64 vectors (one memory load per field, no
per-call type dispatch). Each vector's fields are listed once, in order, in a ``*_FIELDS``
tuple; the index constants are generated from that tuple and the vector is filled field
by field by name (:func:`_pack` refuses a missing or unknown name), so a field cannot be
written at one index and read at another. Only the ``pack_*`` functions here build these
vectors from the configs; flags are stored as 1.0 / 0.0 and read by the kernels as
``v[IDX] != 0.0``.

* ``io`` (:func:`pack_io`): one read direction's periphery (:class:`IOConfig`);
* ``dp`` (:func:`pack_device`): the device model's scalar switches;
* ``upd`` (:func:`pack_update`): the update scheme, for the fused network step;
* ``par[dv, i, j, PAR_*]``: the per-device parameters (one cache line per device), drawn
  by :class:`~rpucircuit.model.tile.AnalogTile` and indexed by :data:`PAR_FIELDS`.

:class:`KernelArrays` is a tile's set of live kernel arrays (what
:meth:`~rpucircuit.model.tile.AnalogTile.kernel_arrays` returns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from rpucircuit.config.rpu import MAX_TRANSFER_TERMS, IOConfig, PulsedDeviceConfig, RPUConfig

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
UIntArray = np.ndarray[Any, np.dtype[np.uint64]]


def _pack(fields: tuple[str, ...], values: Mapping[str, float]) -> FloatArray:
    """float64 vector with ``values[name]`` at the position of ``name`` in ``fields``."""
    if set(values) != set(fields):
        raise ValueError(f"packed fields {sorted(values)} do not match the layout {sorted(fields)}")
    return np.array([float(values[name]) for name in fields], dtype=np.float64)


# --------------------------------------------------------------------------- reads

IO_FIELDS = (
    "perfect",  # flag: an exact MVM, nothing else
    "inp_bound",  # DAC input range (normalized)
    "inp_step",  # DAC step (0: no quantization)
    "noise",  # output noise σ (normalized output units)
    "out_bound",  # output bound (0: unbounded)
    "out_step",  # ADC step (0: no quantization)
    "nm",  # flag: noise management
    "bm",  # flag: bound management
    "bm_max",  # largest bound-management factor
    "gain",  # read gain κ multiplying the analog output (1: none)
    "tf_terms",  # number of input transfer coefficients (0: identity)
    *(f"tf_c{2 * k + 1}" for k in range(MAX_TRANSFER_TERMS)),  # c1, c3, ... (unused: 0)
)
"""Fields of the read parameter vector, in order (``IO_*`` are their indices)."""
(
    IO_PERFECT,
    IO_INP_BOUND,
    IO_INP_STEP,
    IO_NOISE,
    IO_OUT_BOUND,
    IO_OUT_STEP,
    IO_NM,
    IO_BM,
    IO_BM_MAX,
    IO_GAIN,
    IO_TF_TERMS,
) = range(IO_FIELDS.index("tf_c1"))
IO_TF = IO_FIELDS.index("tf_c1")
"""Index of c1; c_(2k+1) is at ``IO_TF + k`` for k < ``io[IO_TF_TERMS]``."""
IO_LEN = len(IO_FIELDS)


def pack_io(io: IOConfig) -> FloatArray:
    """The read parameter vector of ``io`` (layout :data:`IO_FIELDS`)."""
    return _pack(
        IO_FIELDS,
        {
            "perfect": io.is_perfect,
            "inp_bound": io.inp_bound,
            "inp_step": io.inp_res * 2.0 * io.inp_bound,
            "noise": io.out_noise,
            "out_bound": io.out_bound,
            "out_step": io.out_res * 2.0 * io.out_bound,
            "nm": io.noise_management,
            "bm": io.bound_management,
            "bm_max": io.bm_max_factor,
            "gain": io.read_gain,
            "tf_terms": len(io.input_transfer),
            **{
                f"tf_c{2 * k + 1}": io.input_transfer[k] if k < len(io.input_transfer) else 0.0
                for k in range(MAX_TRANSFER_TERMS)
            },
        },
    )


# --------------------------------------------------------------------------- updates

DP_FIELDS = (
    "ctoc",  # cycle-to-cycle spread of a step (relative σ)
    "k",  # half-select factor: a lone row or column pulse moves a device by k·dw
    "soft",  # flag: soft bounds
    "bounded",  # flag: hard bounds clip
    "use_att",  # flag: the forward read copy carries the (forward) attenuation map
    "bwd_att",  # backward map: BWD_NONE, BWD_KEPT (updates keep wread_b) or BWD_STALE
    "att_lines",  # flag: both maps are 1 - (row term + column term) of the tile's att_lines
)
"""Fields of the device switch vector, in order (``DP_*`` are their indices)."""
DP_CTOC, DP_K, DP_SOFT, DP_BOUNDED, DP_USE_ATT, DP_BWD_ATT, DP_ATT_LINES = range(len(DP_FIELDS))
DP_LEN = len(DP_FIELDS)

BWD_NONE, BWD_KEPT, BWD_STALE = 0.0, 1.0, 2.0
"""Values of ``dp[DP_BWD_ATT]``: the backward read uses the forward read copy (no map of
its own); it has its own map and the updates keep its read copy ``wread_b`` up to date;
it has its own map but ``wread_b`` is stale (set after the map or the weights change): the
next backward read refreshes it (:func:`~rpucircuit.model.kernels.updates.refresh_backward`)
and switches to ``BWD_KEPT``. A tile that is never read backward (a network's first layer)
so never pays for keeping a second copy."""


def pack_device(
    device: PulsedDeviceConfig,
    *,
    use_attenuation: bool,
    backward_map: bool = False,
    att_lines: bool = False,
) -> FloatArray:
    """The device switch vector of ``device`` (layout :data:`DP_FIELDS`);
    ``use_attenuation``: whether the tile's (forward) attenuation map differs from all
    ones; ``backward_map``: whether the backward read has a map of its own (packed as
    :data:`BWD_STALE`: its read copy is built by the first backward read); ``att_lines``:
    whether both maps equal, bit for bit, what :func:`att_lines_maps` makes of the tile's
    line terms (the updates may then compute a map value from them instead of loading
    it)."""
    return _pack(
        DP_FIELDS,
        {
            "ctoc": device.dw_min_ctoc,
            "k": device.k_half_select,
            "soft": device.soft_bounds,
            "bounded": device.bounded,
            "use_att": use_attenuation,
            "bwd_att": BWD_STALE if backward_map else BWD_NONE,
            "att_lines": att_lines,
        },
    )


ATT_ROWS, ATT_COLS, ATT_B_ROWS, ATT_B_COLS = range(4)
"""Rows of a tile's ``att_lines`` (4, max(out, in)): the forward map's terms over the rows
(first ``out`` entries) and over the columns (first ``in``), then the backward map's."""


def att_lines_maps(lines: FloatArray, n_out: int, n_in: int) -> tuple[FloatArray, FloatArray]:
    """The forward and backward maps (out, in) that the line terms ``lines`` (layout
    :data:`ATT_ROWS` …) stand for: 1 − (row term + column term), computed as the update
    kernels compute a map value from them (:func:`~.pulses._refresh_copies`), so a map
    built this way equals theirs bit for bit."""
    fwd = 1.0 - (lines[ATT_ROWS, :n_out, None] + lines[ATT_COLS, None, :n_in])
    bwd = 1.0 - (lines[ATT_B_ROWS, :n_out, None] + lines[ATT_B_COLS, None, :n_in])
    return fwd, bwd


PAR_FIELDS = ("dw_up", "dw_down", "w_max", "w_min")
"""Per-device parameters, the last axis of ``par`` (``PAR_*`` are their indices)."""
PAR_UP, PAR_DOWN, PAR_WMAX, PAR_WMIN = range(len(PAR_FIELDS))
PAR_LEN = len(PAR_FIELDS)


def par_lines_of(par: FloatArray) -> FloatArray:
    """``par`` (n_dev, out, in, PAR_LEN) laid out twice more, along the rows and along
    the columns, in float32: shape (2, n_dev, out, PAR_LEN, in), C order.

    * ``[0]``: field by field within each row, so ``par_lines[0, dv, i, f]`` is one field
      of row i, contiguous. The half-select passes over whole rows read it (contiguous
      loads that vectorize).
    * ``[1]``: the same elements column by column, (n_dev, in, out, PAR_LEN) in C order
      (:func:`par_columns`), so a column's devices, row after row, are contiguous. The
      half-select pass down the pulsing columns of the silent rows reads it: from ``par``
      each device cost a cache line of its own.

    float32 because those passes are bound by memory traffic, and the parameters were 32
    of the 52 bytes each device on a pulsing row moves. A tile that keeps the copy holds
    its parameters at float32 precision (:func:`round_parameters`), so the copy holds the
    same values as ``par`` (the kernels that visit single devices read ``par``); it must
    be rebuilt when ``par`` changes. A tile keeps one when its updates take those passes
    (pulsed updates and :func:`needs_par_lines`); other callers may pass
    :func:`no_par_lines`, and the update builds its own (same result)."""
    n_dev, n_out, n_in, n_f = par.shape
    lines = np.empty((2, n_dev, n_out, n_f, n_in), dtype=np.float32)
    lines[0] = np.moveaxis(par, 3, 2)
    par_columns(lines)[...] = np.swapaxes(par, 1, 2)
    return lines


def round_parameters(par: FloatArray) -> None:
    """Round ``par`` in place to float32 precision (relative 6e-8, far below any device
    spread), the precision of :func:`par_lines_of`: a tile whose updates read that copy
    does so on construction and on every change of its parameters."""
    par[...] = par.astype(np.float32)


def par_columns(par_lines: FloatArray) -> FloatArray:
    """The column-by-column half of :func:`par_lines_of`, as a view (n_dev, in, out,
    PAR_LEN): ``par_columns(lines)[dv, j, i, f]`` is ``par[dv, i, j, f]`` (the compiled
    kernels take the same view with ``halfselect._par_columns``)."""
    _, n_dev, n_out, n_f, n_in = par_lines.shape
    columns: FloatArray = par_lines[1].reshape((n_dev, n_in, n_out, n_f))
    return columns


def no_par_lines(par: FloatArray) -> FloatArray:
    """An empty stand-in for :func:`par_lines_of` (shape (2, n_dev, 0, PAR_LEN, 0)), for
    tiles whose updates never take the half-select passes."""
    return np.empty((2, par.shape[0], 0, PAR_LEN, 0), dtype=np.float32)


def needs_par_lines(dp: FloatArray) -> bool:
    """Whether updates under the device switches ``dp`` take the half-select passes over
    whole rows and columns (k > 0 with hard bounds), which read :func:`par_lines_of`."""
    return bool(dp[DP_K] != 0.0 and dp[DP_SOFT] == 0.0)


UPD_FIELDS = (
    "bl",  # stream length BL (slots)
    "um",  # flag: update management
    "dw_min",  # nominal step, which sets the pulse probabilities
    "exact",  # flag: exact floating-point update instead of pulses
)
"""Fields of the update parameter vector, in order (``UPD_*`` are their indices)."""
UPD_BL, UPD_UM, UPD_DW_MIN, UPD_EXACT = range(len(UPD_FIELDS))
UPD_LEN = len(UPD_FIELDS)


def pack_update(config: RPUConfig) -> FloatArray:
    """The update parameter vector of ``config`` (layout :data:`UPD_FIELDS`)."""
    return _pack(
        UPD_FIELDS,
        {
            "bl": config.update.bl,
            "um": config.update.update_management,
            "dw_min": config.device.dw_min,
            "exact": config.update.pulse_type == "exact",
        },
    )


# --------------------------------------------------------------------------- activations

ACT_NONE, ACT_SIGMOID, ACT_TANH = 0, 1, 2
"""Activation codes of :func:`~rpucircuit.model.kernels.dense.activation_forward` and of
the fused network step."""


# --------------------------------------------------------------------------- a tile's arrays


class KernelArrays(NamedTuple):
    """A tile's arrays as the compiled kernels take them (live references, not copies)."""

    wread: np.ndarray[Any, Any]
    """Read copy of the weights (out, in), float32 or float64, C or F order."""
    w: FloatArray
    """Device weights (n_devices, out, in)."""
    par: FloatArray
    """Per-device parameters (n_devices, out, in, PAR_LEN)."""
    dp: FloatArray
    """Device switches, :func:`pack_device`."""
    att: FloatArray
    """Forward read attenuation map (out, in)."""
    wread_b: np.ndarray[Any, Any]
    """Backward read copy (out, in), C order, the weights times ``att_b``; used and kept
    only while ``dp[DP_BWD_ATT]`` is not :data:`BWD_NONE`."""
    att_b: FloatArray
    """Backward read attenuation map (out, in)."""
    state: UIntArray
    """The tile's kernel generator state."""
    fwd_io: FloatArray
    """Forward read parameters, :func:`pack_io`."""
    bwd_io: FloatArray
    """Backward read parameters, :func:`pack_io`."""
    upd: FloatArray
    """Update parameters, :func:`pack_update`."""
    par_lines: FloatArray
    """``par`` along the rows and along the columns (:func:`par_lines_of`, float32) when the
    half-select update needs it (pulsed updates and :func:`needs_par_lines`), else
    :func:`no_par_lines` (empty, float32: the kernels take float32 only)."""
    att_lines: FloatArray
    """The maps' terms over the rows and the columns (4, max(out, in); :data:`ATT_ROWS`
    …), valid while ``dp[DP_ATT_LINES]`` is set (:func:`att_lines_maps`)."""
