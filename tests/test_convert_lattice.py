"""Exact conversions between the four connectivity kinds: equal outputs in float64."""

import pytest
import torch
from torch import nn

import locality
from locality.convert import (
    conv1x1_to_linear,
    linear_to_conv,
    linear_to_conv1x1,
    project,
    to_dense,
    to_locally_connected,
    to_tiled,
)

F64 = torch.float64
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TILED = {1: locality.TiledConv1d, 2: locality.TiledConv2d, 3: locality.TiledConv3d}
LOCAL = {
    1: locality.LocallyConnected1d,
    2: locality.LocallyConnected2d,
    3: locality.LocallyConnected3d,
}
SIZE = {1: (9,), 2: (6, 7), 3: (4, 5, 4)}
# few tiles in 3-D: float64 conv3d on CPU is slow, and the tiled op runs one per tile offset
TILE = {1: (3,), 2: (2, 3), 3: (2, 1, 1)}
COARSER_TILE = {1: (6,), 2: (4, 3), 3: (4, 1, 1)}

# (kernel, stride, padding, dilation, groups, padding_mode), per dimensionality
CASES = [
    (3, 1, 0, 1, 1, "zeros"),
    (3, 2, 1, 1, 2, "zeros"),
    (2, 1, 2, 2, 1, "zeros"),
    (3, 1, "same", 1, 1, "zeros"),
    (3, 2, 1, 1, 1, "reflect"),
    (3, 1, 2, 1, 2, "replicate"),
    (2, 1, 1, 2, 1, "circular"),
]


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def conv(d, case):
    k, s, p, r, g, mode = case
    return CONV[d](2, 4, k, stride=s, padding=p, dilation=r, groups=g, padding_mode=mode, dtype=F64)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("case", CASES)
def test_conv_to_every_kind(d, case):
    torch.manual_seed(0)
    layer = conv(d, case)
    x = torch.randn(2, 2, *SIZE[d], dtype=F64)
    expected = layer(x)
    close(to_dense(layer, (2, *SIZE[d]))(x.flatten(1)), expected.flatten(1))
    close(to_locally_connected(layer, SIZE[d])(x), expected)
    tiled = to_tiled(layer, TILE[d])
    close(tiled(x), expected)
    close(to_locally_connected(tiled, SIZE[d])(x), expected)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("case", CASES[:5])
def test_tiled_and_local_to_dense(d, case):
    torch.manual_seed(1)
    k, s, p, r, g, mode = case
    kw = dict(stride=s, padding=p, dilation=r, groups=g, padding_mode=mode, dtype=F64)
    x = torch.randn(2, 2, *SIZE[d], dtype=F64)
    tiled = TILED[d](2, 4, k, tile_size=TILE[d], **kw)
    local = LOCAL[d](2, 4, k, input_size=SIZE[d], **kw)
    for layer in (tiled, local):
        close(to_dense(layer, (2, *SIZE[d]))(x.flatten(1)), layer(x).flatten(1))
    close(to_locally_connected(tiled, SIZE[d])(x), tiled(x))
    close(to_tiled(tiled, COARSER_TILE[d])(x), tiled(x))


def test_bias_sharing_is_kept_or_untied():
    torch.manual_seed(2)
    layer = nn.Conv2d(2, 3, 3, dtype=F64)
    x = torch.randn(1, 2, 6, 6, dtype=F64)
    shared = to_locally_connected(layer, 6)
    untied = to_locally_connected(layer, 6, shared_bias=False)
    assert shared.shared_bias and shared.bias.shape == (3,)
    assert untied.bias.shape == (4, 4, 3)
    close(untied(x), layer(x))
    no_bias = nn.Conv2d(2, 3, 3, bias=False, dtype=F64)
    assert to_tiled(no_bias, 2).bias is None
    close(to_dense(no_bias, (2, 6, 6))(x.flatten(1)), no_bias(x).flatten(1))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_linear_to_conv_kernel_covers_input(d):
    torch.manual_seed(3)
    shape = (3, *SIZE[d])
    linear = nn.Linear(torch.Size(shape).numel(), 5, dtype=F64)
    x = torch.randn(2, *shape, dtype=F64)
    conv_layer = linear_to_conv(linear, shape)
    assert conv_layer.kernel_size == SIZE[d]
    close(conv_layer(x).flatten(1), linear(x.flatten(1)))
    channels_last = linear_to_conv(linear, shape, channels_last=True)
    close(channels_last(x).flatten(1), linear(x.movedim(1, -1).flatten(1)))


def test_note_004_parameter_count():
    # 4x4x3 feature map, FC 48 -> 10: the same 480 weights as a 4x4x3x10 convolution.
    linear = nn.Linear(48, 10)
    conv_layer = linear_to_conv(linear, (3, 4, 4))
    assert linear.weight.numel() == 48 * 10 == conv_layer.weight.numel() == 4 * 4 * 3 * 10
    assert tuple(conv_layer.weight.shape) == (10, 3, 4, 4)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv1x1_round_trip(d):
    torch.manual_seed(4)
    linear = nn.Linear(6, 4, dtype=F64)
    x = torch.randn(2, 6, *SIZE[d], dtype=F64)
    conv_layer = linear_to_conv1x1(linear, d)
    close(conv_layer(x), linear(x.movedim(1, -1)).movedim(-1, 1))
    back = conv1x1_to_linear(conv_layer)
    close(back.weight, linear.weight)
    grouped = CONV[d](6, 4, 1, groups=2, dtype=F64)
    close(conv1x1_to_linear(grouped)(x.movedim(1, -1)).movedim(-1, 1), grouped(x))


def test_linear_to_dense_is_a_copy():
    linear = nn.Linear(12, 3)
    dense = to_dense(linear, (3, 2, 2))
    assert dense is not linear
    torch.testing.assert_close(dense.weight, linear.weight)


def test_device_and_dtype_are_preserved():
    layer = nn.Conv2d(2, 3, 3, dtype=torch.float16)
    for converted in (
        to_dense(layer, (2, 5, 5)),
        to_locally_connected(layer, 5),
        to_tiled(layer, 2),
        project(to_tiled(layer, 2)).layer,
    ):
        assert {p.dtype for p in converted.parameters()} == {torch.float16}
        assert {p.device for p in converted.parameters()} == {layer.weight.device}


def test_conversions_do_not_alias_the_source():
    layer = nn.Conv2d(2, 3, 3)
    tiled = to_tiled(layer, 2)
    with torch.no_grad():
        tiled.weight.zero_()
    assert layer.weight.abs().sum() > 0


def test_errors_name_the_argument():
    layer = nn.Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match="input_shape"):
        to_dense(layer, (3, 5, 5))
    with pytest.raises(TypeError, match="layer must be"):
        to_locally_connected(nn.Linear(2, 3), 5)
    with pytest.raises(ValueError, match="multiple of the layer's tile"):
        to_tiled(to_tiled(layer, 2), 3)
    with pytest.raises(ValueError, match="in_features=48"):
        linear_to_conv(nn.Linear(48, 10), (3, 4, 5))
    with pytest.raises(ValueError, match="stride 1 and no padding"):
        conv1x1_to_linear(nn.Conv2d(2, 3, 1, stride=2))
    with pytest.raises(ValueError, match="kernel_size"):
        conv1x1_to_linear(nn.Conv2d(2, 3, 3))
    local = locality.LocallyConnected2d(2, 3, 3, input_size=6)
    with pytest.raises(ValueError, match="spatial size"):
        to_dense(local, (2, 7, 7))
    reflect = nn.Conv1d(1, 1, 5, padding=4, padding_mode="reflect")
    with pytest.raises(ValueError, match="reflect"):
        to_dense(reflect, (1, 3))
