"""Three exact formulations of tiled convolution, and the rule that picks one per shape.

Output position ``i`` uses kernel ``i mod t``; the outputs of tile offset ``r`` are ``r, r + t,
r + 2t, ...``. With R = prod(t) kernels:

- ``per_offset`` (:func:`locality.kernels.reference.tiled_conv`): R strided convolutions on
  shifted crops. Exact FLOPs; R launches, and each crop is copied by the convolution.
- ``embedded``: one convolution with stride ``t*s`` whose R*O output channels hold each kernel
  placed with zeros at its offset ``r*s`` inside an extent of ``(t-1)*s + (k-1)*dl + 1``, then
  depth-to-space. No input copies; FLOPs times ``prod(extent / k)`` (1.78x for t=2, k=3).
- ``unfold_matmul``: one patch matrix, then R matrix products over the positions of each offset.
  Exact FLOPs; costs the k^d-sized patch copy.

Shapes as in :mod:`locality.kernels.reference`: x (N, C, *padded_size), weight
(*tile, O, C // g, *kernel_size), bias None, (O,) or (*tile, O).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from locality.kernels import reference

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

#: The embedded kernel wins while its extra FLOPs stay under this factor (measured on CPU, see
#: docs/performance.md: t=2, k=3 at 1.78x beat R=4 crop copies; t=4 at 4x did not).
EMBEDDED_MAX_FLOP_RATIO = 2.0


def _extent(tile: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
            dilation: Sequence[int]) -> tuple[int, ...]:
    return tuple((t - 1) * s + (k - 1) * dl + 1
                 for t, k, s, dl in zip(tile, kernel_size, stride, dilation))


def embedded_flop_ratio(tile: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                        dilation: Sequence[int]) -> float:
    """FLOPs of the ``embedded`` formulation over the exact FLOPs."""
    return math.prod(e / k for e, k in zip(_extent(tile, kernel_size, stride, dilation), kernel_size))


def choose(weight: torch.Tensor, stride: Sequence[int], dilation: Sequence[int]) -> str:
    """The formulation to use for this weight shape: ``embedded`` or ``per_offset``.

    ``unfold_matmul`` is never chosen: its patch copy made it the slowest of the three on every
    measured shape; it stays for the benchmark's comparison.
    """
    d = (weight.dim() - 2) // 2
    ratio = embedded_flop_ratio(weight.shape[:d], weight.shape[d + 2 :], stride, dilation)
    return "embedded" if ratio <= EMBEDDED_MAX_FLOP_RATIO else "per_offset"


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
    out_channels, group_channels = weight.shape[d], weight.shape[d + 1]
    n, r = x.shape[0], math.prod(tile)
    extent = _extent(tile, kernel_size, stride, dilation)

    # Channel o * R + r holds kernel r of output channel o: o-major keeps each group's channels
    # contiguous, as a grouped convolution needs.
    big = weight.new_zeros((out_channels, *tile, group_channels, *extent))
    for offset in itertools.product(*(range(t) for t in tile)):
        taps = tuple(slice(o * s, o * s + (k - 1) * dl + 1, dl)
                     for o, s, k, dl in zip(offset, stride, kernel_size, dilation))
        big[(slice(None), *offset, slice(None), *taps)] = weight[offset]
    big = big.reshape(out_channels * r, group_channels, *extent)
    if bias is None:
        big_bias = None
    elif bias.dim() == 1:
        big_bias = bias.repeat_interleave(r)
    else:
        big_bias = bias.movedim(-1, 0).reshape(out_channels * r)

    # Whole tiles: pad the end so that the last tile's unused outputs still have an input.
    tiles = [-(-o // t) for o, t in zip(out_size, tile)]
    need = [(q * t - 1) * s + (k - 1) * dl + 1
            for q, t, s, k, dl in zip(tiles, tile, stride, kernel_size, dilation)]
    extra = [max(0, m - have) for m, have in zip(need, x.shape[2:])]
    if any(extra):
        x = F.pad(x, [amount for e in reversed(extra) for amount in (0, e)])
    tile_stride = tuple(t * s for t, s in zip(tile, stride))
    y = _CONV[d](x, big, big_bias, tile_stride, 0, 1, groups)  # (N, O*R, *tiles)

    # Depth-to-space: (N, O, *tile, *tiles) -> (N, O, tiles_0, tile_0, tiles_1, tile_1, ...).
    y = y.view(n, out_channels, *tile, *tiles)
    y = y.permute(0, 1, *(i for j in range(d) for i in (2 + d + j, 2 + j)))
    y = y.reshape(n, out_channels, *(q * t for q, t in zip(tiles, tile)))
    return y[(slice(None), slice(None), *(slice(0, o) for o in out_size))]


def unfold_matmul(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    """One patch copy per tile offset, then one (g-batched) matrix product per offset."""
    d = (weight.dim() - 2) // 2
    tile, kernel_size = tuple(weight.shape[:d]), tuple(weight.shape[d + 2 :])
    out_channels, group_channels = weight.shape[d], weight.shape[d + 1]
    n, og = x.shape[0], out_channels // groups
    spatial_first = x.permute(*range(2, 2 + d), 0, 1)
    windows = reference.unfold_windows(spatial_first, kernel_size, stride, dilation)
    windows = windows[(*(slice(0, o) for o in out_size),)]  # (*out, N, C, *k)
    out = x.new_empty((n, out_channels, *out_size))
    for offset in itertools.product(*(range(min(t, o)) for t, o in zip(tile, out_size))):
        select = tuple(slice(r, None, t) for r, t in zip(offset, tile))
        part = windows[select]  # (*q, N, C, *k)
        q = part.shape[:d]
        rows = part.reshape(-1, groups, group_channels * math.prod(kernel_size)).transpose(0, 1)
        kernels = weight[offset].reshape(groups, og, -1).transpose(1, 2)
        y = torch.bmm(rows, kernels)  # (g, prod(q) * N, O/g)
        y = y.view(groups, *q, n, og).permute(d + 1, 0, d + 2, *range(1, d + 1))
        y = y.reshape(n, out_channels, *q)
        if bias is not None:
            b = bias if bias.dim() == 1 else bias[offset]
            y = y + b.view(out_channels, *(1,) * d)
        out[(slice(None), slice(None), *select)] = y
    return out


FORMULATIONS = {
    "per_offset": reference.tiled_conv,
    "embedded": embedded,
    "unfold_matmul": unfold_matmul,
}
