"""Tile maps: which kernel of the bank each output position of a 2-D layer uses.

A convolution is one colour, a tiled convolution repeats a t x t pattern of colours, and a
locally connected layer colours every position differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from locality._arguments import check_initialised, check_shape
from locality._memory import check_allocation
from locality.connectivity import Connectivity, Periodic
from locality.draw.palette import kernel_colour

__all__ = ["kernel_map", "tile_map_figure"]

# More cells than a tile map can show (and than matplotlib draws in reasonable time).
MAX_CELLS = 10_000


def _connectivity(layer: nn.Module, where: str) -> Connectivity:
    if isinstance(layer, nn.Module):
        check_initialised(layer, "layer", where)
    try:
        connectivity = Connectivity.of(layer) if isinstance(layer, nn.Module) else None
    except TypeError:
        connectivity = None
    if connectivity is None or connectivity.d == 0 or connectivity.map.soft:
        raise TypeError(
            f"{where}: layer must be a convolution or a layer of locality with a kernel map "
            f"(TiledConv, LocallyConnected, ...), got {type(layer).__name__}"
        )
    return connectivity


def _output(
    connectivity: Connectivity, layer: nn.Module, input_size: Sequence[int] | None, where: str
) -> tuple[int, ...]:
    d = connectivity.d
    size = None if input_size is None else check_shape(input_size, "input_size", where, length=d)
    if connectivity.input_size is not None:
        if size is not None and size != connectivity.input_size:
            raise ValueError(
                f"{where}: input_size must be the {type(layer).__name__}'s own "
                f"{connectivity.input_size} (or None), got {size}"
            )
        return connectivity.output_size()
    if size is None:
        raise ValueError(f"{where}: input_size is needed for {type(layer).__name__}")
    return connectivity.sliding.output_size(size, where)


def kernel_map(layer: nn.Module, input_size: Sequence[int] | None = None) -> torch.Tensor:
    """Index of the kernel used at each output position: an int64 tensor of the output size.

    The layer's ``connectivity.kernel_index``, with the kernels the output uses numbered in
    row-major order: for a tiled layer, ``ravel(p mod min(tile_size, output_size))`` (a tile
    larger than the output holds kernels no position uses). ``input_size`` (spatial) is needed
    except for a layer with a fixed input size (locally connected), which knows it.
    """
    return _kernel_map(layer, input_size, "kernel_map")


def _kernel_map(layer: nn.Module, input_size: Sequence[int] | None, where: str) -> torch.Tensor:
    connectivity = _connectivity(layer, where)
    out = _output(connectivity, layer, input_size, where)
    check_allocation(out, torch.int64, None, where)
    if isinstance(connectivity.map, Periodic):
        used = tuple(min(b, o) for b, o in zip(connectivity.bank_shape, out, strict=True))
        connectivity = replace(connectivity, bank_shape=used, input_size=None)
    return connectivity.kernel_index(out)


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
        connectivity = _connectivity(layer, where)
        if connectivity.d != 2:
            raise ValueError(
                f"{where}: layers must be 2-D, got {type(layer).__name__} with "
                f"kernel_size {connectivity.kernel_size}"
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
        connectivity = Connectivity.of(layer)
        bank = connectivity.num_kernels
        name = type(layer).__name__
        if connectivity.kind == "tiled":
            name += f", tile {connectivity.bank_shape[0]}x{connectivity.bank_shape[1]}"
        size = "x".join(map(str, index.shape))
        word = "kernel" if bank == 1 else "kernels"
        used = f" ({kernels} used)" if kernels < bank else ""  # a tile larger than the output
        _draw_map(index, kernels, ax, f"{name}\n{bank} {word}{used} over {size} outputs")
    figure.suptitle("Which kernel each output position uses", fontsize=12)
    return figure
