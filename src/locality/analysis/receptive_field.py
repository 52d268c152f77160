"""Receptive fields: which input positions one output unit depends on, and the cumulative stride.

Composed layer by layer with the formula of ``locality.geometry`` (Araujo, Norris and Sim,
"Computing receptive fields of convolutional neural networks", Distill 2019), from each layer's
``Sliding`` (``locality.connectivity.sliding_of``). Every kind of layer has its convolution's
geometry: sharing weights changes what a unit computes, never where it looks. A dense layer
looks at the whole input.

The sizes are the theoretical ones: a field may reach past the input into the padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from locality.analysis.trace import example_input, left_unchanged, run_with_hooks
from locality.connectivity import sliding_of
from locality.geometry import Geometry, Sliding

__all__ = ["ReceptiveField", "geometry_of", "ReceptiveFieldTracker", "receptive_field"]


@dataclass(frozen=True)
class ReceptiveField:
    """The input window of one output unit, per spatial dimension.

    Attributes:
        size: extent of the window in input positions, or ``None`` when a dense layer (or a
            global pooling) has made every unit see the whole input.
        jump: cumulative stride: how far apart in the input two neighbouring outputs look
            (empty for the whole input).
        start: input coordinate where output position 0 starts looking (negative: padding;
            empty for the whole input).
    """

    size: tuple[int, ...] | None
    jump: tuple[int, ...]
    start: tuple[int, ...]

    @classmethod
    def of_input(cls, d: int) -> ReceptiveField:
        """The field of an input unit: itself."""
        return cls((1,) * d, (1,) * d, (0,) * d)

    @classmethod
    def whole_input(cls) -> ReceptiveField:
        """The field of a unit that sees every input position."""
        return cls(None, (), ())

    @property
    def whole(self) -> bool:
        """Whether every output unit sees the whole input."""
        return self.size is None

    def then(self, sliding: Sliding | None) -> ReceptiveField:
        """The field after one more layer; ``None`` means a dense (global) layer."""
        if sliding is None or self.size is None:
            return ReceptiveField.whole_input()
        if len(sliding.kernel_size) != len(self.jump):
            raise ValueError(
                f"ReceptiveField.then: a {len(sliding.kernel_size)}-D layer cannot follow a "
                f"{len(self.jump)}-D field"
            )
        after = Geometry(self.jump, self.size, self.start).after(sliding)
        return ReceptiveField(after.receptive_field, after.stride, after.offset)

    def window(self, position: Sequence[int]) -> tuple[range, ...]:
        """Input coordinates seen by the output at ``position`` (may reach into padding)."""
        if self.size is None:
            raise ValueError("ReceptiveField.window: this field is the whole input")
        if len(position) != len(self.jump):
            raise ValueError(
                f"ReceptiveField.window: position must have {len(self.jump)} coordinates, got "
                f"{tuple(position)}"
            )
        return tuple(
            range(a + p * j, a + p * j + r)
            for a, p, j, r in zip(self.start, position, self.jump, self.size, strict=True)
        )


_GLOBAL = (
    nn.Linear,
    nn.Bilinear,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)


def geometry_of(module: nn.Module, d: int) -> Sliding | None | Literal[False]:
    """The sliding-window geometry of ``module`` on a ``d``-D input.

    Returns a ``Sliding`` for convolutions (and every layer with a ``Connectivity``) and pooling,
    ``None`` for layers that see the whole input (dense, adaptive pooling), and ``False`` for
    anything else (its effect, if any, is not known here).
    """
    sliding = sliding_of(module, d)
    if sliding is not None:
        return sliding
    if isinstance(module, _GLOBAL):
        return None
    return False


class ReceptiveFieldTracker:
    """Follows receptive fields through a forward pass, fed by forward hooks.

    Each tensor a module produces is remembered with its field; a module's input is looked up
    by identity, so branches (a residual block's shortcut) are followed correctly. A tensor made
    by a plain function (``x + y``, ``torch.flatten``) is not seen; for it the most recent
    module output stands in, which is exact for a chain of modules.
    """

    def __init__(self, input: torch.Tensor) -> None:
        self._d = input.dim() - 2
        self._fields: dict[int, tuple[torch.Tensor, ReceptiveField | None]] = {
            id(input): (input, ReceptiveField.of_input(self._d))
        }
        self._last: ReceptiveField | None = ReceptiveField.of_input(self._d)

    def update(
        self, module: nn.Module, input: torch.Tensor, output: torch.Tensor
    ) -> ReceptiveField | None:
        """Record and return the field of ``output``; ``None`` when it cannot be known."""
        known = self._fields.get(id(input))
        field = known[1] if known is not None and known[0] is input else self._last
        geometry = geometry_of(module, self._d)
        if geometry is None:
            field = ReceptiveField.whole_input()
        elif geometry is False:
            if output.dim() == input.dim() and output.shape[2:] != input.shape[2:]:
                field = None  # an unknown layer that resamples: the field is lost from here on
        elif field is not None:
            same_rank = field.whole or len(field.jump) == len(geometry.kernel_size)
            # a reshape that changed the number of spatial dims loses the field
            field = field.then(geometry) if same_rank else None
        self._fields[id(output)] = (output, field)
        self._last = field
        return field


def receptive_field(model: nn.Module, input_shape: Sequence[int]) -> ReceptiveField | None:
    """The receptive field of ``model``'s output for one example of shape ``input_shape``.

    ``input_shape`` leaves out the batch dimension, e.g. ``(3, 224, 224)``. Runs one forward
    pass on the model's device (``"meta"`` works, for models too large to allocate), in eval
    mode; the model comes back unchanged (as for ``summary``). ``None`` when a layer of unknown
    geometry changes the spatial size.
    """
    x = example_input(model, input_shape, "receptive_field")
    tracker = ReceptiveFieldTracker(x)
    field: list[ReceptiveField | None] = [ReceptiveField.of_input(x.dim() - 2)]

    def record(name: str, module: nn.Module, input: torch.Tensor, output: torch.Tensor) -> None:
        field[0] = tracker.update(module, input, output)

    with left_unchanged(model) as run:
        run_with_hooks(run, x, record, "receptive_field")
    return field[0]
