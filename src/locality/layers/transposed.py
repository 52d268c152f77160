"""Transposed locally connected and tiled layers: adjoints, as ``ConvTranspose*d`` of ``Conv*d``.

Decoders for aligned data (faces, fixed-camera images) need the adjoint of a locally connected
layer (pytorch/pytorch#15617): each input position ``p`` scatters through its own kernel
``weight[p]``, laid out as a ``ConvTranspose*d`` weight ``(C_in, C_out // groups, *k)``.

A transposed layer's ``connectivity`` is that of its adjoint (the layer it transposes): in and
out channels swapped, its positions are this layer's input positions, its input size this
layer's output size. Counts and maps read from it are this layer's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import fx, nn

from locality._arguments import IntOrTuple, Padding, ntuple
from locality.connectivity import Connectivity
from locality.functional import (
    locally_connected_transpose,
    tiled_conv_transpose,
    transpose_output_size,
)
from locality.layers._base import _ConnectivityNd

# Traced as one call (the ops' checks need concrete tensors), so models of these layers trace.
fx.wrap("locally_connected_transpose")
fx.wrap("tiled_conv_transpose")


class _TransposeNd(_ConnectivityNd):
    """Shared by both transposed kinds: the ConvTranspose weight layout, output padding and
    initialisation."""

    _defaults = {"stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "groups": 1}

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple,
        padding: Padding,
        output_padding: IntOrTuple,
        dilation: IntOrTuple,
        groups: int,
        bias: bool,
        shared_bias: bool,
        device=None,
        dtype=None,
    ) -> None:
        where = type(self).__name__
        if isinstance(padding, str):
            raise ValueError(
                f"{where}: padding must be an int, a tuple or (before, after) pairs (as for "
                f"torch.nn.ConvTranspose{self._d}d), got {padding!r}"
            )
        self.output_padding = ntuple(
            output_padding, self._d, "output_padding", minimum=0, where=where
        )
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            shared_bias=shared_bias,
            padding_mode="zeros",
            device=device,
            dtype=dtype,
        )

    def _output_for(self, input_size: Sequence[int]) -> tuple[int, ...]:
        return transpose_output_size(
            input_size,
            self.kernel_size,
            self.stride,
            self._pads,
            self.output_padding,
            self.dilation,
            where=type(self).__name__,
        )

    def _weight_shape(self) -> tuple[int, ...]:
        """(*bank_shape, in_channels, out_channels // groups, *kernel_size): ConvTranspose's."""
        kernel = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        return (*self._bank_shape(), *kernel)

    def reset_parameters(self) -> None:
        """``U(-1/sqrt(fan), 1/sqrt(fan))`` with ``fan = C_out / groups * prod(kernel_size)``,
        the bound ``torch.nn.ConvTranspose*d`` uses."""
        bound = 1.0 / math.sqrt(self.out_channels // self.groups * math.prod(self.kernel_size))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def _adjoint(self, input_size: tuple[int, ...] | None) -> Connectivity:
        return Connectivity(
            kind=self._kind,
            in_channels=self.out_channels,
            out_channels=self.in_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self._pads,
            dilation=self.dilation,
            bank_shape=self._bank_shape(),
            groups=self.groups,
            input_size=input_size,
            bias=self.bias is not None,
            shared_bias=self.shared_bias,
            bias_shape=self._bias_shape(),
        )


class _LocallyConnectedTransposeNd(_TransposeNd):
    _kind = "locally_connected_transpose"
    input_size: tuple[int, ...]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        input_size: IntOrTuple,
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
        self.input_size = ntuple(input_size, self._d, "input_size", where=type(self).__name__)
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
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

    @property
    def output_size(self) -> tuple[int, ...]:
        """Spatial size of the output, as ``torch.nn.ConvTranspose*d`` computes it."""
        return self._output_for(self.input_size)

    _fixed_size_reason = "every input position has its own kernel, so the input size is fixed"

    def _bank_shape(self) -> tuple[int, ...]:
        return self.input_size

    def _required_input_size(self) -> tuple[int, ...] | None:
        return self.input_size

    def _bias_shape(self) -> tuple[int, ...]:
        """(out_channels,) if shared, else (*output_size, out_channels)."""
        if self.shared_bias:
            return (self.out_channels,)
        return (*self.output_size, self.out_channels)

    @property
    def connectivity(self) -> Connectivity:
        """The adjoint's: a locally connected layer from this output to this input (see the
        module docstring)."""
        return self._adjoint(self.output_size)

    def kernels(self, output_size: Sequence[int] | None = None) -> torch.Tensor:
        """The scatter kernel of every input position: ``weight`` itself,
        ``(*input_size, C_in, C_out // groups, *k)``."""
        if output_size is not None and tuple(output_size) != self.input_size:
            raise ValueError(
                f"{type(self).__name__}.kernels: one kernel per input position "
                f"{self.input_size}, got output_size {tuple(output_size)}"
            )
        return self.weight

    def _apply_op(self, input: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return locally_connected_transpose(
            input,
            self.weight,
            bias,
            stride=self.stride,
            padding=self._pads,
            output_padding=self.output_padding,
            dilation=self.dilation,
            groups=self.groups,
        )

    def _repr_fields(self) -> list[str]:
        return [f"input_size={self.input_size}"]


class _TiledConvTransposeNd(_TransposeNd):
    _kind = "tiled_transpose"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        tile_size: IntOrTuple,
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
        self.tile_size = ntuple(tile_size, self._d, "tile_size", where=type(self).__name__)
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
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

    def _bank_shape(self) -> tuple[int, ...]:
        return self.tile_size

    @property
    def connectivity(self) -> Connectivity:
        """The adjoint's: a tiled convolution from this output to this input."""
        return self._adjoint(None)

    def _apply_op(self, input: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return tiled_conv_transpose(
            input,
            self.weight,
            bias,
            stride=self.stride,
            padding=self._pads,
            output_padding=self.output_padding,
            dilation=self.dilation,
            groups=self.groups,
        )

    def _repr_fields(self) -> list[str]:
        return [f"tile_size={self.tile_size}"]


class LocallyConnectedTranspose1d(_LocallyConnectedTransposeNd):
    _d = 1


class LocallyConnectedTranspose2d(_LocallyConnectedTransposeNd):
    _d = 2


class LocallyConnectedTranspose3d(_LocallyConnectedTransposeNd):
    _d = 3


class TiledConvTranspose1d(_TiledConvTransposeNd):
    _d = 1


class TiledConvTranspose2d(_TiledConvTransposeNd):
    _d = 2


class TiledConvTranspose3d(_TiledConvTransposeNd):
    _d = 3


_ARGS = """
    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: size of each kernel (int or tuple).
        {fifth}
        stride: as in ``torch.nn.ConvTranspose{d}d``.
        padding: ints or ``(before, after)`` pairs removed from the output's borders, as in
            ``torch.nn.ConvTranspose{d}d``.
        output_padding: extra size at the output's end, smaller than stride or dilation.
        dilation: as in ``torch.nn.ConvTranspose{d}d``.
        groups: as in ``torch.nn.ConvTranspose{d}d``.
        bias: add a learnable bias. Default ``True``.
        shared_bias: one bias per output channel instead of {bias_what}.

    Shape:
        - Input: ``(N, C_in, {spatial})`` or ``(C_in, {spatial})``.
        - Output: ``(N, C_out, {spatial_out})`` with ``out[i] = (in[i] - 1) * stride[i] -
          before[i] - after[i] + dilation[i] * (kernel_size[i] - 1) + output_padding[i] + 1``.

    Attributes:
        weight: ``{weight}``; ``weight[p]`` is a ``ConvTranspose{d}d`` weight. Initialised from
            ``U(-1/sqrt(fan), 1/sqrt(fan))``, ``fan = C_out / groups * prod(kernel_size)``, as
            ``ConvTranspose{d}d``.
        bias: ``{bias}``, or ``(C_out,)`` with ``shared_bias=True``; same init.
"""
_SPATIAL = {1: ("L", "L_out"), 2: ("H, W", "H_out, W_out"), 3: ("D, H, W", "D_out, H_out, W_out")}
for _d in (1, 2, 3):
    _sizes = ", ".join(["4"] * _d)
    LocallyConnectedTranspose = {
        1: LocallyConnectedTranspose1d,
        2: LocallyConnectedTranspose2d,
        3: LocallyConnectedTranspose3d,
    }[_d]
    LocallyConnectedTranspose.__doc__ = (
        f"Applies a {_d}-D transposed locally connected layer: the adjoint of "
        f"``LocallyConnected{_d}d``.\n\n"
        f"    As ``ConvTranspose{_d}d`` is the adjoint of ``Conv{_d}d``: input position ``p``\n"
        f"    scatters through its own kernel ``weight[p]`` onto the output window a locally\n"
        f"    connected layer at ``p`` reads, so ``<LC(x), y> == <x, LCT(y)>`` with shared\n"
        f"    weights; with one kernel everywhere it is ``ConvTranspose{_d}d``.\n"
        + _ARGS.format(
            d=_d,
            fifth="input_size: spatial size of the input (int or tuple); fixed, one kernel "
            "per input position.",
            bias_what="one per channel and output position",
            spatial=_SPATIAL[_d][0],
            spatial_out=_SPATIAL[_d][1],
            weight="(*input_size, C_in, C_out // groups, *kernel_size)",
            bias="(*output_size, C_out)",
        )
        + "\n    Example::\n\n"
        f"        >>> layer = LocallyConnectedTranspose{_d}d(8, 4, 3, input_size={(4,) * _d}, "
        f"stride=2)\n"
        f"        >>> layer(torch.randn(2, 8, {_sizes})).shape\n"
        f"        torch.Size([2, 4, {', '.join(['9'] * _d)}])\n"
    )
    TiledConvTranspose = {
        1: TiledConvTranspose1d,
        2: TiledConvTranspose2d,
        3: TiledConvTranspose3d,
    }[_d]
    TiledConvTranspose.__doc__ = (
        f"Applies a {_d}-D transposed tiled convolution: the adjoint of ``TiledConv{_d}d``.\n\n"
        f"    Input position ``p`` scatters through ``weight[p mod tile_size]``; "
        f"``tile_size=1`` is\n    ``ConvTranspose{_d}d``. Works on inputs of any size.\n"
        + _ARGS.format(
            d=_d,
            fifth="tile_size: period of the kernel map over input positions (int or tuple).",
            bias_what="one per channel and output tile offset (output position q adds "
            "bias[q mod tile_size])",
            spatial=_SPATIAL[_d][0],
            spatial_out=_SPATIAL[_d][1],
            weight="(*tile_size, C_in, C_out // groups, *kernel_size)",
            bias="(*tile_size, C_out)",
        )
        + "\n    Example::\n\n"
        f"        >>> layer = TiledConvTranspose{_d}d(8, 4, 3, tile_size=2, stride=2)\n"
        f"        >>> layer(torch.randn(2, 8, {_sizes})).shape\n"
        f"        torch.Size([2, 4, {', '.join(['9'] * _d)}])\n"
    )
del LocallyConnectedTranspose, TiledConvTranspose
