"""Compiled kernels of the behavioral RPU tile, each beside a plain reference implementation.

Fast path (numba, ``cache=True``, ``nogil=True``; fast-math flags only where an order-free
sum or maximum of checked-finite values lets a loop vectorize):

* :func:`read_batch` (:mod:`.reads`) — a managed, noisy MVM of ``n`` vectors (noise
  management, DAC, output noise, bound, ADC, bound management) in one call;
* :func:`pulsed_update` (:mod:`.updates`) — ``n`` sequential stochastic pulsed updates in
  one call: bit streams packed into uint64 words, per-slot lists of pulsing rows and
  columns, work proportional to the number of coincidences (half-select: to the devices
  on pulsing lines, :mod:`.halfselect` for hard bounds, one draw per device and phase);
  many short updates without half-select go through :mod:`.batched`, with half-select
  and hard bounds (a conv layer's patches) through :mod:`.hsbatch` (a block of samples
  in one step per device whose bounds the block's pulses cannot reach);
* :func:`exact_update` (:mod:`.updates`) — the expected update applied directly;
* :func:`dense_train_step` (:mod:`.dense`) — one SGD step of a fully connected network;
  :func:`dense_train_steps` — many, one after another.

Random numbers (:mod:`.streams`) come from a counter-based SplitMix64 stream (bit streams,
and Gaussians in batches by a 256-layer ziggurat: read noise, c2c variation; the
half-select phases' Gaussians as centred binomials, one counter per device) and a
xoshiro256** generator (single Gaussians, the ziggurat's rare rejections) whose 5-word
state lives in an array owned by the tile, seeded from a ``numpy.random.Generator``:
results are bit-exact for a seed and resumable from a saved state.

Parameters reach the kernels as small float64 vectors whose layout and packing from the
configs live in one place, :mod:`.layout`.

Reference path (plain numpy, slow and obvious): :func:`reference_read` and
:func:`reference_update`; the latter applies every pulse slot of every phase in time order
over the whole array. Tests compare fast against reference statistically.
"""

# first, before any compiled function is defined (numba sets up its CPU target at the
# first): the vector width the kernels are compiled for
import rpucircuit.model.kernels.target

# isort: split
# then, before any kernel module loads compiled code: importing it drops a numba cache
# compiled from other kernel sources (numba checks only each function's own file)
import rpucircuit.model.kernels.cacheguard  # noqa: F401  (isort: first)
from rpucircuit.model.kernels.dense import (
    DenseLayer,
    DenseNet,
    activation_backward,
    activation_forward,
    dense_layer,
    dense_network,
    dense_train_step,
    dense_train_steps,
    softmax,
)
from rpucircuit.model.kernels.halfselect import binomial_normals
from rpucircuit.model.kernels.layout import (
    ACT_NONE,
    ACT_SIGMOID,
    ACT_TANH,
    ATT_B_COLS,
    ATT_B_ROWS,
    ATT_COLS,
    ATT_ROWS,
    BWD_KEPT,
    BWD_NONE,
    BWD_STALE,
    DP_ATT_LINES,
    DP_BOUNDED,
    DP_BWD_ATT,
    DP_CTOC,
    DP_FIELDS,
    DP_K,
    DP_LEN,
    DP_SOFT,
    DP_USE_ATT,
    IO_BM,
    IO_BM_MAX,
    IO_FIELDS,
    IO_GAIN,
    IO_INP_BOUND,
    IO_INP_STEP,
    IO_LEN,
    IO_NM,
    IO_NOISE,
    IO_OUT_BOUND,
    IO_OUT_STEP,
    IO_PERFECT,
    IO_TF,
    IO_TF_TERMS,
    PAR_DOWN,
    PAR_FIELDS,
    PAR_LEN,
    PAR_UP,
    PAR_WMAX,
    PAR_WMIN,
    UPD_BL,
    UPD_DW_MIN,
    UPD_EXACT,
    UPD_FIELDS,
    UPD_LEN,
    UPD_UM,
    KernelArrays,
    att_lines_maps,
    needs_par_lines,
    no_par_lines,
    pack_device,
    pack_io,
    pack_update,
    par_columns,
    par_lines_of,
    round_parameters,
)
from rpucircuit.model.kernels.reads import (
    all_finite,
    read_batch,
    reference_read,
    reference_transfer,
)
from rpucircuit.model.kernels.streams import (
    NORMAL_BLOCK,
    STATE_WORDS,
    STREAM_PAD,
    bit_streams,
    normal_capacity,
    popcount,
    seed_state,
    single_normals,
    standard_normals,
)
from rpucircuit.model.kernels.updates import (
    PHASES,
    exact_update,
    pulsed_update,
    reference_update,
    refresh_backward,
)

__all__ = [
    "ACT_NONE",
    "ACT_SIGMOID",
    "ACT_TANH",
    "ATT_B_COLS",
    "ATT_B_ROWS",
    "ATT_COLS",
    "ATT_ROWS",
    "BWD_KEPT",
    "BWD_NONE",
    "BWD_STALE",
    "DP_ATT_LINES",
    "DP_BOUNDED",
    "DP_BWD_ATT",
    "DP_CTOC",
    "DP_FIELDS",
    "DP_K",
    "DP_LEN",
    "DP_SOFT",
    "DP_USE_ATT",
    "IO_BM",
    "IO_BM_MAX",
    "IO_FIELDS",
    "IO_GAIN",
    "IO_INP_BOUND",
    "IO_INP_STEP",
    "IO_LEN",
    "IO_NM",
    "IO_NOISE",
    "IO_OUT_BOUND",
    "IO_OUT_STEP",
    "IO_PERFECT",
    "IO_TF",
    "IO_TF_TERMS",
    "NORMAL_BLOCK",
    "PAR_DOWN",
    "PAR_FIELDS",
    "PAR_LEN",
    "PAR_UP",
    "PAR_WMAX",
    "PAR_WMIN",
    "PHASES",
    "STATE_WORDS",
    "STREAM_PAD",
    "UPD_BL",
    "UPD_DW_MIN",
    "UPD_EXACT",
    "UPD_FIELDS",
    "UPD_LEN",
    "UPD_UM",
    "DenseLayer",
    "DenseNet",
    "KernelArrays",
    "activation_backward",
    "activation_forward",
    "all_finite",
    "att_lines_maps",
    "binomial_normals",
    "bit_streams",
    "dense_layer",
    "dense_network",
    "dense_train_step",
    "dense_train_steps",
    "exact_update",
    "needs_par_lines",
    "no_par_lines",
    "normal_capacity",
    "pack_device",
    "pack_io",
    "pack_update",
    "par_columns",
    "par_lines_of",
    "popcount",
    "pulsed_update",
    "read_batch",
    "reference_read",
    "reference_transfer",
    "reference_update",
    "refresh_backward",
    "round_parameters",
    "seed_state",
    "single_normals",
    "softmax",
    "standard_normals",
]
