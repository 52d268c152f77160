"""1-D connectivity pictures: an input row, an output row and one edge per connection.

Each distinct weight has its own colour (a hue per kernel, a shade per tap), and the weight
bank is drawn under the rows as one swatch per weight: a kernel per row, a tap per column. The
number of swatches is the number of parameters, so the four kinds read at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from locality._arguments import check_initialised, check_int
from locality.connectivity import Connectivity, Periodic
from locality.draw.palette import weight_colour

__all__ = [
    "Wiring",
    "dense_wiring",
    "bank_wiring",
    "wiring_of",
    "draw_wiring",
    "four_panel_figure",
    "layer_figure",
]


@dataclass(frozen=True)
class Wiring:
    """Who connects to whom in a 1-D layer with one channel in and one out.

    Attributes:
        n_in, n_out: input and output positions.
        kernels, taps: the weight bank is ``kernels x taps`` distinct weights.
        edges: ``(output, input, kernel, tap)`` per connection; connections into zero padding
            are left out (they carry no signal).
        out_x: where to draw each output, in input coordinates (the centre of its window).
        title: what the layer is.
    """

    n_in: int
    n_out: int
    kernels: int
    taps: int
    edges: tuple[tuple[int, int, int, int], ...]
    out_x: tuple[float, ...]
    title: str

    @property
    def weights(self) -> int:
        return self.kernels * self.taps


# More connections than a picture can show (and than matplotlib draws in reasonable time).
MAX_EDGES = 10_000


def _check_edges(edges: int, what: str, where: str) -> None:
    if edges > MAX_EDGES:
        raise ValueError(
            f"{where}: {what} make {edges:,} connections, more than the {MAX_EDGES:,} a picture "
            f"can show"
        )


def dense_wiring(n_in: int, n_out: int) -> Wiring:
    """Every output reads every input with a weight of its own: ``n_out x n_in`` weights."""
    return _dense_wiring(n_in, n_out, "dense_wiring")


def _dense_wiring(n_in: int, n_out: int, where: str) -> Wiring:
    check_int(n_in, "n_in", where)
    check_int(n_out, "n_out", where)
    _check_edges(n_in * n_out, f"n_in={n_in} and n_out={n_out}", where)
    edges = tuple((i, j, i, j) for i in range(n_out) for j in range(n_in))
    step = (n_in - 1) / max(n_out - 1, 1)
    out_x = tuple(i * step if n_out > 1 else (n_in - 1) / 2 for i in range(n_out))
    return Wiring(n_in, n_out, n_out, n_in, edges, out_x, "fully connected")


def bank_wiring(
    n_in: int,
    kernel_size: int,
    grid: int | None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> Wiring:
    """A sliding kernel over ``n_in`` inputs; output ``i`` uses kernel ``i mod grid``.

    ``grid=1`` is a convolution, ``grid=t`` a tiled convolution and ``grid=None`` a locally
    connected layer (a kernel per output).
    """
    return _bank_wiring(n_in, kernel_size, grid, stride, padding, dilation, "bank_wiring")


def _bank_wiring(
    n_in: int,
    kernel_size: int,
    grid: int | None,
    stride: int,
    padding: int,
    dilation: int,
    where: str,
) -> Wiring:
    for name, value in (
        ("n_in", n_in),
        ("kernel_size", kernel_size),
        ("stride", stride),
        ("dilation", dilation),
    ):
        check_int(value, name, where)
    check_int(padding, "padding", where, minimum=0)
    if grid is not None:
        check_int(grid, "grid", where)
    extent = dilation * (kernel_size - 1) + 1
    if extent > n_in + 2 * padding:
        raise ValueError(
            f"{where}: the kernel extent {extent} (kernel_size={kernel_size}, "
            f"dilation={dilation}) is larger than the padded input, n_in + 2*padding = {n_in} + "
            f"2*{padding}"
        )
    n_out = (n_in + 2 * padding - extent) // stride + 1
    _check_edges(n_out * kernel_size, f"n_in={n_in} and kernel_size={kernel_size}", where)
    kernels = n_out if grid is None else min(grid, n_out)
    edges = []
    for i in range(n_out):
        for k in range(kernel_size):
            j = i * stride - padding + k * dilation
            if 0 <= j < n_in:
                edges.append((i, j, i if grid is None else i % grid, k))
    out_x = tuple(i * stride - padding + (extent - 1) / 2 for i in range(n_out))
    title = (
        "locally connected"
        if grid is None
        else "convolution"
        if grid == 1
        else f"tiled convolution, t = {grid}"
    )
    return Wiring(n_in, n_out, kernels, kernel_size, tuple(edges), out_x, title)


def wiring_of(layer: nn.Module, n_in: int | None = None) -> Wiring:
    """The wiring of a 1-D layer instance: ``Linear``, ``Conv1d``, ``TiledConv1d`` or
    ``LocallyConnected1d``. ``n_in`` is the input length (a ``LocallyConnected1d`` knows it)."""
    return _wiring_of(layer, n_in, "wiring_of")


def _wiring_of(layer: nn.Module, n_in: int | None, where: str) -> Wiring:
    if isinstance(layer, nn.Module):
        check_initialised(layer, "layer", where)
    if n_in is not None:
        check_int(n_in, "n_in", where)
    if isinstance(layer, nn.Linear):
        if n_in is not None and n_in != layer.in_features:
            raise ValueError(
                f"{where}: n_in must be the Linear's in_features={layer.in_features} (or None), "
                f"got {n_in}"
            )
        wiring = _dense_wiring(layer.in_features, layer.out_features, where)
        return replace(wiring, title=f"Linear({layer.in_features}, {layer.out_features})")
    try:
        connectivity = Connectivity.of(layer)
    except TypeError:
        connectivity = None
    if connectivity is None or connectivity.map.soft:
        raise TypeError(
            f"{where}: layer must be Linear, Conv1d, TiledConv1d, LocallyConnected1d or another "
            f"layer of locality with a kernel map, got {type(layer).__name__}"
        )
    if connectivity.d != 1:
        raise ValueError(
            f"{where}: layer must be 1-D, got a {connectivity.d}-D "
            f"{type(layer).__name__} (use tile_map_figure for 2-D layers)"
        )
    if connectivity.input_size is not None:
        if n_in is not None and n_in != connectivity.input_size[0]:
            raise ValueError(
                f"{where}: n_in must be the layer's input_size {connectivity.input_size[0]} (or "
                f"None), got {n_in}"
            )
        n_in = connectivity.input_size[0]
    if n_in is None:
        raise ValueError(f"{where}: n_in (the input length) is needed for {type(layer).__name__}")
    (k,), (s,), (dl,) = connectivity.kernel_size, connectivity.stride, connectivity.dilation
    ((before, _),) = connectivity.padding
    # a kernel per output (grid None) unless the map repeats: then kernel i mod grid
    periodic = isinstance(connectivity.map, Periodic) and connectivity.kind != "locally_connected"
    grid = connectivity.bank_shape[0] if periodic else None
    wiring = _bank_wiring(n_in, k, grid, s, before, dl, where)
    if not periodic and connectivity.kind != "locally_connected":
        index = connectivity.kernel_index((wiring.n_out,)).tolist()
        edges = tuple((i, j, index[i], tap) for i, j, _, tap in wiring.edges)
        title = connectivity.kind.replace("_", " ")
        wiring = replace(wiring, edges=edges, kernels=connectivity.num_kernels, title=title)
    return replace(wiring, title=f"{type(layer).__name__}: {wiring.title}")


_OUT_Y, _NODE = 2.0, 0.16
_SWATCH = 0.32


def draw_wiring(wiring: Wiring, ax: Axes | None = None, caption: str | None = None) -> Axes:
    """Draw ``wiring`` on ``ax`` (a new figure's axes when ``None``) and return the axes.

    ``caption`` goes under the weight bank; by default it counts the weights.
    """
    where = "draw_wiring"
    if not isinstance(wiring, Wiring):
        raise TypeError(f"{where}: wiring must be a Wiring, got {type(wiring).__name__}")
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"{where}: ax must be matplotlib Axes or None, got {type(ax).__name__}")
    if caption is not None and not isinstance(caption, str):
        raise TypeError(f"{where}: caption must be a str or None, got {type(caption).__name__}")
    if ax is None:
        ax = Figure(figsize=(max(4.0, 0.55 * wiring.n_in + 1.5), 4.2)).add_subplot()
    colour = {
        (kern, tap): weight_colour(kern, wiring.kernels, tap, wiring.taps)
        for kern in range(wiring.kernels)
        for tap in range(wiring.taps)
    }
    for i, j, kern, tap in wiring.edges:
        ax.plot(
            [j, wiring.out_x[i]],
            [0, _OUT_Y],
            color=colour[kern, tap],
            lw=2.2,
            solid_capstyle="round",
            zorder=1,
        )
    node: dict[str, Any] = {
        "s": 140,
        "c": "white",
        "edgecolors": "#333333",
        "linewidths": 1.3,
        "zorder": 3,
    }
    ax.scatter(range(wiring.n_in), [0] * wiring.n_in, **node)
    ax.scatter(wiring.out_x, [_OUT_Y] * wiring.n_out, **node)
    left = min(0.0, min(wiring.out_x)) - 0.9
    ax.text(left, 0, "input", ha="right", va="center", fontsize=9, color="#333333")
    ax.text(left, _OUT_Y, "output", ha="right", va="center", fontsize=9, color="#333333")

    # The weight bank: one swatch per distinct weight, a kernel per row.
    width = wiring.taps * _SWATCH
    x0 = (wiring.n_in - 1) / 2 - width / 2
    top = -0.55
    for (kern, tap), rgb in colour.items():
        ax.add_patch(
            Rectangle(
                (x0 + tap * _SWATCH, top - (kern + 1) * _SWATCH),
                _SWATCH,
                _SWATCH,
                facecolor=rgb,
                edgecolor="white",
                lw=0.6,
            )
        )
    bottom = top - wiring.kernels * _SWATCH
    if caption is None:
        caption = _count_caption(wiring)
    ax.text((wiring.n_in - 1) / 2, bottom - 0.25, caption, ha="center", va="top", fontsize=10)
    ax.set_title(wiring.title, fontsize=11)
    right = max(wiring.n_in - 1.0, max(wiring.out_x)) + 0.5
    ax.set_xlim(left - 1.4, right)
    ax.set_ylim(bottom - 0.9, _OUT_Y + 0.4)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _count_caption(wiring: Wiring) -> str:
    if wiring.kernels == 1:
        shape = f"1 kernel x {wiring.taps}"
    elif wiring.title.startswith("fully connected"):
        shape = f"{_plural(wiring.n_out, 'output')} x {_plural(wiring.n_in, 'input')}"
    else:
        shape = f"{wiring.kernels} kernels x {wiring.taps}"
    return f"{wiring.weights} parameters ({shape})"


def four_panel_figure(n_in: int = 8, kernel_size: int = 3, tile_size: int = 2) -> Figure:
    """Note 000's table as pictures: dense, locally connected, tiled and convolution.

    The same ``n_in`` inputs and the same outputs in all four panels (the dense layer has as
    many outputs as the others); only the sharing of weights differs.
    """
    where = "four_panel_figure"
    check_int(tile_size, "tile_size", where)
    local = _bank_wiring(n_in, kernel_size, None, 1, 0, 1, where)
    panels = [
        _dense_wiring(n_in, local.n_out, where),
        local,
        _bank_wiring(n_in, kernel_size, tile_size, 1, 0, 1, where),
        _bank_wiring(n_in, kernel_size, 1, 1, 0, 1, where),
    ]
    # Wide enough for every input's label at any n_in (--inputs 30 squashed a fixed width).
    figure = Figure(figsize=(max(11.0, 2 * (0.3 * n_in + 0.8)), 7.4), layout="constrained")
    figure.suptitle(
        f"Four ways to connect {_plural(n_in, 'input')} to {_plural(local.n_out, 'output')} "
        f"(kernel {kernel_size}; one colour per distinct weight)",
        fontsize=12,
    )
    axes = list(figure.subplots(2, 2).flat)
    for ax, wiring in zip(axes, panels, strict=True):
        draw_wiring(wiring, ax)
    # One vertical scale for the two panels of a row, so that their nodes line up.
    for pair in (axes[:2], axes[2:]):
        bottom = min(ax.get_ylim()[0] for ax in pair)
        for ax in pair:
            ax.set_ylim(bottom, ax.get_ylim()[1])
    return figure


def layer_figure(layer: nn.Module, n_in: int | None = None) -> Figure:
    """The wiring of one 1-D layer instance (see ``wiring_of``), one channel shown.

    With several channels, each edge stands for ``out_channels x in_channels / groups``
    weights; the caption gives the layer's real parameter count.
    """
    wiring = _wiring_of(layer, n_in, "layer_figure")
    params = sum(p.numel() for p in layer.parameters())
    caption = _count_caption(wiring).replace(" parameters", " weights shown")
    connectivity = Connectivity.of(layer)
    if connectivity.d > 0:
        per_swatch = connectivity.out_channels * connectivity.in_channels // connectivity.groups
        if per_swatch > 1:
            caption += (
                f"\neach stands for {connectivity.out_channels} x "
                f"{connectivity.in_channels // connectivity.groups} "
                f"channel weights: {wiring.weights * per_swatch:,} weights"
            )
    caption += f"\nthe layer holds {params:,} parameters (with biases)"
    ax = draw_wiring(wiring, caption=caption)
    figure = ax.figure
    assert isinstance(figure, Figure)
    return figure
