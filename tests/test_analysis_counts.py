"""Closed-form counts against real modules (parameters) and FlopCounterMode (FLOPs)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import locality
from locality.analysis import (
    conv_cost,
    dense_cost,
    depthwise_separable_cost,
    format_bytes,
    format_count,
    layer_cost,
    locally_connected_cost,
    lowrank_cost,
    region_cost,
    tiled_cost,
)
from locality.analysis.compare import compare
from locality.connectivity import Connectivity

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
LOCAL = {
    1: locality.LocallyConnected1d,
    2: locality.LocallyConnected2d,
    3: locality.LocallyConnected3d,
}
TILED = {1: locality.TiledConv1d, 2: locality.TiledConv2d, 3: locality.TiledConv3d}


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops(module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """Forward and backward FLOPs as FlopCounterMode counts them."""
    x = x.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as forward:
        y = module(x)
    with FlopCounterMode(display=False) as backward:
        y.sum().backward()
    return forward.get_total_flops(), backward.get_total_flops()


CASES = [
    # d, in, out, kernel, input size, stride, padding, dilation, groups, tile, bias, shared
    (1, 3, 4, 3, 9, 1, 0, 1, 1, 2, True, False),
    (1, 4, 6, 2, 8, 2, 1, 1, 2, 3, False, False),
    (2, 3, 5, 3, 7, 1, 1, 1, 1, 2, True, True),
    (2, 4, 4, (2, 3), (6, 8), (1, 2), 0, (2, 1), 4, (3, 2), True, False),
    (3, 2, 4, 2, 4, 1, 0, 1, 2, 2, True, False),
]


@pytest.mark.parametrize("case", CASES)
def test_closed_forms_match_real_modules_and_flop_counter(case):
    d, cin, cout, k, size, s, p, dl, g, t, bias, shared = case
    size_t = (size,) * d if isinstance(size, int) else size
    common = dict(stride=s, padding=p, dilation=dl, groups=g, bias=bias)
    local = LOCAL[d](cin, cout, k, size_t, shared_bias=shared, **common)
    tiled = TILED[d](cin, cout, k, t, shared_bias=shared, **common)
    conv = CONV[d](cin, cout, k, **common)
    x = torch.randn(2, cin, *size_t)
    out = conv(x).shape[2:]
    kernel = (k,) * d if isinstance(k, int) else k
    tile = (t,) * d if isinstance(t, int) else t
    expected = {
        "local": locally_connected_cost(cin, cout, kernel, out, g, bias, shared),
        "tiled": tiled_cost(cin, cout, kernel, out, tile, g, bias, shared),
        "conv": conv_cost(cin, cout, kernel, out, g, bias),
    }
    for name, module in (("local", local), ("tiled", tiled), ("conv", conv)):
        cost = expected[name]
        assert cost.params == numel(module), name
        assert layer_cost(module, module(x).shape[1:]) == cost, name
        forward, backward = flops(module, x)
        assert forward == 2 * x.shape[0] * cost.macs, name
        # Backward: one product for the input's gradient and one for the weight's. torch's
        # conv_backward_flop ignores groups and counts the weight's gradient `groups` times
        # (torch 2.13); tiled layers run on convolutions and inherit that, the locally
        # connected layer runs on bmm and is counted exactly.
        weight_grad = g if name in ("tiled", "conv") else 1
        assert backward == (1 + weight_grad) * forward, name


def test_dense_matches_linear_and_flop_counter():
    linear = nn.Linear(800, 500)
    assert dense_cost(800, 500).params == numel(linear)
    forward, backward = flops(linear, torch.randn(3, 800))
    assert forward == 2 * 3 * dense_cost(800, 500).macs
    assert backward == 2 * forward


def test_depthwise_separable_matches_modules():
    block = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 16, 1))
    x = torch.randn(1, 8, 10, 10)
    cost = depthwise_separable_cost(8, 16, 3, (8, 8))
    assert cost.params == numel(block)
    forward, _ = flops(block, x)
    assert forward == 2 * cost.macs


def test_counts_are_exact_beyond_float_precision():
    big = nn.Linear(10**6, 10**6 + 1, bias=False, device="meta")
    cost = dense_cost(10**6, 10**6 + 1, bias=False)
    assert cost.params == numel(big) == 10**12 + 10**6
    assert cost.weight_bytes() == 4 * (10**12 + 10**6)
    assert cost.flops == 2 * cost.macs


def test_layer_cost_linear_on_leading_positions():
    linear = nn.Linear(6, 4)
    assert layer_cost(linear, (5, 4)).macs == 5 * 6 * 4


@pytest.mark.parametrize(
    "n, power, text",
    [
        (1_000_000_000_000, True, "1,000,000,000,000 (10^12)"),
        (25_000_000_000, True, "25,000,000,000 (2.5x10^10)"),
        (1_612_800, True, "1,612,800 (~1.61x10^6)"),
        (6_400, True, "6,400"),
        (400_000, False, "400,000"),
    ],
)
def test_format_count(n, power, text):
    assert format_count(n, power_of_ten=power) == text


@pytest.mark.parametrize(
    "n, text", [(4 * 10**12, "4 TB"), (4 * 10**8, "400 MB"), (7168, "7.17 kB"), (12, "12 B")]
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="kernel_size"):
        conv_cost(3, 4, 0, (5, 5))
    with pytest.raises(ValueError, match="groups"):
        conv_cost(3, 4, 3, (5, 5), groups=2)
    with pytest.raises(ValueError, match="tile_size"):
        tiled_cost(3, 4, 3, (5, 5), (2, 2, 2))


def test_tiled_params_between_conv_and_local():
    for t in itertools.product((1, 2, 3, 6), repeat=2):
        cost = tiled_cost(2, 3, 3, (6, 6), t).params
        assert conv_cost(2, 3, 3, (6, 6)).params <= cost
        assert cost <= locally_connected_cost(2, 3, 3, (6, 6)).params
    assert tiled_cost(2, 3, 3, (6, 6), 6).params == locally_connected_cost(2, 3, 3, (6, 6)).params
    assert tiled_cost(2, 3, 3, (6, 6), 1).params == conv_cost(2, 3, 3, (6, 6)).params


REGION = {1: locality.RegionConv1d, 2: locality.RegionConv2d, 3: locality.RegionConv3d}
LOWRANK = {
    1: locality.LowRankLocallyConnected1d,
    2: locality.LowRankLocallyConnected2d,
    3: locality.LowRankLocallyConnected3d,
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("factorized", [False, True])
def test_region_and_lowrank_closed_forms_match_real_modules(case, factorized):
    d, cin, cout, k, size, s, p, dl, g, t, bias, shared = case
    size_t = (size,) * d if isinstance(size, int) else size
    common = dict(stride=s, padding=p, dilation=dl, groups=g, bias=bias, shared_bias=shared)
    out = CONV[d](cin, cout, k, stride=s, padding=p, dilation=dl, groups=g)(
        torch.randn(1, cin, *size_t)
    ).shape[2:]
    regions = tuple(min(r, n) for r, n in zip((2, 3, 1)[:d], out, strict=True))
    region = REGION[d](cin, cout, k, size_t, regions, **common)
    lowrank = LOWRANK[d](cin, cout, k, size_t, 3, factorized=factorized, **common)
    kernel = (k,) * d if isinstance(k, int) else k
    x = torch.randn(2, cin, *size_t)
    for module, cost in (
        (region, region_cost(cin, cout, kernel, out, regions, g, bias, shared)),
        (lowrank, lowrank_cost(cin, cout, kernel, out, 3, g, bias, shared, factorized)),
    ):
        assert cost.params == numel(module), type(module).__name__
        assert cost.params == Connectivity.of(module).parameters
        assert cost.macs == conv_cost(cin, cout, kernel, out, g, bias).macs
        assert layer_cost(module, module(x).shape[1:]) == cost


def test_region_cost_refuses_more_regions_than_outputs():
    with pytest.raises(ValueError, match="regions"):
        region_cost(3, 4, 3, (4, 4), (5, 2))


def test_compare_has_a_row_per_kind_matching_the_layers():
    result = compare((12, 10), 3, out_channels=5, kernel_size=3, regions=3, rank=2, bias=True)
    out = result.output_size
    layers = {
        "locally_connected": locality.LocallyConnected2d(3, 5, 3, (12, 10)),
        "lowrank": locality.LowRankLocallyConnected2d(3, 5, 3, (12, 10), 2),
        "region": locality.RegionConv2d(3, 5, 3, (12, 10), 3),
        "tiled": locality.TiledConv2d(3, 5, 3, 2),
        "conv": nn.Conv2d(3, 5, 3),
    }
    assert list(result.costs) == ["dense", *layers, "depthwise_separable"]
    for kind, layer in layers.items():
        assert result.costs[kind].params == numel(layer), kind
        assert result.costs[kind].macs == 5 * out[0] * out[1] * 27, kind
    text = str(result)
    assert "region 3x3" in text and "lowrank K=2" in text
    assert result.to_dict()["kinds"]["region"]["params"] == numel(layers["region"])
    only = result.table(kinds=("dense", "conv"))
    assert [line.split()[0] for line in only[2:]] == ["dense", "conv"]
