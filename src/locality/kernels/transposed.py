"""Transposed locally connected op: the adjoint of the locally connected op.

``locally_connected(x, W)`` is linear in ``x``; its adjoint scatters each input position ``p`` of
the transposed layer through ``W[p]`` onto the window that position reads, exactly as
``conv_transpose`` is the adjoint of ``conv``. That adjoint is the locally connected op's input
gradient, so the fast path is the ``locality::locally_connected_grad_input`` custom op, whose
own derivatives are the forward and weight-gradient ops (differentiable to any order). While
``torch.export`` traces or under ``torch.func`` transforms, :func:`scatter` (ATen ops only: one
batched product and one ``index_add``) runs instead.

Shapes (d spatial dimensions, g = groups): y (N, C_in, *in_size); weight (*in_size, C_in,
C_out // g, *kernel_size) (``ConvTranspose``'s per-kernel layout, per input position); result
(N, C_out, *full_size) before cropping, ``full = (in - 1) * stride + dilation * (k - 1) + 1 +
output_padding``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from locality.kernels import dispatch, local_op


def scatter(
    y: torch.Tensor,
    weight: torch.Tensor,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    full_size: Sequence[int],
) -> torch.Tensor:
    """The adjoint as one batched product (patch contributions) and one ``index_add``."""
    d = y.dim() - 2
    in_size, kernel_size = tuple(weight.shape[:d]), tuple(weight.shape[d + 2 :])
    in_channels, cg = weight.shape[d], weight.shape[d + 1]
    n, ig = y.shape[0], in_channels // groups
    positions, volume = math.prod(in_size), math.prod(kernel_size)
    rows = (
        y.reshape(n, groups, ig, positions).permute(3, 1, 0, 2).reshape(positions * groups, n, ig)
    )
    contributions = torch.bmm(rows, weight.reshape(positions * groups, ig, cg * volume))
    contributions = contributions.view(positions, groups, n, cg, volume)
    contributions = contributions.permute(2, 1, 3, 0, 4).reshape(n, groups * cg, -1)
    index = torch.zeros((), dtype=torch.long, device=y.device)
    for dim in range(d):
        p = torch.arange(in_size[dim], device=y.device) * stride[dim]
        k = torch.arange(kernel_size[dim], device=y.device) * dilation[dim]
        # Target coordinate along `dim` for (position, offset), laid out (*in_size, *kernel_size).
        shape_p = [1] * (2 * d)
        shape_p[dim] = -1
        shape_k = [1] * (2 * d)
        shape_k[d + dim] = -1
        index = index * full_size[dim] + p.view(shape_p) + k.view(shape_k)
    out = contributions.new_zeros((n, groups * cg, math.prod(full_size)))
    out = out.index_add(2, index.reshape(-1), contributions)
    return out.view(n, groups * cg, *full_size)


def locally_connected_transpose(
    y: torch.Tensor,
    weight: torch.Tensor,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    full_size: Sequence[int],
) -> torch.Tensor:
    """(N, C_in, *in_size) -> (N, C_out, *full_size); see the module docstring for the path."""
    if dispatch.locally_connected_path(y, weight, None) == "reference":
        return scatter(y, weight, stride, dilation, groups, full_size)
    if torch.amp.is_autocast_available(y.device.type) and torch.is_autocast_enabled(y.device.type):
        dtype = torch.get_autocast_dtype(y.device.type)
        y, weight = y.to(dtype), weight.to(dtype)
    return local_op.grad_input(y, weight, list(full_size), list(stride), list(dilation), groups)
