"""Analog layers in exact floating point against plain numpy/scipy references.

With ``floating_point()`` the tile is exact, so every layer must equal the textbook layer to
float64 rounding. Reference tolerances: a float64 dot product of n terms of size O(1)
differs from another summation order by at most ~n·eps ≈ 1e-13 for the sizes here, so
``rtol=1e-12, atol=1e-12`` is a bound with margin. Finite differences are central with step
h = 1e-6: truncation error ~h²·|f'''| ≈ 1e-12 and rounding ~eps·|f|/h ≈ 1e-10, so analytic
and numeric gradients must agree to an absolute 1e-7 (on gradients of size O(0.1–1)).
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import numpy as np
import pytest
from scipy import signal

from rpucircuit.config.rpu import floating_point
from rpucircuit.errors import ConfigError
from rpucircuit.model.kernels.convnet import col2im as _col2im_kernel
from rpucircuit.model.kernels.convnet import im2col as _im2col_kernel
from rpucircuit.model.layers import (
    AnalogConv2d,
    AnalogLinear,
    Flatten,
    MaxPool2d,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
    col2im_reference,
    im2col_reference,
    maxpool_reference,
)

FP = floating_point()
RTOL = 1e-12
ATOL = 1e-12
FD_H = 1e-6
FD_ATOL = 1e-7


def numeric_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = FD_H) -> np.ndarray:
    """Central-difference gradient of scalar ``f`` at ``x`` (any shape)."""
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gf[i] = (fp - fm) / (2 * h)
    return g


# --------------------------------------------------------------------------- im2col / col2im


@pytest.mark.parametrize(
    ("shape", "k", "stride"),
    [
        ((7, 6, 3), 3, 1),  # runs of k·C = 9 values: copied run by run
        ((9, 8, 2), 3, 2),  # runs of 6: the unrolled copy of at most 8
        ((28, 28, 1), 5, 1),  # paper B's conv1 (runs of 5)
        ((11, 10, 1), 3, 2),  # one channel, stride 2
        ((6, 7, 4), 2, 1),  # runs of exactly 8
    ],
)
def test_im2col_kernel_equals_reference(
    rng: np.random.Generator, shape: tuple[int, int, int], k: int, stride: int
) -> None:
    x = rng.normal(size=shape)
    ref = im2col_reference(x, k, stride)
    cols = np.full((ref.shape[0], ref.shape[1] + 1), 7.0)
    _im2col_kernel(x, k, stride, cols)
    np.testing.assert_array_equal(cols[:, :-1], ref)  # a pure copy: exact
    np.testing.assert_array_equal(cols[:, -1], 7.0)  # the bias column is left alone


def test_im2col_reference_patch_layout(rng: np.random.Generator) -> None:
    # independent of both implementations: patch p = (i, j) is x[i:i+k, j:j+k, :] row-major
    x = rng.normal(size=(5, 6, 2))
    cols = im2col_reference(x, 3, 1)
    assert cols.shape == (3 * 4, 3 * 3 * 2)
    np.testing.assert_array_equal(cols[1 * 4 + 2], x[1:4, 2:5, :].reshape(-1))


@pytest.mark.parametrize(("shape", "k", "stride"), [((7, 6, 3), 3, 1), ((9, 8, 2), 3, 2)])
def test_col2im_kernel_is_adjoint_of_im2col(
    rng: np.random.Generator, shape: tuple[int, int, int], k: int, stride: int
) -> None:
    x = rng.normal(size=shape)
    cols = im2col_reference(x, k, stride)
    g = rng.normal(size=(cols.shape[0], cols.shape[1] + 1))
    dx = np.full(shape, 3.0)  # garbage that the kernel must clear
    _col2im_kernel(g, k, stride, dx)
    np.testing.assert_allclose(dx, col2im_reference(g, shape, k, stride), rtol=RTOL, atol=ATOL)
    # adjoint identity <im2col(x), g> = <x, col2im(g)>, float64 sums of ~200 terms
    np.testing.assert_allclose(np.sum(cols * g[:, :-1]), np.sum(x * dx), rtol=1e-12)


# --------------------------------------------------------------------------- linear


def test_linear_fp_equals_numpy(rng: np.random.Generator) -> None:
    layer = AnalogLinear(7, 4, FP, rng=rng)
    w = layer.tile.get_weights()
    assert w.shape == (4, 8)
    x = rng.normal(size=7)
    y = layer.forward(x)
    np.testing.assert_allclose(y, w[:, :7] @ x + w[:, 7], rtol=RTOL, atol=ATOL)
    d = rng.normal(size=4)
    np.testing.assert_allclose(layer.backward(d), w[:, :7].T @ d, rtol=RTOL, atol=ATOL)
    layer.update(0.1)
    expected = w - 0.1 * np.outer(d, np.append(x, 1.0))
    np.testing.assert_allclose(layer.tile.get_weights(), expected, rtol=RTOL, atol=ATOL)


def test_linear_init_is_uniform_in_fan_in_bound(rng: np.random.Generator) -> None:
    layer = AnalogLinear(400, 50, FP, rng=rng)
    w = layer.tile.get_weights()
    bound = 1 / np.sqrt(400)
    assert np.abs(w).max() <= bound
    # U(-b, b) has std b/sqrt(3); 20,050 samples: relative standard error of the std ~0.5 %
    assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.03)


def test_linear_accept_grad_then_update_equals_backward_then_update(
    rng: np.random.Generator,
) -> None:
    a = AnalogLinear(5, 3, FP, rng=np.random.default_rng(1))
    b = AnalogLinear(5, 3, FP, rng=np.random.default_rng(1))
    x, d = rng.normal(size=5), rng.normal(size=3)
    a.forward(x)
    b.forward(x)
    a.backward(d)
    b.accept_grad(d)
    a.update(0.2)
    b.update(0.2)
    np.testing.assert_array_equal(a.tile.get_weights(), b.tile.get_weights())


def test_linear_gradients_match_finite_differences(rng: np.random.Generator) -> None:
    layer = AnalogLinear(6, 4, FP, rng=rng)
    x = rng.normal(size=6)
    r = rng.normal(size=4)  # loss L = r · y
    layer.forward(x)
    grad_x = layer.backward(r).copy()
    num_x = numeric_grad(lambda v: float(r @ layer.forward(v)), x.copy())
    np.testing.assert_allclose(grad_x, num_x, atol=FD_ATOL, rtol=0)
    # weight gradient: an exact FP update with lr moves W by -lr * dL/dW
    w0 = layer.tile.get_weights()
    layer.forward(x)
    layer.backward(r)
    layer.update(1.0)
    grad_w = w0 - layer.tile.get_weights()

    def loss_w(w: np.ndarray) -> float:
        layer.tile.set_weights(w)
        return float(r @ layer.forward(x))

    np.testing.assert_allclose(grad_w, numeric_grad(loss_w, w0.copy()), atol=FD_ATOL, rtol=0)


# --------------------------------------------------------------------------- conv


def direct_conv(x: np.ndarray, kernels: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Valid cross-correlation with scipy: out[i, j, o] = Σ K[o] ⋆ x + b[o] (stride 1)."""
    n_out = kernels.shape[0]
    chans = [
        sum(signal.correlate(x[:, :, c], kernels[o, :, :, c], mode="valid")
            for c in range(x.shape[2])) + bias[o]
        for o in range(n_out)
    ]  # fmt: skip
    return np.stack(chans, axis=-1)


def test_conv_fp_forward_equals_direct_convolution(rng: np.random.Generator) -> None:
    layer = AnalogConv2d((9, 8, 3), 4, 3, FP, rng=rng)
    assert layer.tile.get_weights().shape == (4, 3 * 3 * 3 + 1)
    w = layer.tile.get_weights()
    kernels = w[:, :-1].reshape(4, 3, 3, 3)
    x = rng.normal(size=(9, 8, 3))
    y = layer.forward(x)
    assert y.shape == (7, 6, 4)
    np.testing.assert_allclose(y, direct_conv(x, kernels, w[:, -1]), rtol=RTOL, atol=ATOL)
    # a flat input of the right size is viewed as (H, W, C)
    np.testing.assert_array_equal(layer.forward(x.reshape(-1)), y)


def test_conv_fp_backward_and_update_equal_direct_formulas(rng: np.random.Generator) -> None:
    layer = AnalogConv2d((8, 7, 2), 3, 3, FP, rng=rng)
    w = layer.tile.get_weights()
    kernels = w[:, :-1].reshape(3, 3, 3, 2)
    x = rng.normal(size=(8, 7, 2))
    g = rng.normal(size=(6, 5, 3))
    layer.forward(x)
    dx = layer.backward(g)
    # dL/dx[:, :, c] = Σ_o full convolution of g[:, :, o] with K[o, :, :, c]
    ref_dx = np.stack(
        [sum(signal.convolve(g[:, :, o], kernels[o, :, :, c], mode="full") for o in range(3))
         for c in range(2)],
        axis=-1,
    )  # fmt: skip
    np.testing.assert_allclose(dx, ref_dx, rtol=RTOL, atol=ATOL)
    layer.update(0.05)
    # dL/dK[o, :, :, c] = x[:, :, c] ⋆ g[:, :, o] (valid); dL/db[o] = Σ g[:, :, o]
    ref_dk = np.stack(
        [np.stack([signal.correlate(x[:, :, c], g[:, :, o], mode="valid") for c in range(2)],
                  axis=-1) for o in range(3)]
    )  # fmt: skip
    ref_dw = np.concatenate([ref_dk.reshape(3, -1), g.sum(axis=(0, 1))[:, None]], axis=1)
    np.testing.assert_allclose(layer.tile.get_weights(), w - 0.05 * ref_dw, rtol=RTOL, atol=ATOL)


def test_conv_with_stride_matches_strided_direct_convolution(rng: np.random.Generator) -> None:
    layer = AnalogConv2d((9, 9, 1), 2, 3, FP, rng=rng, stride=2)
    w = layer.tile.get_weights()
    x = rng.normal(size=(9, 9, 1))
    full = direct_conv(x, w[:, :-1].reshape(2, 3, 3, 1), w[:, -1])
    np.testing.assert_allclose(layer.forward(x), full[::2, ::2], rtol=RTOL, atol=ATOL)


def test_conv_gradients_match_finite_differences(rng: np.random.Generator) -> None:
    layer = AnalogConv2d((5, 6, 2), 3, 3, FP, rng=rng)
    x = rng.normal(size=(5, 6, 2))
    r = rng.normal(size=layer.out_shape)
    layer.forward(x)
    grad_x = layer.backward(r).copy()
    num_x = numeric_grad(lambda v: float(np.sum(r * layer.forward(v))), x.copy())
    np.testing.assert_allclose(grad_x, num_x, atol=FD_ATOL, rtol=0)
    w0 = layer.tile.get_weights()
    layer.forward(x)
    layer.backward(r)
    layer.update(1.0)
    grad_w = w0 - layer.tile.get_weights()

    def loss_w(w: np.ndarray) -> float:
        layer.tile.set_weights(w)
        return float(np.sum(r * layer.forward(x)))

    np.testing.assert_allclose(grad_w, numeric_grad(loss_w, w0.copy()), atol=FD_ATOL, rtol=0)


def test_conv_alternates_patch_buffers_and_pickles_as_views(rng: np.random.Generator) -> None:
    """Successive forward passes fill the two buffer sets in turn (a deferred update keeps
    reading the other set), and a pickled layer keeps its current buffers as views."""
    import pickle

    layer = AnalogConv2d((6, 6, 1), 2, 3, FP, rng=rng)
    x1, x2 = rng.normal(size=(6, 6, 1)), rng.normal(size=(6, 6, 1))
    layer.forward(x1)
    p1 = layer.patches
    layer.forward(x2)
    p2 = layer.patches
    assert not np.shares_memory(p1, p2)
    np.testing.assert_array_equal(p1[:, :-1], im2col_reference(x1, 3))  # untouched by pass 2
    np.testing.assert_array_equal(p2[:, :-1], im2col_reference(x2, 3))
    layer.forward(x1)
    assert np.shares_memory(layer.patches, p1)
    copy = pickle.loads(pickle.dumps(layer))
    assert np.shares_memory(copy.patches, copy._patch_sets)
    assert np.shares_memory(copy._d, copy._d_sets)
    np.testing.assert_array_equal(copy.patches, layer.patches)


# --------------------------------------------------------------------------- activations


@pytest.mark.parametrize(
    ("cls", "ref"),
    [(Sigmoid, lambda z: 1 / (1 + np.exp(-z))), (Tanh, np.tanh)],
)
def test_activation_values_and_gradients(
    rng: np.random.Generator, cls: type, ref: Callable[[np.ndarray], np.ndarray]
) -> None:
    act = cls()
    for shape in [(11,), (3, 4, 2)]:  # buffers follow the input shape
        x = rng.normal(scale=2.0, size=shape)
        np.testing.assert_allclose(act.forward(x), ref(x), rtol=1e-14, atol=1e-15)
        r = rng.normal(size=shape)
        grad = act.backward(r).copy()

        def weighted(v: np.ndarray, r: np.ndarray = r) -> float:
            return float(np.sum(r * ref(v)))

        num = numeric_grad(weighted, x.copy())
        np.testing.assert_allclose(grad, num, atol=FD_ATOL, rtol=0)


def test_flatten_round_trip(rng: np.random.Generator) -> None:
    f = Flatten()
    x = rng.normal(size=(2, 3, 4))
    y = f.forward(x)
    np.testing.assert_array_equal(y, x.reshape(-1))
    np.testing.assert_array_equal(f.backward(y * 2), x * 2)


# --------------------------------------------------------------------------- pooling


def test_maxpool_equals_reference_and_routes_gradient(rng: np.random.Generator) -> None:
    pool = MaxPool2d((6, 4, 3), 2)
    x = rng.normal(size=(6, 4, 3))
    y = pool.forward(x)
    ref_y, mask = maxpool_reference(x, 2)
    np.testing.assert_array_equal(y, ref_y)
    g = rng.normal(size=(3, 2, 3))
    dx = pool.backward(g)
    up = np.repeat(np.repeat(g, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(dx, up * mask)
    num = numeric_grad(lambda v: float(np.sum(g * pool.forward(v))), x.copy())
    np.testing.assert_allclose(dx, num, atol=FD_ATOL, rtol=0)


@pytest.mark.parametrize("clone", ["deepcopy", "pickle"])
def test_copied_maxpool_routes_gradient_into_what_backward_returns(
    rng: np.random.Generator, clone: str
) -> None:
    # regression: a copy's flat gradient buffer was a separate array, not a view of the
    # returned one, so a deep-copied CNN's backward pass returned zeros below each pool
    pool = MaxPool2d((4, 4, 2), 2)
    twin = copy.deepcopy(pool) if clone == "deepcopy" else pickle.loads(pickle.dumps(pool))
    x = rng.normal(size=(4, 4, 2))
    g = rng.normal(size=(2, 2, 2))
    pool.forward(x)
    twin.forward(x)
    np.testing.assert_array_equal(twin.backward(g), pool.backward(g))
    assert np.count_nonzero(twin.backward(g)) == g.size


def test_maxpool_ties_route_to_first_maximum_and_odd_sizes_drop_the_edge() -> None:
    pool = MaxPool2d((3, 5, 1), 2)
    x = np.zeros((3, 5, 1))  # all windows tie
    x[0, 3, 0] = 1.0
    assert pool.out_shape == (1, 2, 1)
    np.testing.assert_array_equal(pool.forward(x)[:, :, 0], [[0.0, 1.0]])
    dx = pool.backward(np.array([[[5.0], [6.0]]]))
    expected = np.zeros((3, 5, 1))
    expected[0, 0, 0] = 5.0  # first element of the tied window
    expected[0, 3, 0] = 6.0
    np.testing.assert_array_equal(dx, expected)
    _, mask = maxpool_reference(x, 2)
    np.testing.assert_array_equal(mask, (expected != 0).astype(float))


# --------------------------------------------------------------------------- softmax


def test_softmax_cross_entropy_values_and_gradient(rng: np.random.Generator) -> None:
    sce = SoftmaxCrossEntropy(5)
    z = rng.normal(scale=3.0, size=5) + 800.0  # a large offset must not overflow
    p = sce.forward(z)
    e = np.exp(z - 800.0)
    np.testing.assert_allclose(p, e / e.sum(), rtol=1e-13)
    assert sce.loss(2) == pytest.approx(-np.log(e[2] / e.sum()), rel=1e-12)
    grad = sce.backward(2).copy()

    def loss(v: np.ndarray) -> float:
        sce.forward(v)
        return sce.loss(2)

    np.testing.assert_allclose(grad, numeric_grad(loss, z.copy()), atol=FD_ATOL, rtol=0)


# --------------------------------------------------------------------------- errors


def test_layer_arguments_are_validated(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match=r"in_size = 0: must be an integer >= 1"):
        AnalogLinear(0, 3, FP, rng=rng)
    with pytest.raises(ConfigError, match=r"out_size = 2.5: must be an integer >= 1"):
        AnalogLinear(3, 2.5, FP, rng=rng)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"in_shape = \(4, 4\): must be \(height, width"):
        AnalogConv2d((4, 4), 2, 3, FP, rng=rng)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"in_shape\[2\] = 0: must be an integer >= 1"):
        AnalogConv2d((4, 4, 0), 2, 3, FP, rng=rng)
    with pytest.raises(ConfigError, match=r"kernel_size = 5: must not exceed the input height 4"):
        AnalogConv2d((4, 6, 1), 2, 5, FP, rng=rng)
    with pytest.raises(ConfigError, match=r"stride = 0: must be an integer >= 1"):
        AnalogConv2d((4, 4, 1), 2, 3, FP, rng=rng, stride=0)
    with pytest.raises(ConfigError, match=r"in_shape = \(4,\): must be \(height, width"):
        MaxPool2d((4,), 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"size = 3: must not exceed the input height 2"):
        MaxPool2d((2, 4, 1), 3)
    with pytest.raises(ConfigError, match=r"n_classes = 1: must be an integer >= 2"):
        SoftmaxCrossEntropy(1)
