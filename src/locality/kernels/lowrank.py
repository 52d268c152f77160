"""Low-rank locally connected op (Elsayed et al., ICML 2020) as one convolution plus a mix.

Every position's kernel is a mix of ``R`` basis kernels, ``W_p = sum_r mix[p, r] B_r``. Since the
mix does not depend on the input, ``out_p = sum_r mix[p, r] (B_r * x)_p``: convolutions with
``R * O`` output channels in all (several basis kernels per call, see ``MAX_OUTPUT_BYTES``)
followed by a per-position weighted sum over the rank axis. No unfold, no per-position weight:
it costs about R convolutions.

Shapes (d spatial dimensions, g = groups): x (N, C, *padded_size), zero padding applied; weight
(R, O, C // g, *kernel_size); mixing (*out_size, R); bias None, (O,) or (*out_size, O); result
(N, O, *out_size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


#: Bytes of convolution output per call: the rank is split into chunks of basis kernels whose
#: outputs stay under this. On the benchmark's shape (B=32, 32->32, 32x32) rank 8 in one call
#: (a 32 MiB output) ran 1.3x slower forward+backward than in two calls of rank 4; rank 4 in one
#: call (16 MiB) and 64 channels at rank 4 on 16x16 (8 MiB) gained nothing from splitting
#: (2-core CPU, interleaved runs; docs/performance.md).
MAX_OUTPUT_BYTES = 16 << 20


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
    out_channels = weight.shape[1]
    og, n, out_size = out_channels // groups, x.shape[0], mixing.shape[:-1]
    per_rank = n * out_channels * out_size.numel() * x.element_size()
    chunk = max(1, MAX_OUTPUT_BYTES // max(1, per_rank))
    planes = iter(mixing.movedim(-1, 0).unbind(0))
    out: torch.Tensor | None = None
    for bank in weight.split(chunk):
        r = bank.shape[0]
        # The convolution's output channels must be grouped by group first: (g, r, O/g).
        basis = bank.reshape(r, groups, og, *bank.shape[2:]).transpose(0, 1)
        basis = basis.reshape(-1, *bank.shape[2:])
        y = _CONV[d](x, basis, None, tuple(stride), 0, tuple(dilation), groups)
        for output in y.view(n, groups, r, og, *out_size).unbind(2):
            term = output * next(planes)
            out = term if out is None else out + term
    assert out is not None  # rank >= 1
    if bias is not None:
        b = bias if bias.dim() == 1 else bias.movedim(-1, 0)
        out = out + b.reshape(groups, og, *b.shape[1:], *(1,) * (d + 1 - b.dim()))
    return out.reshape(n, out_channels, *out_size)
