"""Choose the implementation of each connectivity op for the inputs at hand.

Inputs arrive validated and zero padded; see :mod:`locality.kernels.reference` for the shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from locality.kernels import reference


def locally_connected(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    return reference.locally_connected(x, weight, bias, stride, dilation, groups)


def tiled_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    d = len(out_size)
    if all(t >= o for t, o in zip(weight.shape[:d], out_size)) and any(o > 1 for o in out_size):
        # Every output position has a kernel of its own: a locally connected layer.
        crop = tuple(slice(0, o) for o in out_size)
        if bias is not None and bias.dim() > 1:
            bias = bias[crop]
        return locally_connected(x, weight[crop], bias, stride, dilation, groups)
    return reference.tiled_conv(x, weight, bias, stride, dilation, groups, out_size)
