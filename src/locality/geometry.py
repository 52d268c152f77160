"""Sliding-window geometry: where one layer's outputs look, and how that composes through a network.

One layer slides a kernel of size ``k`` with stride ``s``, dilation ``r`` and ``(before, after)``
padding: output position ``i`` reads the input coordinates ``i s - before + t r`` for taps
``t < k`` (a ``Sliding``). Composed layer by layer (Araujo, Norris and Sim, "Computing receptive
fields of convolutional neural networks", Distill 2019), a network of jump (cumulative stride)
``J``, field ``F`` and start ``S`` followed by one more layer gives

    J' = J s,    F' = F + (k - 1) r J,    S' = S - before J,

per spatial dimension (a ``Geometry``). This is the only copy of that formula: the analyses
(``locality.analysis.receptive_field``) and the conversions (``locality.convert``) both read it
from here. Sharing weights changes what a unit computes, never where it looks, so every kind of
connectivity layer has the geometry of the convolution with its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from locality._arguments import ntuple, output_size

__all__ = ["POOLS", "Sliding", "Geometry", "pool_sliding"]

# The torch.nn poolings that slide a window, with the geometry of a convolution.
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


@dataclass(frozen=True)
class Sliding:
    """The geometry of one sliding-window layer, per spatial dimension.

    Attributes:
        kernel_size: taps of the window.
        stride: step between neighbouring outputs, in input positions.
        padding: ``(before, after)`` amounts.
        dilation: step between taps.
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]

    @property
    def extent(self) -> tuple[int, ...]:
        """Input positions spanned by one window: ``dilation * (kernel_size - 1) + 1``."""
        return tuple(r * (k - 1) + 1 for k, r in zip(self.kernel_size, self.dilation, strict=True))

    @property
    def leading_padding(self) -> tuple[int, ...]:
        return tuple(lo for lo, _ in self.padding)

    def output_size(self, input_size: Sequence[int], where: str = "") -> tuple[int, ...]:
        """``floor((n + before + after - extent) / stride) + 1`` per dimension."""
        return output_size(
            input_size, self.kernel_size, self.stride, self.padding, self.dilation, where=where
        )

    def window(self, position: Sequence[int]) -> tuple[range, ...]:
        """Input coordinates read by output ``position``, one tap each (may reach into padding)."""
        return tuple(
            range(p * s - lo, p * s - lo + r * (k - 1) + 1, r)
            for p, s, (lo, _), r, k in zip(
                position, self.stride, self.padding, self.dilation, self.kernel_size, strict=True
            )
        )


def pool_sliding(module: nn.Module, d: int) -> Sliding | None:
    """The ``Sliding`` of a ``torch.nn`` max or average pooling of ``d``-D input, else ``None``."""
    if not isinstance(module, POOLS):
        return None
    k = ntuple(module.kernel_size, d, "kernel_size")
    s = ntuple(module.stride if module.stride is not None else k, d, "stride")
    r = ntuple(getattr(module, "dilation", 1), d, "dilation")
    p = ntuple(module.padding, d, "padding", minimum=0)
    return Sliding(k, s, tuple((lo, lo) for lo in p), r)


@dataclass(frozen=True)
class Geometry:
    """Per spatial dimension: output ``stride``, ``receptive_field`` and ``offset`` of a network.

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

    def after(self, sliding: Sliding) -> Geometry:
        """``then`` for one ``Sliding`` layer."""
        return self.then(
            sliding.kernel_size, sliding.stride, sliding.dilation, sliding.leading_padding
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
