"""Region-shared convolution layers (DeepID, Sun et al., CVPR 2014): one kernel per region.

The output grid is cut into ``prod(regions)`` boxes (per dimension into contiguous blocks, as
``numpy.array_split`` cuts ``range(out)``); every position of a box uses that box's kernel.
``regions=1`` is a convolution, ``regions=output_size`` a locally connected layer.
"""

from __future__ import annotations

import torch
from torch import fx

from locality._arguments import IntOrTuple, Padding, ntuple, output_size
from locality.connectivity import KernelMap, Table
from locality.functional import region_conv
from locality.kernels.region import region_index
from locality.layers._base import _ConnectivityNd

# Traced as one call (the op's checks need concrete tensors), so models of these layers trace.
fx.wrap("region_conv")


class _RegionConvNd(_ConnectivityNd):
    _kind = "region"
    input_size: tuple[int, ...]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        input_size: IntOrTuple,
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
        where = type(self).__name__
        self.input_size = ntuple(input_size, self._d, "input_size", where=where)
        self.regions = ntuple(regions, self._d, "regions", where=where)
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

    @property
    def output_size(self) -> tuple[int, ...]:
        """Spatial size of the output, fixed by ``input_size``."""
        return output_size(
            self.input_size,
            self.kernel_size,
            self.stride,
            self._pads,
            self.dilation,
            where=type(self).__name__,
        )

    def _bank_shape(self) -> tuple[int, ...]:
        out = self.output_size
        if any(r > o for r, o in zip(self.regions, out, strict=True)):
            raise ValueError(
                f"{type(self).__name__}: regions={self.regions} must not exceed the output size "
                f"{out} (input_size={self.input_size}): every region needs at least one output "
                f"position"
            )
        return self.regions

    def _kernel_map(self) -> KernelMap:
        return Table(region_index(self.output_size, self.regions))

    _fixed_size_reason = "the regions cut the output of that input size, so the input size is fixed"

    def _fixed_input_size(self) -> tuple[int, ...] | None:
        return self.input_size

    def _apply_op(self, input: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return region_conv(
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
        return [f"input_size={self.input_size}", f"regions={self.regions}"]


class RegionConv1d(_RegionConvNd):
    _d = 1


class RegionConv2d(_RegionConvNd):
    _d = 2


class RegionConv3d(_RegionConvNd):
    _d = 3


_SPATIAL = {1: ("L", "L_out"), 2: ("H, W", "H_out, W_out"), 3: ("D, H, W", "D_out, H_out, W_out")}
for _d, _cls in ((1, RegionConv1d), (2, RegionConv2d), (3, RegionConv3d)):
    _cls.__doc__ = f"""Applies a {_d}-D region-shared convolution (DeepID) over an input signal.

    The output grid is cut into ``prod(regions)`` regions: along dimension ``j`` the output
    positions are split into ``regions[j]`` contiguous blocks exactly as
    ``numpy.array_split(range(out_j), regions[j])`` splits them (the first
    ``out_j % regions[j]`` blocks are one longer). Every position of region ``r`` uses kernel
    ``weight[r]``; computed as one ``Conv{_d}d`` per region on the input crop it reads.
    ``regions=1`` is ``torch.nn.Conv{_d}d``; ``regions=output_size`` is
    ``LocallyConnected{_d}d``.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: size of each kernel (int or tuple).
        input_size: spatial size of the input (int or tuple); fixed, since the regions cut its
            output.
        regions: number of regions per spatial dimension (int or tuple), at most the output
            size.
        stride: as in ``torch.nn.Conv{_d}d``.
        padding: an int, a tuple of ints or ``(before, after)`` pairs, ``"valid"`` or ``"same"``.
        dilation: as in ``torch.nn.Conv{_d}d``.
        groups: as in ``torch.nn.Conv{_d}d``.
        bias: add a learnable bias. Default ``True``.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        shared_bias: one bias per output channel instead of one per channel and region.

    Shape:
        - Input: ``(N, C_in, {_SPATIAL[_d][0]})`` or ``(C_in, {_SPATIAL[_d][0]})``, spatial size
          ``input_size``.
        - Output: ``(N, C_out, {_SPATIAL[_d][1]})`` with
          ``out[i] = floor((input_size[i] + before[i] + after[i] - dilation[i] *
          (kernel_size[i] - 1) - 1) / stride[i] + 1)``.

    Attributes:
        weight: ``(*regions, C_out, C_in // groups, *kernel_size)``; ``weight[r]`` is the
            ``Conv{_d}d`` weight of region ``r``. Initialised from
            ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = C_in / groups * prod(kernel_size)``.
        bias: ``(*regions, C_out)``, or ``(C_out,)`` with ``shared_bias=True``; same init.

    Example::

        >>> layer = RegionConv{_d}d(4, 8, 3, input_size={(9,) * _d}, regions=2)
        >>> layer(torch.randn(2, 4, {", ".join(["9"] * _d)})).shape
        torch.Size([2, 8, {", ".join(["7"] * _d)}])
        >>> layer.connectivity.kernel_index()[{", ".join(["3"] * _d)}]  # first blocks are longer
        tensor(0)
"""
