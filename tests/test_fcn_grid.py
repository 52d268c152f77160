"""The cell grids of fully_convolutional, sliding_window and shift_and_stitch when the feature map
does not tile the training window exactly (issue 13, item 7; docs/guide/conversions.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from locality.convert import fully_convolutional, shift_and_stitch, sliding_window


def _model() -> nn.Module:
    """24x24 -> conv 3 -> pool 2 -> conv 3 -> pool 2: the pools drop two rows, R = 22."""
    torch.manual_seed(7)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Conv2d(2, 3, 3), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3 * 4 * 4, 5),
    ).eval()  # fmt: skip


def test_grids_differ_by_the_cells_whose_windows_overhang_only_unread_pixels():
    model = _model()
    fcn = fully_convolutional(model, (1, 24, 24))
    assert fcn.geometry.receptive_field == (22, 22) and fcn.geometry.stride == (4, 4)
    x = torch.randn(2, 1, 94, 94)
    with torch.no_grad():
        scores, windows = fcn(x), sliding_window(model, x, 24, 4)
    assert scores.shape[-2:] == ((94 - 22) // 4 + 1,) * 2 == (19, 19)
    assert windows.shape[-2:] == ((94 - 24) // 4 + 1,) * 2 == (18, 18)
    torch.testing.assert_close(scores[..., :18, :18], windows, rtol=1e-5, atol=1e-5)
    # The whole map: windows over x padded by window - R = 2 values of any kind, never read.
    padded = F.pad(x, (0, 2, 0, 2), value=float("nan"))
    with torch.no_grad():
        torch.testing.assert_close(scores, sliding_window(model, padded, 24, 4))


def test_shift_and_stitch_follows_the_network_grid():
    model = _model()
    fcn = fully_convolutional(model, (1, 24, 24))
    x = torch.randn(1, 1, 94, 94)
    padded = F.pad(x, (0, 2, 0, 2), value=float("nan"))
    with torch.no_grad():
        fine = shift_and_stitch(fcn, x, 2)
        assert fine.shape[-2:] == (37, 37)
        assert sliding_window(model, x, 24, 2).shape[-2:] == (36, 36)
        torch.testing.assert_close(fine, sliding_window(model, padded, 24, 2))
