"""Where each score-map cell looks: the input box of every cell, from the network's ``Geometry``.

``Geometry`` (output stride, receptive field, offset) is composed layer by layer in
``locality.geometry``, the one copy of that formula; it is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from locality._arguments import check_shape
from locality._memory import check_allocation
from locality.geometry import Geometry

__all__ = ["Geometry", "WindowBoxes", "window_boxes"]


class WindowBoxes(NamedTuple):
    """Result of ``window_boxes``.

    Attributes:
        boxes: ``(*output_size, 2 * d)`` int64: ``(start_0, ..., start_{d-1}, stop_0, ...,
            stop_{d-1})`` in the input's dimension order (for 2-D: ``(top, left, bottom, right)``),
            stops exclusive.
        inside: ``(*output_size,)`` bool: the box lies within the input, so padding at the image
            border cannot reach the cell.
    """

    boxes: torch.Tensor
    inside: torch.Tensor


def window_boxes(
    geometry: Geometry, output_size: Sequence[int], input_size: Sequence[int]
) -> WindowBoxes:
    """The input box each score-map cell sees, from the network's stride, field and offset.

    For a backbone without padding the box of cell ``i`` is exactly the training-size window at
    ``i * stride``, and the cell equals the classifier evaluated on that window. With padding,
    the box is larger than the window and the cell equals the classifier head slid over the
    backbone's feature map instead; ``inside`` marks the cells untouched by the image border.
    A network whose field is smaller than its training window (a strided layer that skips the
    window's last positions) can give more cells than there are whole windows: the extra cells'
    boxes lie inside the image, their training windows do not.
    """
    where = "window_boxes"
    if not isinstance(geometry, Geometry):
        raise TypeError(
            f"{where}: geometry must be a Geometry (a fully_convolutional() model's .geometry), "
            f"got {type(geometry).__name__}"
        )
    d = len(geometry.stride)
    out = check_shape(output_size, "output_size", where, length=d)
    size = check_shape(input_size, "input_size", where, length=d)
    check_allocation((*out, 2 * d), torch.int64, None, where)
    axes = [
        o + torch.arange(n) * s
        for o, n, s in zip(geometry.offset, out, geometry.stride, strict=True)
    ]
    starts = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    stops = starts + torch.tensor(geometry.receptive_field)
    inside = ((starts >= 0) & (stops <= torch.tensor(size))).all(-1)
    return WindowBoxes(torch.cat([starts, stops], dim=-1), inside)
