"""A DeepID-style face model (Sun, Wang and Tang, CVPR 2014) with region-shared layers.

Input 3x55x47, valid padding: conv 20@4x4, max-pool 2; conv 40@3x3, max-pool 2; region-shared
60@3x3 with 2x2 regions, max-pool 2 (a 60x5x4 map); locally connected 80@2x2 on that map; then
Linear(1200, 160) on the pooled map and Linear(960, 160) on the last map, summed. The counts
below are worked out by hand from those shapes (weights + per-region / per-position biases).
"""

from __future__ import annotations

import torch
from torch import nn

import locality
from locality.analysis import summary


class DeepID(nn.Module):
    def __init__(self, shared: bool) -> None:
        super().__init__()
        region = (
            nn.Conv2d(40, 60, 3)
            if shared
            else locality.RegionConv2d(40, 60, 3, input_size=(12, 10), regions=2)
        )
        last = (
            nn.Conv2d(60, 80, 2)
            if shared
            else locality.LocallyConnected2d(60, 80, 2, input_size=(5, 4))
        )
        self.features = nn.Sequential(
            nn.Conv2d(3, 20, 4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(20, 40, 3), nn.ReLU(), nn.MaxPool2d(2),
            region, nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.last = last
        self.fc_pooled = nn.Linear(60 * 5 * 4, 160)
        self.fc_last = nn.Linear(80 * 4 * 3, 160)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x)
        last = torch.relu(self.last(pooled))
        return self.fc_pooled(pooled.flatten(1)) + self.fc_last(last.flatten(1))


def test_deepid_counts_with_region_shared_and_locally_connected_layers():
    model = DeepID(shared=False)
    assert model(torch.randn(2, 3, 55, 47)).shape == (2, 160)
    report = summary(model, (3, 55, 47))
    conv1 = 20 * 3 * 16 + 20
    conv2 = 40 * 20 * 9 + 40
    region = 4 * (60 * 40 * 9 + 60)  # four regions, a bias per region
    local = 4 * 3 * (80 * 60 * 4 + 80)  # twelve positions, a bias per position
    heads = 1200 * 160 + 160 + 960 * 160 + 160
    assert conv1 + conv2 + region + local + heads == 672_140
    assert report.total_params == 672_140
    rows = {row.name: row for row in report.rows}
    assert rows["features.6"].params == region and rows["features.6"].output_shape == (60, 10, 8)
    assert rows["last"].params == local and rows["last"].output_shape == (80, 4, 3)
    assert locality.Connectivity.of(model.features[6]).parameters == region


def test_deepid_with_ordinary_convolutions():
    report = summary(DeepID(shared=True), (3, 55, 47))
    assert report.total_params == 395_080
    assert report.total_params == sum(p.numel() for p in DeepID(shared=True).parameters())
