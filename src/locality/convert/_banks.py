"""Every connectivity layer as one thing: a bank of kernels plus the arguments of the sliding.

``torch.nn.Conv*d``, ``TiledConv2d`` and ``LocallyConnected2d``
differ only in the grid of their bank (``(1,)*d``, ``tile_size``, output size). Reading any of them
into a ``Bank`` and building any of them from one is all the exact conversions need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from locality._arguments import Padding, check_initialised, padding_amounts
from locality._memory import check_allocation
from locality.layers._base import _ConnectivityNd
from locality.layers.local import (
    LocallyConnected1d,
    LocallyConnected2d,
    LocallyConnected3d,
    _LocallyConnectedNd,
)
from locality.layers.tiled import TiledConv1d, TiledConv2d, TiledConv3d, _TiledConvNd

# Typed as callables: torch types Conv1d's kernel_size as a 1-tuple, Conv2d's as a 2-tuple, ...
CONV: dict[int, Callable[..., nn.modules.conv._ConvNd]] = {
    1: nn.Conv1d,
    2: nn.Conv2d,
    3: nn.Conv3d,
}
TILED = {1: TiledConv1d, 2: TiledConv2d, 3: TiledConv3d}
LOCAL = {1: LocallyConnected1d, 2: LocallyConnected2d, 3: LocallyConnected3d}


@dataclass(frozen=True)
class Bank:
    """A connectivity layer read as a kernel bank.

    Attributes:
        kind: ``"conv"``, ``"tiled"`` or ``"local"``.
        weight: ``(*grid, C_out, C_in // groups, *kernel_size)``; output position ``i`` uses
            ``weight[i mod grid]``.
        bias: ``(*grid, C_out)`` (a shared bias is expanded), or ``None``.
        shared_bias: whether the source bias was one value per channel.
        input_size: the fixed input size of a locally connected layer, else ``None``.
    """

    kind: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    shared_bias: bool
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str
    input_size: tuple[int, ...] | None = None

    @property
    def d(self) -> int:
        return len(self.kernel_size)

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[: self.d])

    def pads(self) -> tuple[tuple[int, int], ...]:
        """(before, after) padding per spatial dimension."""
        return padding_amounts(self.padding, self.kernel_size, self.stride, self.dilation)

    def regrid(self, grid: tuple[int, ...], where: str) -> Bank:
        """The bank on a new grid, ``new[r] = old[r mod old_grid]`` (bias likewise).

        A grid too large for memory is refused (naming ``where``) before anything is allocated.
        """
        shape = (*grid, *self.weight.shape[self.d :])
        check_allocation(shape, self.weight.dtype, self.weight.device, where)
        index = _mod_index(grid, self.grid, self.weight.device)
        bias = None if self.bias is None else self.bias[index]
        return replace(self, weight=self.weight[index], bias=bias)


def _mod_index(grid, old_grid, device) -> tuple[torch.Tensor, ...]:
    """Broadcasting index tensors that pick ``old[r mod old_grid]`` for every ``r`` in ``grid``."""
    d = len(grid)
    return tuple(
        (torch.arange(n, device=device) % m).view(*(1,) * i, n, *(1,) * (d - i - 1))
        for i, (n, m) in enumerate(zip(grid, old_grid, strict=True))
    )


def read_bank(
    layer: nn.Module, where: str, kinds: tuple[str, ...] = ("conv", "tiled", "local")
) -> Bank:
    """Read ``layer`` (Conv*d, TiledConv*d or LocallyConnected*d) as a ``Bank``."""
    kind = ""
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        kind = "conv"
    elif isinstance(layer, _TiledConvNd):
        kind = "tiled"
    elif isinstance(layer, _LocallyConnectedNd):
        kind = "local"
    if kind not in kinds or not isinstance(layer, (nn.modules.conv._ConvNd, _ConnectivityNd)):
        names = {
            "conv": "Conv1d/2d/3d",
            "tiled": "TiledConv1d/2d/3d",
            "local": "LocallyConnected1d/2d/3d",
        }
        raise TypeError(
            f"{where}: layer must be one of {', '.join(names[k] for k in kinds)}, got "
            f"{type(layer).__name__}"
        )
    check_initialised(layer, "layer", where)
    d = len(layer.kernel_size)
    weight = layer.weight.detach()
    bias = None if layer.bias is None else layer.bias.detach()
    if kind == "conv":
        weight = weight.reshape(*(1,) * d, *weight.shape)
    shared = bias is not None and bias.dim() == 1
    if bias is not None and shared:
        bias = bias.expand(*weight.shape[: d + 1])
    return Bank(
        kind=kind,
        weight=weight,
        bias=bias,
        shared_bias=shared,
        in_channels=layer.in_channels,
        out_channels=layer.out_channels,
        kernel_size=tuple(layer.kernel_size),
        stride=tuple(layer.stride),
        padding=layer.padding if isinstance(layer.padding, str) else tuple(layer.padding),
        dilation=tuple(layer.dilation),
        groups=layer.groups,
        padding_mode=layer.padding_mode,
        input_size=getattr(layer, "input_size", None) if kind == "local" else None,
    )


def build(
    bank: Bank, kind: str, shared_bias: bool, input_size: tuple[int, ...] | None = None
) -> nn.Module:
    """A new ``kind`` layer whose kernels are ``bank.weight`` (already on the right grid).

    ``shared_bias`` keeps one bias per channel (the bank's bias must then be constant over the
    grid, which holds for a regridded shared bias and for a projection).
    """
    d = bank.d
    common: dict[str, Any] = dict(
        stride=bank.stride,
        padding=bank.padding,
        dilation=bank.dilation,
        groups=bank.groups,
        bias=bank.bias is not None,
        padding_mode=bank.padding_mode,
        device=bank.weight.device,
        dtype=bank.weight.dtype,
    )
    args = (bank.in_channels, bank.out_channels, bank.kernel_size)
    if kind == "conv":
        layer: nn.modules.conv._ConvNd | _ConnectivityNd = CONV[d](*args, **common)
        weight = bank.weight.reshape(bank.weight.shape[d:])
    elif kind == "tiled":
        layer = TILED[d](*args, bank.grid, shared_bias=shared_bias, **common)
        weight = bank.weight
    else:
        if input_size is None:
            raise ValueError("build: a locally connected layer needs input_size")
        layer = LOCAL[d](*args, input_size, shared_bias=shared_bias, **common)
        weight = bank.weight
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bank.bias is not None and layer.bias is not None:
            flat = bank.bias.reshape(-1, bank.out_channels)
            layer.bias.copy_(flat[0] if kind == "conv" or shared_bias else bank.bias)
    return layer
