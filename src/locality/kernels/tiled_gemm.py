"""Tiled convolution as batched matrix products over the tile's kernels, chunk by chunk.

All output positions of tile offset ``r`` use kernel ``r``, so their patches form one matrix and
the layer is one batched product over the R = prod(t) offsets (and the g groups): ``out_r (rows,
O/g) = patches_r (rows, K*C/g) @ kernel_r (K*C/g, O/g)`` with rows = (whole tiles, batch). Its cost
depends on the layer's FLOPs, not on the tile: the number of products does not grow with R (they
are batched) and every copy is input- or output-sized or one cache-sized chunk.

The input is made ``(*S, N, C)`` contiguous once (spatial first, channels last), so each patch row
is K runs of C/g contiguous values. Patches are never whole: a few tile rows (leading dimension) at
a time, about ``CHUNK_BYTES``, are copied and multiplied while in cache. The backward is written
out (forward's and backward's products share the patch recipe): ``grad_kernel_r += patches_r^T @
grad_r``; ``grad_patches_r = grad_r @ kernel_r^T`` folded onto the input with one strided add per
kernel offset and chunk. The backward is made of differentiable ops (no ``out=``), so autograd
differentiates it again (double backward); :meth:`_TiledGemm.jvp` gives forward-mode AD.

Shapes as in :mod:`locality.kernels.reference`: x (N, C, *padded_size), weight
(*tile, O, C // g, *kernel_size), bias None, (O,) or (*tile, O); result (N, O, *out_size).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from locality.kernels.reference import unfold_windows

#: Bytes of patches per chunk: small enough to stay in a 2 MiB L2 (as for the locally connected
#: kernels), large enough that the Python loop costs little.
CHUNK_BYTES = 2 << 20


class _Layout:
    """The sizes the products need: d, tile, groups, channels, kernel and whole tiles Q."""

    def __init__(self, x: torch.Tensor, weight: torch.Tensor, groups: int, out_size: Sequence[int]):
        d = (weight.dim() - 2) // 2
        self.d = d
        self.tile = tuple(weight.shape[:d])
        self.kernel_size = tuple(weight.shape[d + 2 :])
        self.groups = groups
        self.og, self.cg = weight.shape[d] // groups, weight.shape[d + 1]
        self.n = x.shape[0]
        self.out_size = tuple(out_size)
        self.tiles = tuple(-(-o // t) for o, t in zip(out_size, self.tile, strict=True))
        self.batch = math.prod(self.tile) * groups  # one product per tile offset and group
        self.rows = math.prod(self.tiles[1:]) * self.n  # rows per index of the leading tile dim
        self.depth = math.prod(self.kernel_size) * self.cg

    def chunks(self, element_size: int) -> Iterator[tuple[int, int]]:
        """Ranges [a, b) of the leading tile dimension holding about CHUNK_BYTES of patches."""
        row_bytes = self.batch * self.rows * self.depth * element_size
        step = max(1, CHUNK_BYTES // max(1, row_bytes))
        for a in range(0, self.tiles[0], step):
            yield a, min(self.tiles[0], a + step)


def _spatial_first(
    x: torch.Tensor, lay: _Layout, stride: Sequence[int], dilation: Sequence[int]
) -> torch.Tensor:
    """(N, C, *S) -> contiguous (*S', N, C), zero-extended at the end so every offset has Q."""
    need = [
        (q * t - 1) * s + (k - 1) * dl + 1
        for q, t, s, k, dl in zip(
            lay.tiles, lay.tile, stride, lay.kernel_size, dilation, strict=True
        )
    ]
    extra = [max(0, m - have) for m, have in zip(need, x.shape[2:], strict=True)]
    if any(extra):
        x = F.pad(x, [amount for e in reversed(extra) for amount in (0, e)])
    return x.permute(*range(2, 2 + lay.d), 0, 1).contiguous()


def _patch_view(
    xs: torch.Tensor, lay: _Layout, stride: Sequence[int], dilation: Sequence[int]
) -> torch.Tensor:
    """(*S', N, C) -> view (*tile, g, *Q, N, *k, C/g) of every window, sorted by tile offset."""
    d = lay.d
    windows = unfold_windows(xs, lay.kernel_size, stride, dilation)  # (*out', N, C, *k)
    windows = windows[tuple(slice(0, q * t) for q, t in zip(lay.tiles, lay.tile, strict=True))]
    for i in reversed(range(d)):
        windows = windows.unflatten(i, (lay.tiles[i], lay.tile[i]))
    windows = windows.unflatten(2 * d + 1, (lay.groups, lay.cg))
    # dims: Q1, t1, ..., Qd, td, N, g, C/g, k1..kd
    order = [2 * i + 1 for i in range(d)] + [2 * d + 1] + [2 * i for i in range(d)]
    order += [2 * d] + [2 * d + 3 + i for i in range(d)] + [2 * d + 2]
    return windows.permute(order)


def _kernels(weight: torch.Tensor, lay: _Layout) -> torch.Tensor:
    """(*tile, O, C/g, *k) -> (R*g, K*C/g, O/g), rows in the patches' (k, c) order."""
    d = lay.d
    w = weight.unflatten(d, (lay.groups, lay.og))  # (*tile, g, O/g, C/g, *k)
    order = [*range(d), d] + [d + 3 + i for i in range(d)] + [d + 2, d + 1]
    return w.permute(order).reshape(lay.batch, lay.depth, lay.og)


def _rows(t: torch.Tensor, lay: _Layout, a: int, b: int, width: int) -> torch.Tensor:
    """Chunk [a, b) of a (*tile, g, *Q, N, ...) tensor as (R*g, rows, width)."""
    part = t[(slice(None),) * (lay.d + 1) + (slice(a, b),)]
    return part.reshape(lay.batch, (b - a) * lay.rows, width)


def _forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    """The products, then one pass that adds the bias and writes the caller's layout."""
    lay = _Layout(x, weight, groups, out_size)
    d = lay.d
    patches = _patch_view(_spatial_first(x, lay, stride, dilation), lay, stride, dilation)
    kernels = _kernels(weight, lay)
    out_t = x.new_empty((*lay.tile, groups, *lay.tiles, lay.n, lay.og))
    for a, b in lay.chunks(x.element_size()):
        _rows(out_t, lay, a, b, lay.og).copy_(
            torch.bmm(_rows(patches, lay, a, b, lay.depth), kernels)
        )
    # (*tile, g, *Q, N, O/g) -> (N, g, O/g, Q1, t1, ..., Qd, td)
    order = [2 * d + 1, d, 2 * d + 2] + [i for j in range(d) for i in (d + 1 + j, j)]
    view = out_t.permute(order)
    # Written through a view of the returned tensor, which autograd then does not see as a view
    # (an output view would forbid in-place ops on the layer's output, e.g. ReLU(inplace=True)).
    result = x.new_empty(
        lay.n, groups * lay.og, *(q * t for q, t in zip(lay.tiles, lay.tile, strict=True))
    )
    full = result.view(view.shape)
    if bias is None:
        full.copy_(view)
    else:
        interleaved = [v for t in lay.tile for v in (1, t)]
        if bias.dim() == 1:
            bias_view = bias.view(groups, lay.og, *(1,) * (2 * d))
        else:
            bias_view = bias.unflatten(d, (groups, lay.og)).permute(d, d + 1, *range(d))
            bias_view = bias_view.reshape(groups, lay.og, *interleaved)
        torch.add(view, bias_view, out=full)
    if tuple(result.shape[2:]) == lay.out_size:
        return result
    return result[(slice(None), slice(None)) + tuple(slice(0, o) for o in out_size)].contiguous()


def _backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias_dim: int | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    needs: Sequence[bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients of input, weight and bias, written as differentiable ops."""
    lay = _Layout(x, weight, groups, grad.shape[2:])
    d = lay.d
    whole = [q * t for q, t in zip(lay.tiles, lay.tile, strict=True)]
    short = [
        amount
        for w, o in zip(reversed(whole), reversed(lay.out_size), strict=True)
        for amount in (0, w - o)
    ]
    g = F.pad(grad, short) if any(short) else grad
    g = g.reshape(
        lay.n,
        groups,
        lay.og,
        *[v for q, t in zip(lay.tiles, lay.tile, strict=True) for v in (q, t)],
    )
    # (N, g, O/g, Q1, t1, ...) -> (*tile, g, *Q, N, O/g)
    order = [4 + 2 * i for i in range(d)] + [1] + [3 + 2 * i for i in range(d)] + [0, 2]
    g_t = g.permute(order).contiguous()
    grad_x = grad_w = grad_b = None
    if needs[2]:
        per_tile = g_t.sum(tuple(range(d + 1, 2 * d + 2)))  # (*tile, g, O/g)
        grad_b = (
            per_tile.reshape(*lay.tile, -1)
            if bias_dim != 1
            else per_tile.sum(tuple(range(d))).reshape(-1)
        )
    if not (needs[0] or needs[1]):
        return grad_x, grad_w, grad_b
    xs = _spatial_first(x, lay, stride, dilation)
    patches = _patch_view(xs, lay, stride, dilation)
    kernels = _kernels(weight, lay)
    gw = None
    gxs = torch.zeros_like(xs) if needs[0] else None
    for a, b in lay.chunks(x.element_size()):
        gc = _rows(g_t, lay, a, b, lay.og)
        if needs[1]:
            product = torch.bmm(_rows(patches, lay, a, b, lay.depth).transpose(1, 2), gc)
            gw = product if gw is None else gw + product
        if gxs is not None:
            grad_patches = torch.bmm(gc, kernels.transpose(1, 2))
            grad_patches = grad_patches.view(
                *lay.tile, groups, b - a, *lay.tiles[1:], lay.n, *lay.kernel_size, lay.cg
            )
            for tap in itertools.product(*(range(k) for k in lay.kernel_size)):
                region = []
                for i in range(d):
                    start = tap[i] * dilation[i] + (a * lay.tile[0] * stride[0] if i == 0 else 0)
                    count = (b - a if i == 0 else lay.tiles[i]) * lay.tile[i]
                    region.append(slice(start, start + stride[i] * (count - 1) + 1, stride[i]))
                target = gxs[tuple(region)]  # (*Qc*t, N, C)
                for i in reversed(range(d)):
                    target = target.unflatten(i, (-1, lay.tile[i]))
                target = target.unflatten(2 * d + 1, (groups, lay.cg))
                target = target.permute(
                    [2 * i + 1 for i in range(d)]
                    + [2 * d + 1]
                    + [2 * i for i in range(d)]
                    + [2 * d, 2 * d + 2]
                )
                target += grad_patches[(Ellipsis,) + tap + (slice(None),)]
    if gw is not None:
        w = gw.view(*lay.tile, groups, *lay.kernel_size, lay.cg, lay.og)
        order = [*range(d), d, 2 * d + 2, 2 * d + 1] + [d + 1 + i for i in range(d)]
        grad_w = w.permute(order).reshape(weight.shape)
    if gxs is not None:
        gx = gxs.permute(d, d + 1, *range(d))
        grad_x = gx[
            (slice(None), slice(None)) + tuple(slice(0, s) for s in x.shape[2:])
        ].contiguous()
    return grad_x, grad_w, grad_b


class _TiledGemm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, weight, bias, stride, dilation, groups, out_size):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.geometry = (tuple(stride), tuple(dilation), groups, tuple(out_size))
        ctx.bias_dim = None if bias is None else bias.dim()
        return _forward(x, weight, bias, stride, dilation, groups, out_size)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, dilation, groups, _ = ctx.geometry
        needs = ctx.needs_input_grad[:3]
        grads = _backward(grad, x, weight, ctx.bias_dim, stride, dilation, groups, needs)
        return (*grads, None, None, None, None)

    @staticmethod
    def jvp(ctx: Any, dx, dweight, dbias, *_):  # type: ignore[override]
        # Bilinear in (x, weight), affine in bias: the tangent is f(dx, W) + f(x, dW) + db.
        x, weight = ctx.saved_tensors
        stride, dilation, groups, out_size = ctx.geometry
        terms = []
        if dx is not None:
            terms.append(_forward(dx, weight, dbias, stride, dilation, groups, out_size))
            dbias = None
        if dweight is not None:
            terms.append(_forward(x, dweight, dbias, stride, dilation, groups, out_size))
            dbias = None
        if dbias is not None:
            terms.append(
                _forward(torch.zeros_like(x), weight, dbias, stride, dilation, groups, out_size)
            )
        return sum(terms[1:], terms[0])


def batched_gemm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    """(N, C, *S) padded -> (N, O, *out_size): one batched product over tile offsets per chunk."""
    return _TiledGemm.apply(
        x, weight, bias, tuple(stride), tuple(dilation), groups, tuple(out_size)
    )
