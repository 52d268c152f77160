"""Weight sharing during training: instant projection and Pogodin et al.'s dynamic Hebbian rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import locality
from locality.convert import project, to_locally_connected
from locality.train import WeightSharing, share_weights
from locality.train.data import Data
from locality.train.loop import TrainConfig, train

F64 = torch.float64


def _random_local(d: int, seed: int, shared_bias: bool = False, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    size = 11 if d == 1 else (7, 6)
    cls = locality.LocallyConnected1d if d == 1 else locality.LocallyConnected2d
    return cls(2, 3, 3, input_size=size, shared_bias=shared_bias, dtype=F64, **kwargs)


@pytest.mark.parametrize("shared_bias", [False, True])
@pytest.mark.parametrize("d", [1, 2])
def test_instant_sharing_equals_the_projection_and_the_tied_layer(d, shared_bias):
    layer = _random_local(d, d, shared_bias, padding=1)
    tied = project(layer, to="tiled", tile_size=3).layer  # period None = kernel size 3
    expected = to_locally_connected(tied, layer.input_size)
    assert share_weights(nn.Sequential(layer, nn.ReLU())) == 1
    assert torch.equal(layer.weight, expected.weight)
    assert torch.equal(layer.bias, expected.bias)
    assert project(layer, to="tiled", tile_size=3).relative_error < 1e-14
    x = torch.randn(4, 2, *layer.input_size, dtype=F64)
    torch.testing.assert_close(layer(x), tied(x), rtol=1e-12, atol=1e-12)


def test_instant_sharing_with_period_one_gives_the_convolution_by_hand():
    layer = _random_local(2, 3, stride=2)
    weight, bias = layer.weight.detach().clone(), layer.bias.detach().clone()
    share_weights(layer, period=1)
    mean_kernel = weight.flatten(0, 1).mean(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, dtype=F64)
    with torch.no_grad():
        conv.weight.copy_(mean_kernel)
        conv.bias.copy_(bias.flatten(0, 1).mean(0))
    x = torch.randn(3, 2, 7, 6, dtype=F64)
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-12, atol=1e-12)


def _interior_deviation(layer: nn.Module, tile: int) -> float:
    """Largest distance of an interior kernel from its class's interior mean (1-D, by hand)."""
    w = layer.weight.detach()
    n = w.shape[0]
    inside = [p for p in range(n) if p - 1 >= 0 and p + 1 < layer.input_size[0]]
    worst = 0.0
    for r in range(tile):
        members = [p for p in inside if p % tile == r]
        mean = torch.stack([w[p] for p in members]).mean(0)
        worst = max(worst, max((w[p] - mean).abs().max().item() for p in members))
    return worst


def test_dynamic_sharing_decreases_the_distance_to_the_tied_structure():
    layer = _random_local(1, 4, padding=1)  # 11 positions, kernel 3
    before = project(layer, to="tiled", tile_size=3).relative_error
    deviation = _interior_deviation(layer, 3)
    border = layer.weight.detach()[[0, -1]].clone()
    share_weights(layer, mode="dynamic", generator=torch.Generator().manual_seed(0))
    after = project(layer, to="tiled", tile_size=3).relative_error
    assert after < 0.9 * before
    # white noise shrinks interior deviations by ~(1 - lr) per step: 0.9**100 ~ 3e-5
    assert _interior_deviation(layer, 3) < 1e-2 * deviation
    assert torch.equal(layer.weight.detach()[[0, -1]], border)  # the border reads padding


def test_dynamic_sharing_of_a_tied_layer_changes_nothing():
    torch.manual_seed(5)
    conv = nn.Conv2d(2, 2, 3, padding=1, dtype=F64)
    layer = to_locally_connected(conv, (6, 6))
    weight = layer.weight.detach().clone()
    share_weights(layer, mode="dynamic", period=1, steps=5, generator=torch.Generator())
    torch.testing.assert_close(layer.weight.detach(), weight, rtol=0, atol=1e-14)


def test_the_callback_shares_every_n_steps_inside_the_training_loop():
    torch.manual_seed(6)
    x = torch.randn(40, 1, 12)
    y = (x[:, 0, 3] > 0).long()
    data = Data("toy", x, y, x[:20], y[:20], 2)
    model = nn.Sequential(
        locality.LocallyConnected1d(1, 3, 3, input_size=12), nn.Flatten(), nn.Linear(30, 2)
    )
    calls = []
    sharing = WeightSharing(model, every=3, period=1)

    def hook(step: int) -> None:
        calls.append((step, sharing(step)))

    train(
        model,
        data,
        TrainConfig(steps=6, batch_size=10, eval_every=6),
        progress=False,
        after_step=hook,
    )
    assert calls == [(1, False), (2, False), (3, True), (4, False), (5, False), (6, True)]
    assert project(model[0], to="conv").relative_error < 1e-6


def test_bad_arguments_are_refused():
    layer = _random_local(1, 7)
    with pytest.raises(ValueError, match="no LocallyConnected"):
        WeightSharing(nn.Conv1d(1, 1, 3), every=1)
    with pytest.raises(ValueError, match="mode must be"):
        WeightSharing(layer, every=1, mode="hebbian")
    with pytest.raises(ValueError, match="every must be positive"):
        WeightSharing(layer, every=0)
    with pytest.raises(ValueError, match="lr must be a number"):
        share_weights(layer, mode="dynamic", lr=-1.0)
    with pytest.raises(TypeError, match="period must"):
        WeightSharing(layer, every=1, period="kernel")
    assert "every=1" in repr(WeightSharing(layer, every=1))
