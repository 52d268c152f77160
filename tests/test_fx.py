"""torch.fx traces every public layer, and fully_convolutional handles this library's backbones."""

from __future__ import annotations

import math

import pytest
import torch
from torch import fx, nn

import locality
from locality import fully_convolutional, sliding_window

F64 = torch.float64
EAGER = [
    lambda: locality.LocallyConnected1d(2, 3, 3, input_size=7, padding=1, dtype=F64),
    lambda: locality.LocallyConnected2d(2, 4, 3, input_size=(5, 6), stride=2, dtype=F64),
    lambda: locality.LocallyConnected3d(2, 2, 2, input_size=4, dtype=F64),
    lambda: locality.TiledConv1d(2, 3, 3, tile_size=2, padding="same", dtype=F64),
    lambda: locality.TiledConv2d(1, 8, 3, tile_size=2, dtype=F64),
    lambda: locality.TiledConv3d(2, 2, 2, tile_size=(1, 2, 3), groups=2, dtype=F64),
]
LAZY = [
    (lambda: locality.LazyLocallyConnected1d(3, 3, dtype=F64), (2, 7)),
    (lambda: locality.LazyLocallyConnected2d(3, 3, dtype=F64), (2, 5, 6)),
    (lambda: locality.LazyLocallyConnected3d(3, 2, dtype=F64), (2, 4, 4, 4)),
    (lambda: locality.LazyTiledConv1d(3, 3, 2, dtype=F64), (2, 7)),
    (lambda: locality.LazyTiledConv2d(3, 3, 2, dtype=F64), (2, 5, 6)),
    (lambda: locality.LazyTiledConv3d(3, 2, 2, dtype=F64), (2, 4, 4, 4)),
]


def _input(layer: nn.Module) -> torch.Tensor:
    size = getattr(layer, "input_size", None) or (7,) * len(layer.kernel_size)
    return torch.randn(2, layer.in_channels, *size, dtype=F64)


@pytest.mark.parametrize("make", EAGER)
def test_symbolic_trace_of_every_layer_computes_the_layer(make):
    layer = make()
    traced = fx.symbolic_trace(layer)
    x = _input(layer)
    torch.testing.assert_close(traced(x), layer(x), rtol=0, atol=0)
    # the traced layer still refuses bad input when it runs, naming the op
    with pytest.raises((ValueError, TypeError)):
        traced(x[0, 0])


@pytest.mark.parametrize(("make", "shape"), LAZY)
def test_lazy_layers_trace_once_materialised(make, shape):
    layer = make()
    x = torch.randn(1, *shape, dtype=F64)
    layer(x)  # the dry run that fixes the sizes, as for torch.nn.LazyConv2d
    torch.testing.assert_close(fx.symbolic_trace(layer)(x), layer(x))


def test_models_of_these_layers_trace():
    model = nn.Sequential(
        locality.TiledConv2d(1, 4, 3, tile_size=2, dtype=F64),
        nn.ReLU(),
        locality.LocallyConnected2d(4, 2, 3, input_size=6, dtype=F64),
        nn.Flatten(),
        nn.Linear(32, 3, dtype=F64),
    )
    x = torch.randn(2, 1, 8, 8, dtype=F64)
    torch.testing.assert_close(fx.symbolic_trace(model)(x), model(x))


def _tiled_classifier(tile: int) -> nn.Module:
    torch.manual_seed(tile)
    return nn.Sequential(
        locality.TiledConv2d(2, 4, 3, tile_size=tile, dtype=F64),  # 12 -> 10
        nn.ReLU(),
        nn.MaxPool2d(2),  # -> 5
        locality.TiledConv2d(4, 4, 2, tile_size=(2, 1), stride=1, dtype=F64),  # -> 4
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64, 3, dtype=F64),
    ).eval()


@pytest.mark.parametrize("tile", [1, 2, 3])
def test_tiled_backbone_equals_sliding_window_at_every_cell(tile):
    model = _tiled_classifier(tile)
    fcn = fully_convolutional(model, (2, 12, 12))
    # stride 2 from the pool; the first layer's tile repeats every `tile` input positions, the
    # second's every 2 * 2 rows (tile 2 after the pool) and every 2 columns
    expected = (math.lcm(2, tile, 4), math.lcm(2, tile))
    assert fcn.geometry.stride == expected
    x = torch.randn(2, 2, 12 + 2 * expected[0], 12 + 3 * expected[1], dtype=F64)
    scores = fcn(x)
    windows = sliding_window(model, x, 12, fcn.geometry.stride)
    assert scores.shape == windows.shape == (2, 3, 3, 4)
    torch.testing.assert_close(scores, windows)


def test_locally_connected_backbone_is_refused_naming_the_node():
    model = nn.Sequential(
        locality.LocallyConnected2d(1, 2, 3, input_size=6),
        nn.Flatten(),
        nn.Linear(32, 3),
    )
    with pytest.raises(ValueError, match=r"node '_0' .*is locally connected: its input size"):
        fully_convolutional(model, (1, 6, 6))
