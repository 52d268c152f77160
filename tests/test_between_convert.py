"""Conversions along the lattice for the kinds between convolution and locally connected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import locality
from tests.between_reference import region_of

F64 = torch.float64
CONV = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}


def _randomise(layer):
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    return layer


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_to_region_to_mapped_to_local_to_dense_are_exact(d):
    size = (7, 6, 5)[:d]
    x = torch.randn(2, 4, *size, dtype=F64)
    conv = CONV[d](4, 6, 3, padding=1, stride=2, groups=2, dtype=F64)
    region = locality.to_region(conv, 2, input_size=size)
    torch.testing.assert_close(region(x), conv(x), rtol=0, atol=1e-12)
    _randomise(region)
    mapped = locality.to_mapped(region)
    assert isinstance(mapped, (locality.MappedConv1d, locality.MappedConv2d, locality.MappedConv3d))
    torch.testing.assert_close(mapped(x), region(x), rtol=0, atol=1e-12)
    for layer in (region, mapped):
        local = locality.to_locally_connected(layer, input_size=size)
        torch.testing.assert_close(local(x), layer(x), rtol=0, atol=1e-12)
        dense = locality.to_dense(layer, (4, *size))
        torch.testing.assert_close(dense(x.flatten(1)), layer(x).flatten(1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2])
def test_tiled_and_lowrank_convert_exactly(d):
    size = (8,) * d
    x = torch.randn(2, 3, *size, dtype=F64)
    tiled = _randomise(
        {1: locality.TiledConv1d, 2: locality.TiledConv2d}[d](3, 4, 3, tile_size=3, dtype=F64)
    )
    mapped = locality.to_mapped(tiled, input_size=size)
    assert mapped.num_kernels == 3**d
    torch.testing.assert_close(mapped(x), tiled(x), rtol=0, atol=1e-12)
    lowrank = _randomise(
        {1: locality.LowRankLocallyConnected1d, 2: locality.LowRankLocallyConnected2d}[d](
            3, 4, 3, input_size=size, rank=2, dtype=F64
        )
    )
    local = locality.to_locally_connected(lowrank, input_size=size)
    torch.testing.assert_close(local(x), lowrank(x), rtol=0, atol=1e-12)
    dense = locality.to_dense(lowrank, (3, *size))
    torch.testing.assert_close(dense(x.flatten(1)), lowrank(x).flatten(1), rtol=0, atol=1e-12)


def test_projection_to_a_coarser_map_is_the_mean_of_the_kernels_sharing_an_entry():
    local = _randomise(locality.LocallyConnected2d(2, 3, 2, input_size=(6, 5), dtype=F64))
    kernel_map = torch.randint(0, 4, (5, 4))
    kernel_map[0, 0], kernel_map[0, 1], kernel_map[0, 2], kernel_map[0, 3] = 0, 1, 2, 3
    mapped = locality.to_mapped(local, kernel_map)
    weight, bias = local.weight.detach().numpy(), local.bias.detach().numpy()
    for j in range(4):
        where = kernel_map.numpy() == j
        np.testing.assert_allclose(
            mapped.weight[j].detach().numpy(), weight[where].mean(0), atol=1e-12
        )
        np.testing.assert_allclose(mapped.bias[j].detach().numpy(), bias[where].mean(0), atol=1e-12)
    region = locality.to_region(local, (2, 3))
    labels = region_of((5, 4), (2, 3))
    for r in np.ndindex(2, 3):
        where = (labels == r).all(-1)
        np.testing.assert_allclose(
            region.weight[r].detach().numpy(), weight[where].mean(0), atol=1e-12
        )


def test_lowrank_by_svd_is_the_best_fit_non_increasing_and_exact_at_full_rank():
    local = _randomise(locality.LocallyConnected1d(2, 2, 3, input_size=12, dtype=F64))
    x = torch.randn(3, 2, 12, dtype=F64)
    matrix = local.weight.detach().numpy().reshape(10, -1)
    singular = np.linalg.svd(matrix, compute_uv=False)
    residuals = []
    for rank in range(1, 11):
        fit = locality.to_lowrank(local, rank)
        residual = np.linalg.norm(fit.kernels().detach().numpy().reshape(10, -1) - matrix)
        np.testing.assert_allclose(residual, np.sqrt((singular[rank:] ** 2).sum()), atol=1e-10)
        residuals.append(residual)
    assert all(b <= a + 1e-12 for a, b in zip(residuals, residuals[1:], strict=False))
    assert residuals[-1] < 1e-10
    torch.testing.assert_close(fit(x), local(x), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"to_lowrank: rank must be at most .* = 10, got 11"):
        locality.to_lowrank(local, 11)
    per_position = locality.to_mapped(fit)  # a soft map reads as its per-position kernels
    assert per_position.num_kernels == 10
    torch.testing.assert_close(per_position(x), fit(x), rtol=0, atol=1e-12)
