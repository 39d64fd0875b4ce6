"""AnalogTile: exact FP when ideal, each non-ideality alone against its formula, state, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rpucircuit.config import rpu
from rpucircuit.errors import ConfigError, RpuError
from rpucircuit.model import kernels
from rpucircuit.model.tile import AnalogTile, TileShapeError, read_dtype

QUIET = rpu.IOConfig(
    inp_res=0.0,
    out_noise=0.0,
    out_bound=0.0,
    out_res=0.0,
    noise_management=False,
    bound_management=False,
)
"""Non-perfect read path with every non-ideality off; tests switch one on at a time."""


def _tile(
    out_size: int,
    in_size: int,
    rng: np.random.Generator,
    *,
    forward: rpu.IOConfig = QUIET,
    backward: rpu.IOConfig = QUIET,
    device: rpu.PulsedDeviceConfig | None = None,
    update: rpu.UpdateConfig | None = None,
) -> AnalogTile:
    cfg = rpu.RPUConfig(
        forward=forward,
        backward=backward,
        device=device or rpu.ideal_device(),
        update=update or rpu.UpdateConfig(),
    )
    return AnalogTile(out_size, in_size, cfg, rng=rng)


# --------------------------------------------------------------------------- exact FP


def test_floating_point_tile_is_exact(rng: np.random.Generator) -> None:
    tile = AnalogTile(7, 5, rpu.floating_point(), rng=rng)
    w = rng.normal(0, 1, (7, 5))
    tile.set_weights(w)
    np.testing.assert_array_equal(tile.get_weights(), w)
    x = rng.normal(0, 1, (3, 5))
    d = rng.normal(0, 1, (3, 7))
    # BLAS vs numpy summation order: 1e-13 absolute for sums of 5 O(1) products
    np.testing.assert_allclose(tile.forward(x), x @ w.T, rtol=0, atol=1e-13)
    np.testing.assert_allclose(tile.forward(x[0]), w @ x[0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(tile.backward(d), d @ w, rtol=0, atol=1e-13)
    tile.update(x, d, 0.1)
    expected = w - 0.1 * sum(np.outer(d[k], x[k]) for k in range(3))
    np.testing.assert_allclose(tile.get_weights(), expected, rtol=0, atol=1e-14)


def test_quiet_io_equals_exact_mvm(rng: np.random.Generator) -> None:
    tile = _tile(6, 9, rng)
    w = rng.normal(0, 0.3, (6, 9))
    tile.set_weights(w)
    x = rng.uniform(-1, 1, 9)
    # summation order only (kernel loop vs numpy): 9 products of O(0.3), 1e-13 leaves margin
    np.testing.assert_allclose(tile.forward(x), w @ x, rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- reads


def test_output_noise_sigma(rng: np.random.Generator) -> None:
    tile = _tile(50, 20, rng, forward=dataclasses.replace(QUIET, out_noise=0.06))
    w = rng.normal(0, 0.2, (50, 20))
    tile.set_weights(w)
    x = rng.uniform(-1, 1, 20)
    err = tile.forward(np.tile(x, (2000, 1))) - w @ x
    # N = 100,000 draws: SE of std 0.22 %, of mean 0.06/316 = 1.9e-4; 5 SE bounds
    assert abs(err.std() / 0.06 - 1) < 0.011
    assert abs(err.mean()) < 5 * 1.9e-4


def test_noise_management_scales_noise_with_max_input(rng: np.random.Generator) -> None:
    nm = dataclasses.replace(QUIET, out_noise=0.06, noise_management=True)
    tile = _tile(40, 10, rng, forward=nm, backward=dataclasses.replace(QUIET, out_noise=0.06))
    w = rng.normal(0, 0.2, (40, 10))
    tile.set_weights(w)
    x = rng.uniform(-0.01, 0.01, 10)
    err = tile.forward(np.tile(x, (2500, 1))) - w @ x
    # with NM the noise is sigma·max|x|; 100,000 draws: 5 SE of a std = 1.1 %
    assert abs(err.std() / (0.06 * np.max(np.abs(x))) - 1) < 0.011
    d = rng.uniform(-0.01, 0.01, 40)
    err_b = tile.backward(np.tile(d, (2500, 1))) - d @ w  # backward has NM off
    assert abs(err_b.std() / 0.06 - 1) < 0.011
    assert np.all(tile.forward(np.zeros(10)) == 0.0)  # an all-zero vector reads exactly 0


def test_inputs_beyond_the_dac_range_are_clipped_unless_managed(
    rng: np.random.Generator,
) -> None:
    w = rng.normal(0, 0.3, (4, 6))
    x = np.array([3.0, -2.0, 0.5, 0.1, -0.7, 1.5])
    plain = _tile(4, 6, rng)
    plain.set_weights(w)
    # no quantization or noise: only summation order and the x/s·s round trip (1e-16 rel)
    np.testing.assert_allclose(plain.forward(x), w @ np.clip(x, -1, 1), rtol=0, atol=1e-13)
    managed = _tile(4, 6, rng, forward=dataclasses.replace(QUIET, noise_management=True))
    managed.set_weights(w)
    np.testing.assert_allclose(managed.forward(x), w @ x, rtol=0, atol=1e-13)


def test_output_bound_clips(rng: np.random.Generator) -> None:
    tile = _tile(30, 8, rng, forward=dataclasses.replace(QUIET, out_bound=2.0))
    w = rng.normal(0, 1.0, (30, 8))
    tile.set_weights(w)
    x = rng.uniform(-1, 1, (5, 8))
    exact = x @ w.T
    assert np.max(np.abs(exact)) > 2.0  # the bound is exercised
    np.testing.assert_allclose(tile.forward(x), np.clip(exact, -2, 2), rtol=0, atol=1e-13)


def test_bound_management_recovers_and_respects_its_limit(rng: np.random.Generator) -> None:
    bm = dataclasses.replace(QUIET, out_bound=2.0, bound_management=True)
    w = rng.normal(0, 1.0, (30, 8))
    x = rng.uniform(-1, 1, (5, 8))
    exact = x @ w.T
    assert 4.0 < np.max(np.abs(exact)) < 16.0
    tile = _tile(30, 8, rng, forward=bm)
    tile.set_weights(w)
    # halving is exact in binary and nothing else is on: equal to float rounding
    np.testing.assert_allclose(tile.forward(x), exact, rtol=0, atol=1e-12)
    limited = _tile(30, 8, rng, forward=dataclasses.replace(bm, bm_max_factor=2.0))
    limited.set_weights(w)
    expected = np.array([np.clip(e, -2, 2) if np.all(np.abs(e) < 2) else np.clip(e, -4, 4)
                         for e in exact])  # fmt: skip
    np.testing.assert_allclose(limited.forward(x), expected, rtol=0, atol=1e-12)


def test_dac_quantization_step(rng: np.random.Generator) -> None:
    tile = _tile(5, 40, rng, forward=dataclasses.replace(QUIET, inp_res=1 / 126))
    w = rng.normal(0, 0.3, (5, 40))
    tile.set_weights(w)
    x = rng.uniform(-1, 1, 40)
    step = 2 / 126  # inp_res is relative to the full range [-1, 1]
    np.testing.assert_allclose(tile.forward(x), w @ (np.rint(x / step) * step), atol=1e-13)


def test_adc_quantization_step(rng: np.random.Generator) -> None:
    io = dataclasses.replace(QUIET, out_bound=12.0, out_res=1 / 510)
    tile = _tile(200, 10, rng, forward=io)
    w = rng.normal(0, 1.0, (200, 10))
    tile.set_weights(w)
    x = rng.uniform(-1, 1, 10)
    y = tile.forward(x)
    step = 24 / 510
    # y = k·step in floating point: |y/step| < 260, so its rounding error is far below 1e-9
    np.testing.assert_allclose(y / step, np.rint(y / step), rtol=0, atol=1e-9)
    assert np.max(np.abs(y - w @ x)) <= step / 2 + 1e-12  # rounding error at most half a step


def test_attenuation_map_scales_reads_not_weights(rng: np.random.Generator) -> None:
    tile = AnalogTile(4, 6, rpu.floating_point(), rng=rng)
    w = rng.normal(0, 1, (4, 6))
    att = rng.uniform(0.8, 1.0, (4, 6))
    tile.set_weights(w)
    tile.set_attenuation(att)
    x, d = rng.normal(0, 1, 6), rng.normal(0, 1, 4)
    # summation order only: sums of 4-6 O(1) products, 1e-13 absolute leaves margin
    np.testing.assert_allclose(tile.forward(x), (att * w) @ x, rtol=0, atol=1e-13)
    np.testing.assert_allclose(tile.backward(d), d @ (att * w), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(tile.get_weights(), w)
    np.testing.assert_array_equal(tile.get_attenuation(), att)
    tile.update(x, d, 0.5)
    w2 = w - 0.5 * np.outer(d, x)
    # the update rounds each O(1-10) weight once more; 1e-12 covers that plus the sum order
    np.testing.assert_allclose(tile.forward(x), (att * w2) @ x, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "dev",
    [
        rpu.PulsedDeviceConfig(n_devices=2),
        rpu.PulsedDeviceConfig(n_devices=1),
        rpu.PulsedDeviceConfig(n_devices=2, k_half_select=0.2),
        rpu.PulsedDeviceConfig(n_devices=3, soft_bounds=True),
    ],
)
def test_attenuation_is_refreshed_by_the_pulsed_update(
    rng: np.random.Generator, dev: rpu.PulsedDeviceConfig
) -> None:
    """Every update path keeps the read copy equal to att ⊙ Σ devices (float64 here)."""
    tile = _tile(5, 7, rng, device=dev)
    tile.set_weights(rng.uniform(-0.3, 0.3, (5, 7)))
    att = rng.uniform(0.5, 1.0, (5, 7))
    tile.set_attenuation(att)
    for _ in range(20):
        tile.update(rng.uniform(-1, 1, 7), rng.uniform(-1, 1, 5), 0.01)
    x = rng.uniform(-1, 1, 7)
    # float64 read copy, only the summation order differs: 7 products of O(0.3) -> 1e-13
    np.testing.assert_allclose(tile.forward(x), (att * tile.get_weights()) @ x, rtol=0, atol=1e-13)


NOISY = dataclasses.replace(QUIET, out_noise=0.01)
"""A read with output noise: the tile's read copies are then float32 (:func:`read_dtype`)."""


@pytest.mark.parametrize("io", [QUIET, NOISY], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("n_dev", "forward_map", "backward_map"),
    [
        (1, False, False),  # the weight itself is the read copy
        (1, True, False),  # forward map, the backward read uses the same copy
        (1, True, True),  # both maps: a backward read copy of its own, kept by the updates
        (1, False, True),  # a backward map alone
        (3, False, False),  # several devices summed
        (3, True, False),
        (3, True, True),
    ],
)
@pytest.mark.parametrize("path", ["one sample", "conv patches", "batched kernel"])
@pytest.mark.parametrize("lines", [False, True], ids=["maps", "line terms"])
@pytest.mark.parametrize("shape", [(6, 9), (12, 16)], ids=["6x9", "12x16"])
def test_read_copies_equal_the_maps_times_the_devices_bit_for_bit(
    rng: np.random.Generator,
    io: rpu.IOConfig,
    n_dev: int,
    forward_map: bool,
    backward_map: bool,
    path: str,
    lines: bool,
    shape: tuple[int, int],
) -> None:
    """Each way the k = 0 updates refresh the read copies (one compiled copy per case in
    the single-sample update: ``kernels.pulses._refresh_copies``), for
    single-sample updates, a convolution's 40 patches (``conv_update``) and the general
    batched update (``pulsed_update`` on 40 samples), with cycle-to-cycle noise on, the
    maps given as arrays or as line terms (``set_attenuation(lines=...)``: the updates
    then compute each map value): after the updates the forward copy is Σ devices ⊙
    forward map and the backward copy Σ devices ⊙ backward map, each float64 product
    rounded once to the copy's precision, bit for bit. The batched updates walk a sample's
    pulsing (row, column) pairs directly when there are few (6 × 9: at most 54) and
    through slot lists otherwise (12 × 16: nearly every line pulses at this learning
    rate, about 160 pairs); each refreshes the copies through an inner function."""
    n_out, n_in = shape
    dev = dataclasses.replace(rpu.ideal_device(), n_devices=n_dev, dw_min=0.02, dw_min_ctoc=0.3)
    tile = _tile(n_out, n_in, rng, forward=io, backward=io, device=dev)
    tile.set_weights(rng.uniform(-0.3, 0.3, (n_out, n_in)))
    # maps of the line-term form 1 - (row term + column term) either way
    terms = (rng.uniform(0, 0.1, n_out), rng.uniform(0, 0.1, n_in))
    fwd = terms if forward_map else (np.zeros(n_out), np.zeros(n_in))
    bwd = (rng.uniform(0, 0.1, n_out), rng.uniform(0, 0.1, n_in)) if backward_map else fwd
    att = 1.0 - (fwd[0][:, None] + fwd[1][None, :])
    att_b = 1.0 - (bwd[0][:, None] + bwd[1][None, :])
    tile.set_attenuation(att, att_b, lines=(*fwd, *bwd) if lines else None)
    assert tile.kernel_arrays().dp[kernels.DP_ATT_LINES] == float(lines)
    tile.backward(np.ones(n_out))  # from here on the updates keep a backward copy, if any
    ka = tile.kernel_arrays()
    n = 1 if path == "one sample" else 40
    n_changed = 0
    for _ in range(10):
        before = ka.w.copy()
        x, d = rng.uniform(-1, 1, (n, n_in)), rng.uniform(-1, 1, (n, n_out))
        if path == "one sample":
            tile.update(x[0], d[0], 0.2)
        elif path == "conv patches":
            tile.update(x, d, 0.2)
        else:
            upd = tile.config.update
            kernels.pulsed_update(
                x, d, 0.2, upd.bl, upd.update_management, dev.dw_min, ka.w, ka.par,
                ka.par_lines, ka.dp, ka.wread, ka.att, ka.wread_b, ka.att_b, ka.att_lines,
                ka.state,
            )  # fmt: skip
        n_changed += int(np.count_nonzero(ka.w != before))
    assert n_changed > 50  # the updates pulsed
    total = np.zeros((n_out, n_in))
    for dv in range(n_dev):  # the kernels' order: 0.0 + device 0 + device 1 ...
        total = total + ka.w[dv]
    assert ka.wread.dtype == read_dtype(tile.config)
    np.testing.assert_array_equal(ka.wread, (total * att).astype(ka.wread.dtype))
    if backward_map:
        np.testing.assert_array_equal(ka.wread_b, (total * att_b).astype(ka.wread.dtype))


@pytest.mark.parametrize("n", [1, 40], ids=["one sample", "40 samples"])
@pytest.mark.parametrize("soft", [True, False], ids=["soft bounds", "hard bounds"])
def test_half_select_updates_keep_the_copies_alike_with_line_terms(
    rng: np.random.Generator, n: int, soft: bool
) -> None:
    """The half-select updates (soft bounds: pulse by pulse; hard bounds: the passes over
    the pulsing lines, whose pass down a few pulsing columns computes the map values from
    the terms; 40 samples: blocks of samples) give the same weights, read copies and
    generator state with the maps' line terms as with the maps alone, bit for bit. Sparse
    inputs (4 of 40 nonzero), so that few columns pulse."""
    base = rpu.gokmen_vlasov_2016().device
    dev = dataclasses.replace(base, k_half_select=0.1, soft_bounds=soft)
    rows, cols = rng.uniform(0, 0.1, 6), rng.uniform(0, 0.1, 40)
    rows_b, cols_b = rng.uniform(0, 0.1, 6), rng.uniform(0, 0.1, 40)
    att = 1.0 - (rows[:, None] + cols[None, :])
    att_b = 1.0 - (rows_b[:, None] + cols_b[None, :])
    w0 = rng.uniform(-0.3, 0.3, (6, 40))
    updates = []
    for _ in range(8):
        x = np.zeros((n, 40))
        for k in range(n):
            x[k, rng.choice(40, 4, replace=False)] = rng.uniform(-1, 1, 4)
        updates.append((x, rng.uniform(-1, 1, (n, 6))))
    arrays = []
    for lines in (None, (rows, cols, rows_b, cols_b)):
        tile = _tile(6, 40, np.random.default_rng(3), device=dev)
        tile.set_weights(w0)
        tile.set_attenuation(att, att_b, lines=lines)
        tile.backward(np.ones(6))  # the updates keep the backward copy from here on
        for x, d in updates:
            tile.update(x, d, 0.2)
        arrays.append(tile.kernel_arrays())
    maps_only, with_terms = arrays
    assert with_terms.dp[kernels.DP_ATT_LINES] == 1.0 and maps_only.dp[kernels.DP_ATT_LINES] == 0.0
    assert np.count_nonzero(with_terms.w[0] != w0) > 60  # the updates changed many weights
    for name in ("w", "wread", "wread_b", "state"):
        np.testing.assert_array_equal(getattr(with_terms, name), getattr(maps_only, name))


def test_attenuation_line_terms_are_checked_and_follow_the_maps(
    rng: np.random.Generator,
) -> None:
    """``set_attenuation(lines=...)``: terms that do not give the maps bit for bit, or of
    the wrong shape, or not finite, are refused (the tile unchanged); the terms stay in use
    while later maps (``set_state`` restoring the same ones, pickling) are still what they
    give, and are dropped for other maps; a tile pickled before the terms existed loads
    without them."""
    import pickle

    tile = _tile(6, 9, rng)
    rows, cols = rng.uniform(0, 0.1, 6), rng.uniform(0, 0.1, 9)
    rows_b, cols_b = rng.uniform(0, 0.1, 6), rng.uniform(0, 0.1, 9)
    att = 1.0 - (rows[:, None] + cols[None, :])
    att_b = 1.0 - (rows_b[:, None] + cols_b[None, :])
    ka = tile.kernel_arrays()
    bad = [
        ((rows, cols, rows_b), "four vectors"),
        ((rows, cols[:8], rows_b, cols_b), r"forward columns\) shape \(8,\) must be \(9,\)"),
        ((rows, cols, np.full(6, np.nan), cols_b), r"backward rows\) must be finite"),
        ((rows, cols, rows_b, cols_b + 1e-17), "do not give the maps bit for bit"),
        ((rows_b, cols, rows_b, cols_b), "do not give the maps bit for bit"),
    ]
    for lines, message in bad:
        with pytest.raises(TileShapeError, match=message):
            tile.set_attenuation(att, att_b, lines=lines)  # type: ignore[arg-type]
        assert ka.dp[kernels.DP_ATT_LINES] == 0.0 and np.all(ka.att == 1.0)
    # bit for bit means the sign of zero too: terms giving +0.0 where the map holds -0.0
    ends = (np.array([1.0, 0, 0, 0, 0, 0]), np.zeros(9))
    signed = 1.0 - (ends[0][:, None] + ends[1][None, :])  # row 0: +0.0
    signed[0] = -0.0
    with pytest.raises(TileShapeError, match="do not give the maps bit for bit"):
        tile.set_attenuation(signed, signed, lines=(*ends, *ends))
    tile.set_attenuation(att, att_b, lines=(rows, cols, rows_b, cols_b))
    assert ka.dp[kernels.DP_ATT_LINES] == 1.0
    np.testing.assert_array_equal(ka.att_lines[kernels.ATT_B_COLS], cols_b)
    np.testing.assert_array_equal(ka.att_lines[kernels.ATT_ROWS, :6], rows)
    state = tile.get_state()
    tile.set_state(state)  # the same maps: the terms stay
    assert ka.dp[kernels.DP_ATT_LINES] == 1.0
    again = pickle.loads(pickle.dumps(tile))
    assert again.kernel_arrays().dp[kernels.DP_ATT_LINES] == 1.0
    tile.set_attenuation(att, att)  # another backward map: the terms no longer hold
    assert ka.dp[kernels.DP_ATT_LINES] == 0.0
    tile.set_attenuation(att, att_b)  # the terms' maps again, but the terms were dropped
    assert ka.dp[kernels.DP_ATT_LINES] == 0.0
    old = again.__getstate__()  # as pickled before the terms existed
    del old["_att_lines"]
    old["_dp"] = old["_dp"][: kernels.DP_ATT_LINES]
    revived = AnalogTile.__new__(AnalogTile)
    revived.__setstate__(old)
    r = revived.kernel_arrays()
    assert r.dp.shape == (kernels.DP_LEN,) and r.dp[kernels.DP_ATT_LINES] == 0.0
    assert r.att_lines.shape == (4, 9)
    np.testing.assert_array_equal(revived.get_attenuation("backward"), att_b)


# --------------------------------------------------------------------------- devices


def test_device_to_device_spreads(rng: np.random.Generator) -> None:
    tile = AnalogTile(100, 100, rpu.gokmen_vlasov_2016(), rng=rng)
    par = tile.device_parameters()
    gain = (par["dw_up"] + par["dw_down"]) / (2 * 0.001)
    alive = gain > 0  # gain is clipped at 0 (a stuck device) below -3.3 sigma
    u = (par["dw_up"] - par["dw_down"])[alive] / (par["dw_up"] + par["dw_down"])[alive]
    # 10,000 devices: SE of a std 0.7 %; 4 % relative is > 5 SE (gain clipped at 0 below
    # -3.3 sigma changes its std by < 0.1 %)
    assert abs(gain.std() / 0.3 - 1) < 0.04 and abs(gain.mean() - 1) < 5 * 0.3 / 100
    assert abs(u.std() / 0.01 - 1) < 0.04 and abs(u.mean()) < 5 * 0.01 / 100
    assert abs(par["w_max"].std() / 0.18 - 1) < 0.04
    assert abs(par["w_min"].mean() + 0.6) < 5 * 0.18 / 100


def test_multi_device_sums_and_averages_variation(rng: np.random.Generator) -> None:
    cfg = rpu.gokmen_onen_haensch_2017(n_devices=4)
    tile = AnalogTile(100, 100, cfg, rng=rng)
    par = tile.device_parameters()
    assert par["w_max"].shape == (4, 100, 100)
    total_max = par["w_max"].sum(axis=0)
    # each device 0.6/4·(1 + 0.3ξ): the sum has mean 0.6 and std 0.18/√4 = 0.09
    assert abs(total_max.mean() - 0.6) < 5 * 0.09 / 100
    assert abs(total_max.std() / 0.09 - 1) < 0.04
    assert abs(par["dw_up"].mean() - 0.001 / 4) < 5 * 0.3 * 0.00025 / 200
    w = rng.uniform(-0.3, 0.3, (100, 100))
    tile.set_weights(w)
    programmed = np.clip(w / 4, par["w_min"], par["w_max"])  # each device clips to its bounds
    np.testing.assert_array_equal(tile.device_weights(), programmed)
    np.testing.assert_allclose(tile.get_weights(), programmed.sum(axis=0), rtol=0, atol=1e-15)


def test_set_weights_clips_to_each_device_bound(rng: np.random.Generator) -> None:
    tile = AnalogTile(30, 30, rpu.gokmen_vlasov_2016(), rng=rng)
    tile.set_weights(np.full((30, 30), 5.0))
    np.testing.assert_array_equal(tile.get_weights(), tile.device_parameters()["w_max"][0])


def test_multi_device_update_mean_and_reduced_spread(rng: np.random.Generator) -> None:
    """n devices with dw/n each: same mean update; spread from the formula below.

    Devices of a weight have their own row streams but share the column stream, so with
    c ~ Bern(p) the column bit and R ~ Bin(n, q) the row bits of one slot,
    Var(Δw) = (dw/n)²·BL·[p·(n·q·(1 − q) + n²q²) − p²n²q²]; n = 1 gives dw²·BL·pq(1 − pq).
    """
    x = np.array([0.9, -0.5, 0.3])
    d = np.array([0.4, -0.7])
    m = np.sqrt(0.7 / 0.9)  # update management; C = sqrt(0.01 / (10 * 0.001)) = 1
    p, q = m * np.abs(x)[None, :], np.abs(d)[:, None] / m
    reps = 6000
    for n_dev in (1, 3):
        dev = dataclasses.replace(rpu.ideal_device(), n_devices=n_dev)
        tile = _tile(2, 3, rng, device=dev, update=rpu.UpdateConfig(bl=10))
        samples = np.empty((reps, 2, 3))
        for t in range(reps):
            tile.set_weights(np.zeros((2, 3)))
            tile.update(x, d, 0.01)
            samples[t] = tile.get_weights()
        se = samples.std(axis=0) / np.sqrt(reps)
        assert np.all(np.abs(samples.mean(axis=0) + 0.01 * np.outer(d, x)) < 5 * se)
        var = (
            (1e-3 / n_dev) ** 2
            * 10
            * (p * (n_dev * q * (1 - q) + n_dev**2 * q**2) - p**2 * n_dev**2 * q**2)
        )
        # SE of a sample variance of these counts ≤ 3 % for 6000 samples; 15 % = 5 SE
        np.testing.assert_allclose(samples.var(axis=0), var, rtol=0.15)


def test_up_down_imbalance_on_the_tile(rng: np.random.Generator) -> None:
    dev = dataclasses.replace(rpu.ideal_device(), up_down=0.2)
    tile = _tile(1, 1, rng, device=dev, update=rpu.UpdateConfig(bl=5, update_management=False))
    tile.update([1.0], [-1.0], 100.0)  # p = q = 1: five up pulses of 1.2·dw
    assert tile.get_weights()[0, 0] == pytest.approx(5 * 1.2e-3, rel=1e-14)
    tile.update([1.0], [1.0], 100.0)  # five down pulses of 0.8·dw
    assert tile.get_weights()[0, 0] == pytest.approx(5 * 0.4e-3, rel=1e-13)


def test_paper_a_tile_learns_a_target_in_expectation(rng: np.random.Generator) -> None:
    """Full paper-A tile: repeated SGD on a linear target reduces the read error."""
    tile = AnalogTile(4, 8, rpu.gokmen_vlasov_2016(), rng=rng)
    target = rng.uniform(-0.3, 0.3, (4, 8))
    xs = rng.uniform(-1, 1, (3000, 8))

    def err() -> float:
        return float(np.mean((tile.forward(xs[:200]) - xs[:200] @ target.T) ** 2))

    before = err()
    for x in xs:
        tile.update(x, tile.forward(x) - target @ x, 0.01)
    # measured 0.040-0.050 of the initial error (seeds 20161231, 1, 2, 3; the rest is read
    # noise and the discrete steps); 0.1 leaves a factor 2 for other random streams
    assert err() < 0.1 * before


# --------------------------------------------------------------------------- state


def test_state_round_trip_is_bit_exact(rng: np.random.Generator) -> None:
    cfg = rpu.gokmen_vlasov_2016(k_half_select=0.1, n_devices=2)
    tile = AnalogTile(6, 9, cfg, rng=rng)
    tile.set_weights(rng.uniform(-0.3, 0.3, (6, 9)))
    tile.set_attenuation(rng.uniform(0.9, 1.0, (6, 9)))
    xs, ds = rng.uniform(-1, 1, (4, 9)), rng.uniform(-0.1, 0.1, (4, 6))

    def run(t: AnalogTile) -> list[np.ndarray]:
        out = [t.forward(xs), t.backward(ds)]
        t.update(xs, ds, 0.01)
        return [*out, t.get_weights(), t.forward(xs[0])]

    tile.update(xs, ds, 0.01)
    state = tile.get_state()
    first = run(tile)
    tile.set_state(state)
    again = run(tile)
    other = AnalogTile(6, 9, cfg, rng=np.random.default_rng(999))
    other.set_state(state)
    third = run(other)
    for a, b, c in zip(first, again, third, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_same_seed_same_results() -> None:
    cfg = rpu.gokmen_vlasov_2016()
    a = AnalogTile(5, 7, cfg, rng=np.random.default_rng(3))
    b = AnalogTile(5, 7, cfg, rng=np.random.default_rng(3))
    x = np.linspace(-1, 1, 7)
    d = np.linspace(-0.1, 0.1, 5)
    for t in (a, b):
        t.set_weights(np.full((5, 7), 0.1))
        t.update(x, d, 0.01)
    np.testing.assert_array_equal(a.get_weights(), b.get_weights())
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda t: t.forward(np.zeros(4)), r"forward x: shape \(4,\) must be \(5,\) or \(n, 5\)"),
        (lambda t: t.forward(np.zeros((2, 2, 5))), r"forward x: shape \(2, 2, 5\) must be"),
        (lambda t: t.forward(np.full(5, np.nan)), r"forward x: contains NaN or infinite"),
        (lambda t: t.forward(np.array(["a"] * 5)), r"forward x: dtype <U1 is not a real"),
        (lambda t: t.backward(np.zeros(5)), r"backward d: shape \(5,\) must be \(3,\)"),
        (lambda t: t.backward([np.inf, 0, 0]), r"backward d: contains NaN or infinite"),
        (lambda t: t.update([np.nan] * 5, np.zeros(3), 0.1), r"x or d contains NaN"),
        (lambda t: t.update(np.zeros((2, 5)), np.zeros((3, 3)), 0.1), r"x has 2 rows but d"),
        (lambda t: t.update(np.zeros(5), np.zeros(3), -0.1), r"lr = -0\.1: must be finite"),
        (lambda t: t.update(np.zeros(5), np.zeros(3), "0.1"), r"lr = '0\.1': must be a number"),
        (lambda t: t.set_weights(np.zeros((5, 3))), r"set_weights: shape \(5, 3\) must be"),
        (lambda t: t.set_weights(np.full((3, 5), np.inf)), r"set_weights: contains NaN"),
        (lambda t: t.set_attenuation(np.ones((3, 4))), r"set_attenuation: shape \(3, 4\)"),
        (lambda t: t.set_attenuation(-np.ones((3, 5))), r"values must be finite and >= 0"),
        (lambda t: t.set_state({}), r"set_state: missing key\(s\) weights"),
    ],
)
def test_tile_errors(rng: np.random.Generator, call, match: str) -> None:  # type: ignore[no-untyped-def]
    tile = AnalogTile(3, 5, rpu.gokmen_vlasov_2016(), rng=rng)
    with pytest.raises(TileShapeError, match=match):
        call(tile)


def test_exact_update_refuses_nan(rng: np.random.Generator) -> None:
    tile = AnalogTile(3, 5, rpu.floating_point(), rng=rng)
    tile.set_weights(np.ones((3, 5)))
    with pytest.raises(TileShapeError, match=r"update: x or d contains NaN"):
        tile.update(np.zeros(5), [0.0, np.nan, 0.0], 0.1)
    np.testing.assert_array_equal(tile.get_weights(), np.ones((3, 5)))  # nothing changed


def test_read_precision_follows_the_noise(rng: np.random.Generator) -> None:
    """float32 read copy only when both reads add noise; its rounding is far below σ."""
    assert read_dtype(rpu.gokmen_vlasov_2016()) is np.float32
    assert read_dtype(rpu.floating_point()) is np.float64
    cfg = rpu.RPUConfig(forward=QUIET, backward=rpu.IOConfig(), device=rpu.ideal_device())
    assert read_dtype(cfg) is np.float64
    noisy = rpu.RPUConfig(
        forward=dataclasses.replace(QUIET, out_noise=1e-30),
        backward=dataclasses.replace(QUIET, out_noise=1e-30),
        device=rpu.ideal_device(),
    )
    tile = AnalogTile(64, 300, noisy, rng=rng)
    w = rng.uniform(-0.5, 0.5, (64, 300))
    tile.set_weights(w)
    x = rng.uniform(-1, 1, 300)
    # float32 weights and inputs: relative rounding 6e-8 per term, sum of 300 terms of ~0.25:
    # 1e-5 absolute is a generous bound and still 6000x below sigma = 0.06
    np.testing.assert_allclose(tile.forward(x), w @ x, rtol=0, atol=1e-5)
    for _ in range(30):  # the pulsed update keeps the float32 read copy current
        tile.update(rng.uniform(-1, 1, 300), rng.uniform(-1, 1, 64), 0.01)
    np.testing.assert_allclose(tile.forward(x), tile.get_weights() @ x, rtol=0, atol=1e-5)


def test_set_state_refuses_mismatches(rng: np.random.Generator) -> None:
    tile = AnalogTile(3, 5, rpu.gokmen_vlasov_2016(), rng=rng)
    other = AnalogTile(3, 4, rpu.gokmen_vlasov_2016(), rng=rng)
    with pytest.raises(TileShapeError, match=r"weights has shape \(1, 3, 4\), this tile needs"):
        tile.set_state(other.get_state())
    state = tile.get_state()
    with pytest.raises(TileShapeError, match=r"state_version 7 is not supported"):
        tile.set_state({**state, "state_version": 7})
    with pytest.raises(TileShapeError, match=r"kernel_rng_words must be 5 words"):
        tile.set_state({**state, "kernel_rng_words": np.zeros(5, dtype=np.uint64)})
    with pytest.raises(TileShapeError, match=r"kernel_rng_words must be 5 words"):
        tile.set_state({**state, "kernel_rng_words": np.ones(4, dtype=np.uint64)})
    assert issubclass(TileShapeError, RpuError)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0, 5, rpu.floating_point()), {}, r"out_size = 0: must be an integer >= 1"),
        ((3, 2.0, rpu.floating_point()), {}, r"in_size = 2\.0: must be an integer >= 1"),
        ((3, 5, rpu.IOConfig()), {}, r"config = .*must be an RPUConfig"),
        ((3, 5, rpu.floating_point()), {"rng": 5}, r"rng = 5: must be a numpy\.random\.Gen"),
    ],
)
def test_constructor_errors(args: tuple, kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    kwargs = {"rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(ConfigError, match=match):
        AnalogTile(*args, **kwargs)


def test_read_order_changes_only_the_layout(rng: np.random.Generator) -> None:
    """A column-major read copy gives the same reads (to summation-order rounding) and
    the same updates (bit for bit: the update kernel writes elements, not sums)."""
    cfg = dataclasses.replace(
        rpu.gokmen_vlasov_2016(),
        forward=rpu.IOConfig(out_noise=0.0),
        backward=rpu.IOConfig(out_noise=0.0),
    )
    a = AnalogTile(6, 20, cfg, rng=np.random.default_rng(5))
    b = AnalogTile(6, 20, cfg, rng=np.random.default_rng(5))
    w0 = rng.uniform(-0.3, 0.3, (6, 20))
    a.set_weights(w0)
    b.set_weights(w0)
    b.set_read_order("F")
    assert (a.read_order, b.read_order) == ("C", "F")
    x = rng.uniform(-1, 1, (30, 20))
    x[rng.random(x.shape) < 0.7] = 0.0
    d = rng.uniform(-1, 1, (30, 6))
    a.update(x, d, 0.05)
    b.update(x, d, 0.05)
    np.testing.assert_array_equal(a.device_weights(), b.device_weights())
    # noise-free reads of outputs ~1: summation order only, 1e-12 absolute
    np.testing.assert_allclose(b.forward(x), a.forward(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.backward(d), a.backward(d), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(b.read_copy, a.read_copy)
    with pytest.raises(ConfigError, match=r"order = 'K': must be one of \['C', 'F'\]"):
        a.set_read_order("K")


def test_line_ordered_parameters_follow_the_device_parameters(
    rng: np.random.Generator,
) -> None:
    """A tile whose updates take the half-select line passes (k > 0, hard bounds) keeps its
    device parameters along its rows and columns beside ``par``: equal to them when
    built, after set_state brings another tile's parameters, and after pickling (rebuilt,
    not pickled), all at float32 precision; other tiles (k = 0, soft bounds, exact updates)
    keep an empty stand-in."""
    import pickle

    from rpucircuit.model import kernels

    cfg = rpu.gokmen_vlasov_2016()
    hs = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, k_half_select=0.1))
    tile = AnalogTile(6, 9, hs, rng=rng)
    a = tile.kernel_arrays()
    assert a.par_lines.shape == (2, 1, 6, kernels.PAR_LEN, 9)
    np.testing.assert_array_equal(a.par_lines, kernels.par_lines_of(a.par))
    for i, j, f in ((0, 0, 0), (5, 8, 3), (2, 7, 1)):  # along the rows, along the columns
        assert a.par_lines[0, 0, i, f, j] == a.par[0, i, j, f]
        assert kernels.par_columns(a.par_lines)[0, j, i, f] == a.par[0, i, j, f]
    before = a.par.copy()
    other = AnalogTile(6, 9, hs, rng=np.random.default_rng(999))
    tile.set_state(other.get_state())
    assert not np.array_equal(a.par, before)
    np.testing.assert_array_equal(a.par, other.kernel_arrays().par)
    np.testing.assert_array_equal(a.par_lines, kernels.par_lines_of(a.par))  # in place
    assert "_par_lines" not in tile.__getstate__()  # not pickled: rebuilt
    again = pickle.loads(pickle.dumps(tile)).kernel_arrays()
    np.testing.assert_array_equal(again.par_lines, kernels.par_lines_of(again.par))
    # unpickling a tile whose parameters have more than float32 precision rounds them
    state = tile.__getstate__()
    state["_par"] = state["_par"] * (1.0 + 1e-12)
    revived = AnalogTile.__new__(AnalogTile)
    revived.__setstate__(state)
    r = revived.kernel_arrays()
    np.testing.assert_array_equal(r.par, (a.par * (1.0 + 1e-12)).astype(np.float32))
    plain = AnalogTile(6, 9, cfg, rng=rng)
    assert plain.kernel_arrays().par_lines.size == 0  # k = 0
    soft = dataclasses.replace(hs, device=dataclasses.replace(hs.device, soft_bounds=True))
    assert AnalogTile(6, 9, soft, rng=rng).kernel_arrays().par_lines.size == 0
    # an exact (pulse-free) update takes no line passes: no copy, parameters at full precision
    exact = dataclasses.replace(hs, update=dataclasses.replace(hs.update, pulse_type="exact"))
    e_tile = AnalogTile(6, 9, exact, rng=np.random.default_rng(5))
    e = e_tile.kernel_arrays()
    assert e.par_lines.size == 0
    assert np.any(e.par != e.par.astype(np.float32))
    p64_plain = plain.kernel_arrays().par  # float64 values that float32 cannot hold
    e_tile.set_state(plain.get_state())  # set_state and unpickling keep full precision too
    np.testing.assert_array_equal(e.par, p64_plain)
    e_again = pickle.loads(pickle.dumps(e_tile)).kernel_arrays()
    assert e_again.par_lines.size == 0
    np.testing.assert_array_equal(e_again.par, p64_plain)
    # the copies are float32, and so is the precision of the parameters they copy: on
    # construction, and when set_state brings float64 ones (a k = 0 tile's keep float64)
    assert a.par_lines.dtype == np.float32
    np.testing.assert_array_equal(a.par, a.par.astype(np.float32))
    p64 = plain.kernel_arrays().par
    assert np.any(p64 != p64.astype(np.float32))
    tile.set_state(plain.get_state())
    np.testing.assert_array_equal(a.par, p64.astype(np.float32))
    for arrays in (a, r):  # the copies equal the parameters exactly, float32 against float64
        np.testing.assert_array_equal(arrays.par_lines[0], np.moveaxis(arrays.par, 3, 2))
        np.testing.assert_array_equal(
            kernels.par_columns(arrays.par_lines), np.swapaxes(arrays.par, 1, 2)
        )
