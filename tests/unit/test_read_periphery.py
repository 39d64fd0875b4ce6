"""Read gain, input transfer curve and per-direction attenuation maps: validation, the
compiled reads (single, batched, forward, backward, the fused FC step) against the plain
reference read and against the formula, the unset fields' old path, and a model file whose
two reads have different IR-drop models."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from rpucircuit.config import from_toml, rpu, to_toml
from rpucircuit.config.training import ModelSpec, TrainingConfig
from rpucircuit.errors import ConfigError, TileShapeError, UnsupportedError
from rpucircuit.model import kernels
from rpucircuit.model.irdrop import IRDropModel
from rpucircuit.model.modelfile import ArrayModel, PresetExport, save_model
from rpucircuit.model.modelparts import InputTransfer, IRDrop
from rpucircuit.model.network import fully_connected
from rpucircuit.model.tile import AnalogTile
from rpucircuit.training.loop import build_network

CURVE = (0.9, 0.15, -0.05)
"""f(u) = 0.9·u + 0.15·u³ − 0.05·u⁵: f′ = 0.9 + 0.45·u² − 0.25·u⁴ > 0, f(1) = 1."""
GAIN = 0.93

QUIET = rpu.IOConfig(
    inp_res=0.0,
    out_noise=0.0,
    out_bound=0.0,
    out_res=0.0,
    noise_management=False,
    bound_management=False,
)
"""Non-perfect read with every non-ideality off."""


def _f(u: np.ndarray, coefs: tuple[float, ...] = CURVE) -> np.ndarray:
    return sum(c * u ** (2 * k + 1) for k, c in enumerate(coefs))  # type: ignore[return-value]


def _cfg(forward: rpu.IOConfig, backward: rpu.IOConfig | None = None) -> rpu.RPUConfig:
    return rpu.RPUConfig(forward=forward, backward=backward or forward, device=rpu.ideal_device())


# --------------------------------------------------------------------------- config


def test_new_fields_default_to_the_ideal_read_and_round_trip() -> None:
    io = rpu.IOConfig()
    assert io.read_gain == 1.0 and io.input_transfer == ()
    cfg = dataclasses.replace(
        rpu.gokmen_vlasov_2016(),
        forward=rpu.IOConfig(read_gain=GAIN, input_transfer=CURVE),
    )
    assert from_toml(rpu.RPUConfig, to_toml(cfg)) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"read_gain": 0.0}, r"read_gain = 0\.0: must lie in \(0, 1\]"),
        ({"read_gain": 1.2}, r"read_gain = 1\.2: must lie in \(0, 1\]"),
        ({"read_gain": float("nan")}, r"read_gain = nan: must be finite"),
        ({"input_transfer": [1.0]}, r"input_transfer = \[1\.0\]: must be a tuple"),
        ({"input_transfer": (1.0,) * 9}, r"at most 8 odd coefficients .* got 9"),
        ({"input_transfer": (1.0, float("inf"))}, r"input_transfer\[1\] \(c3\) = inf: must be"),
        ({"input_transfer": (-1.0,)}, r"f\(1\) = -1\.0 must be > 0"),
        # f′ = 1 − 1.5u² < 0 near u = 1 (f(1) = 0.5 > 0)
        ({"input_transfer": (1.0, -0.5)}, r"non-decreasing on \[-1, 1\] \(min f'\(u\) = -0\.5 "),
        # f′(t = u²) = 1 − 3t + 2.2t²: positive at both ends, −0.023 at t = 0.68 (inside)
        ({"input_transfer": (1.0, -1.0, 0.44)}, r"min f'\(u\) = -0\.02"),
    ],
)
def test_io_config_refuses_bad_gain_and_curves(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        rpu.IOConfig(**kwargs)  # type: ignore[arg-type]


def test_monotone_check_against_a_dense_grid() -> None:
    """Independent reference: f′ = Σ (2k+1)·c_k·u^(2k) on 200,001 points of [−1, 1]; the
    grid minimum lies above the true one by at most ½·max|f‴|·(grid step)² ≈ 1e-9."""
    u = np.linspace(-1.0, 1.0, 200_001)
    for coefs in (CURVE, (1.0, -1.0, 0.44), (0.5, 0.2), (1.0, -0.3333), (1.0, -0.5)):
        slope = sum((2 * k + 1) * c * u ** (2 * k) for k, c in enumerate(coefs)).min()
        assert rpu.transfer_slope_min(coefs) == pytest.approx(slope, abs=1e-8)
    rpu.IOConfig(input_transfer=(1.0, -1.0 / 3.0))  # f′(1) = 0 exactly: allowed (flat end)


# --------------------------------------------------------------------------- reads


def test_read_gain_and_curve_follow_the_formula(rng: np.random.Generator) -> None:
    """y = κ·s·W·f(x/s) (noise management s = max|x|), forward and backward, single and
    batched, against numpy; float64 read copy (no noise), so 1e-12."""
    io = dataclasses.replace(QUIET, noise_management=True, read_gain=GAIN, input_transfer=CURVE)
    tile = AnalogTile(5, 7, _cfg(io), rng=rng)
    w = rng.uniform(-0.5, 0.5, (5, 7))
    tile.set_weights(w)
    x = rng.uniform(-2.0, 2.0, (4, 7))
    d = rng.uniform(-2.0, 2.0, (4, 5))
    s_x = np.abs(x).max(axis=1, keepdims=True)
    s_d = np.abs(d).max(axis=1, keepdims=True)
    want_y = GAIN * s_x * (_f(x / s_x) @ w.T)
    want_z = GAIN * s_d * (_f(d / s_d) @ w)
    np.testing.assert_allclose(tile.forward(x), want_y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tile.backward(d), want_z, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tile.forward(x[1]), want_y[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tile.backward(d[2]), want_z[2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("inp_bound", [1.0, 0.5])
def test_compiled_read_matches_the_reference_read(
    rng: np.random.Generator, inp_bound: float
) -> None:
    """read_batch against reference_read, noise off, with DAC, bound, ADC, bound
    management, gain and curve on: the same arithmetic up to summation order (1e-12), on
    vectors big enough to need bound management. The DAC is applied before f, so the
    curve's input is on the DAC grid."""
    io = rpu.IOConfig(
        inp_bound=inp_bound, out_noise=0.0, out_bound=3.0, read_gain=GAIN, input_transfer=CURVE
    )
    v = kernels.pack_io(io)
    w = rng.uniform(-0.6, 0.6, (6, 40))
    x = rng.uniform(-1.0, 1.0, (10, 40))
    x[3] = 0.0  # an all-zero vector reads 0
    y = np.empty((10, 6))
    assert kernels.read_batch(w, x, y, v, kernels.seed_state(rng)) == 0
    ref = np.array([kernels.reference_read(w, row, v, rng) for row in x])
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    bm = np.abs(ref).max(axis=1) >= 3.0 * 0.5  # read at a reduced input: BM halved it
    assert bm.any()
    # the transposed (backward) layout reads the same
    yt = np.empty((10, 6))
    kernels.read_batch(np.asfortranarray(w.T).T, x, yt, v, kernels.seed_state(rng))
    np.testing.assert_allclose(yt, ref, rtol=0, atol=1e-12)


def test_noisy_read_with_gain_matches_the_reference_statistically(
    rng: np.random.Generator,
) -> None:
    """With output noise the gain multiplies the signal, not the noise: mean κ·W·f(x),
    σ = out_noise, against the reference read's; 4,000 reads, σ of the mean 0.06/63."""
    io = rpu.IOConfig(
        out_noise=0.06, out_bound=0.0, out_res=0.0, bound_management=False,
        noise_management=False, read_gain=GAIN, input_transfer=CURVE,
    )  # fmt: skip
    v = kernels.pack_io(io)
    w = rng.uniform(-0.5, 0.5, (3, 8))
    x = rng.uniform(-1.0, 1.0, 8)
    xs = np.tile(x, (4000, 1))
    y = np.empty((4000, 3))
    kernels.read_batch(w, xs, y, v, kernels.seed_state(rng))
    ref = np.array([kernels.reference_read(w, x, v, rng) for _ in range(4000)])
    xq = np.rint(x / v[kernels.IO_INP_STEP]) * v[kernels.IO_INP_STEP]
    mean = GAIN * (w @ _f(xq))
    for got in (y, ref):
        np.testing.assert_allclose(got.mean(axis=0), mean, rtol=0, atol=5 * 0.06 / 63)
        np.testing.assert_allclose(got.std(axis=0), 0.06, rtol=0.06)


# --------------------------------------------------------------------------- old path


def test_unset_fields_read_bit_identically_to_the_previous_code() -> None:
    """Same seed, same results as the code before read_gain/input_transfer existed.

    Golden digest made by this very function with the previous commit's rpucircuit
    (f54a03d); regenerate by running it there. Dyadic weights and inputs on a dyadic DAC
    grid (inp_res 1/128) make every MVM sum exact in any order, so the digest does not
    depend on the CPU's vector width; the noise, ADC and updates are the generator's."""
    base = rpu.gokmen_onen_haensch_2017(n_devices=2)
    io = dataclasses.replace(base.forward, inp_res=1.0 / 128.0)
    cfg = dataclasses.replace(base, forward=io, backward=io)
    tile = AnalogTile(8, 6, cfg, rng=np.random.default_rng(7))
    data = np.random.default_rng(3)
    tile.set_weights(data.integers(-32, 33, (8, 6)) / 64.0)
    x = data.integers(-8, 9, (5, 6)) / 8.0
    d = data.integers(-8, 9, (5, 8)) / 64.0
    h = hashlib.sha256()
    for arr in (tile.forward(x), tile.backward(d)):
        h.update(np.ascontiguousarray(arr).tobytes())
    tile.update(x, d, 0.05)
    tile.update(x[0], d[0], 0.05)
    h.update(tile.device_weights().tobytes())
    h.update(tile.get_state()["kernel_rng_words"].tobytes())
    assert h.hexdigest() == "f30a3f01de7be998cbfb192b933a46ed2246fba32fecc856c729b4e6be847653"


def test_gain_one_and_identity_curve_take_the_old_path(rng: np.random.Generator) -> None:
    """An explicit gain of 1 and an empty curve pack to the unset vector, so the kernel
    skips both (bit for bit the same reads on the same generator state)."""
    plain = rpu.IOConfig()
    explicit = rpu.IOConfig(read_gain=1.0, input_transfer=())
    np.testing.assert_array_equal(kernels.pack_io(plain), kernels.pack_io(explicit))
    a = AnalogTile(4, 9, _cfg(plain), rng=np.random.default_rng(1))
    b = AnalogTile(4, 9, _cfg(explicit), rng=np.random.default_rng(1))
    w = rng.uniform(-0.5, 0.5, (4, 9))
    a.set_weights(w)
    b.set_weights(w)
    x = rng.uniform(-1.0, 1.0, (3, 9))
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


# --------------------------------------------------------------------------- maps


def test_backward_read_uses_its_own_map_and_updates_keep_it(rng: np.random.Generator) -> None:
    """Forward reads see W∘A, backward reads W∘B, after set_weights and after pulsed and
    exact updates (float64 read copies, no noise: 1e-12)."""
    fwd_map = rng.uniform(0.7, 1.0, (5, 6))
    bwd_map = rng.uniform(0.7, 1.0, (5, 6))
    for update in (rpu.UpdateConfig(), rpu.UpdateConfig(pulse_type="exact")):
        for n_dev in (1, 2):
            device = dataclasses.replace(rpu.ideal_device(), n_devices=n_dev)
            cfg = rpu.RPUConfig(forward=QUIET, backward=QUIET, device=device, update=update)
            tile = AnalogTile(5, 6, cfg, rng=rng)
            tile.set_weights(rng.uniform(-0.5, 0.5, (5, 6)))
            tile.set_attenuation(fwd_map, bwd_map)
            for _ in range(3):
                x = rng.uniform(-1.0, 1.0, (2, 6))
                d = rng.uniform(-1.0, 1.0, (2, 5))
                w = tile.get_weights()
                np.testing.assert_allclose(tile.forward(x), x @ (w * fwd_map).T, atol=1e-12)
                np.testing.assert_allclose(tile.backward(d), d @ (w * bwd_map), atol=1e-12)
                tile.update(x, d, 0.1)
                tile.update(x[0], d[0], 0.1)
            np.testing.assert_array_equal(tile.get_attenuation("forward"), fwd_map)
            np.testing.assert_array_equal(tile.get_attenuation("backward"), bwd_map)


def test_backward_map_defaults_to_the_forward_map_and_survives_state(
    rng: np.random.Generator,
) -> None:
    a = rng.uniform(0.5, 1.0, (3, 4))
    b = rng.uniform(0.5, 1.0, (3, 4))
    tile = AnalogTile(3, 4, _cfg(QUIET), rng=rng)
    tile.set_attenuation(a)
    np.testing.assert_array_equal(tile.get_attenuation("backward"), a)
    assert tile.kernel_arrays().dp[kernels.DP_BWD_ATT] == 0.0  # one read copy, as before
    tile.set_attenuation(a, b)
    # its own copy, built by the first backward read, then kept by the updates
    assert tile.kernel_arrays().dp[kernels.DP_BWD_ATT] == kernels.BWD_STALE
    tile.backward(np.ones(3))
    assert tile.kernel_arrays().dp[kernels.DP_BWD_ATT] == kernels.BWD_KEPT
    state = tile.get_state()
    other = AnalogTile(3, 4, _cfg(QUIET), rng=rng)
    other.set_state(state)
    np.testing.assert_array_equal(other.get_attenuation("backward"), b)
    old = {k: v for k, v in state.items() if k != "backward_attenuation"}  # an older state
    other.set_state(old)
    np.testing.assert_array_equal(other.get_attenuation("backward"), a)
    with pytest.raises(TileShapeError, match=r"set_attenuation: backward shape \(4, 3\)"):
        tile.set_attenuation(a, b.T)
    with pytest.raises(TileShapeError, match="set_attenuation: backward values must be finite"):
        tile.set_attenuation(a, -b)
    with pytest.raises(ConfigError, match=r"direction = 'up': must be one of"):
        tile.get_attenuation("up")


@pytest.mark.parametrize("n_dev", [1, 2])
def test_fused_step_with_gain_curve_and_two_maps_is_bit_identical_to_the_layer_path(
    rng: np.random.Generator, n_dev: int
) -> None:
    fwd = dataclasses.replace(
        rpu.gokmen_vlasov_2016().forward, read_gain=GAIN, input_transfer=CURVE
    )
    bwd = dataclasses.replace(rpu.gokmen_vlasov_2016().backward, read_gain=0.97)
    cfg = dataclasses.replace(rpu.gokmen_vlasov_2016(n_devices=n_dev), forward=fwd, backward=bwd)
    a = fully_connected((30, 12, 8, 4), cfg, rng=np.random.default_rng(7))
    for tile in a.tiles:
        shape = (tile.out_size, tile.in_size)
        tile.set_attenuation(rng.uniform(0.8, 1.0, shape), rng.uniform(0.8, 1.0, shape))
    b = copy.deepcopy(a)
    b.fused = False
    assert a.fused
    xs = rng.random((25, 30))
    xs[rng.random(xs.shape) < 0.6] = 0.0
    ys = rng.integers(0, 4, size=25)
    la = [a.train_step(x, int(y), 0.05) for x, y in zip(xs, ys, strict=True)]
    lb = [b.train_step(x, int(y), 0.05) for x, y in zip(xs, ys, strict=True)]
    assert la == lb
    for k, (ta, tb) in enumerate(zip(a.tiles, b.tiles, strict=True)):
        sa, sb = ta.get_state(), tb.get_state()
        for key in ("weights", "kernel_rng_words"):
            np.testing.assert_array_equal(sa[key], sb[key])
        ka = ta.kernel_arrays()
        if k == 0:  # never read backward: its backward copy was never built or kept
            assert ka.dp[kernels.DP_BWD_ATT] == kernels.BWD_STALE
            continue
        # the backward read copy followed the updates: W∘B, rounded to float32
        assert ka.dp[kernels.DP_BWD_ATT] == kernels.BWD_KEPT
        w = ta.get_weights() * ta.get_attenuation("backward")
        np.testing.assert_array_equal(ka.wread_b, w.astype(np.float32))


# --------------------------------------------------------------------------- model file


def _two_direction_file(tmp_path: Path, backward_curve: InputTransfer | None) -> Path:
    model = ArrayModel(
        rpu=rpu.gokmen_vlasov_2016(),
        description="two IR models",
        source="test",
        ir_drop=IRDrop(
            forward=IRDropModel(segment_ratio=1e-7),
            backward=IRDropModel(segment_ratio=3e-7, driver_ratio=1e-6),
        ),
        forward_input_transfer=InputTransfer(odd_coefficients=CURVE),
        backward_input_transfer=backward_curve,
    )
    return save_model(tmp_path / "two.h5", model, origin=PresetExport(preset="gokmen_vlasov_2016"))


def test_model_file_gives_each_read_its_map_and_curve(tmp_path: Path) -> None:
    """A file with different forward/backward IR-drop models: training's tiles read
    backward through the backward map (against the map applied by hand, noise-free reads
    of the built tile's config with the noise switched off), and carry each read's curve."""
    path = _two_direction_file(tmp_path, InputTransfer(odd_coefficients=(0.95, 0.05)))
    net = build_network(
        TrainingConfig(model=ModelSpec(file=str(path))), rng=np.random.default_rng(0)
    )
    fwd_ir = IRDropModel(segment_ratio=1e-7)
    bwd_ir = IRDropModel(segment_ratio=3e-7, driver_ratio=1e-6)
    for tile in net.tiles:
        shape = (tile.out_size, tile.in_size)
        fmap = fwd_ir.attenuation(*shape, "forward")
        bmap = bwd_ir.attenuation(*shape, "backward")
        assert not np.array_equal(fmap, bmap)
        np.testing.assert_array_equal(tile.get_attenuation("forward"), fmap)
        np.testing.assert_array_equal(tile.get_attenuation("backward"), bmap)
        assert tile.config.forward.input_transfer == CURVE
        assert tile.config.backward.input_transfer == (0.95, 0.05)
    # the reads themselves: a quiet copy of the last tile's config, the file's maps
    last = net.tiles[-1]
    quiet = _cfg(dataclasses.replace(QUIET, input_transfer=(0.95, 0.05)))
    probe = AnalogTile(last.out_size, last.in_size, quiet, rng=np.random.default_rng(1))
    w = np.random.default_rng(2).uniform(-0.5, 0.5, (last.out_size, last.in_size))
    probe.set_weights(w)
    probe.set_attenuation(last.get_attenuation("forward"), last.get_attenuation("backward"))
    d = np.random.default_rng(3).uniform(-1.0, 1.0, last.out_size)
    want = _f(d, (0.95, 0.05)) @ (w * last.get_attenuation("backward"))
    np.testing.assert_allclose(probe.backward(d), want, rtol=0, atol=1e-12)
    wrong = _f(d, (0.95, 0.05)) @ (w * last.get_attenuation("forward"))
    assert np.abs(want - wrong).max() > 1e-6  # the maps differ enough to tell apart


def test_model_file_table_curve_is_refused_for_training(tmp_path: Path) -> None:
    table = InputTransfer(x=(-1.0, 0.0, 1.0), f=(-0.9, 0.0, 0.9))
    path = _two_direction_file(tmp_path, table)
    with pytest.raises(UnsupportedError, match=r"two\.h5: input_transfer/backward: a table"):
        build_network(TrainingConfig(model=ModelSpec(file=str(path))), rng=np.random.default_rng(0))


def test_model_file_curve_the_config_refuses_names_the_file(tmp_path: Path) -> None:
    """A stored curve that is not monotone (f′ = 1 − 1.5u² < 0 near ±1) fails when
    training builds its tiles, naming the file and the direction."""
    path = _two_direction_file(tmp_path, InputTransfer(odd_coefficients=(1.0, -0.5)))
    with pytest.raises(
        ConfigError, match=r"two\.h5: input_transfer/backward: input_transfer = \(1\.0, -0\.5\)"
    ):
        build_network(TrainingConfig(model=ModelSpec(file=str(path))), rng=np.random.default_rng(0))


def _bm_batch() -> tuple[np.ndarray, np.ndarray, rpu.IOConfig]:
    """Dyadic weights and inputs on a dyadic DAC grid (every MVM sum exact in float32 and
    float64, in any order), one all-zero row, and one weight row and one input row of
    equal entries: that input's output is 20 against a bound of 2, read again at 1/2, 1/4,
    1/8 and 1/16 of its input before it is in range (and still out of range at the last
    re-read a cap of 4 allows); other rows hit the bound on one output or another."""
    data = np.random.default_rng(11)
    w = data.integers(-32, 33, (12, 40)) / 64.0
    w[0] = 0.5
    x = data.integers(-8, 9, (30, 40)) / 8.0
    x[4] = 0.0
    x[7] = 1.0
    io = rpu.IOConfig(inp_res=1.0 / 128.0, out_noise=0.06, out_bound=2.0, out_res=2.0 / 255.0)
    return w, x, io


def test_batch_reads_with_bound_management_equal_the_row_by_row_code() -> None:
    """Every row's ADC first, then the re-reads of the rows that hit the bound, gives the
    results and generator state of the code that finished each row (ADC and re-reads)
    before the next. Golden digest made by this very function with that code (commit
    aa7f416; regenerate by running it there); float32 and float64 copies, row- and
    column-major, bound management without a cap and capped at 4."""
    w, x, io = _bm_batch()
    h = hashlib.sha256()
    for cap in (io.bm_max_factor, 4.0):
        v = kernels.pack_io(dataclasses.replace(io, bm_max_factor=cap))
        for dtype in (np.float64, np.float32):
            for wr in (w.astype(dtype), np.asfortranarray(w.T.astype(dtype)).T):
                s = kernels.seed_state(np.random.default_rng(5))
                y = np.empty((30, 12))
                assert kernels.read_batch(wr, x, y, v, s) == 0
                h.update(y.tobytes())
                h.update(s.tobytes())
    assert h.hexdigest() == "1d5c87dd068cf01a7ca22db5141b796e32dd6d6204e1a251c0d758e973971732"
    # bound management did act: rows read otherwise without it; row 7's first output is
    # in range after four re-reads (20 to noise and ADC step, times the factor 16; a cap
    # of 8 would leave it clipped at 16.06), and with a cap of 4 it stays clipped, × 4
    reads = {}
    for name, cfg in (
        ("off", dataclasses.replace(io, bound_management=False)),
        ("on", io),
        ("cap4", dataclasses.replace(io, bm_max_factor=4.0)),
    ):
        reads[name] = np.empty((30, 12))
        s = kernels.seed_state(np.random.default_rng(5))
        kernels.read_batch(w, x, reads[name], kernels.pack_io(cfg), s)
    changed = ~np.all(reads["on"] == reads["off"], axis=1)
    assert 3 <= changed.sum() < 30
    assert np.all(reads["on"][4] == 0.0)
    clipped = reads["off"][7, 0]
    assert abs(clipped - 2.0) < 0.01
    assert abs(reads["on"][7, 0] - 20.0) < 4.0  # σ = 0.06 and an ADC step, times 16
    assert reads["cap4"][7, 0] == 4.0 * clipped


def test_read_into_a_strided_output_equals_a_contiguous_one() -> None:
    """``y`` need not be C-contiguous (a column-major array, a strided view): the read
    writes the same values, and the generator moves the same way."""
    w, x, io = _bm_batch()
    v = kernels.pack_io(io)
    s0 = kernels.seed_state(np.random.default_rng(5))
    want = np.empty((30, 12))
    s_want = s0.copy()
    kernels.read_batch(w, x, want, v, s_want)
    big = np.full((30, 24), np.nan)
    for y in (np.empty((30, 12), order="F"), big[:, ::2]):
        s = s0.copy()
        assert kernels.read_batch(w, x, y, v, s) == 0
        assert np.array_equal(y, want) and np.array_equal(s, s_want)
    assert np.all(np.isnan(big[:, 1::2]))  # the gaps untouched
