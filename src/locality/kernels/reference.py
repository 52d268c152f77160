"""Portable locally connected op of ATen ops only, on already padded inputs.

It runs on every device and dtype torch supports, is differentiable by autograd, and is what
``torch.export`` (hence ONNX) and ``torch.func`` transforms see. The tiled formulations live in
:mod:`locality.kernels.tiled`; the fast locally connected paths in ``chunked_bmm``/``local_op``.

Shapes (d = number of spatial dimensions, g = groups):
    x:      (N, C, *padded_size), zero padding already applied
    weight: (*grid, O, C // g, *kernel_size)
    bias:   None, (O,) or (*grid, O)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def tile_over(bank: torch.Tensor, tile: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """``bank[p mod tile]`` for every position ``p`` of ``size``: ``(*size, *bank.shape[d:])``."""
    d = len(tile)
    index = tuple(
        (torch.arange(n, device=bank.device) % t).view(*(-1 if j == i else 1 for j in range(d)))
        for i, (n, t) in enumerate(zip(size, tile, strict=True))
    )
    return bank[index]


def unfold_windows(
    x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> torch.Tensor:
    """A view of the sliding windows of ``x`` over its leading ``d`` dimensions.

    ``x`` has shape (*spatial, *rest); the result has shape (*out, *rest, *kernel_size) and
    shares memory with ``x`` (no copy is made).
    """
    if torch.jit.is_tracing():
        return _sliced_windows(x, kernel_size, stride, dilation)
    for dim, (k, s, dl) in enumerate(zip(kernel_size, stride, dilation, strict=False)):
        x = x.unfold(dim, dl * (k - 1) + 1, s)
        if dl > 1:
            x = x[..., ::dl]
    return x


def _sliced_windows(
    x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> torch.Tensor:
    """``unfold_windows`` as strided slices stacked (a copy), for TorchScript tracing: the ONNX
    exporter cannot export ``unfold`` of a padded input ("input size not accessible")."""
    for dim, (k, s, dl) in enumerate(zip(kernel_size, stride, dilation, strict=False)):
        count = (int(x.shape[dim]) - dl * (k - 1) - 1) // s + 1
        taps = [
            x.narrow(dim, j * dl, s * (count - 1) + 1)[
                (slice(None),) * dim + (slice(None, None, s),)
            ]
            for j in range(k)
        ]
        x = torch.stack(taps, -1)
    return x


def locally_connected(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """Locally connected op as one batched matrix product over output positions.

    The input is permuted to (*spatial, N, C) before its windows are taken, so the one copy made
    (the patch matrix, (P*g, N, C/g * K)) is written in the order the batched product reads it.
    """
    d = (weight.dim() - 2) // 2
    out_size = weight.shape[:d]
    out_channels, group_channels = weight.shape[d], weight.shape[d + 1]
    kernel_size = weight.shape[d + 2 :]
    n = x.shape[0]
    positions = math.prod(out_size)
    kernel_volume = math.prod(kernel_size)
    og = out_channels // groups

    spatial_first = x.permute(*range(2, 2 + d), 0, 1)  # (*S, N, C)
    windows = unfold_windows(spatial_first, kernel_size, stride, dilation)  # (*out, N, C, *k)
    windows = windows.unflatten(d + 1, (groups, group_channels)).movedim(d + 1, d)
    patches = windows.reshape(positions * groups, n, group_channels * kernel_volume)
    kernels = weight.reshape(positions * groups, og, group_channels * kernel_volume)
    if bias is None:
        out = torch.bmm(patches, kernels.transpose(1, 2))
    else:
        bias_rows = (
            bias.reshape(-1, groups, 1, og) if bias.dim() > 1 else bias.view(1, groups, 1, og)
        )
        bias_rows = bias_rows.expand(positions, groups, 1, og).reshape(positions * groups, 1, og)
        out = torch.baddbmm(bias_rows, patches, kernels.transpose(1, 2))
    # (P*g, N, O/g) -> (N, O, *out)
    out = out.view(*out_size, groups, n, og).permute(d + 1, d, d + 2, *range(d))
    return out.reshape(n, out_channels, *out_size)
