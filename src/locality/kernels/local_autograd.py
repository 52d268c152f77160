"""Locally connected op with an explicit backward: one batched product per gradient.

Autograd through :func:`locality.kernels.reference.locally_connected` differentiates the patch
copy and the unfold views one by one (``as_strided`` backward scatters through a zero-filled
buffer of the full window tensor). Here the backward is written out:

- ``grad_weight[p] = grad_out[p]^T @ patches[p]``: a per-position outer product summed over the
  batch, one ``bmm`` written straight into the weight's own layout;
- ``grad_input``: ``grad_patches[p] = grad_out[p] @ weight[p]`` (one ``bmm``), then ``k^d``
  strided in-place adds that fold each kernel offset back onto the input (no index tensor, no
  second window tensor).

Memory: the patch matrix made by the forward is kept (not recomputed) and released as soon as
``grad_weight`` is formed, before ``grad_patches`` exists, so at most one patch-sized tensor is
alive at any time.

Shapes (d spatial dimensions, P = prod(out_size), K = prod(kernel_size), g = groups):
    x:       (N, C, *padded_size)
    weight:  (*out_size, O, C // g, *kernel_size)
    bias:    None, (O,) or (*out_size, O)
    patches: (P * g, N, C // g * K)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable

from locality.kernels.reference import unfold_windows


def _patches(x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int],
             dilation: Sequence[int], groups: int) -> torch.Tensor:
    """The (P * g, N, C/g * K) patch matrix, made with one copy from an (*S, N, C) view."""
    d = len(kernel_size)
    n, c = x.shape[:2]
    spatial_first = x.permute(*range(2, 2 + d), 0, 1)
    windows = unfold_windows(spatial_first, kernel_size, stride, dilation)  # (*out, N, C, *k)
    windows = windows.unflatten(d + 1, (groups, c // groups)).movedim(d + 1, d)
    positions = math.prod(windows.shape[:d])
    return windows.reshape(positions * groups, n, (c // groups) * math.prod(kernel_size))


def _positions_first(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, O, *out) -> (P * g, N, O/g), the layout the batched products use (one copy)."""
    n, o = t.shape[:2]
    d = t.dim() - 2
    t = t.permute(*range(2, 2 + d), 0, 1).reshape(-1, n, groups, o // groups)
    return t.transpose(1, 2).reshape(-1, n, o // groups)


class _LocallyConnected(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, dilation, groups):
        d = (weight.dim() - 2) // 2
        out_size, kernel_size = weight.shape[:d], weight.shape[d + 2 :]
        n, out_channels = x.shape[0], weight.shape[d]
        og = out_channels // groups
        patches = _patches(x, kernel_size, stride, dilation, groups)
        kernels = weight.reshape(patches.shape[0], og, patches.shape[2])
        out = torch.bmm(patches, kernels.transpose(1, 2))  # (P*g, N, O/g)
        out = out.view(*out_size, groups, n, og).permute(d + 1, d, d + 2, *range(d))
        out = out.reshape(n, out_channels, *out_size)
        if bias is not None:
            # (O,) broadcasts over positions, (*out, O) -> (O, *out) over the batch.
            out = out + (bias.view(out_channels, *(1,) * d) if bias.dim() == 1 else bias.movedim(-1, 0))
        ctx.geometry = (tuple(stride), tuple(dilation), groups)
        ctx.bias_dim = None if bias is None else bias.dim()
        ctx.save_for_backward(x, weight)
        # Kept as an attribute, not a saved tensor, so that backward can drop it halfway (see the
        # module docstring); it is an intermediate, never an input or output of this function.
        ctx.patches = patches if weight.requires_grad else None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, dilation, groups = ctx.geometry
        d = (weight.dim() - 2) // 2
        kernel_size = weight.shape[d + 2 :]
        grad_rows = _positions_first(grad_out, groups)  # (P*g, N, O/g)
        kernels = weight.reshape(grad_rows.shape[0], grad_rows.shape[2], -1)
        grad_x = grad_weight = grad_bias = None

        if ctx.needs_input_grad[1]:
            patches = ctx.patches
            ctx.patches = None
            if patches is None:  # a second backward through the same graph (retain_graph=True)
                patches = _patches(x, kernel_size, stride, dilation, groups)
            grad_weight = torch.bmm(grad_rows.transpose(1, 2), patches).view(weight.shape)
            del patches
        if ctx.needs_input_grad[2]:
            if ctx.bias_dim == 1:
                grad_bias = grad_out.sum(dim=(0, *range(2, 2 + d)))
            else:
                grad_bias = grad_out.sum(0).movedim(0, -1)
        if ctx.needs_input_grad[0]:
            grad_patches = torch.bmm(grad_rows, kernels)  # (P*g, N, C/g * K)
            grad_x = _fold(grad_patches, x.shape, weight.shape[:d], kernel_size, stride, dilation,
                           groups)
        return grad_x, grad_weight, grad_bias, None, None, None


def _fold(grad_patches: torch.Tensor, x_shape: Sequence[int], out_size: Sequence[int],
          kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
          groups: int) -> torch.Tensor:
    """Sum (P * g, N, C/g * K) patch gradients back onto an (N, C, *padded_size) input.

    One strided in-place add per kernel offset into an (*S, N, C) buffer, whose (N, C, *S)
    permutation is returned as a view.
    """
    d = len(kernel_size)
    n, c = x_shape[:2]
    grad = grad_patches.view(*out_size, groups, n, c // groups, *kernel_size)
    grad = grad.movedim(d, d + 1).reshape(*out_size, n, c, *kernel_size)
    grad_x = grad_patches.new_zeros((*x_shape[2:], n, c))
    for offset in itertools.product(*(range(k) for k in kernel_size)):
        region = tuple(
            slice(j * dl, j * dl + s * (o - 1) + 1, s)
            for j, dl, s, o in zip(offset, dilation, stride, out_size)
        )
        grad_x[region] += grad[(Ellipsis, *offset)]
    return grad_x.permute(d, d + 1, *range(d))


def locally_connected(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """Locally connected op on a zero-padded ``x``; same result as the reference, faster backward."""
    return _LocallyConnected.apply(x, weight, bias, tuple(stride), tuple(dilation), groups)
