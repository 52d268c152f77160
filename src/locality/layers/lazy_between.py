"""Lazy region-shared, low-rank and transposed locally connected layers.

These kinds fix their input size, so, as ``LazyLocallyConnected*d``, both ``in_channels`` and
``input_size`` come from the first input (or a loaded state dict); the module then becomes its
non-lazy class. ``MappedConv*d`` needs no lazy variant for its size: its ``kernel_map`` fixes
the output size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from locality._arguments import IntOrTuple, Padding
from locality.layers.lazy import _LazyConnectivity, _LazyInputSize
from locality.layers.lowrank import (
    LowRankLocallyConnected1d,
    LowRankLocallyConnected2d,
    LowRankLocallyConnected3d,
    _LowRankLocallyConnectedNd,
)
from locality.layers.region import RegionConv1d, RegionConv2d, RegionConv3d, _RegionConvNd
from locality.layers.transposed import (
    LocallyConnectedTranspose1d,
    LocallyConnectedTranspose2d,
    LocallyConnectedTranspose3d,
    _LocallyConnectedTransposeNd,
)

__all__ = [
    "LazyRegionConv1d",
    "LazyRegionConv2d",
    "LazyRegionConv3d",
    "LazyLowRankLocallyConnected1d",
    "LazyLowRankLocallyConnected2d",
    "LazyLowRankLocallyConnected3d",
    "LazyLocallyConnectedTranspose1d",
    "LazyLocallyConnectedTranspose2d",
    "LazyLocallyConnectedTranspose3d",
]


class _LazyRegionConvNd(_LazyInputSize, _RegionConvNd):  # type: ignore[misc]
    def __init__(
        self,
        out_channels: int,
        kernel_size: IntOrTuple,
        regions: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        shared_bias: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        # in_channels=groups and input_size=1 stand in until the first input says them.
        super().__init__(
            groups,
            out_channels,
            kernel_size,
            1,
            regions,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            shared_bias=shared_bias,
            device=device,
            dtype=dtype,
        )
        self.in_channels, self.input_size = 0, None


class _LazyLowRankLocallyConnectedNd(_LazyInputSize, _LowRankLocallyConnectedNd):  # type: ignore[misc]
    def __init__(
        self,
        out_channels: int,
        kernel_size: IntOrTuple,
        rank: int,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        shared_bias: bool = False,
        normalize: str | None = "softmax",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            groups,
            out_channels,
            kernel_size,
            1,
            rank,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            shared_bias=shared_bias,
            normalize=normalize,
            device=device,
            dtype=dtype,
        )
        self.in_channels, self.input_size = 0, None

    def _allocate(self, bias: bool, factory_kwargs: dict) -> None:
        self.combining_weights = nn.UninitializedParameter(**factory_kwargs)  # type: ignore[assignment]
        _LazyInputSize._allocate(self, bias, factory_kwargs)

    def initialize_parameters(self, input: torch.Tensor) -> None:
        if isinstance(self.combining_weights, nn.UninitializedParameter):
            sizes = self._inferred_sizes(input)
            out = self._sliding.output_size(sizes["input_size"], where=type(self).__name__)
            with torch.no_grad():
                self.combining_weights.materialize((*out, self.rank))
        super().initialize_parameters(input)


class _LazyLocallyConnectedTransposeNd(_LazyInputSize, _LocallyConnectedTransposeNd):  # type: ignore[misc]
    def __init__(
        self,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        output_padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        shared_bias: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            groups,
            out_channels,
            kernel_size,
            1,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            shared_bias=shared_bias,
            device=device,
            dtype=dtype,
        )
        self.in_channels, self.input_size = 0, None

    def _inferred_sizes(self, input: torch.Tensor) -> dict[str, Any]:
        # Channels only: the conv-style input-size check does not apply to a transposed layer.
        sizes = _LazyConnectivity._inferred_sizes(self, input)
        input_size = tuple(int(n) for n in input.shape[-self._d :])
        self._output_for(input_size)  # the transposed output size, checked
        return {**sizes, "input_size": input_size}

    def _sizes_from_weight(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """``(*input_size, C_in, C_out // groups, *k)`` says both sizes."""
        return {"in_channels": shape[self._d], "input_size": tuple(shape[: self._d])}


_DOC = """A ``{name}{d}d`` that takes ``in_channels`` and ``input_size`` from its first input.

    Takes the arguments of ``{name}{d}d`` except those two, and becomes a ``{name}{d}d`` after
    the first forward pass (or after ``load_state_dict``).

    Example::

        >>> layer = Lazy{name}{d}d(8, 3{extra})
        >>> layer(torch.randn(2, 4, {size})).shape
        torch.Size([2, 8, {out}])
        >>> type(layer).__name__, layer.input_size
        ('{name}{d}d', {input_size})
    """

# Per kind: (extra constructor arguments, output size of a 6-wide input with kernel 3).
_EXAMPLE = {
    "RegionConv": (", regions=2", 4),
    "LowRankLocallyConnected": (", rank=2", 4),
    "LocallyConnectedTranspose": ("", 8),
}


def _lazy(base: type, target: Any) -> type:
    name, d = target.__name__[:-2], target._d
    extra, out = _EXAMPLE[name]
    doc = _DOC.format(
        name=name,
        d=d,
        extra=extra,
        size=", ".join(["6"] * d),
        out=", ".join([str(out)] * d),
        input_size=(6,) * d,
    )
    return type(
        f"Lazy{target.__name__}",
        (base,),
        {"_d": d, "cls_to_become": target, "__doc__": doc, "__module__": __name__},
    )


LazyRegionConv1d = _lazy(_LazyRegionConvNd, RegionConv1d)
LazyRegionConv2d = _lazy(_LazyRegionConvNd, RegionConv2d)
LazyRegionConv3d = _lazy(_LazyRegionConvNd, RegionConv3d)
LazyLowRankLocallyConnected1d = _lazy(_LazyLowRankLocallyConnectedNd, LowRankLocallyConnected1d)
LazyLowRankLocallyConnected2d = _lazy(_LazyLowRankLocallyConnectedNd, LowRankLocallyConnected2d)
LazyLowRankLocallyConnected3d = _lazy(_LazyLowRankLocallyConnectedNd, LowRankLocallyConnected3d)
LazyLocallyConnectedTranspose1d = _lazy(
    _LazyLocallyConnectedTransposeNd, LocallyConnectedTranspose1d
)
LazyLocallyConnectedTranspose2d = _lazy(
    _LazyLocallyConnectedTransposeNd, LocallyConnectedTranspose2d
)
LazyLocallyConnectedTranspose3d = _lazy(
    _LazyLocallyConnectedTransposeNd, LocallyConnectedTranspose3d
)
