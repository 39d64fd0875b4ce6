"""Networks: FP equivalence with a plain numpy network, gradients, paper shapes, state.

Tolerances as in ``test_layers.py``: float64 results that differ only in summation order
agree to ``rtol=1e-12, atol=1e-12``; central finite differences (h = 1e-6) agree with
analytic gradients to an absolute 1e-7. State round trips must be bit-exact.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rpucircuit import store
from rpucircuit.config.rpu import floating_point, gokmen_onen_haensch_2017, gokmen_vlasov_2016
from rpucircuit.errors import ConfigError, DataError, StoreError
from rpucircuit.model.layers import AnalogConv2d, AnalogLinear, Flatten, MaxPool2d, Sigmoid, Tanh
from rpucircuit.model.network import Network, cnn_gokmen_2017, fc_784_256_128_10, fully_connected
from rpucircuit.model.tile import TileShapeError

FP = floating_point()
RTOL = 1e-12
ATOL = 1e-12
FD_H = 1e-6
FD_ATOL = 1e-7


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def reference_mlp_step(
    ws: list[np.ndarray], x: np.ndarray, label: int, lr: float
) -> tuple[np.ndarray, float, list[np.ndarray]]:
    """Plain numpy sigmoid MLP with softmax-CE: probabilities, loss, weights after SGD."""
    acts = [np.append(x, 1.0)]
    for w in ws[:-1]:
        acts.append(np.append(sigmoid(w @ acts[-1]), 1.0))
    p = softmax(ws[-1] @ acts[-1])
    loss = -np.log(p[label])
    delta = p.copy()
    delta[label] -= 1.0
    new = [w.copy() for w in ws]
    for i in range(len(ws) - 1, -1, -1):
        new[i] -= lr * np.outer(delta, acts[i])
        if i:
            a = acts[i][:-1]
            delta = (ws[i][:, :-1].T @ delta) * a * (1 - a)
    return p, float(loss), new


def test_fc_fp_network_equals_numpy_reference(rng: np.random.Generator) -> None:
    net = fully_connected((6, 5, 4, 3), FP, rng=rng)
    ws = [t.get_weights() for t in net.tiles]
    assert [w.shape for w in ws] == [(5, 7), (4, 6), (3, 5)]
    x = rng.random(6)
    p_ref, loss_ref, new_ref = reference_mlp_step(ws, x, 2, 0.3)
    np.testing.assert_allclose(net.predict_proba(x), p_ref, rtol=RTOL, atol=ATOL)
    assert net.predict(x) == int(np.argmax(p_ref))
    loss = net.train_step(x, 2, 0.3)
    assert loss == pytest.approx(loss_ref, rel=1e-12)
    for tile, w in zip(net.tiles, new_ref, strict=True):
        np.testing.assert_allclose(tile.get_weights(), w, rtol=RTOL, atol=ATOL)


def test_evaluate_counts_misclassified_samples(rng: np.random.Generator) -> None:
    net = fully_connected((4, 6, 3), FP, rng=rng, hidden="tanh")
    x = rng.normal(size=(40, 4))
    y = rng.integers(0, 3, size=40)
    ws = [t.get_weights() for t in net.tiles]
    pred = [int(np.argmax(ws[1] @ np.append(np.tanh(ws[0] @ np.append(v, 1.0)), 1.0))) for v in x]
    expected = np.mean(np.array(pred) != y)
    assert net.evaluate(x, y) == expected  # exact: the same integer count over 40


def tiny_cnn(config: object, rng: np.random.Generator) -> Network:
    """conv 3×3 (2→3) → tanh → pool → conv 2×2 (3→4) → tanh → pool → FC 4→5 tanh → FC 5→3."""
    cfg = config  # one config for all tiles
    c1 = AnalogConv2d((8, 8, 2), 3, 3, cfg, rng=rng)  # type: ignore[arg-type]
    p1 = MaxPool2d(c1.out_shape, 2)
    c2 = AnalogConv2d(p1.out_shape, 4, 2, cfg, rng=rng)  # type: ignore[arg-type]
    p2 = MaxPool2d(c2.out_shape, 2)
    layers = [
        c1, Tanh(), p1, c2, Tanh(), p2, Flatten(),
        AnalogLinear(4, 5, cfg, rng=rng),  # type: ignore[arg-type]
        Tanh(),
        AnalogLinear(5, 3, cfg, rng=rng),  # type: ignore[arg-type]
    ]  # fmt: skip
    return Network(layers, n_classes=3, input_size=8 * 8 * 2)


def test_whole_cnn_weight_gradients_match_finite_differences(rng: np.random.Generator) -> None:
    net = tiny_cnn(FP, rng)
    # larger weights than the default init so every layer matters to the loss
    for t in net.tiles:
        t.set_weights(rng.normal(scale=0.6, size=t.get_weights().shape))
    x = rng.normal(size=(8, 8, 2))
    label = 1
    w0 = [t.get_weights() for t in net.tiles]

    def loss_now() -> float:
        return float(-np.log(net.predict_proba(x)[label]))

    numeric = []
    for t, w in zip(net.tiles, w0, strict=True):
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            wp = w.copy()
            wp[idx] += FD_H
            t.set_weights(wp)
            fp = loss_now()
            wp[idx] -= 2 * FD_H
            t.set_weights(wp)
            fm = loss_now()
            g[idx] = (fp - fm) / (2 * FD_H)
        t.set_weights(w)
        numeric.append(g)
    net.train_step(x, label, 1.0)  # exact FP SGD: W1 = W0 - 1.0 * dL/dW
    for t, w, g in zip(net.tiles, w0, numeric, strict=True):
        assert np.abs(g).max() > 1e-3  # the check is not vacuous
        np.testing.assert_allclose(w - t.get_weights(), g, atol=FD_ATOL, rtol=0)


def test_first_tile_read_order(rng: np.random.Generator) -> None:
    """A pulsed first tile is read column-major (its read skips zero pixels), except a
    dense one with half-select, whose updates rewrite whole rows; a conv1 with half-select
    stays column-major."""
    half = gokmen_vlasov_2016(k_half_select=0.1)
    assert fully_connected((30, 12, 4), gokmen_vlasov_2016(), rng=rng).tiles[0].read_order == "F"
    assert fully_connected((30, 12, 4), half, rng=rng).tiles[0].read_order == "C"
    assert cnn_gokmen_2017(half, rng=rng).tiles[0].read_order == "F"
    assert cnn_gokmen_2017(FP, rng=rng).tiles[0].read_order == "C"


def test_paper_networks_have_the_papers_tile_shapes(rng: np.random.Generator) -> None:
    fc = fc_784_256_128_10(FP, rng=rng)
    assert [(t.out_size, t.in_size) for t in fc.tiles] == [(256, 785), (128, 257), (10, 129)]
    cnn = cnn_gokmen_2017(FP, rng=rng)
    assert [(t.out_size, t.in_size) for t in cnn.tiles] == [
        (16, 26), (32, 401), (128, 513), (10, 129),
    ]  # fmt: skip
    image = rng.random((28, 28))
    p2d = cnn.predict_proba(image)
    np.testing.assert_array_equal(cnn.predict_proba(image.reshape(-1)), p2d)
    assert p2d.sum() == pytest.approx(1.0, abs=1e-12)
    loss = cnn.train_step(image, 7, 0.01)
    assert np.isfinite(loss)
    assert loss == pytest.approx(-np.log(p2d[7]), rel=1e-12)


def test_per_layer_configs_reach_their_tiles(rng: np.random.Generator) -> None:
    base = gokmen_onen_haensch_2017()
    multi = gokmen_onen_haensch_2017(n_devices=3)
    cnn = cnn_gokmen_2017([base, multi, base, base], rng=rng)
    assert [t.config for t in cnn.tiles] == [base, multi, base, base]
    assert cnn.tiles[1].device_weights().shape[0] == 3
    assert cnn.tiles[0].device_weights().shape[0] == 1


def _train(net: Network, xs: np.ndarray, ys: np.ndarray) -> list[float]:
    return [net.train_step(x, int(y), 0.05) for x, y in zip(xs, ys, strict=True)]


@pytest.mark.parametrize("kind", ["fc", "cnn"])
def test_state_round_trip_resumes_bit_exactly(
    rng: np.random.Generator, tmp_path: Path, kind: str
) -> None:
    cfg = gokmen_vlasov_2016()

    def build(seed: int) -> Network:
        gen = np.random.default_rng(seed)
        if kind == "fc":
            return fully_connected((10, 8, 3), cfg, rng=gen)
        return tiny_cnn(cfg, gen)

    size = 10 if kind == "fc" else 128
    xs = rng.random((12, size))
    ys = rng.integers(0, 3, size=12)
    a = build(1)
    _train(a, xs[:6], ys[:6])
    state = copy.deepcopy(a.get_state())
    # through the HDF5 store as a checkpoint would go
    prov = store.Provenance(kind="checkpoint", schema_version=1, config_toml="", config_key="")
    store.save(tmp_path / "state.h5", state, prov)
    loaded, _ = store.load(tmp_path / "state.h5", kind="checkpoint")
    losses_a = _train(a, xs[6:], ys[6:])
    b = build(2)  # different seed: everything must come from the state
    b.set_state(loaded)  # type: ignore[arg-type]
    losses_b = _train(b, xs[6:], ys[6:])
    assert losses_a == losses_b
    for ta, tb in zip(a.tiles, b.tiles, strict=True):
        np.testing.assert_array_equal(ta.device_weights(), tb.device_weights())


# --------------------------------------------------------------------------- errors


def test_network_errors(rng: np.random.Generator) -> None:
    net = fully_connected((4, 3), FP, rng=rng)
    with pytest.raises(DataError, match=r"input has shape \(5,\) \(5 values\); .* takes 4"):
        net.train_step(np.zeros(5), 0, 0.1)
    with pytest.raises(DataError, match=r"input has shape \(3,\)"):
        net.predict(np.zeros(3))
    with pytest.raises(DataError, match=r"label = 3: must be an integer in \[0, 2\]"):
        net.train_step(np.zeros(4), 3, 0.1)
    with pytest.raises(DataError, match=r"label = 1\.5: must be an integer in \[0, 2\]"):
        net.train_step(np.zeros(4), 1.5, 0.1)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"label = True: must be an integer"):
        net.train_step(np.zeros(4), True, 0.1)
    assert net.train_step(np.zeros(4), np.int64(2), 0.1) > 0  # numpy integers are labels too
    with pytest.raises(DataError, match=r"evaluate got 2 samples and 1 labels"):
        net.evaluate(np.zeros((2, 4)), np.zeros(1, dtype=int))
    with pytest.raises(DataError, match=r"evaluate got 0 samples and 0 labels"):
        net.evaluate(np.zeros((0, 4)), np.zeros(0, dtype=int))
    with pytest.raises(StoreError, match=r"network state has entries \['layer9'\]"):
        net.set_state({"layer9": {}})
    with pytest.raises(ConfigError, match=r"layers = \[\]: a network needs at least one layer"):
        Network([], n_classes=3, input_size=4)
    with pytest.raises(ConfigError, match=r"at least one layer with a tile"):
        Network([Sigmoid()], n_classes=3, input_size=4)
    with pytest.raises(ConfigError, match=r"input_size = 0: must be an integer >= 1"):
        Network(net.layers, n_classes=3, input_size=0)
    with pytest.raises(ConfigError, match=r"rpu_configs has 2 entries: .* one per analog layer"):
        fc_784_256_128_10([FP, FP], rng=rng)
    with pytest.raises(ConfigError, match=r"rpu_configs has 4 entries"):
        fully_connected((4, 3), [FP, FP, FP, dataclasses.replace(FP)], rng=rng)
    with pytest.raises(ConfigError, match=r"sizes = \(4,\): need at least an input"):
        fully_connected((4,), FP, rng=rng)
    with pytest.raises(ConfigError, match=r"hidden = 'relu': must be one of"):
        fully_connected((4, 3, 2), FP, rng=rng, hidden="relu")


def test_paper_cnn_is_identical_with_and_without_update_thread_and_resumes(
    rng: np.random.Generator,
) -> None:
    # conv1's update (576 patches × 16 × 26) is large enough for AnalogTile's background
    # update thread; the thread must change nothing: same losses, same device weights,
    # and a state taken while updates may be in flight must resume bit-exactly.
    cfg = gokmen_onen_haensch_2017()
    xs = rng.random((8, 28, 28))
    ys = rng.integers(0, 10, size=8)

    def run(thread: bool) -> tuple[list[float], Network, dict[str, dict[str, object]]]:
        net = cnn_gokmen_2017(cfg, rng=np.random.default_rng(3), update_thread=thread)
        losses = _train(net, xs[:4], ys[:4])
        state = copy.deepcopy(net.get_state())
        losses += _train(net, xs[4:], ys[4:])
        return losses, net, state

    losses_on, net_on, state_on = run(True)
    losses_off, net_off, _ = run(False)
    assert all(not t.update_thread for t in net_off.tiles)
    assert all(t.update_thread for t in net_on.tiles)
    assert losses_on == losses_off
    for a, b in zip(net_on.tiles, net_off.tiles, strict=True):
        np.testing.assert_array_equal(a.device_weights(), b.device_weights())
    resumed = cnn_gokmen_2017(cfg, rng=np.random.default_rng(99))
    resumed.set_state(state_on)
    assert _train(resumed, xs[4:], ys[4:]) == losses_on[4:]
    for a, b in zip(net_on.tiles, resumed.tiles, strict=True):
        np.testing.assert_array_equal(a.device_weights(), b.device_weights())


# --------------------------------------------------------------------------- fused step


@pytest.mark.parametrize("preset", ["paper_a", "fp", "tanh_multi_device", "half_select"])
def test_fused_fc_step_is_bit_identical_to_the_layer_path(
    rng: np.random.Generator, preset: str
) -> None:
    """The compiled whole-network step makes the layer path's kernel calls in the same
    order per tile: losses, weights and generator states agree bit for bit."""
    hidden = "tanh" if preset == "tanh_multi_device" else "sigmoid"
    if preset == "fp":
        cfgs: object = FP
    elif preset == "paper_a":
        cfgs = gokmen_vlasov_2016()
    elif preset == "half_select":
        cfgs = gokmen_vlasov_2016(k_half_select=0.1)
    else:
        cfgs = [gokmen_vlasov_2016(n_devices=2), gokmen_vlasov_2016(), gokmen_vlasov_2016()]
    a = fully_connected((30, 12, 8, 4), cfgs, rng=np.random.default_rng(7), hidden=hidden)  # type: ignore[arg-type]
    b = copy.deepcopy(a)
    b.fused = False
    assert a.fused
    # a pulsed first tile is read column-major, unless its updates rewrite whole rows
    assert a.tiles[0].read_order == ("C" if preset in ("fp", "half_select") else "F")
    xs = rng.random((25, 30))
    xs[rng.random(xs.shape) < 0.6] = 0.0
    ys = rng.integers(0, 4, size=25)
    la = _train(a, xs, ys)
    lb = _train(b, xs, ys)
    assert la == lb
    for ta, tb in zip(a.tiles, b.tiles, strict=True):
        sa, sb = ta.get_state(), tb.get_state()
        for key in ("weights", "kernel_rng_words"):
            np.testing.assert_array_equal(sa[key], sb[key])
    np.testing.assert_array_equal(a.predict_proba(xs[0]), b.predict_proba(xs[0]))


def test_fused_step_errors(rng: np.random.Generator) -> None:
    net = fully_connected((5, 4, 3), gokmen_vlasov_2016(), rng=rng)
    assert net.fused
    x = np.ones(5)
    x[2] = np.nan
    before = [t.get_weights() for t in net.tiles]
    with pytest.raises(TileShapeError, match="forward x: contains NaN or infinite values"):
        net.train_step(x, 0, 0.1)
    with pytest.raises(TileShapeError, match=r"update lr = -0.1: must be finite and >= 0"):
        net.train_step(np.ones(5), 0, -0.1)
    for t, w in zip(net.tiles, before, strict=True):
        np.testing.assert_array_equal(t.get_weights(), w)  # nothing changed


def _same_state(a: Network, b: Network) -> None:
    for ta, tb in zip(a.tiles, b.tiles, strict=True):
        sa, sb = ta.get_state(), tb.get_state()
        for key in ("weights", "kernel_rng_words", "generator_state"):
            np.testing.assert_array_equal(sa[key], sb[key])
        np.testing.assert_array_equal(ta.read_copy, tb.read_copy)


@pytest.mark.parametrize(
    "kind", ["fc_fused", "fc_fused_f_order", "fc_half_select", "fc_layer_path", "cnn"]
)
def test_train_steps_is_bit_identical_to_train_step_on_each_sample(kind: str) -> None:
    """train_steps on runs of samples (float32, as training feeds them; float64 in Fortran
    order with uint8 labels for ``fc_fused_f_order``; the fused fully connected network in
    one compiled call) against one train_step per sample: the same losses, weights, read
    copies and generator states, bit for bit."""
    rng = np.random.default_rng(31)
    if kind == "cnn":
        a = cnn_gokmen_2017(gokmen_vlasov_2016(), rng=np.random.default_rng(3), update_thread=False)
        n, size, n_classes = 12, 784, 10
    else:
        cfg = gokmen_vlasov_2016(k_half_select=0.1 if kind == "fc_half_select" else 0.0)
        a = fully_connected((30, 12, 8, 4), cfg, rng=np.random.default_rng(7))
        a.fused = kind != "fc_layer_path"
        n, size, n_classes = 60, 30, 4
    b = copy.deepcopy(a)
    xs = rng.random((n, size)).astype(np.float32)
    xs[rng.random(xs.shape) < 0.6] = 0.0
    ys = rng.integers(0, n_classes, size=n)
    one_by_one = [
        a.train_step(x.astype(np.float64), int(y), 0.05) for x, y in zip(xs, ys, strict=True)
    ]
    if kind == "fc_fused_f_order":
        xs, ys = np.asfortranarray(xs.astype(np.float64)), ys.astype(np.uint8)
    runs = [b.train_steps(xs[i : i + 25], ys[i : i + 25], 0.05) for i in range(0, n, 25)]
    assert [float(v) for v in np.concatenate(runs)] == one_by_one
    _same_state(a, b)


def test_train_steps_refuses_bad_input_before_any_step(rng: np.random.Generator) -> None:
    """Every sample and label is checked first: an error names the bad one and no sample
    before it was trained."""
    net = fully_connected((5, 4, 3), gokmen_vlasov_2016(), rng=rng)
    before = copy.deepcopy(net)
    xs = rng.random((6, 5))
    ys = np.array([0, 1, 2, 0, 1, 2])
    nan = xs.copy()
    nan[4, 1] = np.inf
    wrong_label = ys.copy()
    wrong_label[3] = 3
    cases: list[tuple[object, object, float, type[Exception], str]] = [
        (xs[:, :4], ys, 0.1, DataError, r"x has shape \(6, 4\): need \(n, 5\)"),
        (xs[0], ys[:1], 0.1, DataError, r"x has shape \(5,\)"),
        (xs, ys[:5], 0.1, DataError, r"labels: 6 integers needed"),
        (xs, ys.astype(float), 0.1, DataError, r"labels: 6 integers needed"),
        (xs, wrong_label, 0.1, DataError, r"labels\[3\] = 3: must be an integer in \[0, 2\]"),
        (nan, ys, 0.1, TileShapeError, r"NaN or infinite values \(sample 4\); no sample"),
        (xs, ys, -0.1, TileShapeError, r"update lr = -0.1: must be finite and >= 0"),
    ]
    for x, y, lr, error, message in cases:
        with pytest.raises(error, match=message):
            net.train_steps(x, y, lr)
    _same_state(net, before)
    assert net.train_steps(np.zeros((0, 5)), np.zeros(0, dtype=int), 0.1).shape == (0,)
    _same_state(net, before)


def test_deepcopied_linear_layer_reads_its_new_input(rng: np.random.Generator) -> None:
    layer = AnalogLinear(4, 3, FP, rng=rng)
    twin = copy.deepcopy(layer)  # before any forward: the input view must be rebuilt
    x = rng.random(4)
    np.testing.assert_array_equal(twin.forward(x), layer.forward(x))
    w = layer.tile.get_weights()
    np.testing.assert_allclose(twin.forward(x), w[:, :4] @ x + w[:, 4], rtol=1e-12, atol=1e-12)
