"""Speed work on paper B's CNN must not change a single bit.

* The reads' DAC and ADC pick their quantization level by multiplying with a reciprocal
  and fall back to division near rounding ties: compared here element by element, bit for
  bit, with the division formula (the definition) on values built to sit on and next to
  ties, at the clip bounds, signed zeros and extreme divisors.
* A batch read through a column-major copy (conv1's forward read, every backward read of
  a batch) lists each vector's nonzero inputs without a branch: equal bit for bit to the
  one-vector read, which tests each input.
* The conv tiles' batched update (:func:`rpucircuit.model.kernels.conv.conv_update`)
  against the general batched update it replaces: device weights, read copies, generator
  words and coincidence counts equal bit for bit, for sparse and dense patches and errors,
  several chunks of samples, several devices, attenuation maps and soft bounds.
* The CNN's fused training step (:mod:`rpucircuit.model.kernels.convnet`) against the
  layer-by-layer path: losses, device weights, read copies and generator states equal bit
  for bit (so the fused step trains exactly as the layers it replaces), on real MNIST.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from rpucircuit.config.rpu import (
    IOConfig,
    floating_point,
    gokmen_onen_haensch_2017,
    gokmen_vlasov_2016,
)
from rpucircuit.errors import TileShapeError
from rpucircuit.model import kernels
from rpucircuit.model.kernels.batched import _pulsed_update_batch
from rpucircuit.model.kernels.conv import conv_update, patch_update
from rpucircuit.model.kernels.reads import _adc_rows, _dac_rows, _mvm
from rpucircuit.model.layers import AnalogConv2d, AnalogLinear, Flatten, MaxPool2d, Tanh
from rpucircuit.model.network import Network, cnn_gokmen_2017
from rpucircuit.model.tile import AnalogTile, update_thread_enabled
from rpucircuit.training.data import Mnist

FP = floating_point()

# --------------------------------------------------------------------------- quantizers


def _dac(x: np.ndarray, bound: float, step: float, divisors: np.ndarray) -> np.ndarray:
    """The DAC of each row of ``x`` divided by ``divisors[k]``, as a read batch takes it
    (the flattened batch; the divisors as the rows' scales, times a factor of 1)."""
    out = np.empty(x.shape)
    xf, outf = x.reshape(-1), out.reshape(-1)
    _dac_rows(xf, outf, x.shape[1], divisors.astype(float), 1.0, 0, x.shape[0], bound, step)
    return out


def _adc(raw: np.ndarray, z: np.ndarray, io: np.ndarray, mult: float) -> np.ndarray:
    """The ADC of each row of ``raw`` (noise z row after row), scaled back by ``mult``."""
    out = np.empty(raw.shape)
    hits = np.empty(raw.shape[0], dtype=np.bool_)
    scale = np.full(raw.shape[0], mult)
    _adc_rows(np.ascontiguousarray(raw), z, 0, out, io, scale, 1.0, 0, raw.shape[0], hits)
    return out


def _dac_definition(x: np.ndarray, bound: float, step: float, divisors: np.ndarray) -> np.ndarray:
    v = np.clip(x / divisors[:, None], -bound, bound)
    return np.asarray(np.rint(v / step) * step)


def _tie_values(rng: np.random.Generator, step: float, levels: int, n: int) -> np.ndarray:
    """Quotients (in steps) exactly on half-integers, a few ulp either side, at and past
    the clip bound, zeros of both signs, and random values."""
    halves = rng.integers(-levels - 2, levels + 2, size=n) + 0.5
    ulps = rng.integers(-4, 5, size=n)
    near = halves * (1.0 + ulps * np.finfo(float).eps)
    bound_q = levels * np.array([1.0, 1.0 - 1e-16, 1.0 + 1e-16, 1.0 + 1e-9, 1.5, 400.0])
    special = np.concatenate([bound_q, -bound_q, [0.0, -0.0, 1e-300, -1e-300]])
    rand = rng.uniform(-1.2 * levels, 1.2 * levels, size=n)
    return np.concatenate([near, special, rand]) * step


@pytest.mark.parametrize("step", [1.0 / 63.0, 1.0 / 126.0, 2.0 / 255.0, 0.047058823529411764])
def test_dac_quantizer_is_bit_identical_to_division(rng: np.random.Generator, step: float) -> None:
    bound = 1.0
    levels = round(bound / step)
    q = _tie_values(rng, step, levels, 2000)  # clipped quotient v = x / divisor
    divisors = np.array([1.0, 0.37, 3.0e-5, 7.5, 1.0e-310, 2.0e300])
    x = np.stack([q * d for d in divisors])  # so that x / divisor lands on the values above
    x[4] = q * 1e-300  # subnormal divisor: the reciprocal overflows, division is used
    got = _dac(x, bound, step, divisors)
    want = _dac_definition(x, bound, step, divisors)
    assert np.array_equal(got.view(np.int64), want.view(np.int64))  # bits, signed zeros too


@pytest.mark.parametrize("step", [0.0, 1.0e-7])
def test_dac_without_levels_or_with_too_many_is_bit_identical_to_division(
    rng: np.random.Generator, step: float
) -> None:
    """The DAC's other two branches: no quantization (step 0: the clip alone) and a step
    too fine for the reciprocal form (1e7 levels > ``_FAST_LEVELS``: division per
    element), bit for bit against the definition, at and past the bounds and on zeros of
    both signs."""
    bound = 1.0
    q = np.concatenate(
        [
            rng.uniform(-1.5, 1.5, 500),
            [0.0, -0.0, 1.0, -1.0, 1.0 + 1e-16, -1.0 - 1e-16, 3.0, -3.0, 1e-300, -1e-300],
        ]
    )
    divisors = np.array([1.0, 0.37, 7.5, 2.0e300])
    x = np.stack([q * d for d in divisors])
    got = _dac(x, bound, step, divisors)
    want = np.clip(x / divisors[:, None], -bound, bound)
    if step > 0.0:
        want = np.rint(want / step) * step
    assert np.array_equal(got.view(np.int64), want.view(np.int64))  # bits, signed zeros too


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("r", "c"), [(16, 26), (401, 32), (3, 2)])
def test_batched_column_major_read_is_bit_identical_to_one_vector_reads(
    rng: np.random.Generator, dtype: type, r: int, c: int
) -> None:
    """:func:`_mvm` on a column-major weight copy (r outputs, c inputs): the batch path
    (each vector's nonzero inputs listed first) against the one-vector path (a test per
    input), bit for bit, on sparse vectors with an all-zero one and signed zeros; and
    against a float64 product to float rounding (the sums' order is fixed, the terms
    exact in float64)."""
    w = np.asfortranarray(rng.normal(0.0, 0.1, (r, c)).astype(dtype))
    n = 40
    xq = (rng.normal(size=(n, c)) * (rng.random((n, c)) < 0.3)).astype(dtype)
    xq[3] = 0.0
    xq[5, ::2] = -0.0
    xq[7] = rng.normal(size=c)  # a dense one
    got = np.empty((n, r), dtype=dtype)
    _mvm(w, xq, got)
    one = np.empty((1, r), dtype=dtype)
    for k in range(n):
        _mvm(w, xq[k : k + 1], one)
        assert np.array_equal(got[k].view(np.uint8), one[0].view(np.uint8)), k
    want = xq.astype(np.float64) @ w.T.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * (1 + np.abs(want).max()))
    assert np.all(got[3] == 0.0) and not np.any(np.signbit(got[3]))


def test_adc_quantizer_is_bit_identical_to_division(rng: np.random.Generator) -> None:
    io = kernels.pack_io(IOConfig(out_noise=0.06, out_bound=12.0, out_res=1.0 / 510.0))
    step, bound, sigma = io[kernels.IO_OUT_STEP], io[kernels.IO_OUT_BOUND], io[kernels.IO_NOISE]
    target = _tie_values(rng, step, round(bound / step), 3000)
    z = rng.standard_normal(target.size)
    raw = (target - sigma * z).reshape(1, -1)  # raw + σ·z lands next to the targets
    for mult in (1.0, 0.3, 17.0):
        got = _adc(raw, z, io, mult)
        v = np.clip(raw[0] + sigma * z, -bound, bound)
        want = (np.rint(v / step) * step) * mult
        assert np.array_equal(got[0].view(np.int64), want.view(np.int64))


# --------------------------------------------------------------------------- conv update


def _update_case(rng: np.random.Generator, case: str) -> tuple[AnalogTile, np.ndarray, np.ndarray]:
    """A tile with paper A's devices (variants by ``case``) and (x, δ) batches shaped as a
    conv layer's: many patches, sparse or dense, some all zero. Short patches (26 inputs,
    conv1's) draw their column streams all at once, long ones (401, conv2's; dense or,
    ``sparse_wide``, mostly zero) slot pair by slot pair (``conv._PAIR_LINES``)."""
    cfg = gokmen_vlasov_2016(n_devices=2 if "two_devices" in case else 1)
    if case == "soft":
        cfg = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, soft_bounds=True))
    wide = case.startswith("dense") or case == "sparse_wide"
    n_out, n_in, n = (32, 401, 70) if wide else (16, 26, 400)
    tile = AnalogTile(n_out, n_in, cfg, rng=rng)
    tile.set_weights(rng.uniform(-0.3, 0.3, (n_out, n_in)))
    if case == "maps":
        shape = (n_out, n_in)
        tile.set_attenuation(rng.uniform(0.8, 1.0, shape), rng.uniform(0.8, 1.0, shape))
        tile.backward(np.ones(n_out))  # the backward read copy is kept from now on
    x = rng.uniform(-1.0, 1.0, (n, n_in))
    d = rng.normal(0.0, 0.05, (n, n_out))
    if case.startswith("dense_few") or case == "dense_two_devices":
        # dense patches with a few large inputs and sparse errors: samples of both pair
        # loops (direct and slot lists) in one batch of the dense layout, the direct one
        # after drawing the columns' other slot pairs
        x *= 0.02
        x[rng.random(x.shape) < 0.01] = 1.0
        d[rng.random(d.shape) < 0.8] = 0.0
    elif case != "dense":
        x[rng.random(x.shape) < 0.75] = 0.0  # image patches: mostly zero
        d[rng.random(d.shape) < 0.75] = 0.0  # max-pooled errors
    x[3] = 0.0  # a patch of zeros, an error of zeros: no pulses
    d[5] = 0.0
    return tile, x, d


@pytest.mark.parametrize(
    "case",
    [
        "sparse",
        "sparse_wide",
        "dense",
        "dense_few",
        "dense_few_bl7",  # an odd BL: the last slot pair has one slot
        "two_devices",
        "dense_two_devices",
        "maps",
        "soft",
    ],
)
def test_conv_update_is_bit_identical_to_the_batched_update(
    rng: np.random.Generator, case: str
) -> None:
    tile, x, d = _update_case(rng, case)
    cfg = tile.config
    bl = 7 if case.endswith("bl7") else cfg.update.bl
    results = []
    for fn in (_pulsed_update_batch, conv_update, patch_update):
        a = copy.deepcopy(tile).kernel_arrays()
        n_coinc = 0
        # patch_update takes pulsed_update's arguments (the line-ordered parameters too)
        par = (a.par, a.par_lines) if fn is patch_update else (a.par,)
        for lr in (0.01, 0.1, 0.0):  # three calls: several chunks, state carried over
            n_coinc += fn(
                x, d, lr, bl, cfg.update.update_management, cfg.device.dw_min,
                a.w, *par, a.dp, a.wread, a.att, a.wread_b, a.att_b, a.att_lines, a.state,
            )  # fmt: skip
        results.append((n_coinc, a))
    (ref_n, ref), *others = results
    assert ref_n > 100  # pulses happened
    for n_coinc, a in others:
        assert n_coinc == ref_n
        for name in ("w", "wread", "wread_b", "state"):
            np.testing.assert_array_equal(getattr(a, name), getattr(ref, name))


def test_conv_update_refuses_non_finite_input(rng: np.random.Generator) -> None:
    tile, x, d = _update_case(rng, "sparse")
    a = tile.kernel_arrays()
    before = a.w.copy()
    d[7, 2] = np.nan
    cfg = tile.config
    code = conv_update(
        x, d, 0.01, cfg.update.bl, True, cfg.device.dw_min,
        a.w, a.par, a.dp, a.wread, a.att, a.wread_b, a.att_b, a.att_lines, a.state,
    )  # fmt: skip
    assert code == -1
    np.testing.assert_array_equal(a.w, before)


# --------------------------------------------------------------------------- fused CNN step


def _train(net: Network, xs: np.ndarray, ys: np.ndarray, lr: float = 0.01) -> list[float]:
    return [net.train_step(x, int(y), lr) for x, y in zip(xs, ys, strict=True)]


def _assert_same_tiles(a: Network, b: Network) -> None:
    for ta, tb in zip(a.tiles, b.tiles, strict=True):
        sa, sb = ta.get_state(), tb.get_state()
        for key in ("weights", "kernel_rng_words", "generator_state"):
            np.testing.assert_array_equal(sa[key], sb[key])
        np.testing.assert_array_equal(ta.read_copy, tb.read_copy)


@pytest.mark.parametrize("thread", [False, True])
def test_fused_cnn_step_is_bit_identical_to_the_layer_path(mnist: Mnist, thread: bool) -> None:
    """Paper B's CNN with paper A's full device model on real MNIST digits: the fused calls
    make the layer path's kernel calls on the same buffers in the same order per tile, so
    losses, device weights, read copies and generator states agree bit for bit, with the
    update thread off (the whole step in one call) or on (with half-select on conv2, whose
    updates it then takes: the calls one sample at a time)."""
    x, y = mnist.train(40)
    cfg = gokmen_vlasov_2016()
    if thread:
        cfg = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, k_half_select=0.1))
    fused = cnn_gokmen_2017(cfg, rng=np.random.default_rng(5), update_thread=thread)
    assert fused._cnn_threaded() == (thread and update_thread_enabled())
    layered = copy.deepcopy(fused)
    layered.fused = False
    assert fused.fused and fused._cnn is not None
    assert _train(fused, x, y) == _train(layered, x, y)
    _assert_same_tiles(fused, layered)
    np.testing.assert_array_equal(fused.predict_proba(x[0]), layered.predict_proba(x[0]))


@pytest.mark.parametrize("thread", [False, True])
def test_cnn_train_steps_in_one_call_equal_the_steps_one_at_a_time(
    mnist: Mnist, thread: bool
) -> None:
    """``train_steps`` runs all samples in one compiled call, or, where conv2's tile hands
    its half-select updates to the update thread, one step at a time: either way the same
    losses, weights, read copies and generator states as ``train_step`` on each sample and
    as the layer path, after steps one at a time too, and the conv layers' buffer sets
    left as the layer path leaves them (an odd batch, then an even one)."""
    x, y = mnist.train(17)
    cfg = gokmen_vlasov_2016()
    if thread:  # steps one at a time, conv2's half-select updates on the thread
        cfg = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, k_half_select=0.1))
    batch = cnn_gokmen_2017(cfg, rng=np.random.default_rng(6), update_thread=thread)
    assert batch._cnn_threaded() == (thread and update_thread_enabled())
    single = copy.deepcopy(batch)
    layered = copy.deepcopy(batch)
    layered.fused = False
    assert _train(batch, x[:2], y[:2]) == _train(single, x[:2], y[:2])
    _train(layered, x[:2], y[:2])
    for part in (slice(2, 7), slice(7, 17)):
        losses = batch.train_steps(x[part], y[part], 0.01)
        assert losses.tolist() == _train(single, x[part], y[part])
        assert losses.tolist() == _train(layered, x[part], y[part])
        for net in (single, layered):
            _assert_same_tiles(batch, net)
            convs = zip((batch._cnn[0], batch._cnn[3]), (net._cnn[0], net._cnn[3]), strict=True)
            for a, b in convs:
                assert a._set == b._set
                assert np.shares_memory(a._patches, a._patch_sets[a._set])
                assert np.shares_memory(a._d, a._d_sets[a._set])
                np.testing.assert_array_equal(a._patches, b._patches)


def test_fused_cnn_step_follows_backward_maps_read_orders_and_resumes(
    rng: np.random.Generator,
) -> None:
    """Per-direction attenuation maps (the backward read's own read copy), a read order
    changed between steps (the cached arguments are rebuilt) and a resumed state: still
    bit-identical to the layer path."""
    cfgs = [gokmen_onen_haensch_2017()] * 2 + [gokmen_vlasov_2016()] * 2
    fused = cnn_gokmen_2017(cfgs, rng=np.random.default_rng(8), update_thread=False)
    for tile in fused.tiles:
        shape = (tile.out_size, tile.in_size)
        tile.set_attenuation(rng.uniform(0.8, 1.0, shape), rng.uniform(0.8, 1.0, shape))
    layered = copy.deepcopy(fused)
    layered.fused = False
    xs = rng.random((12, 28, 28))
    xs[rng.random(xs.shape) < 0.7] = 0.0
    ys = rng.integers(0, 10, size=12)
    assert _train(fused, xs[:4], ys[:4]) == _train(layered, xs[:4], ys[:4])
    for net in (fused, layered):
        net.tiles[0].set_read_order("C")
    assert _train(fused, xs[4:8], ys[4:8]) == _train(layered, xs[4:8], ys[4:8])
    _assert_same_tiles(fused, layered)
    resumed = cnn_gokmen_2017(cfgs, rng=np.random.default_rng(99), update_thread=False)
    resumed.set_state(fused.get_state())
    resumed.tiles[0].set_read_order("C")
    assert _train(resumed, xs[8:], ys[8:]) == _train(layered, xs[8:], ys[8:])
    _assert_same_tiles(resumed, layered)


def test_fused_cnn_step_refuses_bad_input_and_changes_nothing(rng: np.random.Generator) -> None:
    net = cnn_gokmen_2017(gokmen_vlasov_2016(), rng=rng, update_thread=False)
    before = [t.get_weights() for t in net.tiles]
    img = rng.random((28, 28))
    img[3, 4] = np.inf
    with pytest.raises(TileShapeError, match="forward x: contains NaN or infinite values"):
        net.train_step(img, 1, 0.01)
    conv1, conv2 = net._cnn[0], net._cnn[3]
    assert (conv1._set, conv2._set) == (1, 0)  # as the layer path: conv2's set not taken
    with pytest.raises(TileShapeError, match=r"update lr = -0.1: must be finite and >= 0"):
        net.train_step(rng.random((28, 28)), 1, -0.1)
    for t, w in zip(net.tiles, before, strict=True):
        np.testing.assert_array_equal(t.get_weights(), w)


def test_unpickled_cnn_computes_its_activations_as_the_fused_step(
    rng: np.random.Generator,
) -> None:
    """A CNN pickled while its activation layers ran numpy's ufuncs (as before they used
    the compiled kernel) gets them compiled again when unpickled, so its layer path stays
    bit-identical to its fused step."""
    net = cnn_gokmen_2017(gokmen_vlasov_2016(), rng=rng, update_thread=False)
    state = net.__getstate__()
    layers: list[object] = state["layers"]  # type: ignore[assignment]
    acts = [layer for layer in layers if isinstance(layer, Tanh)]
    assert len(acts) == 3 and all(a.compiled for a in acts)
    for a in acts:
        a.compiled = False
    restored = Network.__new__(Network)
    restored.__setstate__(state)
    assert all(a.compiled for a in acts)


def test_other_conv_structures_train_on_the_layer_path(rng: np.random.Generator) -> None:
    """Only paper B's structure (conv, act, pool twice, flatten, linear, act, linear) runs
    fused; another one is left to the layer path and still trains."""
    conv = AnalogConv2d((8, 8, 1), 3, 3, FP, rng=rng)
    pool = MaxPool2d(conv.out_shape, 2)
    layers = [conv, Tanh(), pool, Flatten(), AnalogLinear(27, 4, FP, rng=rng)]
    net = Network(layers, n_classes=4, input_size=64)
    assert net._cnn is None
    loss = net.train_step(rng.random(64), 2, 0.1)
    assert np.isfinite(loss) and loss > 0.0
