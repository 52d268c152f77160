"""Region-shared convolution (DeepID, Sun et al. 2014) as one convolution per region.

The output grid is cut into ``prod(regions)`` boxes, along each dimension into contiguous blocks
as ``numpy.array_split`` cuts ``range(out)`` (the first ``out % regions`` blocks one longer).
Each box is an ordinary convolution with its own kernel over the crop of the input that box
reads, so the FLOPs are exactly the layer's and every product is a ``torch.nn.functional.conv*d``
(fast, differentiable to any order, understood by export and torch.func).

Shapes (d spatial dimensions): x (N, C, *padded_size), zero padding applied; weight
(*regions, O, C // g, *kernel_size); bias None, (O,) or (*regions, O); result (N, O, *out_size).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def blocks(size: int, parts: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each of ``parts`` contiguous blocks of ``range(size)``, cut as
    ``numpy.array_split`` cuts it: the first ``size % parts`` blocks are one longer."""
    base, longer = divmod(size, parts)
    bounds, start = [], 0
    for j in range(parts):
        stop = start + base + (j < longer)
        bounds.append((start, stop))
        start = stop
    return bounds


def region_index(out_size: Sequence[int], regions: Sequence[int]) -> torch.Tensor:
    """The ``(*out_size)`` map from output position to its region, flattened row-major."""
    per_dim = []
    for size, parts in zip(out_size, regions, strict=True):
        row = torch.empty(size, dtype=torch.long)
        for j, (start, stop) in enumerate(blocks(size, parts)):
            row[start:stop] = j
        per_dim.append(row)
    index = torch.zeros(tuple(out_size), dtype=torch.long)
    for dim, (row, parts) in enumerate(zip(per_dim, regions, strict=True)):
        shape = [1] * len(out_size)
        shape[dim] = -1
        index = index * parts + row.view(shape)
    return index


def region_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    """(N, C, *S) padded -> (N, O, *out_size): one convolution per region, assembled by cat.

    The boxes' kernels and biases are taken with ``unbind`` of one view, whose backward is one
    ``stack``: indexing each box separately would make autograd write a zero-filled bank-sized
    gradient per box. The input crops are cut as :func:`_windows` says.
    """
    d = len(out_size)
    regions = weight.shape[:d]
    kernel_size = weight.shape[d + 2 :]
    cuts = [blocks(o, r) for o, r in zip(out_size, regions, strict=True)]
    boxes = list(itertools.product(*(range(r) for r in regions)))
    kernels = weight.flatten(0, d - 1).unbind(0)
    if bias is None or bias.dim() == 1:
        biases: Sequence[torch.Tensor | None] = [bias] * len(boxes)
    else:
        biases = bias.flatten(0, d - 1).unbind(0)
    crops = _crops(x, cuts, stride, dilation, kernel_size)
    parts = {
        box: _CONV[d](crop, kernel, b, tuple(stride), 0, tuple(dilation), groups)
        for box, crop, kernel, b in zip(boxes, crops, kernels, biases, strict=True)
    }
    return _assemble(parts, list(regions), 0, ())


def _crops(
    x: torch.Tensor,
    cuts: list[list[tuple[int, int]]],
    stride: Sequence[int],
    dilation: Sequence[int],
    kernel_size: Sequence[int],
) -> list[torch.Tensor]:
    """The input each box reads, boxes in row-major order, cut one dimension at a time."""
    extent = [dl * (k - 1) + 1 for k, dl in zip(kernel_size, dilation, strict=True)]
    copy = x.requires_grad and torch.is_grad_enabled()
    crops = [x]
    for dim, (cut, s, e) in enumerate(zip(cuts, stride, extent, strict=True)):
        windows = [(start * s, (stop - 1) * s + e) for start, stop in cut]
        crops = [piece for crop in crops for piece in _windows(crop, 2 + dim, windows, copy)]
    return crops


def _windows(
    x: torch.Tensor, dim: int, windows: list[tuple[int, int]], copy: bool
) -> list[torch.Tensor]:
    """``x`` restricted to each ``[start, stop)`` of ``windows`` along ``dim``.

    Without a gradient to ``x``: views. With one, the windows (which overlap by the kernel's
    halo) are built from one split of ``x`` at every window edge and one cat per window, so the
    backward is cats and an add per shared piece. Slicing or unfolding each window instead makes
    autograd write a zero-filled input-sized gradient per window: with unfold that was 14 ms of
    a 48 ms forward+backward on the benchmark's 2x2 shape (docs/performance.md).
    """
    if not copy:
        return [x.narrow(dim, start, stop - start) for start, stop in windows]
    edges = sorted({edge for window in windows for edge in window})
    position = {edge: i for i, edge in enumerate(edges)}
    sizes = [b - a for a, b in itertools.pairwise(edges)]
    if edges[0] > 0 or edges[-1] < x.shape[dim]:  # a narrow's backward zero-fills all of x
        x = x.narrow(dim, edges[0], edges[-1] - edges[0])
    pieces = x.split(sizes, dim)
    out = []
    for start, stop in windows:
        run = pieces[position[start] : position[stop]]
        out.append(run[0] if len(run) == 1 else torch.cat(run, dim))
    return out


def _assemble(parts: dict, regions: list[int], dim: int, prefix: tuple) -> torch.Tensor:
    """Concatenate the boxes' outputs along each spatial dimension in turn."""
    if dim == len(regions):
        return parts[prefix]
    rows = [_assemble(parts, regions, dim + 1, (*prefix, j)) for j in range(regions[dim])]
    return rows[0] if len(rows) == 1 else torch.cat(rows, dim=2 + dim)
