"""Low-rank locally connected op (Elsayed et al., ICML 2020) as one convolution plus a mix.

Every position's kernel is a mix of ``R`` basis kernels, ``W_p = sum_r mix[p, r] B_r``. Since the
mix does not depend on the input, ``out_p = sum_r mix[p, r] (B_r * x)_p``: one convolution with
``R * O`` output channels (all basis kernels at once) followed by a per-position weighted sum
over the rank axis. No unfold, no per-position weight: it costs about R convolutions. In 2-D and
3-D with R > 1 both run channels-last (the input is copied once to that layout).

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
    """(N, C, *S) padded -> (N, O, *mixing.shape[:-1])."""
    d = mixing.dim() - 1
    rank, out_channels = weight.shape[:2]
    og = out_channels // groups
    # The convolution's output channels must be grouped by group first: (g, R, O/g).
    basis = weight.reshape(rank, groups, og, *weight.shape[2:]).transpose(0, 1)
    basis = basis.reshape(-1, *weight.shape[2:])
    if d in _CHANNELS_LAST and rank > 1:
        return _channels_last(x, basis, mixing, bias, stride, dilation, groups, out_channels)
    y = _CONV[d](x, basis, None, tuple(stride), 0, tuple(dilation), groups)
    n, positions = y.shape[0], mixing.shape[:-1].numel()
    y = y.reshape(n, groups, rank, og, positions)
    out = torch.einsum("ngrop,pr->ngop", y, mixing.reshape(-1, rank))
    out = out.reshape(n, out_channels, *mixing.shape[:-1])
    if bias is None:
        return out
    b = bias.view(out_channels, *(1,) * d) if bias.dim() == 1 else bias.movedim(-1, 0)
    return out + b


#: Memory formats that put channels last, by spatial rank. With them the layer ran 1.2-2.4x faster
#: forward+backward for R >= 2 on a 2-core CPU (docs/performance.md): oneDNN computes the
#: R*O-channel convolution faster from a channels-last input, and its channels-last output makes
#: the mix a sum over contiguous (R, O) blocks of each position.
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


def _channels_last(
    x: torch.Tensor,
    basis: torch.Tensor,
    mixing: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_channels: int,
) -> torch.Tensor:
    """The rank > 1 path for 2-D and 3-D: convolution and mix channels-last, result NCHW."""
    d = mixing.dim() - 1
    out_size, rank = mixing.shape[:-1], mixing.shape[-1]
    n, positions = x.shape[0], out_size.numel()
    x = x.contiguous(memory_format=_CHANNELS_LAST[d])
    y = _CONV[d](x, basis, None, tuple(stride), 0, tuple(dilation), groups)
    y = y.movedim(1, -1).reshape(n, positions, groups, rank, out_channels // groups)
    out = (y * mixing.reshape(1, positions, 1, rank, 1)).sum(3).reshape(n, positions, out_channels)
    if bias is not None:
        out = out + (bias if bias.dim() == 1 else bias.reshape(positions, out_channels))
    return out.view(n, *out_size, out_channels).movedim(-1, 1).contiguous()
