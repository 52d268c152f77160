"""Keras 2 LocallyConnected1D/2D weights: our layer, after loading, computes what Keras computes.

The expected outputs come from the Keras layers' own forward formulas, written here in numpy on
Keras' own layouts (implementation 1: a loop over output positions with patches flattened in the
input's memory order; 2: an input-by-output dense matrix times a connectivity mask; 3: a sparse
matrix at the sorted (output index, input index) pairs; bias reshaped, not transposed, for
channels_first). None of it calls the loader under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from locality import (
    LazyLocallyConnected2d,
    LocallyConnected1d,
    LocallyConnected2d,
    LocallyConnected3d,
)
from locality.interop import keras as kio

# ----------------------------------------------------------------------------------------------
# Keras' forward pass, from its documented layouts


def keras_out_size(n, k, s, padding):
    return tuple(
        -(-((ni - ki + 1) if padding == "valid" else ni) // si)
        for ni, ki, si in zip(n, k, s, strict=True)
    )


def connected_inputs(n, k, s, p, padding):
    """Input ranges read by output position p (Keras' conv_connected_inputs rule)."""
    ranges = []
    for ni, ki, si, pi in zip(n, k, s, p, strict=True):
        left, right = ki // 2, ki - ki // 2
        center = pi * si + (left if padding == "valid" else 0)
        ranges.append(range(max(0, center - left), min(ni, center + right)))
    return ranges


def keras_connections(n, k, s, padding, c_in, c_out, data_format):
    """Sorted (out_idx, in_idx) pairs of the implementation-3 sparse kernel."""
    out = keras_out_size(n, k, s, padding)

    def cat(spatial, ch):
        return (ch, *spatial) if data_format == "channels_first" else (*spatial, ch)

    pairs = []
    for p in itertools.product(*(range(o) for o in out)):
        for q in itertools.product(*connected_inputs(n, k, s, p, padding)):
            for ci in range(c_in):
                for co in range(c_out):
                    pairs.append(
                        (
                            np.ravel_multi_index(cat(p, co), cat(out, c_out)),
                            np.ravel_multi_index(cat(q, ci), cat(n, c_in)),
                        )
                    )
    return sorted(pairs)


def keras_kernel_shape(n, k, s, padding, c_in, c_out, implementation, data_format):
    out = keras_out_size(n, k, s, padding)
    if implementation == 1:
        return (int(np.prod(out)), int(np.prod(k)) * c_in, c_out)
    if implementation == 2:
        if data_format == "channels_last":
            return (*n, c_in, *out, c_out)
        return (c_in, *n, c_out, *out)
    return (len(keras_connections(n, k, s, padding, c_in, c_out, data_format)),)


def keras_forward(x, kernel, bias, k, s, padding, implementation, data_format, c_out):
    """Keras 2 LocallyConnectedND.call on x ((N, *n, C) or (N, C, *n)), float64 numpy."""
    d = len(k)
    last = data_format == "channels_last"
    n = x.shape[1:-1] if last else x.shape[2:]
    c_in = x.shape[-1] if last else x.shape[1]
    out = keras_out_size(n, k, s, padding)
    batch = x.shape[0]
    if implementation == 1:
        rows = []
        for index, p in enumerate(itertools.product(*(range(o) for o in out))):
            window = tuple(slice(pi * si, pi * si + ki) for pi, si, ki in zip(p, s, k, strict=True))
            patch = (
                x[(slice(None), *window, slice(None))]
                if last
                else x[(slice(None), slice(None), *window)]
            )
            rows.append(patch.reshape(batch, -1) @ kernel[index])
        y = np.stack(rows, 0).reshape(*out, batch, c_out)
        y = np.moveaxis(y, d, 0)  # (N, *out, O)
        if not last:
            y = np.moveaxis(y, -1, 1)
    elif implementation == 2:
        mask = np.zeros((*n, *out))
        for p in itertools.product(*(range(o) for o in out)):
            for q in itertools.product(*connected_inputs(n, k, s, p, padding)):
                mask[(*q, *p)] = 1
        mask = mask.reshape(*n, 1, *out, 1) if last else mask.reshape(1, *n, 1, *out)
        dense = (kernel * mask).reshape(int(np.prod(kernel.shape[: d + 1])), -1)
        y = (x.reshape(batch, -1) @ dense).reshape(
            batch, *((*out, c_out) if last else (c_out, *out))
        )
    else:
        pairs = keras_connections(n, k, s, padding, c_in, c_out, data_format)
        sparse = np.zeros((int(np.prod(out)) * c_out, int(np.prod(n)) * c_in))
        for (o_idx, i_idx), value in zip(pairs, kernel, strict=True):
            sparse[o_idx, i_idx] = value
        y = (sparse @ x.reshape(batch, -1).T).T.reshape(
            batch, *((*out, c_out) if last else (c_out, *out))
        )
    if bias is not None:
        y = y + (bias[None] if last else bias.reshape(1, bias.shape[-1], *bias.shape[:-1]))
    return y


# ----------------------------------------------------------------------------------------------

CASES = [
    # (input size, kernel, stride, keras padding, C, O)
    ((7,), (3,), (1,), "valid", 2, 3),
    ((9,), (2,), (2,), "valid", 3, 2),
    ((5, 6), (3, 2), (1, 2), "valid", 2, 3),
    ((6, 5), (3, 3), (2, 1), "same", 2, 2),
    ((7,), (3,), (3,), "same", 1, 2),
]


def our_layer(n, k, s, padding, c_in, c_out, bias=True):
    cls = LocallyConnected1d if len(n) == 1 else LocallyConnected2d
    pad = 0 if padding == "valid" else tuple(ki // 2 for ki in k)
    return cls(c_in, c_out, k, input_size=n, stride=s, padding=pad, bias=bias, dtype=torch.float64)


# Keras allows implementation=1 with padding="valid" only.
KERAS_VARIANTS = [
    (case, implementation)
    for case in CASES
    for implementation in (1, 2, 3)
    if not (implementation == 1 and case[3] == "same")
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(("case", "implementation"), KERAS_VARIANTS)
def test_load_matches_keras_forward(case, data_format, implementation):
    n, k, s, padding, c_in, c_out = case
    rng = np.random.default_rng(0)
    shape = keras_kernel_shape(n, k, s, padding, c_in, c_out, implementation, data_format)
    kernel = rng.standard_normal(shape)
    bias = rng.standard_normal((*keras_out_size(n, k, s, padding), c_out))
    x_first = rng.standard_normal((2, c_in, *n))
    x = x_first if data_format == "channels_first" else np.moveaxis(x_first, 1, -1)
    expected = keras_forward(x, kernel, bias, k, s, padding, implementation, data_format, c_out)
    if data_format == "channels_last":
        expected = np.moveaxis(expected, -1, 1)

    layer = our_layer(n, k, s, padding, c_in, c_out)
    kio.load_keras_weights(
        layer, kernel, bias, implementation=implementation, data_format=data_format
    )
    got = layer(torch.from_numpy(x_first)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)

    # and back: the exported arrays are Keras' (up to the ignored masked-out entries of mode 2)
    kernel_back, bias_back = kio.export_keras_weights(
        layer, implementation=implementation, data_format=data_format
    )
    assert kernel_back.shape == kernel.shape
    again = keras_forward(
        x, kernel_back, bias_back, k, s, padding, implementation, data_format, c_out
    )
    if data_format == "channels_last":
        again = np.moveaxis(again, -1, 1)
    np.testing.assert_allclose(again, expected, rtol=1e-12, atol=1e-12)
    if implementation != 2:
        np.testing.assert_array_equal(kernel_back, kernel)
    np.testing.assert_array_equal(bias_back, bias)


def test_tensors_float32_and_no_bias():
    layer = LocallyConnected2d(2, 3, 2, input_size=(4, 4))
    kernel = torch.randn(9, 8, 3)
    kio.load_keras_weights(layer, kernel)  # no Keras bias: our bias becomes zero
    assert torch.count_nonzero(layer.bias) == 0
    x = torch.randn(1, 4, 4, 2)  # channels_last Keras input
    expected = keras_forward(
        x.double().numpy(),
        kernel.double().numpy(),
        None,
        (2, 2),
        (1, 1),
        "valid",
        1,
        "channels_last",
        3,
    )
    got = layer(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    no_bias = LocallyConnected2d(2, 3, 2, input_size=(4, 4), bias=False)
    kio.load_keras_weights(no_bias, kernel.numpy())
    assert kio.export_keras_weights(no_bias)[1] is None
    with pytest.raises(ValueError, match="bias=False"):
        kio.load_keras_weights(no_bias, kernel, torch.zeros(3, 3, 3))


def test_wrong_shape_names_expected_keras_shape():
    layer = LocallyConnected2d(2, 3, 2, input_size=(4, 4))
    with pytest.raises(ValueError, match=r"\(9, 8, 3\), got \(9, 3, 8\)"):
        kio.load_keras_weights(layer, np.zeros((9, 3, 8)))
    with pytest.raises(ValueError, match=r"\(4, 4, 2, 3, 3, 3\)"):
        kio.load_keras_weights(layer, np.zeros((9, 8, 3)), implementation=2)
    with pytest.raises(ValueError, match=r"bias .* \(3, 3, 3\), got \(3,\)"):
        kio.load_keras_weights(layer, np.zeros((9, 8, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="implementation"):
        kio.load_keras_weights(layer, np.zeros((9, 8, 3)), implementation=4)
    with pytest.raises(ValueError, match="data_format"):
        kio.load_keras_weights(layer, np.zeros((9, 8, 3)), data_format="NHWC")
    with pytest.raises(TypeError, match="kernel"):
        kio.load_keras_weights(layer, np.array(["a"]))


def test_unsupported_layers_say_why():
    with pytest.raises(TypeError, match="LocallyConnected1D and LocallyConnected2D only"):
        kio.load_keras_weights(LocallyConnected3d(1, 1, 1, input_size=2), np.zeros(1))
    with pytest.raises(ValueError, match="groups"):
        kio.export_keras_weights(LocallyConnected2d(2, 2, 1, input_size=3, groups=2))
    with pytest.raises(ValueError, match="dilation"):
        kio.export_keras_weights(LocallyConnected1d(1, 1, 2, input_size=5, dilation=2))
    with pytest.raises(ValueError, match="implementation 2 or 3"):
        kio.export_keras_weights(
            LocallyConnected1d(1, 1, 3, input_size=5, padding=1), implementation=1
        )
    with pytest.raises(ValueError, match="matches neither"):
        kio.export_keras_weights(
            LocallyConnected1d(1, 1, 3, input_size=5, padding=2), implementation=2
        )
    with pytest.raises(ValueError, match="shared_bias"):
        kio.load_keras_weights(
            LocallyConnected1d(1, 1, 3, input_size=5, shared_bias=True),
            np.zeros((3, 3, 1)),
            np.zeros((3, 1)),
        )
    lazy = LazyLocallyConnected2d(3, 2)
    with pytest.raises(ValueError, match="forward"):
        kio.load_keras_weights(lazy, np.zeros(1))
    lazy(torch.randn(1, 2, 4, 4))
    kernel = np.random.default_rng(1).standard_normal((9, 8, 3))
    kio.load_keras_weights(lazy, kernel)
    np.testing.assert_array_equal(kio.export_keras_weights(lazy)[0], kernel.astype(np.float32))


def test_read_keras_h5(tmp_path):
    h5py = pytest.importorskip("h5py")
    kernel, bias = np.arange(24.0).reshape(3, 4, 2), np.ones((3, 2))
    path = tmp_path / "weights.h5"
    # the layout of Keras 2's save_weights: layer groups with weight_names attributes
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"input_1", b"locally_connected1d"]
        f.create_group("input_1").attrs["weight_names"] = []
        g = f.create_group("locally_connected1d")
        g.attrs["weight_names"] = [b"locally_connected1d/kernel:0", b"locally_connected1d/bias:0"]
        g["locally_connected1d/kernel:0"] = kernel
        g["locally_connected1d/bias:0"] = bias
    k, b = kio.read_keras_h5(path)
    np.testing.assert_array_equal(k, kernel)
    np.testing.assert_array_equal(b, bias)
    layer = LocallyConnected1d(2, 2, 2, input_size=4, dtype=torch.float64)
    kio.load_keras_weights(layer, *kio.read_keras_h5(path, "locally_connected1d"))
    np.testing.assert_array_equal(kio.export_keras_weights(layer)[0], kernel)
    with pytest.raises(ValueError, match="no layer 'dense'"):
        kio.read_keras_h5(path, "dense")


def test_against_real_keras():
    """Only where TensorFlow with Keras 2 (tf-keras) is installed."""
    pytest.importorskip("tensorflow")
    tf_keras = pytest.importorskip("tf_keras")
    for implementation in (1, 2, 3):
        keras_layer = tf_keras.layers.LocallyConnected2D(
            3, (2, 3), strides=(1, 2), implementation=implementation
        )
        x = np.random.default_rng(2).standard_normal((2, 5, 7, 2)).astype(np.float32)
        expected = keras_layer(x).numpy()
        layer = LocallyConnected2d(2, 3, (2, 3), input_size=(5, 7), stride=(1, 2))
        kio.load_keras_weights(layer, *keras_layer.get_weights(), implementation=implementation)
        got = layer(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
