"""The receptive field of a stack of 2-D layers, drawn on the input grid.

One unit is followed through the stack: the last layer's unit nearest the chosen centre, then,
layer by layer going back, the unit that it reads from (among those whose windows lie inside
its own, the one nearest its centre). Their windows are drawn as nested boxes that grow with
depth (and with stride).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from locality._arguments import check_module, check_shape
from locality.analysis.receptive_field import ReceptiveField
from locality.analysis.summary import LayerRow, summary
from locality.draw.palette import kernel_colour

__all__ = ["receptive_field_figure"]

# Larger inputs are drawn as more grid lines than anyone can see.
MAX_SIDE = 512


def _point(centre: object, where: str) -> tuple[float, float]:
    """``centre`` as (row, column): two finite numbers."""
    values = tuple(centre) if isinstance(centre, (tuple, list)) else ()
    numbers = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in values]
    if len(values) != 2 or not all(numbers):
        raise TypeError(f"{where}: centre must be (row, column), two numbers, got {centre!r}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{where}: centre must be finite, got {centre!r}")
    return values[0], values[1]


def unit_windows(
    layers: Sequence[tuple[LayerRow, ReceptiveField]], point: Sequence[float]
) -> list[tuple[range, ...]]:
    """The input windows of one unit followed through ``layers`` (first to last), nested.

    The last layer's unit is the one centred nearest ``point``; going back, each layer's unit is
    one the next unit reads from: among the units whose windows lie inside the next unit's
    window, the one centred nearest its centre (nearest ``point`` if none lies inside, as at a
    padded border).
    """
    windows: list[tuple[range, ...]] = []
    target: tuple[range, ...] | None = None
    for row, field in reversed(layers):
        assert field.size is not None  # whole-input fields are left out by the caller
        position = []
        for axis, n in enumerate(row.output_shape[1:]):
            a, j, r = field.start[axis], field.jump[axis], field.size[axis]
            centre = (
                point[axis] if target is None else (target[axis].start + target[axis].stop - 1) / 2
            )
            inside = (
                range(n)
                if target is None
                else [
                    q for q in range(n) if target[axis].start <= a + q * j <= target[axis].stop - r
                ]
            )
            candidates = inside or range(n)
            position.append(min(candidates, key=lambda q: abs(a + q * j + (r - 1) / 2 - centre)))
        target = field.window(position)
        windows.append(target)
    return windows[::-1]


def receptive_field_figure(
    model: nn.Module, input_shape: Sequence[int], centre: Sequence[float] | None = None
) -> Figure:
    """Draw, on the ``H x W`` input, the window of one unit after each layer of ``model``.

    Args:
        model: a module with 2-D sliding-window layers (convolutions, tiled, locally
            connected, pooling); rows of its ``summary`` are used.
        input_shape: ``(C, H, W)`` without the batch dimension.
        centre: input ``(row, column)`` the units are picked around; default the middle.
    """
    where = "receptive_field_figure"
    check_module(model, "model", where)
    _, height, width = check_shape(input_shape, "input_shape (C, H, W)", where, length=3)
    if max(height, width) > MAX_SIDE:
        raise ValueError(
            f"{where}: input_shape {tuple(input_shape)} is too large to draw cell by cell (H and "
            f"W at most {MAX_SIDE})"
        )
    point = ((height - 1) / 2, (width - 1) / 2) if centre is None else _point(centre, where)
    try:
        layer_rows = summary(model, input_shape).rows
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error
    layers: list[tuple[LayerRow, ReceptiveField]] = []
    for row in layer_rows:
        field = row.receptive_field
        if field is None or field.size is None or row.kind == "other" and not layers:
            continue
        if layers and layers[-1][1] == field:
            continue
        layers.append((row, field))
    if not layers:
        raise ValueError(f"{where}: the model has no 2-D sliding-window layer to draw")
    steps = [
        (row, field, window)
        for (row, field), window in zip(layers, unit_windows(layers, point), strict=True)
    ]

    figure = Figure(figsize=(7.4, 6.2), layout="constrained")
    ax = figure.add_subplot()
    ax.add_patch(Rectangle((0, 0), width, height, facecolor="#f1f1f1", edgecolor="#555555", lw=1))
    for x in range(1, width):
        ax.plot([x, x], [0, height], color="white", lw=0.7)
    for y in range(1, height):
        ax.plot([0, width], [y, y], color="white", lw=0.7)
    lo_x = lo_y = 0.0
    hi_x, hi_y = float(width), float(height)
    for number, (row, field, (rows, cols)) in enumerate(steps):
        colour = kernel_colour(number, max(len(steps), 2))
        top = height - rows.start  # row 0 is drawn at the top, as in an image
        inset = 0.06 * number  # keeps coinciding edges of successive boxes apart
        ax.add_patch(
            Rectangle(
                (cols.start + inset, top - len(rows) + inset),
                len(cols) - 2 * inset,
                len(rows) - 2 * inset,
                facecolor=colour,
                alpha=0.10,
                edgecolor="none",
                zorder=2 + number,
            )
        )
        ax.add_patch(
            Rectangle(
                (cols.start + inset, top - len(rows) + inset),
                len(cols) - 2 * inset,
                len(rows) - 2 * inset,
                facecolor="none",
                edgecolor=colour,
                lw=2.6,
                zorder=10 + len(steps) - number,
            )
        )
        size = f"{len(rows)}x{len(cols)}"
        stride = "x".join(map(str, field.jump)) if len(set(field.jump)) > 1 else str(field.jump[0])
        layer = f"layer {row.name} ({row.type})" if row.name else row.type
        ax.plot([], [], color=colour, lw=3, label=f"after {layer}: {size}, stride {stride}")
        lo_x, lo_y = min(lo_x, cols.start), min(lo_y, top - len(rows))
        hi_x, hi_y = max(hi_x, cols.stop), max(hi_y, top)
    ax.set_xlim(lo_x - 0.5, hi_x + 0.5)
    ax.set_ylim(lo_y - 0.5, hi_y + 0.5)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=9, frameon=False)
    ax.set_title(
        f"Receptive field of one unit, layer by layer, on the {height}x{width} input\n"
        f"(grey: the input; a box past its edge reaches into padding)",
        fontsize=11,
    )
    return figure
