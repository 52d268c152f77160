"""Pictures: the drawn wiring against autograd, colours against weight sharing, files on disk."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import locality  # noqa: E402
from locality.draw import (  # noqa: E402
    four_panel_figure,
    kernel_map,
    layer_figure,
    receptive_field_figure,
    save_figure,
    tile_map_figure,
    wiring_of,
)


def edge_colours(ax) -> set:
    return {tuple(line.get_color()) for line in ax.get_lines() if len(line.get_xdata()) == 2}


def test_four_panel_colours_count_the_distinct_weights():
    figure = four_panel_figure(n_in=8, kernel_size=3, tile_size=2)
    axes = figure.axes
    n_out = 8 - 3 + 1
    expected = [8 * n_out, 3 * n_out, 3 * 2, 3]  # dense, local, tiled, conv
    assert [len(edge_colours(ax)) for ax in axes] == expected
    assert [len(ax.patches) for ax in axes] == expected  # one swatch per weight
    captions = [" ".join(t.get_text() for t in ax.texts) for ax in axes]
    for caption, count in zip(captions, expected, strict=True):
        assert f"{count} parameters" in caption


@pytest.mark.parametrize(
    "layer, n_in",
    [
        (locality.TiledConv1d(1, 1, 3, tile_size=2, padding=1, bias=False), 9),
        (locality.LocallyConnected1d(1, 1, 2, input_size=9, stride=2, dilation=2, bias=False), 9),
        (nn.Conv1d(1, 1, 3, stride=2, bias=False), 9),
        (nn.Linear(5, 3, bias=False), 5),
    ],
)
def test_wiring_matches_the_jacobian(layer, n_in):
    """Edges are exactly the Jacobian's nonzeros; edges of one colour carry one weight."""
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.arange(1, p.numel() + 1, dtype=p.dtype).reshape(p.shape))
    shape = (n_in,) if isinstance(layer, nn.Linear) else (1, 1, n_in)
    jacobian = torch.autograd.functional.jacobian(layer, torch.zeros(shape)).reshape(-1, n_in)
    wiring = wiring_of(layer, n_in)
    assert {(i, j) for i, j, _, _ in wiring.edges} == {
        tuple(ij) for ij in jacobian.nonzero().tolist()
    }
    value_of = {}
    for i, j, kern, tap in wiring.edges:
        assert value_of.setdefault((kern, tap), float(jacobian[i, j])) == float(jacobian[i, j])
    assert len(set(value_of.values())) == len(value_of)  # distinct colours, distinct weights


def test_kernel_map_matches_a_layer_that_outputs_its_kernel_index():
    layer = locality.TiledConv2d(1, 1, 1, tile_size=(2, 3), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(6.0).reshape(2, 3, 1, 1, 1, 1))
    index = kernel_map(layer, (5, 7))
    assert torch.equal(index.double(), layer(torch.ones(1, 1, 5, 7)).double()[0, 0])
    local = locality.LocallyConnected2d(1, 1, 3, input_size=6)
    assert torch.equal(kernel_map(local).flatten(), torch.arange(16))


def test_figures_are_written_as_png_and_svg(tmp_path):
    layers = [nn.Conv2d(1, 1, 3), locality.TiledConv2d(1, 1, 3, tile_size=3)]
    stack = nn.Sequential(nn.Conv2d(1, 2, 3), locality.TiledConv2d(2, 2, 3, tile_size=2, stride=2))
    figures = {
        "tile_map": tile_map_figure(layers, (9, 9)),
        "rf": receptive_field_figure(stack, (1, 12, 12)),
        "layer": layer_figure(locality.TiledConv1d(2, 3, 3, tile_size=2), 8),
    }
    for stem, figure in figures.items():
        png, svg = save_figure(figure, tmp_path / stem)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in svg.read_bytes()[:1000]
    legend = figures["rf"].axes[0].get_legend().get_texts()
    assert [t.get_text().split(": ")[1] for t in legend] == [
        "3x3, stride 1",
        "5x5, stride 2",
    ]  # 3 + (3 - 1) * 1


def test_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="2-D"):
        tile_map_figure(nn.Conv1d(1, 1, 3), (5,))
    with pytest.raises(TypeError, match="Linear, Conv1d"):
        wiring_of(nn.ReLU())


def test_receptive_field_boxes_follow_one_unit_and_nest():
    """Issue 13, item 3: each layer's box lies inside the next one's, and every box holds the
    input pixels its unit depends on (found independently, by autograd)."""
    from locality.analysis.summary import summary
    from locality.cli.draw import demo_stack
    from locality.draw.receptive_field import unit_windows

    torch.manual_seed(3)
    model = demo_stack().eval()
    rows = summary(model, (1, 16, 16)).rows
    sliding = ("Conv2d", "TiledConv2d", "LocallyConnected2d", "MaxPool2d")
    layers = [(row, row.receptive_field) for row in rows if row.type in sliding]
    windows = unit_windows(layers, (7.5, 7.5))
    assert len(windows) == 4
    for inner, outer in zip(windows, windows[1:], strict=False):
        for a, b in zip(inner, outer, strict=True):
            assert b.start <= a.start and a.stop <= b.stop, (inner, outer)
    # The last unit's gradient on the input is zero outside its box.
    x = torch.randn(1, 1, 16, 16, requires_grad=True)
    field, window = layers[-1][1], windows[-1]
    position = [(w.start - a) // j for w, a, j in zip(window, field.start, field.jump, strict=True)]
    model(x)[0, 0, position[0], position[1]].backward()
    support = x.grad[0, 0].abs() > 0
    rows_hit, cols_hit = support.any(1).nonzero().flatten(), support.any(0).nonzero().flatten()
    assert window[0].start <= rows_hit.min() and rows_hit.max() < window[0].stop
    assert window[1].start <= cols_hit.min() and cols_hit.max() < window[1].stop


def test_drawing_counts_plurals_and_colours():
    """Issue 13, item 24: counts agree with the layer, plurals, a width that grows with the
    inputs, and neighbouring kernels of a locally connected map in clearly different colours."""
    from locality.draw import four_panel_figure, tile_map_figure
    from locality.draw.palette import kernel_colour

    tiled = locality.TiledConv2d(1, 1, 3, tile_size=7)
    figure = tile_map_figure([tiled], (8, 8))
    assert "49 kernels (36 used) over 6x6 outputs" in figure.axes[0].get_title()
    wide = four_panel_figure(30, 3, 2)
    assert wide.get_figwidth() > four_panel_figure(8, 3, 2).get_figwidth()
    one = four_panel_figure(3, 3, 2)
    assert "to 1 output " in one._suptitle.get_text()
    captions = " ".join(t.get_text() for ax in one.axes for t in ax.texts)
    assert "1 outputs" not in captions + one._suptitle.get_text()
    # 1024 kernels: horizontal and vertical neighbours on a 32-wide map differ in colour.
    colours = torch.tensor([kernel_colour(k, 1024) for k in range(1024)]).reshape(32, 32, 3)
    assert (colours[:, 1:] - colours[:, :-1]).abs().sum(-1).min() > 0.15
    assert (colours[1:] - colours[:-1]).abs().sum(-1).min() > 0.15
