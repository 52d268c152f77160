"""docs/guide/adding-a-kind.md is true: its example kind works everywhere without other edits.

The page's first code block (a layer class and nothing else) is run here; the conversions,
counts, summary, receptive field and pictures are then applied to it and checked against
independent references.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import nn

import locality
from locality import analysis, draw
from locality.connectivity import Connectivity

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "adding-a-kind.md"


def _checkerboard() -> type:
    code = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)[0]
    namespace: dict = {}
    exec(compile(code, str(PAGE), "exec"), namespace)
    return namespace["Checkerboard2d"]


def test_the_page_lists_only_the_allowed_files():
    table = PAGE.read_text().split("## Example")[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "the map",
        "the layer class",
        "a kernel (optional)",
        "the public exports",
        "tests",
    ]


def test_the_example_kind_works_without_other_edits():
    torch.manual_seed(0)
    layer = _checkerboard()(3, 4, 3, input_size=6).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    y = layer(x)
    # reference: position (i, j) is the convolution with kernel (i + j) mod 2
    kernels = [nn.functional.conv2d(x, layer.weight[k], layer.bias[k]) for k in (0, 1)]
    i, j = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    torch.testing.assert_close(y, torch.where((i + j) % 2 == 0, kernels[0], kernels[1]))

    c = Connectivity.of(layer)
    assert c.kind == "mapped" and c.num_kernels == 2
    assert torch.equal(c.kernel_index(), (i + j) % 2)
    dense = locality.to_dense(layer, (3, 6, 6))
    torch.testing.assert_close(dense(x.flatten(1)), y.flatten(1))
    projection = locality.project(layer, "conv")
    mean = layer.weight.mean(0)  # both kernels are used by 8 positions each
    torch.testing.assert_close(projection.layer.weight, mean)

    result = analysis.summary(nn.Sequential(layer), (3, 6, 6))
    assert result.rows[0].kind == "mapped"
    assert result.total_params == 2 * (4 * 3 * 9 + 4) == c.parameters
    assert result.rows[0].macs == 16 * 4 * 27
    assert analysis.receptive_field(nn.Sequential(layer), (3, 6, 6)).size == (3, 3)
    assert torch.equal(draw.kernel_map(layer), (i + j) % 2)
    figure = draw.tile_map_figure(layer)
    assert "2 kernels over 4x4 outputs" in figure.axes[0].get_title()
    assert math.prod(layer.kernels().shape[:2]) == 16
