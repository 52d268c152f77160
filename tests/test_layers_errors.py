"""Bad input gets a ValueError/TypeError naming the argument, what was expected and what came."""

from __future__ import annotations

import re

import pytest
import torch

import locality
from locality import functional as LF


def raises(exc, *fragments):
    """pytest.raises matching every fragment (escaped) somewhere in the message."""
    pattern = "".join(f"(?=[\\s\\S]*{re.escape(f)})" for f in fragments)
    return pytest.raises(exc, match=pattern)


def test_wrong_number_of_channels_names_both_numbers():
    layer = locality.LocallyConnected2d(3, 8, 3, input_size=10)
    with raises(ValueError, "LocallyConnected2d", "3 channels", "got 5 channels"):
        layer(torch.randn(2, 5, 10, 10))
    tiled = locality.TiledConv1d(4, 2, 3, tile_size=2)
    with raises(ValueError, "4 channels", "got 1 channels"):
        tiled(torch.randn(2, 1, 10))


def test_wrong_spatial_size_for_locally_connected_names_both_sizes():
    layer = locality.LocallyConnected2d(3, 8, 3, input_size=(10, 12))
    with raises(ValueError, "(10, 12)", "(12, 10)", "TiledConv2d"):
        layer(torch.randn(2, 3, 12, 10))


def test_functional_weight_for_another_output_size():
    weight = torch.randn(4, 4, 2, 3, 3, 3)
    with raises(ValueError, "output size (4, 4)", "(6, 6)"):
        LF.locally_connected2d(torch.randn(1, 3, 8, 8), weight)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 10, 10, 1), (10,)])
def test_wrong_rank(shape):
    layer = locality.TiledConv2d(3, 4, 3, tile_size=2)
    with raises(ValueError, "TiledConv2d", "4-D input", f"{len(shape)}-D input"):
        layer(torch.randn(shape))


def test_kernel_larger_than_padded_input():
    with raises(ValueError, "kernel extent 7", "padded input 6"):
        locality.LocallyConnected1d(1, 1, 4, input_size=4, padding=1, dilation=2)
    with raises(ValueError, "kernel extent 5", "padded input 4"):
        locality.TiledConv2d(1, 1, 5, tile_size=2)(torch.randn(1, 1, 4, 9))


@pytest.mark.parametrize("tile", [0, -1, (2, 0)])
def test_tile_size_below_one(tile):
    with raises(ValueError, "tile_size", "positive", str(tile)):
        locality.TiledConv2d(1, 1, 3, tile_size=tile)


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (dict(kernel_size=0), ("kernel_size", "positive")),
        (dict(stride=0), ("stride", "positive")),
        (dict(dilation=-1), ("dilation", "positive")),
        (dict(padding=-1), ("padding", "non-negative")),
        (dict(input_size=0), ("input_size", "positive")),
        (dict(in_channels=0), ("in_channels", "positive")),
        (dict(out_channels=-2), ("out_channels", "positive")),
        (dict(groups=0), ("groups", "positive")),
        (dict(groups=2), ("in_channels (3)", "divisible by groups (2)")),
        (dict(kernel_size=(3, 3, 3)), ("kernel_size", "tuple of 2 ints", "got 3 values")),
        (dict(padding="half"), ("padding", "'valid', 'same'", "'half'")),
        (dict(padding_mode="mirror"), ("padding_mode", "'reflect'", "'mirror'")),
        (dict(stride=2, padding="same"), ("padding='same'", "stride 1", "(2, 2)")),
    ],
)
def test_bad_constructor_arguments(kwargs, fragments):
    args = dict(in_channels=3, out_channels=4, kernel_size=3, input_size=8) | kwargs
    with raises(ValueError, *fragments):
        locality.LocallyConnected2d(**args)


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (dict(kernel_size=2.5), ("kernel_size", "float")),
        (dict(stride="2"), ("stride", "str")),
        (dict(in_channels=3.0), ("in_channels", "float")),
        (dict(tile_size=True), ("tile_size", "bool")),
    ],
)
def test_wrong_argument_types(kwargs, fragments):
    args = dict(in_channels=3, out_channels=4, kernel_size=3, tile_size=2) | kwargs
    with raises(TypeError, *fragments):
        locality.TiledConv2d(**args)


def test_reflect_padding_larger_than_input():
    layer = locality.TiledConv1d(1, 1, 3, tile_size=1, padding=4, padding_mode="reflect")
    with raises(ValueError, "reflect", "padding (4, 4)", "size 3"):
        layer(torch.randn(1, 1, 3))


def test_functional_type_and_shape_errors():
    x = torch.randn(1, 2, 6)
    w = torch.randn(2, 3, 2, 3)
    with raises(TypeError, "input dtype torch.float64", "weight dtype torch.float32"):
        LF.tiled_conv1d(x.double(), w)
    with raises(TypeError, "floating point", "torch.int64"):
        LF.tiled_conv1d(torch.ones(1, 2, 6, dtype=torch.long), w.long())
    with raises(TypeError, "input must be a torch.Tensor", "list"):
        LF.tiled_conv1d([[1.0]], w)
    with raises(ValueError, "bias must have shape (3,)", "(2, 3)", "(4,)"):
        LF.tiled_conv1d(x, w, torch.randn(4))
    with raises(ValueError, "weight must have shape", "(3, 3)"):
        LF.tiled_conv(x, torch.randn(3, 3))
    with raises(ValueError, "groups must be a positive int", "0"):
        LF.tiled_conv1d(x, w, groups=0)


def test_errors_come_before_any_computation():
    """A wrong input is reported as such, not as a RuntimeError from inside torch."""
    layer = locality.LocallyConnected3d(2, 2, 2, input_size=3)
    for bad in (torch.randn(1, 3, 3, 3, 3), torch.randn(1, 2, 3, 3, 4), torch.randn(2, 3, 3)):
        with pytest.raises(ValueError):
            layer(bad)
