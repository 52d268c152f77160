"""Low-rank locally connected op (Elsayed et al., ICML 2020) as one convolution plus a mix.

Every position's kernel is a mix of ``R`` basis kernels, ``W_p = sum_r mix[p, r] B_r``. Since the
mix does not depend on the input, ``out_p = sum_r mix[p, r] (B_r * x)_p``: one convolution with
``R * O`` output channels (all basis kernels at once) followed by a per-position weighted sum
over the rank axis. No unfold, no per-position weight: it costs about R convolutions.

Shapes (d spatial dimensions, g = groups): x (N, C, *padded_size), zero padding applied; weight
(R, O, C // g, *kernel_size); mixing (*out_size, R); bias None, (O,) or (*out_size, O); result
(N, O, *out_size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def lowrank_locally_connected(
    x: torch.Tensor,
    weight: torch.Tensor,
    mixing: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, C, *S) padded -> (N, O, *mixing.shape[:-1]).

    The mix is a chain of R products and sums over the basis outputs, each broadcasting one
    ``(*out_size)`` plane of the mix over batch and channels: every operand is contiguous along
    the positions, and the backward is R such products plus one reduction per plane. The same
    mix channels-last (the convolution's output (N, *out_size, R, O), the mix broadcast over the
    O contiguous channels) ran 1.1x (rank 4) and 1.3x (rank 8) slower forward+backward on the
    benchmark's shape on a 2-core CPU (docs/performance.md).
    """
    d = mixing.dim() - 1
    rank, out_channels = weight.shape[:2]
    og = out_channels // groups
    # The convolution's output channels must be grouped by group first: (g, R, O/g).
    basis = weight.reshape(rank, groups, og, *weight.shape[2:]).transpose(0, 1)
    basis = basis.reshape(-1, *weight.shape[2:])
    y = _CONV[d](x, basis, None, tuple(stride), 0, tuple(dilation), groups)
    n, out_size = y.shape[0], y.shape[2:]
    outputs = y.view(n, groups, rank, og, *out_size).unbind(2)
    planes = mixing.movedim(-1, 0).unbind(0)
    out = outputs[0] * planes[0]
    for output, plane in zip(outputs[1:], planes[1:], strict=True):
        out = out + output * plane
    if bias is not None:
        b = bias if bias.dim() == 1 else bias.movedim(-1, 0)
        out = out + b.reshape(groups, og, *b.shape[1:], *(1,) * (d + 1 - b.dim()))
    return out.reshape(n, out_channels, *out_size)
