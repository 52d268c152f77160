"""summary() against the modules themselves, FlopCounterMode, and gradients (receptive fields)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import locality
from locality.analysis import receptive_field, summary


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        locality.TiledConv2d(4, 4, 3, tile_size=2, stride=2, padding=1),
        locality.LocallyConnected2d(4, 3, 2, input_size=4, dilation=2),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, 5),
    )


def test_rows_match_modules_shapes_and_flop_counter():
    torch.manual_seed(0)
    net = small_net()
    result = summary(net, (2, 16, 16))
    leaves = [m for m in net.modules() if not list(m.children())]
    assert [row.type for row in result.rows] == [type(m).__name__ for m in leaves]
    assert [row.kind for row in result.rows] == [
        "conv",
        "other",
        "other",
        "tiled",
        "locally_connected",
        "other",
        "dense",
    ]
    x = torch.randn(1, 2, 16, 16)
    for row, module in zip(result.rows, leaves, strict=True):
        x = module(x)
        assert row.output_shape == tuple(x.shape[1:])
        assert row.params == sum(p.numel() for p in module.parameters())
    assert result.total_params == sum(p.numel() for p in net.parameters())
    with FlopCounterMode(display=False) as counter:
        net(torch.randn(1, 2, 16, 16))
    assert 2 * result.total_macs == counter.get_total_flops() == result.counted_flops
    assert "total" in str(result) and f"{result.total_params:,}" in str(result)


def test_other_modules_take_flop_counter_counts():
    net = nn.Sequential(nn.ConvTranspose2d(2, 3, 2, stride=2))
    result = summary(net, (2, 4, 4))
    with FlopCounterMode(display=False) as counter:
        net(torch.randn(1, 2, 4, 4))
    assert result.rows[0].kind == "other"
    assert 2 * result.rows[0].macs == counter.get_total_flops()


def test_meta_device_summarises_a_huge_layer():
    net = nn.Sequential(nn.Flatten(), nn.Linear(10**6, 10**6, bias=False, device="meta"))
    result = summary(net, (1, 1000, 1000))
    assert result.total_params == 10**12
    assert result.weight_bytes == 4 * 10**12
    assert result.rows[-1].receptive_field.whole


def _gradient_support(net: nn.Module, input_shape, position) -> tuple[range, ...]:
    """Input coordinates the output at ``position`` depends on, from autograd (independent)."""
    x = torch.zeros(1, *input_shape, dtype=torch.float64, requires_grad=True)
    y = net(x)
    y[(0, 0, *position)].backward()
    nonzero = x.grad[0, 0].nonzero()
    return tuple(range(int(nonzero[:, i].min()), int(nonzero[:, i].max()) + 1) for i in range(2))


@pytest.mark.parametrize("pool", [False, True])
def test_receptive_field_matches_gradient_support(pool):
    layers = [
        nn.Conv2d(1, 2, 3, padding=1),
        locality.TiledConv2d(2, 2, 3, tile_size=2, stride=2),
        locality.LocallyConnected2d(2, 1, (3, 2), input_size=(9, 9), dilation=(1, 2)),
    ]
    if pool:
        layers.append(nn.AvgPool2d(2))
    net = nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(0.5, 1.0)  # positive: no cancellation, every tap shows in the gradient
    field = receptive_field(net, (1, 20, 20))
    out = net(torch.zeros(1, 1, 20, 20, dtype=torch.float64)).shape[2:]
    for position in [(0, 0), (out[0] // 2, out[1] - 1), (out[0] - 1, 1)]:
        expected = _gradient_support(net, (1, 20, 20), position)
        window = field.window(position)
        clipped = tuple(range(max(w.start, 0), min(w.stop, 20)) for w in window)
        assert clipped == expected, position


def test_receptive_field_through_a_residual_branch():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 1, 5, padding=2)
            self.b = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.b(x) + self.a(x)  # b reads the input, not a's output

    rows = summary(Block(), (1, 12, 12)).rows
    assert [r.receptive_field.size for r in rows] == [(3, 3), (5, 5)]


def test_torchinfo_overcounts_tiled_macs_by_tile_volume():
    torchinfo = pytest.importorskip("torchinfo")
    layer = locality.TiledConv2d(3, 8, 3, tile_size=(2, 3), padding=1)
    stats = torchinfo.summary(nn.Sequential(layer), input_size=(1, 3, 12, 12), verbose=0)
    ours = summary(nn.Sequential(layer), (3, 12, 12)).rows[0]
    positions = 12 * 12
    # torchinfo counts bias additions as mult-adds; add them to our (bias-free) MACs.
    assert stats.summary_list[1].macs == 6 * (ours.macs + positions * 8)
