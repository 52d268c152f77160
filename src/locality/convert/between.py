"""Moves to and from the kinds between convolution and locally connected.

Every forward layer reads as its kernels at each output position (``Bank.regrid``, i.e.
``Connectivity.per_position``); a hard map then groups the positions into classes, one per
kernel of the new bank:

- ``to_mapped``: the layer's own map by default (exact for every hard kind: conv, tiled,
  region-shared, locally connected, mapped), or any ``kernel_map``;
- ``to_region``: the blocks of ``numpy.array_split`` (exact from a convolution, or from a
  region-shared layer with the same regions);
- with a map coarser than the layer's, each kernel is the mean of the kernels it replaces: the
  least-squares projection (over the positions' kernels, each counted once);
- ``to_lowrank``: the best rank-``K`` fit (Frobenius norm) of the ``(positions x kernel)``
  matrix by truncated SVD (Eckart-Young), exact at full rank.

The exact moves back up (to locally connected, to dense) are ``to_locally_connected`` and
``to_dense`` of :mod:`locality.convert.lattice`, which read any of these kinds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from locality._arguments import IntOrTuple, check_int, ntuple, output_size
from locality.convert._banks import Bank, read_bank
from locality.convert.lattice import FORWARD_KINDS
from locality.functional import check_kernel_map
from locality.kernels.region import region_index
from locality.layers.lowrank import (
    LowRankLocallyConnected1d,
    LowRankLocallyConnected2d,
    LowRankLocallyConnected3d,
)
from locality.layers.mapped import MappedConv1d, MappedConv2d, MappedConv3d
from locality.layers.region import RegionConv1d, RegionConv2d, RegionConv3d

__all__ = ["to_mapped", "to_region", "to_lowrank", "class_mean"]

_MAPPED = {1: MappedConv1d, 2: MappedConv2d, 3: MappedConv3d}
_REGION = {1: RegionConv1d, 2: RegionConv2d, 3: RegionConv3d}
_LOWRANK = {
    1: LowRankLocallyConnected1d,
    2: LowRankLocallyConnected2d,
    3: LowRankLocallyConnected3d,
}


def class_mean(values: torch.Tensor, index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean of ``values[p]`` over the positions ``p`` with ``index[p] == j``, for each class ``j``.

    ``values`` has the positions in its leading ``index.dim()`` dims; the result is
    ``(num_classes, *rest)``. A class no position uses gets zeros.
    """
    rest = values.shape[index.dim() :]
    flat = values.reshape(-1, *rest)
    ids = index.reshape(-1).to(values.device)
    counts = torch.bincount(ids, minlength=num_classes).clamp(min=1).to(values.dtype)
    sums = flat.new_zeros(num_classes, *rest).index_add_(0, ids, flat)
    return sums / counts.view(-1, *(1,) * len(rest))


def _per_position(
    layer: nn.Module, input_size: IntOrTuple | None, where: str
) -> tuple[Bank, tuple[int, ...], tuple[int, ...]]:
    """The layer's bank, the input size (given or the layer's own) and output size."""
    bank = read_bank(layer, where, kinds=FORWARD_KINDS)
    if input_size is None:
        if bank.input_size is None:
            raise ValueError(
                f"{where}: a {type(layer).__name__} works on any input size; give input_size"
            )
        size = bank.input_size
    else:
        size = ntuple(input_size, bank.d, "input_size", where=where)
    out = output_size(size, bank.kernel_size, bank.stride, bank.pads(), bank.dilation, where=where)
    return bank, size, out


def _common(bank: Bank, shared_bias: bool) -> dict:
    return dict(
        in_channels=bank.in_channels,
        out_channels=bank.out_channels,
        kernel_size=bank.kernel_size,
        stride=bank.stride,
        padding=bank.padding,
        dilation=bank.dilation,
        groups=bank.groups,
        bias=bank.bias is not None,
        padding_mode=bank.padding_mode,
        shared_bias=shared_bias,
        device=bank.weight.device,
        dtype=bank.weight.dtype,
    )


def _load(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """Copy the new bank (and bias: a shared one from any row of a constant one) into ``layer``."""
    own_weight, own_bias = layer.get_parameter("weight"), getattr(layer, "bias", None)
    with torch.no_grad():
        own_weight.copy_(weight)
        if bias is not None and isinstance(own_bias, torch.Tensor):
            shared = own_bias.dim() == 1
            own_bias.copy_(bias.reshape(-1, bias.shape[-1])[0] if shared else bias)
    return layer


def to_mapped(
    layer: nn.Module,
    kernel_map: torch.Tensor | None = None,
    input_size: IntOrTuple | None = None,
    num_kernels: int | None = None,
) -> nn.Module:
    """A ``MappedConv{d}d`` from any forward layer: exact with the layer's own map.

    Args:
        layer: ``nn.Conv1d/2d/3d`` or a forward layer of this library (a low-rank one reads as
            its per-position kernels, one kernel each).
        kernel_map: the new map (integer tensor of the output's spatial shape); ``None`` keeps
            the layer's own, and its bank, exactly. With another map each kernel is the mean of
            the kernels at the positions it serves (least squares); exact when those agree.
        input_size: spatial input size, for a layer that works on any (conv, tiled).
        num_kernels: ``K`` of the new map (default ``kernel_map.max() + 1``).

    Returns:
        ``MappedConv{d}d`` with the layer's geometry.
    """
    where = "to_mapped"
    bank, _, out = _per_position(layer, input_size, where)
    shared = bank.shared_bias
    if kernel_map is None:
        index = bank.connectivity.kernel_index(out)
        count = bank.connectivity.num_kernels
        weight = bank.weight.reshape(count, *bank.weight.shape[bank.d :])
        bias = None if bank.bias is None else bank.bias.reshape(count, -1)
    else:
        index = check_kernel_map(kernel_map, num_kernels, bank.d, where)
        if tuple(index.shape) != out:
            raise ValueError(
                f"{where}: kernel_map has shape {tuple(index.shape)}, but the layer's output size "
                f"is {out}"
            )
        count = int(index.max()) + 1 if num_kernels is None else num_kernels
        full = bank.regrid(out, where)
        weight = class_mean(full.weight, index, count)
        bias = None if full.bias is None else class_mean(full.bias, index, count)
    new = _MAPPED[bank.d](kernel_map=index, num_kernels=count, **_common(bank, shared))
    return _load(new, weight, bias)


def to_region(
    layer: nn.Module, regions: IntOrTuple, input_size: IntOrTuple | None = None
) -> nn.Module:
    """A ``RegionConv{d}d``: each region's kernel is the mean of the layer's kernels there.

    Exact from a convolution (every region gets its kernel) and from a region-shared layer with
    the same regions; otherwise the least-squares projection.

    Args:
        layer: ``nn.Conv1d/2d/3d`` or a forward layer of this library.
        regions: regions per spatial dimension (int or tuple).
        input_size: spatial input size, for a layer that works on any (conv, tiled).
    """
    where = "to_region"
    bank, size, out = _per_position(layer, input_size, where)
    grid = ntuple(regions, bank.d, "regions", where=where)
    new = _REGION[bank.d](input_size=size, regions=grid, **_common(bank, bank.shared_bias))
    index = region_index(out, grid)
    full = bank.regrid(out, where)
    count = math.prod(grid)
    weight = class_mean(full.weight, index, count).reshape(new.weight.shape)
    bias = None
    if full.bias is not None:
        bias = class_mean(full.bias, index, count).reshape(*grid, bank.out_channels)
    return _load(new, weight, bias)


def to_lowrank(layer: nn.Module, rank: int, input_size: IntOrTuple | None = None) -> nn.Module:
    """The best rank-``rank`` ``LowRankLocallyConnected{d}d`` fit of a layer (truncated SVD).

    The layer's kernels at every output position form a ``(positions x kernel)`` matrix
    ``M = U S V^T``; the new layer (``normalize=None``) has the basis bank ``V[:, :rank]^T`` and
    the mixes ``U[:, :rank] S[:rank]``: the nearest rank-``rank`` matrix in Frobenius norm
    (Eckart-Young), so exact once ``rank`` reaches the rank of ``M``. The bias is kept as is.

    Args:
        layer: ``nn.Conv1d/2d/3d`` or a forward layer of this library.
        rank: basis kernels of the new layer, at most ``min(positions, kernel numel)``.
        input_size: spatial input size, for a layer that works on any (conv, tiled).
    """
    where = "to_lowrank"
    check_int(rank, "rank", where)
    bank, size, out = _per_position(layer, input_size, where)
    full = bank.regrid(out, where)
    positions = math.prod(out)
    kernel = full.weight.shape[bank.d :]
    limit = min(positions, math.prod(kernel))
    if rank > limit:
        raise ValueError(
            f"{where}: rank must be at most min(positions, kernel numel) = {limit}, got {rank}"
        )
    matrix = full.weight.reshape(positions, -1)
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    new = _LOWRANK[bank.d](
        input_size=size, rank=rank, normalize=None, **_common(bank, bank.shared_bias)
    )
    with torch.no_grad():
        new.combining_weights.copy_((u[:, :rank] * s[:rank]).reshape(*out, rank))
    bias = None if full.bias is None else full.bias.reshape(*out, bank.out_channels)
    return _load(new, vh[:rank].reshape(rank, *kernel), bias)
