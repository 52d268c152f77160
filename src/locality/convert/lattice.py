"""Exact moves along the connectivity lattice: each returns a new layer computing the same function.

The more-shared kind embeds into the less-shared one: a convolution is a tiled convolution with
one kernel, a tiled convolution is a locally connected layer whose kernels repeat, and any of them
is a dense (fully connected) layer with zeros and repeated weights. A fully connected layer is in
turn a convolution whose kernel covers its whole input, and a 1x1 convolution is a per-pixel one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from locality._arguments import (
    IntOrTuple,
    check_flag,
    check_initialised,
    check_int,
    check_shape,
    ntuple,
    output_size,
)
from locality._memory import check_allocations
from locality.connectivity import KINDS
from locality.convert._banks import CONV, Bank, build, read_bank

# to_dense reads any kind with a sliding geometry through its connectivity.
FORWARD_KINDS = tuple(k for k in KINDS if k != "dense" and not k.endswith("_transpose"))

__all__ = [
    "to_dense",
    "to_locally_connected",
    "to_tiled",
    "linear_to_conv",
    "linear_to_conv1x1",
    "conv1x1_to_linear",
]


def to_dense(layer: nn.Module, input_shape: Sequence[int]) -> nn.Linear:
    """The ``nn.Linear`` on the flattened input that computes what ``layer`` computes.

    Args:
        layer: ``nn.Linear``, ``nn.Conv1d/2d/3d``, ``TiledConv1d/2d/3d`` or
            ``LocallyConnected1d/2d/3d``; any stride, padding, dilation, groups and padding mode.
        input_shape: ``(C_in, *spatial)`` of one sample (``(in_features,)`` for a Linear).

    Returns:
        ``nn.Linear(C_in * prod(spatial), C_out * prod(out_spatial))`` such that
        ``dense(x.flatten(1)) == layer(x).flatten(1)``. Its weight is built by index arithmetic:
        the entry for (output channel, output position, input channel, input position) is the
        kernel tap that connects them, summed when padding maps several taps to one input
        (reflect, replicate, circular).
    """
    where = "to_dense"
    shape = check_shape(input_shape, "input_shape", where)
    if isinstance(layer, nn.Linear):
        check_initialised(layer, "layer", where)
        if math.prod(shape) != layer.in_features:
            raise ValueError(
                f"{where}: input_shape {shape} has {math.prod(shape)} elements, but the Linear "
                f"expects in_features={layer.in_features}"
            )
        return _linear(layer.weight.detach(), None if layer.bias is None else layer.bias.detach())
    bank = read_bank(layer, where, kinds=FORWARD_KINDS)
    in_size = _spatial(bank, shape, where)
    pads = bank.pads()
    out = output_size(in_size, bank.kernel_size, bank.stride, pads, bank.dilation, where=where)
    # the dense matrix, and the d + 2 index tensors over the regridded bank that scatter into it
    device = bank.weight.device
    dense = (bank.out_channels * math.prod(out), math.prod(shape))
    index = (bank.d + 2, *out, *bank.weight.shape[bank.d :])
    check_allocations([(dense, bank.weight.dtype), (index, torch.int64)], device, where)
    full = bank.regrid(out, where)
    return _linear(_dense_weight(full, in_size, pads), _dense_bias(full))


def _spatial(bank: Bank, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    if len(shape) != bank.d + 1 or shape[0] != bank.in_channels:
        raise ValueError(
            f"{where}: input_shape must be (C_in, *spatial) with C_in={bank.in_channels} and "
            f"{bank.d} spatial dims for this {type_name(bank)} layer, got {shape}"
        )
    in_size = shape[1:]
    if bank.input_size is not None and in_size != tuple(bank.input_size):
        raise ValueError(
            f"{where}: the {bank.kind.replace('_', ' ')} layer takes spatial size "
            f"{tuple(bank.input_size)}, "
            f"got input_shape {shape}"
        )
    return in_size


def type_name(bank: Bank) -> str:
    return f"{bank.d}-D {bank.kind}"


def _source(q: torch.Tensor, n: int, lo: int, hi: int, mode: str) -> torch.Tensor:
    """Input index read at padded-input coordinate ``q`` (shifted so 0 is the first real element).

    -1 marks a zero (``padding_mode="zeros"``); the other modes read a real element, as F.pad does.
    """
    if mode == "reflect" and max(lo, hi) >= n or mode == "circular" and max(lo, hi) > n:
        raise ValueError(
            f"to_dense: padding_mode={mode!r} cannot pad ({lo}, {hi}) around size {n} "
            f"(reflect needs padding < size, circular padding <= size)"
        )
    if mode == "zeros":
        return torch.where((q >= 0) & (q < n), q, -1)
    if mode == "replicate":
        return q.clamp(0, n - 1)
    if mode == "circular":
        return q % n
    q = q.abs()
    return torch.where(q >= n, 2 * (n - 1) - q, q)


def _dense_weight(full: Bank, in_size: tuple[int, ...], pads) -> torch.Tensor:
    """``(C_out * prod(out), C_in * prod(in))`` from a bank regridded to the output size.

    All taps are scattered at once: every index is a tensor broadcast over the bank's own shape
    ``(*out, C_out, C_in/g, *kernel)``, so no Python loop runs over positions.
    """
    d, w = full.d, full.weight
    out, dev = full.grid, w.device
    if w.is_meta:  # shapes only: which entries are zero is data the meta device does not hold
        return w.new_empty(
            full.out_channels * math.prod(out), full.in_channels * math.prod(in_size)
        )
    rank = w.dim()

    def along(t: torch.Tensor, *axes: int) -> torch.Tensor:
        shape = [1] * rank
        for a, n in zip(axes, t.shape, strict=True):
            shape[a] = n
        return t.reshape(shape)

    o = along(torch.arange(full.out_channels, device=dev), d)
    group_in = full.in_channels // full.groups
    group_out = full.out_channels // full.groups
    c = along(torch.arange(group_in, device=dev), d + 1) + (o // group_out) * group_in
    positions, sources = [], []
    for i in range(d):
        p = torch.arange(out[i], device=dev)
        k = torch.arange(full.kernel_size[i], device=dev)
        lo, hi = pads[i]
        q = p[:, None] * full.stride[i] + k[None, :] * full.dilation[i] - lo
        positions.append(along(p, i))
        sources.append(along(_source(q, in_size[i], lo, hi, full.padding_mode), i, d + 2 + i))
    index = torch.broadcast_tensors(o, *positions, c, *sources)
    keep = torch.stack([s < 0 for s in index[d + 2 :]]).any(0).logical_not()
    dense = w.new_zeros(full.out_channels, *out, full.in_channels, *in_size)
    dense.index_put_(tuple(t[keep] for t in index), w.expand(index[0].shape)[keep], accumulate=True)
    return dense.reshape(full.out_channels * math.prod(out), -1)


def _dense_bias(full: Bank) -> torch.Tensor | None:
    if full.bias is None:
        return None
    return full.bias.movedim(-1, 0).reshape(-1)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    linear = nn.Linear(
        weight.shape[1],
        weight.shape[0],
        bias=bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    return linear


def to_locally_connected(
    layer: nn.Module, input_size: IntOrTuple, shared_bias: bool | None = None
) -> nn.Module:
    """Untie a layer's kernels: one copy per output position, computing the same function.

    The DeepFace recipe: start a locally connected layer from a trained convolution.

    Args:
        layer: ``nn.Conv1d/2d/3d`` or any forward layer of this library (tiled, region-shared,
            mapped, low-rank, locally connected): whatever its map, position ``p`` gets the
            kernel the layer uses there.
        input_size: spatial size of the inputs the new layer will take (int or tuple).
        shared_bias: keep one bias per channel; ``None`` keeps the source's sharing (a Conv's
            bias is shared), ``False`` unties it too.

    Returns:
        ``LocallyConnected{d}d`` with ``weight[p] = layer's kernel at output position p``.
    """
    where = "to_locally_connected"
    # A locally connected layer is refused: it already is one.
    kinds = tuple(k for k in FORWARD_KINDS if k != "locally_connected")
    bank = read_bank(layer, where, kinds=kinds)
    size = ntuple(input_size, bank.d, "input_size", where=where)
    share = _sharing(bank, shared_bias, where)
    out = output_size(size, bank.kernel_size, bank.stride, bank.pads(), bank.dilation, where=where)
    return build(bank.regrid(out, where), "locally_connected", share, input_size=size)


def to_tiled(layer: nn.Module, tile_size: IntOrTuple, shared_bias: bool | None = None) -> nn.Module:
    """A tiled convolution whose every kernel is ``layer``'s: the same function, on any input.

    Args:
        layer: ``nn.Conv1d/2d/3d``, or a ``TiledConv1d/2d/3d`` whose tile divides ``tile_size``
            (kernel ``r mod old_tile`` then serves offset ``r``).
        tile_size: tile of the new layer (int or tuple).
        shared_bias: as in ``to_locally_connected``.
    """
    where = "to_tiled"
    bank = read_bank(layer, where, kinds=("conv", "tiled"))
    tile = ntuple(tile_size, bank.d, "tile_size", where=where)
    if any(t % g for t, g in zip(tile, bank.grid, strict=True)):
        raise ValueError(
            f"{where}: tile_size {tile} must be a multiple of the layer's tile {bank.grid} for "
            f"the conversion to be exact (use project() to go to a coarser tiling)"
        )
    share = _sharing(bank, shared_bias, where)
    return build(bank.regrid(tile, where), "tiled", share)


def _sharing(bank: Bank, shared_bias: bool | None, where: str) -> bool:
    """Whether the new layer shares its bias: the source's sharing unless ``shared_bias`` says.

    A bias per position cannot be shared exactly, so ``shared_bias=True`` is refused for it.
    """
    check_flag(shared_bias, "shared_bias", where, allow_none=True)
    if shared_bias and bank.bias is not None and not bank.shared_bias:
        raise ValueError(
            f"{where}: shared_bias=True needs a layer whose bias is shared (one per channel); "
            f"this {type_name(bank)} layer has a bias per kernel (use project() to average it)"
        )
    return bank.shared_bias if shared_bias is None else shared_bias


def linear_to_conv(
    linear: nn.Linear,
    input_shape: Sequence[int],
    *,
    channels_last: bool = False,
    dilation: IntOrTuple = 1,
) -> nn.Module:
    """A convolution whose kernel is the whole input: on that input it is ``linear``.

    The 4x4x3 -> 10 example of note 004: ``Linear(48, 10)`` becomes ``Conv2d(3, 10, 4)``, the same
    480 weights; on a larger map it slides and gives a map of scores.

    Args:
        linear: ``nn.Linear`` applied to the flattened ``(C, *spatial)`` feature map.
        input_shape: ``(C, *spatial)`` of that feature map (1, 2 or 3 spatial dimensions).
        channels_last: the Linear was trained on ``(*spatial, C)`` flattened (Keras order).
        dilation: dilation of the new kernel (used when a pooling before it loses its stride).

    Returns:
        ``Conv{d}d(C, out_features, kernel_size=spatial)``.
    """
    where = "linear_to_conv"
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"{where}: linear must be an nn.Linear, got {type(linear).__name__}")
    check_initialised(linear, "linear", where)
    shape = check_shape(input_shape, "input_shape", where)
    d = len(shape) - 1
    if d not in CONV:
        raise ValueError(
            f"{where}: input_shape must be (C, *spatial) with 1 to 3 spatial dims, got {shape}"
        )
    check_flag(channels_last, "channels_last", where)
    dilation = ntuple(dilation, d, "dilation", where=where)
    if math.prod(shape) != linear.in_features:
        raise ValueError(
            f"{where}: input_shape {shape} has {math.prod(shape)} elements, but the Linear expects "
            f"in_features={linear.in_features}"
        )
    c, spatial = shape[0], shape[1:]
    w = linear.weight.detach()
    if channels_last:
        weight = w.reshape(-1, *spatial, c).movedim(-1, 1)
    else:
        weight = w.reshape(-1, c, *spatial)
    return _conv(weight, linear.bias, dilation)


def linear_to_conv1x1(linear: nn.Linear, dim: int = 2) -> nn.Module:
    """The 1x1 convolution that applies ``linear`` at every position of a ``dim``-D map."""
    where = "linear_to_conv1x1"
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"{where}: linear must be an nn.Linear, got {type(linear).__name__}")
    check_initialised(linear, "linear", where)
    if check_int(dim, "dim", where) not in CONV:
        raise ValueError(f"{where}: dim must be 1, 2 or 3, got {dim!r}")
    w = linear.weight.detach()
    return _conv(w.reshape(*w.shape, *(1,) * dim), linear.bias, 1)


def _conv(weight: torch.Tensor, bias: torch.Tensor | None, dilation: IntOrTuple) -> nn.Module:
    d = weight.dim() - 2
    conv = CONV[d](
        weight.shape[1],
        weight.shape[0],
        tuple(weight.shape[2:]),
        dilation=dilation,
        bias=bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None and conv.bias is not None:
            conv.bias.copy_(bias)
    return conv


def conv1x1_to_linear(conv: nn.Module) -> nn.Linear:
    """The per-pixel ``nn.Linear`` of a 1x1 convolution (block diagonal when ``groups > 1``).

    ``conv(x) == linear(x.movedim(1, -1)).movedim(-1, 1)``. The convolution must have stride 1
    and no padding: otherwise it is not a per-pixel map.
    """
    where = "conv1x1_to_linear"
    if not isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        raise TypeError(f"{where}: conv must be an nn.Conv1d/2d/3d, got {type(conv).__name__}")
    check_initialised(conv, "conv", where)
    if any(k != 1 for k in conv.kernel_size):
        raise ValueError(
            f"{where}: conv must have kernel_size of all ones, got {tuple(conv.kernel_size)}"
        )
    pads = read_bank(conv, where).pads()
    if any(s != 1 for s in conv.stride) or any(lo or hi for lo, hi in pads):
        raise ValueError(
            f"{where}: conv must have stride 1 and no padding (a per-pixel map), got stride="
            f"{tuple(conv.stride)}, padding={conv.padding}"
        )
    g = conv.groups
    w = conv.weight.detach().reshape(g, conv.out_channels // g, conv.in_channels // g)
    return _linear(
        torch.block_diag(*w.unbind(0)), None if conv.bias is None else conv.bias.detach()
    )
