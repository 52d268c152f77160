"""Regression tests for issue 13, items 2, 6, 15, 16, 17 and 18: one test per item."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import locality
from locality import analysis

F64 = torch.float64


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("analyse", ["summary", "receptive_field"])
def test_item_2_analyses_leave_the_model_unchanged(analyse):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 8),
        nn.BatchNorm1d(8),  # fails on one example in training mode
        nn.Dropout(0.5),
    )
    with torch.no_grad():  # trained statistics, far from what a zero input gives
        model(torch.randn(16, 2, 8, 8) * 3 + 1)
    model[1].eval()  # a mix of modes, which must come back as it was
    before = _state(model)
    modes = [m.training for m in model.modules()]
    getattr(analysis, analyse)(model, (2, 8, 8))
    after = model.state_dict()
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert torch.equal(value, after[name]), name
    assert [m.training for m in model.modules()] == modes


def test_item_2_lazy_layers_stay_lazy():
    model = nn.Sequential(locality.LazyTiledConv2d(4, 3, tile_size=2), nn.ReLU())
    result = analysis.summary(model, (2, 6, 6))
    assert result.rows[0].kind == "tiled" and result.total_params == 4 * (4 * 2 * 9 + 4)
    assert isinstance(model[0], locality.LazyTiledConv2d)
    assert model[0].has_uninitialized_params() and model[0].in_channels == 0
    assert analysis.receptive_field(model, (2, 6, 6)).size == (3, 3)
    assert model[0].has_uninitialized_params()


@pytest.mark.parametrize(
    "layer",
    [
        locality.LocallyConnected2d(16, 16, 9, input_size=25),
        locality.TiledConv2d(16, 16, 9, tile_size=3),
        locality.LocallyConnected1d(16, 16, 5, input_size=40, groups=2),
    ],
    ids=["local", "tiled", "grouped"],
)
def test_item_6_fan_in_makes_kaiming_init_right(layer):
    d = len(layer.kernel_size)
    # inputs one interior output unit reads, counted from the layer itself by autograd
    size = getattr(layer, "input_size", None) or (12,) * d
    x = torch.randn(1, layer.in_channels, *size, requires_grad=True)
    out = layer(x)
    out[(0, 0, *(n // 2 for n in out.shape[2:]))].backward()
    assert layer.fan_in == int((x.grad != 0).sum())
    assert layer.connectivity.fan_in == layer.fan_in
    torch.manual_seed(0)
    nn.init.kaiming_normal_(layer.weight, a=0, mode="fan_in")  # what nn.init gets wrong
    nn.init.normal_(layer.weight, std=math.sqrt(2 / layer.fan_in))  # the documented recipe
    assert float(layer.weight.std()) == pytest.approx(math.sqrt(2 / layer.fan_in), rel=0.05)
    assert "fan_in" in (type(layer).__doc__ or "")


def test_item_15_lazy_layer_materialises_from_a_state_dict():
    trained = locality.LocallyConnected2d(3, 4, 3, input_size=(6, 7), padding=1)
    lazy = locality.LazyLocallyConnected2d(4, 3, padding=1)
    lazy.load_state_dict(trained.state_dict())
    assert lazy.in_channels == 3 and lazy.input_size == (6, 7)
    dense = locality.to_dense(lazy, (3, 6, 7))
    x = torch.randn(2, 3, 6, 7)
    torch.testing.assert_close(dense(x.flatten(1)), trained(x).flatten(1))
    tiled = locality.LazyTiledConv1d(4, 3, tile_size=2)
    tiled.load_state_dict(locality.TiledConv1d(6, 4, 3, tile_size=2).state_dict())
    assert tiled.in_channels == 6 and tiled.connectivity.bank_shape == (2,)


def test_item_15_a_refused_first_input_leaves_the_layer_lazy():
    lazy = locality.LazyLocallyConnected2d(4, 3, padding=2, padding_mode="reflect")
    with pytest.raises(TypeError, match="LazyLocallyConnected2d: input must be a floating"):
        lazy(torch.ones(1, 3, 6, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match="padding_mode='reflect' needs padding smaller"):
        lazy(torch.ones(1, 3, 2, 6))
    assert lazy.in_channels == 0 and lazy.input_size is None
    assert lazy.has_uninitialized_params()
    assert lazy(torch.randn(1, 5, 6, 6)).shape == (1, 4, 8, 8)
    assert lazy.in_channels == 5 and lazy.input_size == (6, 6)


def test_item_16_impossible_reflect_padding_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"^LocallyConnected2d: padding_mode='reflect' needs"):
        locality.LocallyConnected2d(1, 1, 3, input_size=(2, 8), padding=2, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"^LocallyConnected1d: padding_mode='circular' needs"):
        locality.LocallyConnected1d(1, 1, 3, input_size=2, padding=3, padding_mode="circular")
    # the largest possible amounts still build, and run
    layer = locality.LocallyConnected2d(
        1, 1, 3, input_size=(3, 8), padding=2, padding_mode="reflect"
    )
    assert layer(torch.randn(1, 1, 3, 8)).shape == (1, 1, 5, 10)


def test_item_17_numpy_integers_are_taken_as_torch_nn_conv2d_takes_them():
    i = np.int64
    conv = nn.Conv2d(i(2), i(4), i(3), stride=i(2), padding=i(1))
    layers = [
        locality.LocallyConnected2d(i(2), i(4), i(3), input_size=(i(7), 7), stride=i(2), padding=1),
        locality.TiledConv2d(i(2), i(4), (i(3), 3), tile_size=i(2), stride=2, padding=i(1)),
    ]
    for layer in layers:
        assert type(layer.in_channels) is int and all(type(k) is int for k in layer.kernel_size)
        assert layer(torch.randn(1, 2, 7, 7)).shape == conv(torch.randn(1, 2, 7, 7)).shape
    assert analysis.conv_cost(i(2), i(4), i(3), (4, 4)).params == 4 * 2 * 9 + 4
    with pytest.raises(TypeError, match="kernel_size must contain ints"):
        locality.TiledConv2d(2, 4, (3.0, 3), tile_size=2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: locality.LocallyConnected2d(2, 3, 3, input_size=6, device="meta"),
        lambda: locality.TiledConv2d(2, 3, 3, tile_size=2, padding=1, device="meta"),
        lambda: nn.Conv2d(2, 3, 3, device="meta"),
    ],
    ids=["local", "tiled", "conv"],
)
def test_item_18_to_dense_and_project_on_meta(make):
    layer = make()
    dense = locality.to_dense(layer, (2, 6, 6))
    assert dense.weight.is_meta and dense.bias is not None and dense.bias.is_meta
    out = locality.Connectivity.of(layer).output_size((6, 6))
    assert tuple(dense.weight.shape) == (3 * math.prod(out), 2 * 36)
    projection = locality.project(layer, to="tiled", tile_size=2)
    assert projection.layer.weight.is_meta
    assert tuple(projection.layer.weight.shape) == (2, 2, 3, 2, 3, 3)
    assert math.isnan(projection.relative_error)
