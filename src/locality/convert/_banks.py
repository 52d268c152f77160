"""Every connectivity layer as one thing: its ``Connectivity`` plus the numbers in its bank.

``torch.nn.Conv*d``, ``TiledConv*d`` and ``LocallyConnected*d`` differ only in their
connectivity's bank shape (``(1,)*d``, ``tile_size``, output size). Reading any of them into a
``Bank`` and building any of them from one is all the exact conversions need; which kernel each
position uses comes from ``Connectivity.per_position``, the one copy of the map.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from locality._arguments import Padding, check_initialised
from locality._memory import check_allocation
from locality.connectivity import Connectivity, Periodic, bank_of
from locality.layers.local import LocallyConnected1d, LocallyConnected2d, LocallyConnected3d
from locality.layers.tiled import TiledConv1d, TiledConv2d, TiledConv3d

# Typed as callables: torch types Conv1d's kernel_size as a 1-tuple, Conv2d's as a 2-tuple, ...
CONV: dict[int, Callable[..., nn.modules.conv._ConvNd]] = {
    1: nn.Conv1d,
    2: nn.Conv2d,
    3: nn.Conv3d,
}
TILED: dict[int, Callable[..., nn.Module]] = {1: TiledConv1d, 2: TiledConv2d, 3: TiledConv3d}
LOCAL: dict[int, Callable[..., nn.Module]] = {
    1: LocallyConnected1d,
    2: LocallyConnected2d,
    3: LocallyConnected3d,
}
# The kinds a bank can be built as, and what to call them in messages.
LAYERS: dict[str, tuple[Mapping[int, Callable[..., nn.Module]], str]] = {
    "conv": (CONV, "Conv1d/2d/3d"),
    "tiled": (TILED, "TiledConv1d/2d/3d"),
    "locally_connected": (LOCAL, "LocallyConnected1d/2d/3d"),
}
BANK_KINDS = tuple(LAYERS)


@dataclass(frozen=True)
class Bank:
    """A connectivity layer read as a kernel bank.

    Attributes:
        connectivity: the layer's ``Connectivity`` (kind, geometry, bank shape, map).
        weight: ``(*grid, C_out, C_in // groups, *kernel_size)``, the kernels of the positions
            of ``grid`` (the layer's own bank when read).
        bias: ``(*grid, C_out)`` (a shared bias is expanded), or ``None``.
        shared_bias: whether the source bias was one value per channel.
        padding: the layer's ``padding`` argument, to build layers with the same one.
    """

    connectivity: Connectivity
    weight: torch.Tensor
    bias: torch.Tensor | None
    shared_bias: bool
    padding: Padding

    @property
    def kind(self) -> str:
        return self.connectivity.kind

    @property
    def d(self) -> int:
        return self.connectivity.d

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[: self.d])

    @property
    def in_channels(self) -> int:
        return self.connectivity.in_channels

    @property
    def out_channels(self) -> int:
        return self.connectivity.out_channels

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return self.connectivity.kernel_size

    @property
    def stride(self) -> tuple[int, ...]:
        return self.connectivity.stride

    @property
    def dilation(self) -> tuple[int, ...]:
        return self.connectivity.dilation

    @property
    def groups(self) -> int:
        return self.connectivity.groups

    @property
    def padding_mode(self) -> str:
        return self.connectivity.padding_mode

    @property
    def input_size(self) -> tuple[int, ...] | None:
        return self.connectivity.input_size

    def pads(self) -> tuple[tuple[int, int], ...]:
        """(before, after) padding per spatial dimension."""
        return self.connectivity.padding

    def regrid(self, grid: tuple[int, ...], where: str) -> Bank:
        """The kernels (and biases) the layer uses at the positions of a ``grid``-shaped output.

        A grid too large for memory is refused (naming ``where``) before anything is allocated.
        """
        shape = (*grid, *self.weight.shape[self.d :])
        check_allocation(shape, self.weight.dtype, self.weight.device, where)
        map_ = self.connectivity
        weight = map_.per_position(self.weight, grid)
        bias = None if self.bias is None else map_.per_position(self.bias, grid)
        return replace(self, weight=weight, bias=bias)


def read_bank(layer: nn.Module, where: str, kinds: Sequence[str] = BANK_KINDS) -> Bank:
    """Read ``layer`` (of one of ``kinds``: Conv*d, TiledConv*d, LocallyConnected*d) as a Bank."""
    names = ", ".join(LAYERS[k][1] if k in LAYERS else k for k in kinds)
    refusal = TypeError(f"{where}: layer must be one of {names}, got {type(layer).__name__}")
    if not isinstance(layer, nn.Module):
        raise refusal
    check_initialised(layer, "layer", where)
    try:
        connectivity = Connectivity.of(layer)
    except TypeError:
        raise refusal from None
    if connectivity.kind not in kinds or connectivity.d == 0:
        raise refusal
    weight = bank_of(layer).detach()
    bias = getattr(layer, "bias", None)
    bias = None if bias is None else bias.detach()
    if connectivity.map.soft:
        # A soft map mixes its bank at each position: read it as the locally connected layer
        # it computes (its kernels, and its bias, are per position).
        out = connectivity.output_size()
        weight = connectivity.per_position(weight, out)
        connectivity = replace(
            connectivity, kind="locally_connected", bank_shape=out, map=Periodic(), bias_shape=None
        )
    shared = bias is not None and bias.dim() == 1
    if bias is not None and shared:
        bias = bias.expand(*connectivity.bank_shape, connectivity.out_channels)
    padding = layer.padding
    assert isinstance(padding, (str, tuple))
    return Bank(
        connectivity=connectivity,
        weight=weight,
        bias=bias,
        shared_bias=shared,
        padding=padding if isinstance(padding, str) else tuple(padding),
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
    common.update(
        in_channels=bank.in_channels, out_channels=bank.out_channels, kernel_size=bank.kernel_size
    )
    weight = bank.weight
    if kind == "conv":
        weight = bank.weight.reshape(bank.weight.shape[d:])
    elif kind == "tiled":
        common.update(tile_size=bank.grid, shared_bias=shared_bias)
    elif input_size is not None:
        common.update(input_size=input_size, shared_bias=shared_bias)
    else:
        raise ValueError("build: a locally connected layer needs input_size")
    layer = LAYERS[kind][0][d](**common)
    new_weight, new_bias = layer.weight, layer.bias
    assert isinstance(new_weight, torch.Tensor)
    with torch.no_grad():
        new_weight.copy_(weight)
        if bank.bias is not None and isinstance(new_bias, torch.Tensor):
            flat = bank.bias.reshape(-1, bank.out_channels)
            new_bias.copy_(flat[0] if kind == "conv" or shared_bias else bank.bias)
    return layer
