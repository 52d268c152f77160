"""Two exact formulations of tiled convolution that dispatch never chose, kept to be measured.

``benchmarks/connectivity.py`` times them beside the dispatched ones (``locality.kernels.tiled``):

- ``embedded``: one convolution with stride ``t*s`` whose R*O output channels hold each kernel
  placed with zeros at its offset ``r*s`` inside an extent of ``(t-1)*s + (k-1)*dl + 1``, then
  depth-to-space. One launch; FLOPs times ``prod(extent / k)`` (1.78x for t=2, k=3), and not exact
  for non-finite inputs (``inf * 0`` is NaN where a convolution gives ``inf``): never dispatched.
- ``unfold_matmul``: one whole patch copy, then one batched product per offset. Exact FLOPs; pays
  the k^d-sized patch copy in memory and time (``batched_gemm`` is its chunked successor).

Shapes as in ``locality.kernels.reference``: x (N, C, *padded_size), weight
(*tile, O, C // g, *kernel_size), bias None, (O,) or (*tile, O); result (N, O, *out_size).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from locality.kernels import reference, tiled

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _whole_tiles(
    x: torch.Tensor,
    tile: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    out_size: Sequence[int],
) -> tuple[torch.Tensor, list[int]]:
    """Pad the end of ``x`` so that every offset has Q outputs; return it and Q per dimension."""
    tiles = [-(-o // t) for o, t in zip(out_size, tile, strict=False)]
    need = [
        (q * t - 1) * s + (k - 1) * dl + 1
        for q, t, s, k, dl in zip(tiles, tile, stride, kernel_size, dilation, strict=False)
    ]
    extra = [max(0, m - have) for m, have in zip(need, x.shape[2:], strict=False)]
    if any(extra):
        x = F.pad(x, [amount for e in reversed(extra) for amount in (0, e)])
    return x, tiles


def _tile_bias(bias: torch.Tensor | None, tile: Sequence[int]) -> torch.Tensor | None:
    """Bias as (O, *tile) (or (O, 1, ...) if shared), to add to an (N, O, *tile, *tiles) stack."""
    if bias is None:
        return None
    d = len(tile)
    b = bias.view(-1, *(1,) * d) if bias.dim() == 1 else bias.movedim(-1, 0)
    return b.reshape(*b.shape, *(1,) * d)


def embedded_kernel(
    weight: torch.Tensor, stride: Sequence[int], dilation: Sequence[int]
) -> torch.Tensor:
    """(*tile, O, C/g, *k) -> (O * R, C/g, *extent): kernel r dilated and zero-placed at r*s.

    Built with ``F.pad`` and ``torch.stack`` (no writes into a buffer). Channel ``o * R + r``
    holds kernel r of output channel o, so each group's output channels stay contiguous.
    """
    d = (weight.dim() - 2) // 2
    tile, kernel_size = tuple(weight.shape[:d]), tuple(weight.shape[d + 2 :])
    extent = [
        (t - 1) * s + (k - 1) * dl + 1
        for t, k, s, dl in zip(tile, kernel_size, stride, dilation, strict=False)
    ]
    w = weight
    for j, (k, dl) in enumerate(zip(kernel_size, dilation, strict=False)):
        if dl > 1:  # insert dl - 1 zeros between taps along kernel dimension j
            dim = d + 2 + j
            w = torch.stack([w, *[torch.zeros_like(w)] * (dl - 1)], dim + 1).flatten(dim, dim + 1)
            w = w.narrow(dim, 0, (k - 1) * dl + 1)
    placed = []
    for offset in itertools.product(*(range(t) for t in tile)):
        pads = []
        for j in reversed(range(d)):
            before = offset[j] * stride[j]
            pads += [before, extent[j] - before - w.shape[d + 2 + j]]
        placed.append(F.pad(w[offset], pads))
    big = torch.stack(placed, 1)  # (O, R, C/g, *extent)
    return big.flatten(0, 1)


def embedded(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    """One convolution with all R kernels embedded at their offsets, then depth-to-space."""
    d = (weight.dim() - 2) // 2
    tile, kernel_size = tuple(weight.shape[:d]), tuple(weight.shape[d + 2 :])
    out_channels = weight.shape[d]
    x, tiles = _whole_tiles(x, tile, kernel_size, stride, dilation, out_size)
    tile_stride = tuple(t * s for t, s in zip(tile, stride, strict=False))
    y = _CONV[d](x, embedded_kernel(weight, stride, dilation), None, tile_stride, 0, 1, groups)
    y = y[(slice(None), slice(None)) + tuple(slice(0, q) for q in tiles)]
    y = y.unflatten(1, (out_channels, *tile))  # (N, O, *tile, *tiles)
    b = _tile_bias(bias, tile)
    return tiled.depth_to_space(y if b is None else y + b, tile, out_size)


def unfold_matmul(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    """One patch copy, then one (g-batched) matrix product per offset, stacked and interleaved."""
    d = (weight.dim() - 2) // 2
    tile, kernel_size = tuple(weight.shape[:d]), tuple(weight.shape[d + 2 :])
    out_channels, group_channels = weight.shape[d], weight.shape[d + 1]
    n, og = x.shape[0], out_channels // groups
    x, tiles = _whole_tiles(x, tile, kernel_size, stride, dilation, out_size)
    spatial_first = x.permute(*range(2, 2 + d), 0, 1)
    windows = reference.unfold_windows(
        spatial_first, kernel_size, stride, dilation
    )  # (*out, N, C, *k)
    parts = []
    for offset in itertools.product(*(range(t) for t in tile)):
        part = windows[
            tuple(slice(r, r + q * t, t) for r, t, q in zip(offset, tile, tiles, strict=False))
        ]
        rows = part.reshape(-1, groups, group_channels * math.prod(kernel_size)).transpose(0, 1)
        kernels = weight[offset].reshape(groups, og, -1).transpose(1, 2)
        y = torch.bmm(rows, kernels)  # (g, prod(Q) * N, O/g)
        parts.append(
            y.view(groups, *tiles, n, og)
            .permute(d + 1, 0, d + 2, *range(1, d + 1))
            .reshape(n, out_channels, *tiles)
        )
    y = torch.stack(parts, 2).unflatten(2, tile)
    b = _tile_bias(bias, tile)
    return tiled.depth_to_space(y if b is None else y + b, tile, out_size)


def embedded_flop_ratio(
    tile: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> float:
    """FLOPs of ``embedded`` over the exact FLOPs: prod(extent / k)."""
    return math.prod(
        ((t - 1) * s + (k - 1) * dl + 1) / k
        for t, k, s, dl in zip(tile, kernel_size, stride, dilation, strict=False)
    )


#: Name -> formulation, with the signature of ``locality.kernels.tiled.FORMULATIONS``.
FORMULATIONS: dict[str, tiled.Formulation] = {"embedded": embedded, "unfold_matmul": unfold_matmul}
