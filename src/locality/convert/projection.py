"""Projections towards more sharing: the nearest convolution or tiled convolution to a layer.

Unlike the moves in ``locality.convert.lattice`` these cannot be exact. The nearest layer in
the least-squares sense (over its parameters, each position counted once) gives each shared kernel
the mean of the kernels it replaces; the relative error of that fit says how far the learned
weights are from being shared.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import torch
from torch import nn

from locality._arguments import IntOrTuple, ntuple
from locality.connectivity import Periodic
from locality.convert._banks import build, read_bank
from locality.convert.lattice import FORWARD_KINDS

__all__ = ["Projection", "project"]


class Projection(NamedTuple):
    """Result of ``project``.

    Attributes:
        layer: the projected layer (``Conv{d}d`` or ``TiledConv{d}d``).
        relative_error: ``||theta - theta_proj|| / ||theta||`` over weight and bias of the source,
            where ``theta_proj`` is the projected layer's kernels placed back at every position.
            NaN for a layer on ``device="meta"`` (its projected layer is on meta too).
    """

    layer: nn.Module
    relative_error: float


def project(layer: nn.Module, to: str = "conv", tile_size: IntOrTuple | None = None) -> Projection:
    """Nearest more-shared layer to ``layer`` (least squares), and the relative error.

    Args:
        layer: ``LocallyConnected1d/2d/3d``, ``TiledConv1d/2d/3d`` or ``Conv1d/2d/3d``.
        to: ``"conv"`` (one kernel) or ``"tiled"`` (kernel ``r`` is the mean over the positions
            ``p`` with ``p mod tile_size == r``).
        tile_size: the tile for ``to="tiled"`` (int or tuple).

    Returns:
        ``Projection`` ``(layer, relative_error)``. A bias shared over positions stays
        shared; an untied one is averaged like the kernels.
    """
    where = "project"
    bank = read_bank(layer, where, kinds=FORWARD_KINDS)
    if to == "conv":
        if tile_size is not None:
            raise ValueError(
                f"{where}: tile_size is only for to='tiled' (a convolution has one kernel), got "
                f"{tile_size!r}"
            )
        grid = (1,) * bank.d
    elif to == "tiled":
        if tile_size is None:
            raise ValueError(f"{where}: to='tiled' needs tile_size, got None")
        grid = ntuple(tile_size, bank.d, "tile_size", where=where)
    else:
        raise ValueError(f"{where}: to must be 'conv' or 'tiled', got {to!r}")
    out = None if bank.input_size is None else bank.connectivity.output_size()
    if out is not None and any(t > n for t, n in zip(grid, out, strict=True)):
        raise ValueError(
            f"{where}: tile_size {grid} is larger than the layer's output size {out}: some "
            f"tiled kernels would have no position to average"
        )
    # every position once for a layer of fixed size; else a grid on which both tilings repeat
    positions = out if out is not None else _lcm(bank.grid, grid)
    source = bank.regrid(positions, where)
    weight, weight_error = _class_mean(source.weight, grid)
    params, errors = [source.weight], [weight_error]
    bias = None
    if source.bias is not None:
        bias, bias_error = _class_mean(source.bias, grid)
        params.append(source.bias)
        errors.append(bias_error)
    projected = build(replace(bank, weight=weight, bias=bias), to, bank.shared_bias or bias is None)
    if bank.weight.is_meta:
        return Projection(projected, math.nan)
    norm = torch.stack([p.double().square().sum() for p in params]).sum().sqrt()
    residual = torch.stack([e.double().square().sum() for e in errors]).sum().sqrt()
    # all-zero parameters project exactly (0/0 would be NaN)
    error = residual / norm if norm > 0 else residual
    return Projection(projected, float(error))


def _lcm(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """A grid on which both tilings are periodic, so every source kernel appears equally often."""
    return tuple(math.lcm(x, y) for x, y in zip(a, b, strict=True))


def _class_mean(values: torch.Tensor, grid: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values[p]`` over the positions ``p`` that share kernel ``r`` of a ``grid`` bank
    (the periodic map: ``p mod grid == r``), and the residual ``values[p] - mean[r]``.

    ``values`` has the positions in its leading ``len(grid)`` dims; the result has ``grid`` there.
    """
    d = len(grid)
    positions, rest = tuple(values.shape[:d]), values.shape[d:]
    ids = Periodic().index(positions, grid).reshape(-1)  # on the CPU, also for a meta layer
    counts = torch.bincount(ids, minlength=math.prod(grid)).to(values.device, values.dtype)
    flat = values.reshape(-1, *rest)
    ids = ids.to(values.device)
    sums = flat.new_zeros(math.prod(grid), *rest).index_add_(0, ids, flat)
    mean = sums / counts.view(-1, *(1,) * len(rest))
    return mean.reshape(*grid, *rest), (flat - mean[ids]).reshape(values.shape)
