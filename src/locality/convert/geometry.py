"""Where a score-map cell looks: output stride, receptive field and offset of a network.

Composed layer by layer (Araujo et al., "Computing receptive fields of convolutional neural
networks", Distill 2019): a layer with kernel ``k``, stride ``s``, dilation ``r`` and leading
padding ``p`` after a network of jump ``J``, field ``F`` and start ``S`` gives
``J' = J s``, ``F' = F + (k - 1) r J`` and ``S' = S - p J``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from locality._arguments import check_shape, ntuple, padding_amounts
from locality._memory import check_allocation
from locality.layers.local import _LocallyConnectedNd
from locality.layers.tiled import _TiledConvNd

__all__ = ["Geometry", "WindowBoxes", "window_boxes", "layer_geometry"]


@dataclass(frozen=True)
class Geometry:
    """Per spatial dimension: output ``stride``, ``receptive_field`` and ``offset``.

    Cell ``i`` of the output sees input coordinates ``[offset + i*stride, offset + i*stride +
    receptive_field)``; ``offset`` is negative when padding reaches outside the input.
    """

    stride: tuple[int, ...]
    receptive_field: tuple[int, ...]
    offset: tuple[int, ...]

    @classmethod
    def identity(cls, d: int) -> Geometry:
        return cls((1,) * d, (1,) * d, (0,) * d)

    def then(self, kernel_size, stride, dilation, leading_padding) -> Geometry:
        """The geometry after one more sliding layer."""
        return Geometry(
            tuple(j * s for j, s in zip(self.stride, stride, strict=True)),
            tuple(
                f + (k - 1) * r * j
                for f, k, r, j in zip(
                    self.receptive_field, kernel_size, dilation, self.stride, strict=True
                )
            ),
            tuple(
                o - p * j for o, p, j in zip(self.offset, leading_padding, self.stride, strict=True)
            ),
        )

    def union(self, other: Geometry) -> Geometry:
        """Geometry of a value computed from two branches (e.g. a residual sum): the joint field."""
        if self.stride != other.stride:
            raise ValueError(f"branches with different strides {self.stride} and {other.stride}")
        start = tuple(min(a, b) for a, b in zip(self.offset, other.offset, strict=True))
        stop = tuple(
            max(a + f, b + g)
            for a, f, b, g in zip(
                self.offset, self.receptive_field, other.offset, other.receptive_field, strict=True
            )
        )
        return Geometry(self.stride, tuple(e - s for s, e in zip(start, stop, strict=True)), start)


_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, _TiledConvNd, _LocallyConnectedNd)


def layer_geometry(module: nn.Module, d: int) -> tuple | None:
    """``(kernel_size, stride, dilation, leading_padding)`` of a sliding layer, else ``None``."""
    if isinstance(module, _CONVS):
        k, s, r = module.kernel_size, module.stride, module.dilation
        pads = padding_amounts(module.padding, tuple(k), tuple(s), tuple(r))
        return tuple(k), tuple(s), tuple(r), tuple(lo for lo, _ in pads)
    if isinstance(module, _POOLS):
        k = ntuple(module.kernel_size, d, "kernel_size")
        s = ntuple(module.stride if module.stride is not None else k, d, "stride")
        r = ntuple(getattr(module, "dilation", 1), d, "dilation")
        p = ntuple(module.padding, d, "padding", minimum=0)
        return k, s, r, p
    return None


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
