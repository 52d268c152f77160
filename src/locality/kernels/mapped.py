"""Mapped convolution: an arbitrary integer map from output position to a kernel of a bank.

Two exact formulations (``FORMULATIONS``), out of place and differentiable to any order:

- ``grouped``: the patch matrix ``(P, N, C*K)`` is taken once, then, for each kernel of the bank,
  one matrix product over all the positions that use it (``N * P_j`` rows at once), scattered
  back. K products with many rows each: the FLOPs of the layer, and few, large GEMMs when the
  bank is small.
- ``gathered``: the bank is indexed by the map into a per-position weight ``(*out, O, C/g, *k)``
  and the locally connected op runs on it (its fast CPU and Triton paths); the weight gradient
  is summed back into the bank by the indexing's backward. Best when most positions own their
  kernel.

:func:`mapped_conv` picks ``grouped`` when the bank is small next to the number of positions
and the batch small next to the output channels (:func:`choose`), ``gathered`` otherwise.

Shapes (d spatial dimensions): x (N, C, *padded_size), zero padding applied; weight
(K, O, C // g, *kernel_size); kernel_map (*out_size) long in [0, K); bias None, (O,) or (K, O).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from locality.kernels import dispatch
from locality.kernels.reference import unfold_windows

#: ``grouped`` runs when ``num_kernels * GROUPED_RATIO <= positions`` (each kernel's product has
#: at least this many positions on average) and the batch is at most half the output channels
#: per group (its patch copy grows with the batch, ``gathered``'s weight gather with the
#: channels). Measured forward+backward over N in {4, 32}, O in {8, 32, 64}, K in {4, 64} on a
#: 16x16 output (one thread, 2-core CPU, docs/performance.md): ``grouped`` was 1.9-7x faster
#: where both hold and ``gathered`` 1.2-11x faster everywhere else.
GROUPED_RATIO = 16


def gathered(
    x: torch.Tensor,
    weight: torch.Tensor,
    kernel_map: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """The locally connected op on ``weight[kernel_map]``."""
    out_size = tuple(kernel_map.shape)
    flat = kernel_map.reshape(-1)
    per_position = weight.index_select(0, flat).view(*out_size, *weight.shape[1:])
    if bias is not None and bias.dim() > 1:
        bias = bias.index_select(0, flat).view(*out_size, bias.shape[-1])
    return dispatch.locally_connected(x, per_position, bias, stride, dilation, groups)


def grouped(
    x: torch.Tensor,
    weight: torch.Tensor,
    kernel_map: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """One product per kernel over the patches of the positions that use it."""
    d = kernel_map.dim()
    out_size = tuple(kernel_map.shape)
    num_kernels, out_channels, cg = weight.shape[:3]
    kernel_size = weight.shape[3:]
    n, og, positions = x.shape[0], out_channels // groups, math.prod(out_size)
    spatial_first = x.permute(*range(2, 2 + d), 0, 1)  # (*S, N, C)
    windows = unfold_windows(spatial_first, kernel_size, stride, dilation)  # (*out, N, C, *k)
    patches = windows.reshape(positions, n, groups, cg * math.prod(kernel_size))
    flat = kernel_map.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=num_kernels).tolist()
    pieces, start = [], 0
    kernels = weight.reshape(num_kernels, groups, og, -1)
    for j, count in enumerate(counts):
        if count == 0:
            continue
        rows = patches.index_select(0, order[start : start + count])  # (P_j, N, g, C/g*K)
        start += count
        out = torch.bmm(rows.reshape(-1, groups, rows.shape[-1]).transpose(0, 1), kernels[j].mT)
        out = out.transpose(0, 1).reshape(count, n, out_channels)  # (P_j, N, O)
        if bias is not None:
            out = out + (bias if bias.dim() == 1 else bias[j])
        pieces.append(out)
    stacked = torch.cat(pieces)  # positions in the order `order`
    result = stacked.new_zeros((positions, n, out_channels)).index_copy(0, order, stacked)
    return result.permute(1, 2, 0).reshape(n, out_channels, *out_size)


Formulation = Callable[..., torch.Tensor]
FORMULATIONS: dict[str, Formulation] = {"grouped": grouped, "gathered": gathered}


def choose(num_kernels: int, positions: int, batch: int, out_per_group: int) -> str:
    """The formulation :func:`mapped_conv` runs for a bank of ``num_kernels`` over
    ``positions`` output positions, a batch of ``batch`` and ``out_per_group`` output channels
    per group."""
    few_kernels = num_kernels * GROUPED_RATIO <= positions
    return "grouped" if few_kernels and 2 * batch <= out_per_group else "gathered"


def mapped_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    kernel_map: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, C, *S) padded -> (N, O, *kernel_map.shape)."""
    path = choose(weight.shape[0], kernel_map.numel(), x.shape[0], weight.shape[1] // groups)
    return FORMULATIONS[path](x, weight, kernel_map, bias, stride, dilation, groups)
