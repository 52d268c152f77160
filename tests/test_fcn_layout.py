"""fully_convolutional refuses layout ops it cannot fold and supports what a PyTorch user writes:
global pooling as ``x.mean((2, 3))``, a LayerNorm in the head, and a clear error for inputs
smaller than the training size (issue 13, items 1 and 21)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from locality.convert import fully_convolutional, sliding_window


class Head(nn.Module):
    """conv -> ``layout`` -> flatten -> Linear on a square map."""

    def __init__(self, layout, channels: int = 3, size: int = 6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3)
        self.fc = nn.Linear(channels * (size - 2) ** 2, 5)
        self.layout = layout

    def forward(self, x):
        return self.fc(self.layout(self.conv(x)).flatten(1))


@pytest.mark.parametrize(
    "layout, channels, size",
    [
        (lambda x: x.transpose(2, 3), 3, 6),  # converted off by ~1 on larger inputs
        (lambda x: x.transpose(1, 3), 4, 6),  # C == W: converted, then crashed
        (lambda x: torch.transpose(x, 1, 2), 4, 6),
        (lambda x: x.swapaxes(2, 3), 3, 6),
    ],
)
def test_layout_ops_that_cannot_fold_are_refused(layout, channels, size):
    model = Head(layout, channels, size)
    with pytest.raises(ValueError, match="fully_convolutional: node '(transpose|swapaxes)"):
        fully_convolutional(model, (1, size, size))


@pytest.mark.parametrize(
    "layout",
    [lambda x: x.movedim(1, -1), lambda x: x.permute(0, 2, 3, 1)],
    ids=["movedim", "permute"],
)
def test_channels_last_layouts_fold_into_the_weights(layout):
    torch.manual_seed(0)
    model = Head(layout, 3, 6).eval()
    fcn = fully_convolutional(model, (1, 6, 6))
    x = torch.randn(2, 1, 9, 9)
    expected = sliding_window(model, x, 6, 1)
    torch.testing.assert_close(fcn(x), expected, rtol=1e-5, atol=1e-5)


class SpatialLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.mix = nn.Linear(4, 4)  # along the width of the 4x4 map
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(self.mix(self.conv(x)).flatten(1))


def test_a_linear_along_a_spatial_axis_is_refused():
    with pytest.raises(ValueError, match="node 'mix'.*Linear.*last axis"):
        fully_convolutional(SpatialLinear(), (1, 6, 6))


class MeanPooled(nn.Module):
    def __init__(self, keepdim: bool, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3)
        self.fc1 = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8) if norm else nn.Identity()
        self.fc2 = nn.Linear(8, 4)
        self.keepdim = keepdim

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = x.mean((2, 3), keepdim=True).flatten(1) if self.keepdim else x.mean((2, 3))
        return self.fc2(F.relu(self.norm(self.fc1(x))))


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("norm", [False, True])
def test_mean_pooling_and_layer_norm_in_the_head(keepdim, norm):
    torch.manual_seed(1)
    model = MeanPooled(keepdim, norm).eval()
    if norm:
        with torch.no_grad():
            model.norm.weight.uniform_(0.5, 1.5)
            model.norm.bias.uniform_(-0.5, 0.5)
    fcn = fully_convolutional(model, (2, 8, 8))
    x = torch.randn(3, 2, 8, 8, dtype=torch.float32)
    torch.testing.assert_close(fcn(x)[..., 0, 0], model(x), rtol=1e-5, atol=1e-5)
    big = torch.randn(2, 2, 11, 12)
    torch.testing.assert_close(fcn(big), sliding_window(model, big, 8, 1), rtol=1e-5, atol=1e-5)


def test_an_input_smaller_than_the_training_size_is_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    fcn = fully_convolutional(model, (1, 8, 8))
    with pytest.raises(ValueError, match=r"smaller than the training size \(8, 8\)"):
        fcn(torch.randn(1, 1, 7, 9))
