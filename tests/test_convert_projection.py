"""Least-squares projections towards more sharing, and their relative error."""

import pytest
import torch
from torch import nn

import locality
from locality.convert import Projection, project, to_locally_connected, to_tiled

F64 = torch.float64


def test_projection_of_an_untied_conv_is_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, dtype=F64)
    local = to_locally_connected(conv, 6, shared_bias=False)
    result = project(local, "conv")
    assert isinstance(result, Projection)
    assert result.relative_error < 1e-14
    x = torch.randn(2, 3, 6, 6, dtype=F64)
    torch.testing.assert_close(result.layer(x), conv(x))


def test_projection_is_the_mean_over_positions():
    torch.manual_seed(1)
    local = locality.LocallyConnected1d(2, 3, 2, input_size=7, dtype=F64)  # 6 positions
    result = project(local, "tiled", tile_size=2)
    w = local.weight.detach()
    torch.testing.assert_close(result.layer.weight[0], w[0::2].mean(0))
    torch.testing.assert_close(result.layer.weight[1], w[1::2].mean(0))
    torch.testing.assert_close(result.layer.bias[1], local.bias.detach()[1::2].mean(0))
    mean = result.layer.weight.detach().repeat(3, 1, 1, 1)
    bias = result.layer.bias.detach().repeat(3, 1)
    residual = torch.cat([(w - mean).flatten(), (local.bias.detach() - bias).flatten()])
    theta = torch.cat([w.flatten(), local.bias.detach().flatten()])
    assert result.relative_error == pytest.approx((residual.norm() / theta.norm()).item())


def test_projection_minimises_the_residual():
    torch.manual_seed(2)
    local = locality.LocallyConnected2d(2, 2, 3, input_size=(6, 5), bias=False, dtype=F64)
    result = project(local, "conv")
    w = local.weight.detach()
    best = result.layer.weight.detach()
    for _ in range(5):
        other = best + 1e-3 * torch.randn_like(best)
        assert (w - other).norm() > (w - best).norm()
    assert 0 < result.relative_error < 1


def test_tiled_to_coarser_tiles_and_shared_bias():
    torch.manual_seed(3)
    tiled = locality.TiledConv2d(2, 3, 3, tile_size=(2, 3), shared_bias=True, dtype=F64)
    result = project(tiled, "tiled", tile_size=(2, 1))
    assert result.layer.tile_size == (2, 1) and result.layer.shared_bias
    # the 3 column kernels are averaged; projecting an exact refinement loses nothing
    torch.testing.assert_close(result.layer.weight[:, 0], tiled.weight.detach().mean(1))
    again = project(to_tiled(result.layer, (2, 3)), "tiled", tile_size=(2, 1))
    assert again.relative_error < 1e-14


def test_errors():
    local = locality.LocallyConnected1d(2, 3, 2, input_size=5)
    with pytest.raises(ValueError, match="tile_size"):
        project(local, "tiled")
    with pytest.raises(ValueError, match="to must be"):
        project(local, "dense")
    with pytest.raises(ValueError, match="larger than the layer's output size"):
        project(local, "tiled", tile_size=8)
    with pytest.raises(TypeError, match="layer must be"):
        project(nn.Linear(2, 2))
