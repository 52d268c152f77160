"""Tile maps: which kernel of the bank each output position of a 2-D layer uses.

A convolution is one colour, a tiled convolution repeats a t x t pattern of colours, and a
locally connected layer colours every position differently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from locality._arguments import check_initialised, check_shape, output_size, padding_amounts
from locality._memory import check_allocation
from locality.draw.palette import kernel_colour
from locality.layers._base import _ConnectivityNd
from locality.layers.local import _LocallyConnectedNd
from locality.layers.tiled import _TiledConvNd

__all__ = ["kernel_map", "tile_map_figure"]

# More cells than a tile map can show (and than matplotlib draws in reasonable time).
MAX_CELLS = 10_000


def _bank_and_output(
    layer: nn.Module, input_size: Sequence[int] | None, where: str
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if not isinstance(layer, (_LocallyConnectedNd, _TiledConvNd, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        raise TypeError(
            f"{where}: layer must be a convolution, TiledConv or LocallyConnected layer, got "
            f"{type(layer).__name__}"
        )
    check_initialised(layer, "layer", where)
    d = len(layer.kernel_size)
    size = None if input_size is None else check_shape(input_size, "input_size", where, length=d)
    if isinstance(layer, _LocallyConnectedNd):
        if size is not None and size != layer.input_size:
            raise ValueError(
                f"{where}: input_size must be the {type(layer).__name__}'s own "
                f"{layer.input_size} (or None), got {size}"
            )
        return layer.output_size, layer.output_size
    if size is None:
        raise ValueError(f"{where}: input_size is needed for {type(layer).__name__}")
    pads = padding_amounts(layer.padding, layer.kernel_size, layer.stride, layer.dilation)
    out = output_size(size, layer.kernel_size, layer.stride, pads, layer.dilation, where)
    grid = layer.tile_size if isinstance(layer, _TiledConvNd) else (1,) * len(out)
    return tuple(min(t, o) for t, o in zip(grid, out, strict=True)), out


def kernel_map(layer: nn.Module, input_size: Sequence[int] | None = None) -> torch.Tensor:
    """Index of the kernel used at each output position: an int64 tensor of the output size.

    Kernels are numbered in row-major order of the bank; position ``p`` uses
    ``ravel(p mod grid)``. ``input_size`` (spatial) is needed except for a locally connected
    layer, which knows it.
    """
    return _kernel_map(layer, input_size, "kernel_map")


def _kernel_map(layer: nn.Module, input_size: Sequence[int] | None, where: str) -> torch.Tensor:
    grid, out = _bank_and_output(layer, input_size, where)
    check_allocation(out, torch.int64, None, where)
    axes = torch.meshgrid(*(torch.arange(n) for n in out), indexing="ij")
    index = torch.zeros(out, dtype=torch.int64)
    for coordinate, g in zip(axes, grid, strict=True):
        index = index * g + coordinate % g
    return index


def _draw_map(index: torch.Tensor, kernels: int, ax: Axes, title: str) -> None:
    rows, cols = index.shape
    label = rows * cols <= 100
    for r in range(rows):
        for c in range(cols):
            k = int(index[r, c])
            ax.add_patch(
                Rectangle(
                    (c, rows - 1 - r),
                    1,
                    1,
                    facecolor=kernel_colour(k, kernels),
                    edgecolor="white",
                    lw=1.0,
                )
            )
            if label:
                ax.text(
                    c + 0.5,
                    rows - 0.5 - r,
                    str(k),
                    ha="center",
                    va="center",
                    fontsize=8 if kernels < 100 else 6,
                    color="white",
                    fontweight="bold",
                )
    ax.set_xlim(0, cols)
    ax.set_ylim(0, rows)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)


def tile_map_figure(
    layers: nn.Module | Sequence[nn.Module], input_size: Sequence[int] | None = None
) -> Figure:
    """One tile map per 2-D layer, side by side; cells show the kernel index.

    Args:
        layers: a layer or several (``Conv2d``, ``TiledConv2d``, ``LocallyConnected2d``).
        input_size: spatial input size ``(H, W)``, shared by the layers.
    """
    where = "tile_map_figure"
    if isinstance(layers, (str, bytes)) or not isinstance(layers, (nn.Module, Iterable)):
        raise TypeError(
            f"{where}: layers must be a module or a list of modules, got {type(layers).__name__}"
        )
    layers = [layers] if isinstance(layers, nn.Module) else list(layers)
    for layer in layers:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"{where}: layers must hold modules, got {type(layer).__name__}")
    if not layers:
        raise ValueError(f"{where}: layers must hold at least one layer, got none")
    for layer in layers:
        if len(getattr(layer, "kernel_size", ())) != 2:
            raise ValueError(
                f"{where}: layers must be 2-D, got {type(layer).__name__} with "
                f"kernel_size {getattr(layer, 'kernel_size', None)}"
            )
    indices = [_kernel_map(layer, input_size, where) for layer in layers]
    for layer, index in zip(layers, indices, strict=True):
        if index.numel() > MAX_CELLS:
            raise ValueError(
                f"{where}: the {type(layer).__name__}'s output of size {tuple(index.shape)} has "
                f"{index.numel():,} positions, more than the {MAX_CELLS:,} a tile map can show "
                f"(use a smaller input_size)"
            )
    figure = Figure(figsize=(3.6 * len(layers), 4.2), layout="constrained")
    axes = figure.subplots(1, len(layers), squeeze=False)[0]
    for ax, layer, index in zip(axes, layers, indices, strict=True):
        kernels = int(index.max()) + 1
        bank = math.prod(layer.weight.shape[:2]) if isinstance(layer, _ConnectivityNd) else 1
        name = type(layer).__name__
        if isinstance(layer, _TiledConvNd):
            name += f", tile {layer.tile_size[0]}x{layer.tile_size[1]}"
        size = "x".join(map(str, index.shape))
        word = "kernel" if bank == 1 else "kernels"
        used = f" ({kernels} used)" if kernels < bank else ""  # a tile larger than the output
        _draw_map(index, kernels, ax, f"{name}\n{bank} {word}{used} over {size} outputs")
    figure.suptitle("Which kernel each output position uses", fontsize=12)
    return figure
