"""The exact formulations of tiled convolution that dispatch runs, and the table naming them.

Output position ``i`` uses kernel ``i mod t``; the outputs of tile offset ``r`` are ``r, r + t,
r + 2t, ...``. With R = prod(t) kernels and Q = ceil(out / t) whole tiles per dimension:

- ``per_offset``: R convolutions with stride ``t*s`` on the input shifted by ``r*s``, stacked and
  interleaved by depth-to-space, all out of place (so ``torch.func.vmap`` over the weights and
  ``torch.export`` see ATen ops only). Exact FLOPs, but R launches, R input-sized gradients, and
  strided convolutions that get less efficient as their output shrinks: its cost grows with R.
- ``batched_gemm`` (:mod:`locality.kernels.tiled_gemm`): one batched matrix product over the R
  offsets per cache-sized chunk of patches, with a written-out backward. Its cost does not grow
  with the tile.

Which one runs is decided per shape in :func:`locality.kernels.dispatch.tiled_path`. Two more exact
formulations that dispatch never chose (one convolution with the kernels embedded at their
offsets, and one patch copy with a product per offset) live next to their benchmark, in
``benchmarks/tiled_formulations.py``.

Shapes as in :mod:`locality.kernels.reference`: x (N, C, *padded_size), weight
(*tile, O, C // g, *kernel_size), bias None, (O,) or (*tile, O); result (N, O, *out_size).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from locality.kernels.tiled_gemm import batched_gemm

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def depth_to_space(y: torch.Tensor, tile: Sequence[int], out_size: Sequence[int]) -> torch.Tensor:
    """(N, O, *tile, *tiles) -> (N, O, *out_size): offset r of tile q goes to q*t + r, cropped."""
    d = len(tile)
    n, o = y.shape[:2]
    tiles = y.shape[2 + d :]
    y = y.permute(0, 1, *(i for j in range(d) for i in (2 + d + j, 2 + j)))
    y = y.reshape(n, o, *(q * t for q, t in zip(tiles, tile, strict=False)))
    return y[(slice(None), slice(None)) + tuple(slice(0, s) for s in out_size)]


def _interleave(
    parts: list[torch.Tensor], tile: Sequence[int], out_size: Sequence[int]
) -> torch.Tensor:
    """R parts (N, O, *ceil((out - r) / t)), in offset order -> (N, O, *out_size).

    With int sizes: zero-extend each part to whole tiles, stack, depth-to-space. With symbolic
    sizes (export with a dynamic spatial size) those amounts would guard on the size's parity, so
    the parts are slice-scattered into zeros instead (out of place, R output-sized copies).
    """
    n, o = parts[0].shape[:2]
    tiles = [-(-s // t) for s, t in zip(out_size, tile, strict=False)]
    if all(isinstance(s, int) for s in out_size):
        padded = []
        for part in parts:
            short = [
                amount
                for q, m in zip(reversed(tiles), reversed(part.shape[2:]), strict=False)
                for amount in (0, q - m)
            ]
            padded.append(F.pad(part, short) if any(short) else part)
        return depth_to_space(torch.stack(padded, 2).unflatten(2, tile), tile, out_size)
    out = parts[0].new_zeros((n, o, *out_size))
    for offset, part in zip(itertools.product(*(range(t) for t in tile)), parts, strict=False):
        out = _scatter(out, part, offset, tile, 2)
    return out


def _scatter(
    out: torch.Tensor, part: torch.Tensor, offset: Sequence[int], tile: Sequence[int], dim: int
) -> torch.Tensor:
    """``out[..., r::t, ...] = part`` over dimensions ``dim`` and after, out of place."""
    if dim == out.dim():
        return part
    j = dim - 2
    inner = out[(slice(None),) * dim + (slice(offset[j], None, tile[j]),)]
    return out.slice_scatter(
        _scatter(inner, part, offset, tile, dim + 1), dim, offset[j], None, tile[j]
    )


def per_offset(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    """R strided convolutions, one per tile offset, zero-extended to Q, stacked, interleaved.

    Offset r has exactly ceil((out - r) / t) outputs, so the convolutions do the layer's FLOPs.
    """
    d = (weight.dim() - 2) // 2
    tile = tuple(weight.shape[:d])
    n, out_channels = x.shape[0], weight.shape[d]
    tiles = [-(-o // t) for o, t in zip(out_size, tile, strict=False)]
    tile_stride = tuple(t * s for t, s in zip(tile, stride, strict=False))
    parts = []
    for offset in itertools.product(*(range(t) for t in tile)):
        counts = [-(-(o - r) // t) for o, r, t in zip(out_size, offset, tile, strict=False)]
        if min(counts) <= 0:  # the tile is wider than the output here: no such positions
            parts.append(x.new_zeros((n, out_channels, *tiles)))
            continue
        crop = tuple(slice(r * s, None) for r, s in zip(offset, stride, strict=True))
        shifted = x[(slice(None), slice(None)) + crop]
        b = bias if bias is None or bias.dim() == 1 else bias[offset]
        parts.append(_CONV[d](shifted, weight[offset], b, tile_stride, 0, tuple(dilation), groups))
    return _interleave(parts, tile, out_size)


Formulation = Callable[..., torch.Tensor]

#: The formulations dispatch chooses between (every one exact; the tests run each).
FORMULATIONS: dict[str, Formulation] = {
    "per_offset": per_offset,
    "batched_gemm": batched_gemm,
}
