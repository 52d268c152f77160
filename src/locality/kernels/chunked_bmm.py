"""Locally connected forward and both backward products as chunked batched matrix products.

The layout puts the batch last: the input is made ``(*S, C, N)`` contiguous (one input-sized
copy), so a patch column ``(c, k)`` of position ``p`` is a contiguous run of N values and the
patch matrix of position p is ``(C/g*K, N)``, built by a copy whose inner runs are N long. Each
position's product is then ``out[p]^T (O/g, N) = weight[p] (O/g, C/g*K) @ patches[p]``: the weight
is read in its own layout, never copied.

The patch matrix is never whole: positions are taken a few output rows (leading output dimension)
at a time, so each chunk's patches (about ``CHUNK_BYTES``) are written and read while in cache.
Forward and ``grad_weight`` rebuild the chunk's patches; ``grad_input`` computes the chunk's patch
gradient and folds it onto the input with one strided add per kernel offset. The largest
temporary is one chunk, not a k^d-sized patch copy.

Shapes (d spatial dimensions, P = prod(out_size), K = prod(kernel_size), g = groups):
    x:        (N, C, *S), zero padding applied
    weight:   (*out_size, O, C // g, *kernel_size)
    bias:     None, (O,) or (*out_size, O)
    grad_out: (N, O, *out_size)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import torch

from locality.kernels.reference import unfold_windows

#: Bytes of patches per chunk: small enough to stay in a 2 MiB L2, large enough that the Python
#: loop costs little (measured on the benchmark shapes; see docs/performance.md).
CHUNK_BYTES = 2 << 20

#: grad_input's chunks are this many times larger: its fold costs one strided add per kernel
#: offset and chunk, so fewer, larger chunks mean fewer and larger adds.
FOLD_CHUNKS = 4


def batch_last(t: torch.Tensor) -> torch.Tensor:
    """(N, C, *S) -> contiguous (*S, C, N)."""
    d = t.dim() - 2
    return t.permute(*range(2, 2 + d), 1, 0).contiguous()


def batch_first(t: torch.Tensor) -> torch.Tensor:
    """(*S, C, N) -> contiguous (N, C, *S)."""
    d = t.dim() - 2
    return t.permute(d + 1, d, *range(d)).contiguous()


def _windows(
    xt: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> torch.Tensor:
    """(*S, C, N) -> view (*out, C, *k, N) of every window."""
    d = len(kernel_size)
    return unfold_windows(xt, kernel_size, stride, dilation).movedim(d + 1, -1)


def _chunks(out_size: Sequence[int], row_bytes: int, scale: int = 1) -> Iterator[tuple[int, int]]:
    """Ranges [a, b) of the leading output dimension holding about scale * CHUNK_BYTES."""
    rows = max(1, scale * CHUNK_BYTES // max(1, row_bytes))
    for a in range(0, out_size[0], rows):
        yield a, min(out_size[0], a + rows)


def _row_bytes(windows: torch.Tensor) -> int:
    """Bytes of patches for one index of the leading output dimension."""
    return math.prod(windows.shape[1:]) * windows.element_size()


def forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, C, *S) -> (N, O, *out_size)."""
    d = (weight.dim() - 2) // 2
    out_size, kernel_size = weight.shape[:d], weight.shape[d + 2 :]
    out_channels = weight.shape[d]
    n, og = x.shape[0], out_channels // groups
    windows = _windows(batch_last(x), kernel_size, stride, dilation)
    kernels = weight.contiguous()
    fan_in = kernels.shape[d + 1] * math.prod(kernel_size)
    result = x.new_empty((n, out_channels, *out_size))
    if groups == 1:  # products laid out (*out, N, O): the result is one 2-D transpose away
        out_t = x.new_empty((*out_size, n, out_channels))
        for a, b in _chunks(out_size, _row_bytes(windows)):
            batch = (b - a) * math.prod(out_size[1:])
            patches = windows[a:b].reshape(batch, fan_in, n)
            torch.bmm(
                patches.transpose(1, 2),
                kernels[a:b].reshape(batch, og, fan_in).transpose(1, 2),
                out=out_t[a:b].view(batch, n, og),
            )
        positions = math.prod(out_size)
        if bias is not None:
            out_t.view(positions, n, out_channels).add_(bias.reshape(-1, 1, out_channels))
        result.view(n * out_channels, positions).copy_(out_t.view(positions, -1).t())
        return result
    out_t = x.new_empty((*out_size, out_channels, n))
    for a, b in _chunks(out_size, _row_bytes(windows)):
        batch = (b - a) * math.prod(out_size[1:]) * groups
        patches = windows[a:b].reshape(batch, fan_in, n)
        torch.bmm(kernels[a:b].reshape(batch, og, -1), patches, out=out_t[a:b].view(batch, og, n))
    out_view = out_t.permute(d + 1, d, *range(d))
    if bias is None:
        return result.copy_(out_view)
    bias_t = bias.view(out_channels, *(1,) * d) if bias.dim() == 1 else bias.movedim(-1, 0)
    return torch.add(out_view, bias_t, out=result)


def grad_weight(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """grad_weight[p] = grad_out[p]^T @ patches[p]^T: (*out, O, C/g, *k), summed over the batch."""
    out_size, out_channels = grad_out.shape[2:], grad_out.shape[1]
    n, og, cg = x.shape[0], out_channels // groups, x.shape[1] // groups
    windows = _windows(batch_last(x), kernel_size, stride, dilation)
    go_t = _grad_out_per_position(grad_out, groups)
    grad = x.new_empty((*out_size, out_channels, cg, *kernel_size))
    for a, b in _chunks(out_size, _row_bytes(windows)):
        batch = (b - a) * math.prod(out_size[1:]) * groups
        patches = windows[a:b].reshape(batch, cg * math.prod(kernel_size), n)
        torch.bmm(go_t(a, b, batch), patches.transpose(1, 2), out=grad[a:b].view(batch, og, -1))
    return grad


def _grad_out_per_position(
    grad_out: torch.Tensor, groups: int
) -> Callable[[int, int, int], torch.Tensor]:
    """``(a, b, batch) ->`` the ``(batch, O/g, N)`` output-gradient matrices of output rows
    ``[a, b)``. Without groups the gradient is laid out ``(P, N, O)``, one 2-D transpose of
    ``(N, O, P)`` (a blocked copy, several times faster than the 3-D permute to ``(P, O, N)``),
    and each matrix is a transposed view; with groups, ``(*out, O, N)``."""
    n, out_channels, out_size = grad_out.shape[0], grad_out.shape[1], grad_out.shape[2:]
    og = out_channels // groups
    if groups == 1:
        positions = math.prod(out_size)
        flat = grad_out.reshape(n * out_channels, positions).t().contiguous()
        per_position = flat.view(*out_size, n, out_channels)
        return lambda a, b, batch: per_position[a:b].view(batch, n, og).transpose(1, 2)
    go_t = batch_last(grad_out)  # (*out, O, N)
    return lambda a, b, batch: go_t[a:b].view(batch, og, n)


def grad_input(
    grad_out: torch.Tensor,
    weight: torch.Tensor,
    spatial: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """Patch gradients weight[p]^T @ grad_out[p] folded onto the (N, C, *spatial) input.

    When no two windows overlap (kernel extent <= stride in every dimension: kernel == stride
    blocks, 1x1 kernels) the fold is one copy per chunk into the windows' view of the input
    gradient; otherwise one strided add per kernel offset and chunk.
    """
    d = (weight.dim() - 2) // 2
    out_size, kernel_size = weight.shape[:d], weight.shape[d + 2 :]
    n, og, cg = grad_out.shape[0], weight.shape[d] // groups, weight.shape[d + 1]
    channels = cg * groups
    kernels = weight.contiguous()
    go_t = _grad_out_per_position(grad_out, groups)
    grad_t = grad_out.new_zeros((*spatial, channels, n))
    row_bytes = (
        math.prod(out_size[1:]) * channels * math.prod(kernel_size) * n * grad_out.element_size()
    )
    disjoint = all(
        (k - 1) * dl + 1 <= s for k, s, dl in zip(kernel_size, stride, dilation, strict=True)
    )
    windows = _windows(grad_t, kernel_size, stride, dilation) if disjoint else None
    for a, b in _chunks(out_size, row_bytes, 1 if disjoint else FOLD_CHUNKS):
        batch = (b - a) * math.prod(out_size[1:]) * groups
        grad_patches = torch.bmm(
            kernels[a:b].reshape(batch, og, cg * math.prod(kernel_size)).transpose(1, 2),
            go_t(a, b, batch),
        )
        grad_patches = grad_patches.view(b - a, *out_size[1:], channels, *kernel_size, n)
        if windows is not None:
            windows[a:b].copy_(grad_patches)
            continue
        for offset in itertools.product(*(range(k) for k in kernel_size)):
            lo = [j * dl for j, dl in zip(offset, dilation, strict=False)]
            lo[0] += a * stride[0]
            rows = [b - a, *out_size[1:]]
            region = tuple(
                slice(start, start + s * (m - 1) + 1, s)
                for start, s, m in zip(lo, stride, rows, strict=False)
            )
            grad_t[region] += grad_patches[(Ellipsis,) + offset + (slice(None),)]
    return batch_first(grad_t)
