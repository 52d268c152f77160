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
from locality.kernels import dispatch, lowrank, mapped, reference, region, transposed

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
    "region_conv",
    "mapped_conv",
    "lowrank_locally_connected",
    "locally_connected_transpose",
    "tiled_conv_transpose",
    "check_kernel_map",
    "transpose_output_size",
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
    bank_dims: int | None = None,
):
    """Validate everything, pad the input; return what the kernels need.

    ``bank_dims`` is the number of leading weight dimensions that index the bank: ``None`` for a
    grid of ``d`` (``(*grid, O, C/g, *k)``), 1 for a flat bank ``(K, O, C/g, *k)``.
    """
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{op}: weight must be a torch.Tensor, got {type(weight).__name__}")
    if bank_dims is None:
        if weight.dim() < 4 or weight.dim() % 2:
            raise ValueError(
                f"{op}: weight must have shape (*grid, out_channels, in_channels/groups, "
                f"*kernel_size) with d = 1, 2 or 3 spatial dimensions (4, 6 or 8 dims), got "
                f"shape {tuple(weight.shape)}"
            )
        wd = (weight.dim() - 2) // 2
    else:
        if (
            weight.dim() - 2 - bank_dims not in (1, 2, 3)
            or d is not None
            and weight.dim() != (d + 2 + bank_dims)
        ):
            dims = "4, 5 or 6" if d is None else str(d + 2 + bank_dims)
            raise ValueError(
                f"{op}: weight must have shape (num_kernels, out_channels, in_channels/groups, "
                f"*kernel_size) ({dims} dims), got shape {tuple(weight.shape)}"
            )
        wd = weight.dim() - 2 - bank_dims
    if d is not None and wd != d:
        raise ValueError(
            f"{op}: weight must have {2 * d + 2} dims (*grid, out_channels, in_channels/groups, "
            f"*kernel_size) for {d}-D input, got shape {tuple(weight.shape)}"
        )
    d = wd
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    grid = tuple(weight.shape[: d if bank_dims is None else bank_dims])
    out_channels, group_channels = weight.shape[len(grid)], weight.shape[len(grid) + 1]
    kernel_size = tuple(weight.shape[len(grid) + 2 :])
    if any(v == 0 for v in weight.shape):
        raise ValueError(
            f"{op}: weight must not have zero-sized dimensions, got {tuple(weight.shape)}"
        )
    if out_channels % groups:
        raise ValueError(
            f"{op}: out_channels ({out_channels}, weight dim {len(grid)}) must be divisible by "
            f"groups ({groups})"
        )
    input, unbatched = check_input(input, d, group_channels * groups, op)
    # Under autocast the ops cast their operands themselves, as for torch.nn.Conv*d.
    if input.dtype != weight.dtype and not torch.is_autocast_enabled(input.device.type):
        raise TypeError(
            f"{op}: input dtype {input.dtype} does not match weight dtype {weight.dtype}"
        )
    if input.device != weight.device:
        raise ValueError(f"{op}: input is on {input.device} but weight is on {weight.device}")
    _check_bias(op, bias, weight, grid, out_channels, "one per kernel in the bank")
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


# Between convolution and locally connected: region-shared, mapped, low-rank; and the
# transposed (adjoint) ops. The fast paths live in locality.kernels.{region,mapped,lowrank,
# transposed}.


def region_conv(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    r"""Region-shared convolution (DeepID, Sun et al., CVPR 2014) over a 1-, 2- or 3-D input.

    The output grid is cut into ``regions = weight.shape[:d]`` boxes: along dimension ``j`` the
    output positions are split into ``regions[j]`` contiguous blocks as
    ``numpy.array_split(range(out_j), regions[j])`` splits them (the first ``out_j % regions[j]``
    blocks are one longer). Every position of box ``r`` uses kernel ``weight[r]``:

    .. math::
        \text{out}[n, o, p] = \text{bias}[r(p), o] + \sum_{c, k}
            \text{weight}[r(p), o, c, k]\; \text{input}[n, g(o) \cdot C/g + c,\; p s + k d]

    Computed as one convolution per region on the crop of the input that region reads.

    Args:
        input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
        weight: ``(*regions, C_out, C_in // groups, *kernel_size)``.
        bias: ``None``, ``(C_out,)`` shared, or ``(*regions, C_out)`` one per region.
        stride: as in ``locally_connected``.
        padding: as in ``locally_connected`` (ints, ``(before, after)`` pairs, ``"valid"``,
            ``"same"``).
        dilation: as in ``locally_connected``.
        groups: as in ``locally_connected``.
        padding_mode: as in ``locally_connected``.

    Shape:
        Output ``(N, C_out, *out_size)`` with the ``torch.nn.Conv*d`` output-size formula;
        ``regions[j] <= out_size[j]``.
    """
    op = "region_conv"
    x, unbatched, grid, out_size, stride_t, dilation_t = _prepare(
        op, input, weight, bias, stride, padding, dilation, groups, padding_mode, None
    )
    if any(r > o for r, o in zip(grid, out_size, strict=True)):
        raise ValueError(
            f"{op}: regions {grid} (weight.shape[:{len(grid)}]) must not exceed the output size "
            f"{out_size}: every region needs at least one output position"
        )
    out = region.region_conv(x, weight, bias, stride_t, dilation_t, groups, out_size)
    return out.squeeze(0) if unbatched else out


def check_kernel_map(
    kernel_map: object, num_kernels: int | None, d: int | None, where: str
) -> torch.Tensor:
    """``kernel_map`` as a long tensor, checked: integer, ``d`` dims, values in ``[0, K)``.

    ``K`` is ``num_kernels``, or ``kernel_map.max() + 1`` when ``None``. Arrays and nested lists
    are accepted and converted.
    """
    if not isinstance(kernel_map, torch.Tensor):
        try:
            kernel_map = torch.as_tensor(kernel_map)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"{where}: kernel_map must be an integer tensor or array, got "
                f"{type(kernel_map).__name__} ({error})"
            ) from None
    if kernel_map.is_floating_point() or kernel_map.is_complex() or kernel_map.dtype == torch.bool:
        raise TypeError(f"{where}: kernel_map must hold integers, got dtype {kernel_map.dtype}")
    if d is not None and kernel_map.dim() != d:
        raise ValueError(
            f"{where}: kernel_map must have {d} dims (the output's spatial shape), got shape "
            f"{tuple(kernel_map.shape)}"
        )
    if kernel_map.dim() not in (1, 2, 3) or kernel_map.numel() == 0:
        raise ValueError(
            f"{where}: kernel_map must be a non-empty 1-, 2- or 3-D map of the output's spatial "
            f"shape, got shape {tuple(kernel_map.shape)}"
        )
    low, high = int(kernel_map.min()), int(kernel_map.max())
    if low < 0:
        raise ValueError(f"{where}: kernel_map values must be non-negative, got {low}")
    if num_kernels is not None and high >= num_kernels:
        raise ValueError(
            f"{where}: kernel_map values must be in [0, num_kernels={num_kernels}), got {high}"
        )
    return kernel_map.long()


def mapped_conv(
    input: torch.Tensor,
    weight: torch.Tensor,
    kernel_map: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    r"""Convolution with an arbitrary map from output position to kernel, over 1-3-D input.

    Output position ``p`` uses ``weight[kernel_map[p]]``:

    .. math::
        \text{out}[n, o, p] = \text{bias}[m(p), o] + \sum_{c, k}
            \text{weight}[m(p), o, c, k]\; \text{input}[n, g(o) \cdot C/g + c,\; p s + k d]

    Convolution (all zeros), tiled (``p mod t``), region-shared (blocks) and locally connected
    (``arange``) are particular maps. Computed as one product per kernel over the positions that
    use it, or through the locally connected op when most positions own their kernel
    (:mod:`locality.kernels.mapped`).

    Args:
        input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
        weight: ``(K, C_out, C_in // groups, *kernel_size)``, the bank.
        kernel_map: integer tensor of the output's spatial shape, values in ``[0, K)``.
        bias: ``None``, ``(C_out,)`` shared, or ``(K, C_out)`` one per kernel.
        stride: as in ``locally_connected``.
        padding: as in ``locally_connected``.
        dilation: as in ``locally_connected``.
        groups: as in ``locally_connected``.
        padding_mode: as in ``locally_connected``.

    Shape:
        Output ``(N, C_out, *kernel_map.shape)``; the ``torch.nn.Conv*d`` output-size formula
        must give ``kernel_map.shape``.
    """
    op = "mapped_conv"
    x, unbatched, grid, out_size, stride_t, dilation_t = _prepare(
        op, input, weight, bias, stride, padding, dilation, groups, padding_mode, None, 1
    )
    d = len(out_size)
    index = check_kernel_map(kernel_map, grid[0], d, op)
    if tuple(index.shape) != out_size:
        raise ValueError(
            f"{op}: kernel_map has shape {tuple(index.shape)}, but input of spatial size "
            f"{tuple(input.shape[-d:])} gives output size {out_size} with stride={stride_t}, "
            f"padding={padding!r}, dilation={dilation_t}"
        )
    out = mapped.mapped_conv(x, weight, index.to(x.device), bias, stride_t, dilation_t, groups)
    return out.squeeze(0) if unbatched else out


def lowrank_locally_connected(
    input: torch.Tensor,
    weight: torch.Tensor,
    mixing: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    r"""Low-rank locally connected op (Elsayed et al., ICML 2020) over a 1-, 2- or 3-D input.

    Position ``p`` uses the kernel ``W_p = sum_r mixing[p, r] weight[r]``, a mix of ``R`` basis
    kernels:

    .. math::
        \text{out}[n, o, p] = \text{bias}[p, o] + \sum_r \text{mixing}[p, r] \sum_{c, k}
            \text{weight}[r, o, c, k]\; \text{input}[n, g(o) \cdot C/g + c,\; p s + k d]

    Computed as one convolution with ``R * C_out`` output channels and a per-position mix (no
    unfold): about ``R`` convolutions. ``mixing`` is used as given; the layer
    (``LowRankLocallyConnected*d``) applies its softmax before calling this.

    Args:
        input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
        weight: ``(R, C_out, C_in // groups, *kernel_size)``, the basis bank.
        mixing: ``(*out_size, R)``, the mix at each output position.
        bias: ``None``, ``(C_out,)`` shared, or ``(*out_size, C_out)`` one per position.
        stride: as in ``locally_connected``.
        padding: as in ``locally_connected``.
        dilation: as in ``locally_connected``.
        groups: as in ``locally_connected``.
        padding_mode: as in ``locally_connected``.

    Shape:
        Output ``(N, C_out, *out_size)``; the ``torch.nn.Conv*d`` output-size formula must give
        ``mixing.shape[:-1]``.
    """
    op = "lowrank_locally_connected"
    if not isinstance(mixing, torch.Tensor):
        raise TypeError(f"{op}: mixing must be a torch.Tensor, got {type(mixing).__name__}")
    x, unbatched, grid, out_size, stride_t, dilation_t = _prepare(
        op, input, weight, None, stride, padding, dilation, groups, padding_mode, None, 1
    )
    rank, out_channels = grid[0], weight.shape[1]
    if tuple(mixing.shape) != (*out_size, rank):
        raise ValueError(
            f"{op}: mixing must have shape (*output_size, rank) = {(*out_size, rank)} for this "
            f"input and weight, got {tuple(mixing.shape)}"
        )
    if mixing.dtype != weight.dtype or mixing.device != weight.device:
        raise TypeError(
            f"{op}: mixing ({mixing.dtype}, {mixing.device}) must match weight "
            f"({weight.dtype}, {weight.device})"
        )
    _check_bias(op, bias, weight, out_size, out_channels, "one per output position")
    out = lowrank.lowrank_locally_connected(x, weight, mixing, bias, stride_t, dilation_t, groups)
    return out.squeeze(0) if unbatched else out


def _check_bias(
    op: str,
    bias: torch.Tensor | None,
    weight: torch.Tensor,
    grid: Sequence[int],
    out_channels: int,
    unshared: str,
) -> None:
    """A bias of ``(C_out,)`` or ``(*grid, C_out)`` (``unshared`` says what the grid indexes)
    matching the weight's dtype and device."""
    if bias is None:
        return
    if not isinstance(bias, torch.Tensor):
        raise TypeError(f"{op}: bias must be a torch.Tensor or None, got {type(bias).__name__}")
    if tuple(bias.shape) not in ((out_channels,), (*grid, out_channels)):
        raise ValueError(
            f"{op}: bias must have shape ({out_channels},) (shared) or "
            f"{(*grid, out_channels)} ({unshared}), got {tuple(bias.shape)}"
        )
    if bias.dtype != weight.dtype or bias.device != weight.device:
        raise TypeError(
            f"{op}: bias ({bias.dtype}, {bias.device}) must match weight "
            f"({weight.dtype}, {weight.device})"
        )


def transpose_output_size(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    where: str = "transpose_output_size",
) -> tuple[int, ...]:
    """Output size of a transposed op, as ``torch.nn.ConvTranspose*d`` computes it:
    ``(in - 1) * stride - before - after + dilation * (k - 1) + output_padding + 1``."""
    out = []
    for dim, (n, k, s, (lo, hi), op_, dl) in enumerate(
        zip(input_size, kernel_size, stride, pads, output_padding, dilation, strict=True)
    ):
        if op_ >= s and op_ >= dl:
            raise ValueError(
                f"{where}: output_padding must be smaller than either stride or dilation, got "
                f"output_padding={tuple(output_padding)}, stride={tuple(stride)}, "
                f"dilation={tuple(dilation)} (spatial dimension {dim})"
            )
        size = (n - 1) * s + dl * (k - 1) + op_ + 1 - lo - hi
        if size < 1:
            raise ValueError(
                f"{where}: padding {(lo, hi)} leaves no output in spatial dimension {dim} (input "
                f"size {n}, kernel_size={tuple(kernel_size)}, stride={tuple(stride)})"
            )
        out.append(size)
    return tuple(out)


def _transpose(
    op: str,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntOrTuple,
    padding: Padding,
    output_padding: IntOrTuple,
    dilation: IntOrTuple,
    groups: int,
    per_position: bool,
) -> torch.Tensor:
    """Shared body of the transposed ops: validate, expand a tiled bank, scatter, crop, bias."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{op}: weight must be a torch.Tensor, got {type(weight).__name__}")
    if weight.dim() not in (4, 6, 8):
        raise ValueError(
            f"{op}: weight must have shape (*grid, in_channels, out_channels/groups, "
            f"*kernel_size) with d = 1, 2 or 3 spatial dimensions (4, 6 or 8 dims), got shape "
            f"{tuple(weight.shape)}"
        )
    d = (weight.dim() - 2) // 2
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    grid, in_channels, cg = tuple(weight.shape[:d]), weight.shape[d], weight.shape[d + 1]
    kernel_size = tuple(weight.shape[d + 2 :])
    if any(v == 0 for v in weight.shape):
        raise ValueError(
            f"{op}: weight must not have zero-sized dimensions, got {tuple(weight.shape)}"
        )
    if in_channels % groups:
        raise ValueError(
            f"{op}: in_channels ({in_channels}, weight dim {d}) must be divisible by groups "
            f"({groups})"
        )
    y, unbatched = check_input(input, d, in_channels, op)
    if y.dtype != weight.dtype and not torch.is_autocast_enabled(y.device.type):
        raise TypeError(f"{op}: input dtype {y.dtype} does not match weight dtype {weight.dtype}")
    if y.device != weight.device:
        raise ValueError(f"{op}: input is on {y.device} but weight is on {weight.device}")
    in_size = tuple(y.shape[2:])
    if per_position and grid != in_size:
        raise ValueError(
            f"{op}: weight holds kernels for input size {grid}, got input of spatial size {in_size}"
        )
    if isinstance(padding, str):
        raise ValueError(
            f"{op}: padding must be an int, a tuple or (before, after) pairs (as for "
            f"torch.nn.ConvTranspose{d}d), got {padding!r}"
        )
    stride_t = ntuple(stride, d, "stride", where=op)
    dilation_t = ntuple(dilation, d, "dilation", where=op)
    output_padding_t = ntuple(output_padding, d, "output_padding", minimum=0, where=op)
    pads = padding_amounts(padding, kernel_size, stride_t, dilation_t, where=op)
    out_size = transpose_output_size(
        in_size, kernel_size, stride_t, pads, output_padding_t, dilation_t, where=op
    )
    full_size = [o + lo + hi for o, (lo, hi) in zip(out_size, pads, strict=True)]
    out_channels = cg * groups
    bank_bias = (*grid, out_channels) if not per_position else (*out_size, out_channels)
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"{op}: bias must be a torch.Tensor or None, got {type(bias).__name__}")
        if tuple(bias.shape) not in ((out_channels,), bank_bias):
            raise ValueError(
                f"{op}: bias must have shape ({out_channels},) (shared) or {bank_bias}, got "
                f"{tuple(bias.shape)}"
            )
        if bias.dtype != weight.dtype or bias.device != weight.device:
            raise TypeError(
                f"{op}: bias ({bias.dtype}, {bias.device}) must match weight "
                f"({weight.dtype}, {weight.device})"
            )
    kernels = weight if per_position else reference.tile_over(weight, grid, in_size)
    full = transposed.locally_connected_transpose(
        y, kernels, stride_t, dilation_t, groups, full_size
    )
    crop = tuple(slice(lo, lo + o) for o, (lo, _) in zip(out_size, pads, strict=True))
    out = full[(slice(None), slice(None)) + crop]
    if bias is not None:
        if bias.dim() == 1:
            b = bias.view(out_channels, *(1,) * d)
        else:
            b = (bias if per_position else reference.tile_over(bias, grid, out_size)).movedim(-1, 0)
        out = out + b
    return out.squeeze(0) if unbatched else out


def locally_connected_transpose(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> torch.Tensor:
    r"""Transposed locally connected op: the adjoint of ``locally_connected``, over 1-3-D input.

    As ``conv_transpose`` is to ``conv``: each input position ``p`` scatters through its own
    kernel ``weight[p]`` (``ConvTranspose``'s layout ``(C_in, C_out/g, *k)``) onto the window of
    the output that a locally connected layer at ``p`` would read:

    .. math::
        \text{out}[n, g(i) \cdot C_{out}/g + c,\; p s + k d - \text{before}] \mathrel{+}=
            \text{weight}[p, i, c, k]\; \text{input}[n, i, p]

    so that ``<locally_connected(x, W), y> == <x, locally_connected_transpose(y, W)>``.

    Args:
        input: ``(N, C_in, *in_size)`` or unbatched ``(C_in, *in_size)``.
        weight: ``(*in_size, C_in, C_out // groups, *kernel_size)``.
        bias: ``None``, ``(C_out,)`` shared, or ``(*out_size, C_out)`` one per output position.
        stride: as in ``torch.nn.functional.conv_transpose2d``.
        padding: ints or ``(before, after)`` pairs, removed from the output's borders.
        output_padding: extra size added to the output's end, smaller than stride or dilation.
        dilation: as in ``torch.nn.functional.conv_transpose2d``.
        groups: as in ``torch.nn.functional.conv_transpose2d``.

    Shape:
        ``out[i] = (in[i] - 1) * stride[i] - before[i] - after[i] + dilation[i] *
        (kernel_size[i] - 1) + output_padding[i] + 1``, as ``torch.nn.ConvTranspose*d``.
    """
    return _transpose(
        "locally_connected_transpose",
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        dilation,
        groups,
        per_position=True,
    )


def tiled_conv_transpose(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> torch.Tensor:
    r"""Transposed tiled convolution: the adjoint of ``tiled_conv``, over inputs of any size.

    Input position ``p`` scatters through ``weight[p mod tile]``; ``tile = 1`` is
    ``conv_transpose``. Otherwise as :func:`locally_connected_transpose`.

    Args:
        input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
        weight: ``(*tile, C_in, C_out // groups, *kernel_size)``.
        bias: ``None``, ``(C_out,)`` shared, or ``(*tile, C_out)``: output position ``q`` adds
            ``bias[q mod tile]``.
        stride: as in :func:`locally_connected_transpose`.
        padding: as in :func:`locally_connected_transpose`.
        output_padding: as in :func:`locally_connected_transpose`.
        dilation: as in :func:`locally_connected_transpose`.
        groups: as in :func:`locally_connected_transpose`.

    Shape:
        As ``torch.nn.ConvTranspose*d``.
    """
    return _transpose(
        "tiled_conv_transpose",
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        dilation,
        groups,
        per_position=False,
    )
