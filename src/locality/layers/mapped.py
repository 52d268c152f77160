"""Mapped convolution layers: any integer map from output position to a kernel of a bank.

Convolution, tiled, region-shared and locally connected layers are four particular maps; this
layer takes any, to share weights by anatomy, by a segmentation, by learned clusters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import fx

from locality._arguments import IntOrTuple, Padding, check_int
from locality.connectivity import KernelMap, Table
from locality.functional import check_kernel_map, mapped_conv
from locality.layers._base import _ConnectivityNd

# Traced as one call (the op's checks need concrete tensors), so models of these layers trace.
fx.wrap("mapped_conv")


class _MappedConvNd(_ConnectivityNd):
    _kind = "mapped"
    kernel_map: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        kernel_map: torch.Tensor,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        shared_bias: bool = False,
        num_kernels: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        where = type(self).__name__
        if num_kernels is not None:
            check_int(num_kernels, "num_kernels", where)
        index = check_kernel_map(kernel_map, num_kernels, self._d, where)
        self.num_kernels = int(index.max()) + 1 if num_kernels is None else num_kernels
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
        self.register_buffer("kernel_map", index.to(device=self.weight.device))

    @property
    def output_size(self) -> tuple[int, ...]:
        """Spatial size of the output: the shape of ``kernel_map``."""
        return tuple(self.kernel_map.shape)

    def _bank_shape(self) -> tuple[int, ...]:
        return (self.num_kernels,)

    def _kernel_map(self) -> KernelMap:
        return Table(self.kernel_map.cpu())

    def kernels(self, output_size: Sequence[int] | None = None) -> torch.Tensor:
        """The kernel of every output position, ``weight[kernel_map]``:
        ``(*kernel_map.shape, C_out, C_in // groups, *k)``."""
        return super().kernels(self.output_size if output_size is None else output_size)

    def _check_input(self, input: torch.Tensor) -> None:
        super()._check_input(input)
        spatial = tuple(input.shape[-self._d :])
        where = type(self).__name__
        out = self._sliding.output_size(spatial, where=where)
        if out != self.output_size:
            raise ValueError(
                f"{where}: input of spatial size {spatial} gives output size {out}, but "
                f"kernel_map covers output size {self.output_size}"
            )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        loaded = state_dict.get(prefix + "kernel_map")
        if loaded is not None:  # a map from elsewhere is checked as at construction
            where = f"{type(self).__name__}.load_state_dict"
            check_kernel_map(loaded, self.num_kernels, self._d, where)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _apply_op(self, input: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return mapped_conv(
            input,
            self.weight,
            self.kernel_map,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
        )

    def _repr_fields(self) -> list[str]:
        return [f"kernel_map={self.output_size}", f"num_kernels={self.num_kernels}"]


class MappedConv1d(_MappedConvNd):
    _d = 1


class MappedConv2d(_MappedConvNd):
    _d = 2


class MappedConv3d(_MappedConvNd):
    _d = 3


_SPATIAL = {1: ("L", "L_out"), 2: ("H, W", "H_out, W_out"), 3: ("D, H, W", "D_out, H_out, W_out")}
for _d, _cls in ((1, MappedConv1d), (2, MappedConv2d), (3, MappedConv3d)):
    _cls.__doc__ = f"""Applies a {_d}-D convolution with a given kernel map (position -> kernel).

    A bank of ``K`` kernels and ``kernel_map``, an integer tensor of the output's spatial shape:
    output position ``p`` uses ``weight[kernel_map[p]]``. Convolution (all zeros), tiled
    (``p mod t``), region-shared (blocks) and locally connected (``arange``) are particular
    maps. ``kernel_map`` is a buffer: it is saved in the state dict, and loading another map
    takes effect.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: size of each kernel (int or tuple).
        kernel_map: integer tensor or array of the output's spatial shape, values in
            ``[0, K)``.
        stride: as in ``torch.nn.Conv{_d}d``.
        padding: an int, a tuple of ints or ``(before, after)`` pairs, ``"valid"`` or ``"same"``.
        dilation: as in ``torch.nn.Conv{_d}d``.
        groups: as in ``torch.nn.Conv{_d}d``.
        bias: add a learnable bias. Default ``True``.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        shared_bias: one bias per output channel instead of one per channel and kernel.
        num_kernels: ``K``; ``kernel_map.max() + 1`` by default.

    Shape:
        - Input: ``(N, C_in, {_SPATIAL[_d][0]})`` or ``(C_in, {_SPATIAL[_d][0]})``, of a spatial
          size whose ``torch.nn.Conv{_d}d`` output size is ``kernel_map.shape``.
        - Output: ``(N, C_out, *kernel_map.shape)``.

    Attributes:
        weight: ``(K, C_out, C_in // groups, *kernel_size)``, initialised from
            ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = C_in / groups * prod(kernel_size)``.
        bias: ``(K, C_out)``, or ``(C_out,)`` with ``shared_bias=True``; same init.
        kernel_map: the map, a long buffer.

    Example::

        >>> kernel_map = torch.zeros({", ".join(["4"] * _d)}, dtype=torch.long)
        >>> kernel_map[..., 2:] = 1  # the right half shares a second kernel
        >>> layer = MappedConv{_d}d(4, 8, 3, kernel_map)
        >>> layer(torch.randn(2, 4, {", ".join(["6"] * _d)})).shape
        torch.Size([2, 8, {", ".join(["4"] * _d)}])
"""
