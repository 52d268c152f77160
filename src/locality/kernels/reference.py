"""Portable PyTorch implementations of the two connectivity ops, on already padded inputs.

These run on every device and dtype torch supports and are differentiable by autograd. They are
the fallback behind the functional ops; faster paths live beside them in this package.

Shapes (d = number of spatial dimensions, g = groups):
    x:      (N, C, *padded_size), zero padding already applied
    weight: (*grid, O, C // g, *kernel_size)
    bias:   None, (O,) or (*grid, O)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def unfold_windows(
    x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> torch.Tensor:
    """A view of the sliding windows of ``x`` over its leading ``d`` dimensions.

    ``x`` has shape (*spatial, *rest); the result has shape (*out, *rest, *kernel_size) and
    shares memory with ``x`` (no copy is made).
    """
    for dim, (k, s, dl) in enumerate(zip(kernel_size, stride, dilation)):
        x = x.unfold(dim, dl * (k - 1) + 1, s)
        if dl > 1:
            x = x[..., ::dl]
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
        bias_rows = bias.reshape(-1, groups, 1, og) if bias.dim() > 1 else bias.view(1, groups, 1, og)
        bias_rows = bias_rows.expand(positions, groups, 1, og).reshape(positions * groups, 1, og)
        out = torch.baddbmm(bias_rows, patches, kernels.transpose(1, 2))
    # (P*g, N, O/g) -> (N, O, *out)
    out = out.view(*out_size, groups, n, og).permute(d + 1, d, d + 2, *range(d))
    return out.reshape(n, out_channels, *out_size)


def tiled_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    """Tiled convolution as one strided convolution per tile offset.

    Output position i uses kernel ``i mod t``. The outputs of offset r are the positions
    r, r + t, r + 2t, ...: a convolution with stride t*s over the input cropped to start at r*s.
    Exact FLOPs: each output is computed once.
    """
    d = (weight.dim() - 2) // 2
    tile = weight.shape[:d]
    conv = _CONV[d]
    n, out_channels = x.shape[0], weight.shape[d]
    shared_bias = bias is not None and bias.dim() == 1
    if all(t == 1 for t in tile):
        w = weight.reshape(weight.shape[d:])
        b = bias.reshape(out_channels) if bias is not None else None
        return conv(x, w, b, tuple(stride), 0, tuple(dilation), groups)
    out = x.new_empty((n, out_channels, *out_size))
    for offset in itertools.product(*(range(min(t, o)) for t, o in zip(tile, out_size))):
        crop = x[(slice(None), slice(None)) + tuple(slice(r * s, None) for r, s in zip(offset, stride))]
        tile_stride = tuple(t * s for t, s in zip(tile, stride))
        b = bias if shared_bias else (bias[offset] if bias is not None else None)
        part = conv(crop, weight[offset], b, tile_stride, 0, tuple(dilation), groups)
        out[(slice(None), slice(None)) + tuple(slice(r, None, t) for r, t in zip(offset, tile))] = part
    return out
