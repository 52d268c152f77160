"""Lazy connectivity layers: ``in_channels`` (and ``input_size``) are read from the first input.

As ``torch.nn.LazyConv2d``: parameters start uninitialised and the module becomes its non-lazy
class after the first forward (or a dry run), so it can then be saved, loaded and wrapped in DDP.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from locality._arguments import IntOrTuple, Padding, check_channels
from locality._memory import check_allocation
from locality.layers._base import _ConnectivityNd
from locality.layers.local import (
    LocallyConnected1d,
    LocallyConnected2d,
    LocallyConnected3d,
    _LocallyConnectedNd,
)
from locality.layers.tiled import TiledConv1d, TiledConv2d, TiledConv3d, _TiledConvNd


class _LazyConnectivity(LazyModuleMixin, _ConnectivityNd):
    """Placeholder parameters until the first input says the sizes."""

    # torch's stubs declare UninitializedParameter a Tensor; at run time it is a Parameter.
    def _allocate(self, bias: bool, factory_kwargs: dict) -> None:
        self.weight = nn.UninitializedParameter(**factory_kwargs)  # type: ignore[assignment]
        if bias:
            self.bias = nn.UninitializedParameter(**factory_kwargs)  # type: ignore[assignment]
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params():
            super().reset_parameters()

    def _infer_sizes(self, input: torch.Tensor) -> None:
        d, where = self._d, type(self).__name__
        if not isinstance(input, torch.Tensor) or input.dim() not in (d + 1, d + 2):
            got = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            raise ValueError(
                f"{where}: expected a {d + 2}-D (batched) or {d + 1}-D (unbatched) input to "
                f"infer in_channels from, got {got}"
            )
        self.in_channels = int(input.shape[-d - 1])
        check_channels(self.in_channels, self.out_channels, self.groups, where)

    def initialize_parameters(self, input: torch.Tensor) -> None:
        if not self.has_uninitialized_params():
            if self.in_channels == 0:  # parameters came from a state dict: sizes still unknown
                self._infer_sizes(input)
                self._check_loaded_shape()
            return
        self._infer_sizes(input)
        shape = self._weight_shape()
        check_allocation(shape, self.weight.dtype, self.weight.device, type(self).__name__)
        with torch.no_grad():
            cast(nn.UninitializedParameter, self.weight).materialize(shape)
            if self.bias is not None:
                cast(nn.UninitializedParameter, self.bias).materialize(self._bias_shape())
            self.reset_parameters()

    def _check_loaded_shape(self) -> None:
        expected = self._weight_shape()
        if tuple(self.weight.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}: the loaded weight has shape {tuple(self.weight.shape)}, "
                f"but the first input needs {expected}"
            )


class _LazyLocallyConnectedNd(_LazyConnectivity, _LocallyConnectedNd):
    def __init__(
        self,
        out_channels: int,
        kernel_size: IntOrTuple,
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
        super().__init__(
            groups,
            out_channels,
            kernel_size,
            1,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            shared_bias,
            device,
            dtype,
        )
        self.in_channels, self.input_size = 0, None  # type: ignore[assignment]  # first input

    def _infer_sizes(self, input: torch.Tensor) -> None:
        super()._infer_sizes(input)
        self.input_size = tuple(int(n) for n in input.shape[-self._d :])


class _LazyTiledConvNd(_LazyConnectivity, _TiledConvNd):
    def __init__(
        self,
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
        super().__init__(
            groups,
            out_channels,
            kernel_size,
            tile_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            shared_bias,
            device,
            dtype,
        )
        self.in_channels = 0  # set by the first input


def _lazy(base: type[_LazyConnectivity], target: type[_ConnectivityNd]) -> type:
    doc = (
        f"A ``{target.__name__}`` whose ``in_channels``"
        + (" and ``input_size`` are" if base is _LazyLocallyConnectedNd else " is")
        + f" inferred from the first input. Becomes a ``{target.__name__}`` after it."
    )
    return type(
        f"Lazy{target.__name__}",
        (base,),
        {"_d": target._d, "cls_to_become": target, "__doc__": doc, "__module__": __name__},
    )


LazyLocallyConnected1d = _lazy(_LazyLocallyConnectedNd, LocallyConnected1d)
LazyLocallyConnected2d = _lazy(_LazyLocallyConnectedNd, LocallyConnected2d)
LazyLocallyConnected3d = _lazy(_LazyLocallyConnectedNd, LocallyConnected3d)
LazyTiledConv1d = _lazy(_LazyTiledConvNd, TiledConv1d)
LazyTiledConv2d = _lazy(_LazyTiledConvNd, TiledConv2d)
LazyTiledConv3d = _lazy(_LazyTiledConvNd, TiledConv3d)
