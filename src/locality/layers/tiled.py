"""Tiled convolution layers (Le et al., 2010): kernels shared between outputs a tile apart."""

from __future__ import annotations

import torch
from torch import fx

from locality._arguments import IntOrTuple, Padding, ntuple
from locality.functional import tiled_conv
from locality.layers._base import _ConnectivityNd

# Traced as one call (the op's checks need concrete tensors), so models of these layers trace.
fx.wrap("tiled_conv")


class _TiledConvNd(_ConnectivityNd):
    _kind = "tiled"
    _op = staticmethod(tiled_conv)  # for subclasses that call the op with other operands

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        tile_size: IntOrTuple,
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
        self.tile_size = ntuple(tile_size, self._d, "tile_size", where=type(self).__name__)
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
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )

    def _bank_shape(self) -> tuple[int, ...]:
        return self.tile_size

    def _apply_op(self, input: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return tiled_conv(
            input,
            self.weight,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
        )

    def _repr_fields(self) -> list[str]:
        return [f"tile_size={self.tile_size}"]


_SPATIAL = {1: ("L", "L_out"), 2: ("H, W", "H_out, W_out"), 3: ("D, H, W", "D_out, H_out, W_out")}


def _doc(d: int) -> str:
    spatial, spatial_out = _SPATIAL[d]
    return f"""Applies a {d}-D tiled convolution over an input signal.

    A bank of ``prod(tile_size)`` kernels; the output at position ``i`` uses kernel
    ``i mod tile_size`` (per dimension). ``tile_size=1`` is exactly ``torch.nn.Conv{d}d``;
    a tile as large as the output is a locally connected layer. Works on inputs of any size.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: size of each kernel (int or tuple).
        tile_size: period of the kernel map, per dimension (int or tuple, >= 1).
        stride: as in ``torch.nn.Conv{d}d``.
        padding: as in ``torch.nn.Conv{d}d``: an int, a tuple, ``"valid"`` or ``"same"``.
        dilation: as in ``torch.nn.Conv{d}d``.
        groups: as in ``torch.nn.Conv{d}d``.
        bias: add a learnable bias. Default ``True``.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        shared_bias: one bias per output channel instead of one per channel and tile offset.

    Shape:
        - Input: ``(N, C_in, {spatial})`` or ``(C_in, {spatial})``.
        - Output: ``(N, C_out, {spatial_out})`` with
          ``out[i] = floor((in[i] + 2 * padding[i] - dilation[i] * (kernel_size[i] - 1) - 1)
          / stride[i] + 1)``.

    Attributes:
        weight: ``(*tile_size, C_out, C_in // groups, *kernel_size)``; ``weight[r]`` is the
            ``Conv{d}d`` weight used at every output position ``i`` with ``i mod tile_size == r``.
            Initialised from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
            ``fan_in = C_in / groups * prod(kernel_size)``, as ``Conv{d}d``.
        bias: ``(*tile_size, C_out)``, or ``(C_out,)`` with ``shared_bias=True``; same init.
        fan_in: ``C_in / groups * prod(kernel_size)``, the inputs one output unit reads. Use it
            for other initialisations: ``torch.nn.init``'s own fan computation misreads the
            position-major weight (Kaiming: ``nn.init.normal_(layer.weight, std=math.sqrt(2 /
            layer.fan_in))``).
        connectivity: the ``locality.Connectivity`` (geometry, bank shape, kernel map);
            ``kernels(output_size)`` gives every output position's kernel.

    Example::

        >>> layer = TiledConv{d}d(4, 8, 3, tile_size=2, padding=1)
        >>> layer(torch.randn(2, 4, {", ".join(["7"] * d)})).shape
        torch.Size([2, 8, {", ".join(["7"] * d)}])
"""


class TiledConv1d(_TiledConvNd):
    __doc__ = _doc(1)
    _d = 1


class TiledConv2d(_TiledConvNd):
    __doc__ = _doc(2)
    _d = 2


class TiledConv3d(_TiledConvNd):
    __doc__ = _doc(3)
    _d = 3
