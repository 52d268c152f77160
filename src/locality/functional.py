"""Stateless connectivity ops, in the manner of ``torch.nn.functional.conv*d``.

All four ways of connecting two layers are one operation: a bank of kernels and a map from each
output position to its kernel. ``weight`` has shape ``(*grid, out_channels, in_channels // groups,
*kernel_size)``: the leading ``d`` dimensions index the bank, and output position ``i`` uses
``weight[i mod grid]``.

- convolution: ``grid = (1,) * d`` (``torch.nn.functional.conv*d``);
- tiled convolution: ``grid = tile_size`` (``tiled_conv``);
- locally connected: ``grid = output size`` (``locally_connected``);
- dense: locally connected with a kernel that covers the whole input.

Each ``weight[p]`` is an ordinary ``Conv*d`` weight, contiguous in memory, so the locally connected
op is one batched matrix product over positions that reads the weight without copying it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from locality._arguments import (
    IntOrTuple,
    Padding,
    check_input,
    check_padding_mode,
    ntuple,
    output_size,
    padding_amounts,
)
from locality.kernels import dispatch

__all__ = [
    "locally_connected",
    "locally_connected1d",
    "locally_connected2d",
    "locally_connected3d",
    "tiled_conv",
    "tiled_conv1d",
    "tiled_conv2d",
    "tiled_conv3d",
    "pad_input",
]


def pad_input(
    input: torch.Tensor,
    pads: Sequence[tuple[int, int]],
    padding_mode: str,
    where: str = "pad_input",
) -> torch.Tensor:
    """Pad the spatial dimensions of a batched ``(N, C, *spatial)`` input.

    ``pads`` holds ``(before, after)`` per spatial dimension. ``reflect`` needs each amount
    smaller than the input size there, ``circular`` no larger; both are checked here.
    """
    if not any(lo or hi for lo, hi in pads):
        return input
    spatial = input.shape[2:]
    for dim, ((lo, hi), n) in enumerate(zip(pads, spatial, strict=True)):
        if padding_mode == "reflect" and max(lo, hi) >= n:
            raise ValueError(
                f"{where}: padding_mode='reflect' needs padding smaller than the input size, got "
                f"padding ({lo}, {hi}) for size {n} in spatial dimension {dim}"
            )
        if padding_mode == "circular" and max(lo, hi) > n:
            raise ValueError(
                f"{where}: padding_mode='circular' needs padding no larger than the input size, "
                f"got padding ({lo}, {hi}) for size {n} in spatial dimension {dim}"
            )
    flat = [amount for lo_hi in reversed(pads) for amount in lo_hi]
    if padding_mode == "zeros":
        return F.pad(input, flat)
    return F.pad(input, flat, mode=padding_mode)


def _prepare(
    op: str,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntOrTuple,
    padding: Padding,
    dilation: IntOrTuple,
    groups: int,
    padding_mode: str,
    d: int | None,
):
    """Validate everything, pad the input; return what the kernels need."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{op}: weight must be a torch.Tensor, got {type(weight).__name__}")
    if weight.dim() < 4 or weight.dim() % 2:
        raise ValueError(
            f"{op}: weight must have shape (*grid, out_channels, in_channels/groups, "
            f"*kernel_size) with d = 1, 2 or 3 spatial dimensions (4, 6 or 8 dims), got shape "
            f"{tuple(weight.shape)}"
        )
    wd = (weight.dim() - 2) // 2
    if d is not None and wd != d:
        raise ValueError(
            f"{op}: weight must have {2 * d + 2} dims (*grid, out_channels, in_channels/groups, "
            f"*kernel_size) for {d}-D input, got shape {tuple(weight.shape)}"
        )
    d = wd
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    grid = tuple(weight.shape[:d])
    out_channels, group_channels = weight.shape[d], weight.shape[d + 1]
    kernel_size = tuple(weight.shape[d + 2 :])
    if any(v == 0 for v in weight.shape):
        raise ValueError(
            f"{op}: weight must not have zero-sized dimensions, got {tuple(weight.shape)}"
        )
    if out_channels % groups:
        raise ValueError(
            f"{op}: out_channels ({out_channels}, weight dim {d}) must be divisible by groups "
            f"({groups})"
        )
    input, unbatched = check_input(input, d, group_channels * groups, op)
    # Under autocast the ops cast their operands themselves, as for torch.nn.Conv*d.
    if input.dtype != weight.dtype and not torch.is_autocast_enabled(input.device.type):
        raise TypeError(
            f"{op}: input dtype {input.dtype} does not match weight dtype {weight.dtype}"
        )
    if input.device != weight.device:
        raise ValueError(f"{op}: input is on {input.device} but weight is on {weight.device}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"{op}: bias must be a torch.Tensor or None, got {type(bias).__name__}")
        if tuple(bias.shape) not in ((out_channels,), (*grid, out_channels)):
            raise ValueError(
                f"{op}: bias must have shape ({out_channels},) (shared) or "
                f"{(*grid, out_channels)} (one per kernel in the bank), got {tuple(bias.shape)}"
            )
        if bias.dtype != weight.dtype or bias.device != weight.device:
            raise TypeError(
                f"{op}: bias ({bias.dtype}, {bias.device}) must match weight "
                f"({weight.dtype}, {weight.device})"
            )
    stride_t = ntuple(stride, d, "stride", where=op)
    dilation_t = ntuple(dilation, d, "dilation", where=op)
    check_padding_mode(padding_mode, op)
    pads = padding_amounts(padding, kernel_size, stride_t, dilation_t, where=op)
    out_size = output_size(input.shape[2:], kernel_size, stride_t, pads, dilation_t, where=op)
    input = pad_input(input, pads, padding_mode, where=op)
    return input, unbatched, grid, out_size, stride_t, dilation_t


def locally_connected(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    r"""Locally connected (unshared) convolution over a 1-, 2- or 3-D input.

    Like a convolution, but every output position :math:`p` has its own kernel:

    .. math::
        \text{out}[n, o, p] = \text{bias}[p, o] + \sum_{c, k}
            \text{weight}[p, o, c, k]\; \text{input}[n, g(o) \cdot C/g + c,\; p \cdot s + k \cdot d]

    Equivalently: ``torch.nn.functional.unfold`` the input into patches, multiply each position's
    patch by that position's own matrix, and reshape; a convolution is the special case in which
    all those matrices are equal.

    Args:
        input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
        weight: ``(*out_size, C_out, C_in // groups, *kernel_size)``.
        bias: ``None``, ``(C_out,)`` shared over positions, or ``(*out_size, C_out)`` untied.
        stride: as in ``torch.nn.functional.conv2d`` (int or tuple).
        padding: as in ``torch.nn.functional.conv2d``: an int, a tuple, ``"valid"`` or
            ``"same"``.
        dilation: as in ``torch.nn.functional.conv2d`` (int or tuple).
        groups: as in ``torch.nn.functional.conv2d``.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Shape:
        ``out_size[i] = floor((spatial[i] + 2 * padding[i] - dilation[i] * (kernel_size[i] - 1)
        - 1) / stride[i] + 1)`` must equal ``weight.shape[i]``.

    Returns:
        ``(N, C_out, *out_size)`` (or ``(C_out, *out_size)`` for unbatched input).
    """
    op = "locally_connected"
    x, unbatched, grid, out_size, stride_t, dilation_t = _prepare(
        op, input, weight, bias, stride, padding, dilation, groups, padding_mode, None
    )
    if grid != out_size:
        raise ValueError(
            f"{op}: weight holds kernels for output size {grid}, but input of spatial size "
            f"{tuple(input.shape[-len(grid) :])} gives output size {out_size} with "
            f"stride={stride_t}, padding={padding!r}, dilation={dilation_t}"
        )
    out = dispatch.locally_connected(x, weight, bias, stride_t, dilation_t, groups)
    return out.squeeze(0) if unbatched else out


def tiled_conv(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    r"""Tiled convolution over a 1-, 2- or 3-D input (Le et al., 2010).

    A bank of ``prod(tile_size)`` kernels; output position :math:`p` uses kernel
    :math:`p \bmod t` (per dimension), so kernels are shared between outputs a tile apart.
    ``tile_size = 1`` is a convolution; ``tile_size >= output size`` is a locally connected layer.
    Works on any input size.

    Args:
        input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
        weight: ``(*tile_size, C_out, C_in // groups, *kernel_size)``.
        bias: ``None``, ``(C_out,)`` shared, or ``(*tile_size, C_out)`` tiled like the kernels.
        stride: as in ``locally_connected``.
        padding: as in ``locally_connected``.
        dilation: as in ``locally_connected``.
        groups: as in ``locally_connected``.
        padding_mode: as in ``locally_connected``.

    Shape:
        Output ``(N, C_out, *out_size)`` with the ``torch.nn.Conv*d`` output-size formula.
    """
    op = "tiled_conv"
    x, unbatched, grid, out_size, stride_t, dilation_t = _prepare(
        op, input, weight, bias, stride, padding, dilation, groups, padding_mode, None
    )
    out = dispatch.tiled_conv(x, weight, bias, stride_t, dilation_t, groups, out_size)
    return out.squeeze(0) if unbatched else out


def _fixed_rank(op, d: int):
    def fixed(
        input: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> torch.Tensor:
        if isinstance(weight, torch.Tensor) and weight.dim() != 2 * d + 2:
            raise ValueError(
                f"{op.__name__}{d}d: weight must have {2 * d + 2} dims (*grid, out_channels, "
                f"in_channels/groups, *kernel_size), got shape {tuple(weight.shape)}"
            )
        return op(input, weight, bias, stride, padding, dilation, groups, padding_mode)

    fixed.__name__ = fixed.__qualname__ = f"{op.__name__}{d}d"
    fixed.__doc__ = f"{d}-D ``{op.__name__}``; ``input`` is ``(N, C, {_SPATIAL[d]})``."
    return fixed


_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}

locally_connected1d = _fixed_rank(locally_connected, 1)
locally_connected2d = _fixed_rank(locally_connected, 2)
locally_connected3d = _fixed_rank(locally_connected, 3)
tiled_conv1d = _fixed_rank(tiled_conv, 1)
tiled_conv2d = _fixed_rank(tiled_conv, 2)
tiled_conv3d = _fixed_rank(tiled_conv, 3)
