"""Closed-form parameter counts, multiply-accumulates and weight memory, from shapes alone.

Every count is a Python ``int``, so nothing overflows: a dense layer from a 1000x1000 image to
10^6 units has exactly 1,000,000,000,000 weights, 4 TB in float32 (note 002 says "约400MB").

Conventions:

- A multiply-accumulate (MAC) is one ``a * b + c``; FLOPs = 2 x MACs, the convention of
  ``torch.utils.flop_counter.FlopCounterMode``. Bias additions are not counted, as there.
- Every output unit of a layer reads ``fan_in = in_channels / groups * prod(kernel_size)``
  inputs, so MACs = output units x fan_in for all four kinds: they differ only in parameters,
  by how many output positions share one kernel.
- Parameters are ``kernels x out_channels x fan_in`` weights plus biases, where ``kernels`` is 1
  for a convolution, ``prod(tile_size)`` for a tiled convolution, ``prod(regions)`` for a
  region-shared one, ``rank`` for a low-rank locally connected layer (plus its mixing
  coefficients) and ``prod(output_size)`` for a locally connected layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from locality._arguments import check_flag, check_int, check_shape, is_int
from locality._memory import format_bytes

__all__ = [
    "Cost",
    "dense_cost",
    "locally_connected_cost",
    "tiled_cost",
    "conv_cost",
    "region_cost",
    "lowrank_cost",
    "depthwise_separable_cost",
    "format_count",
    "format_bytes",
]


@dataclass(frozen=True)
class Cost:
    """What one layer costs: ``params`` weights and biases, ``macs`` per example."""

    kind: str
    params: int
    macs: int

    @property
    def flops(self) -> int:
        """Floating-point operations per example: 2 x MACs."""
        return 2 * self.macs

    def weight_bytes(self, dtype: torch.dtype = torch.float32) -> int:
        """Bytes to store the parameters in ``dtype``."""
        return self.params * dtype.itemsize


def _sizes(value: int | Sequence[int], name: str, where: str) -> tuple[int, ...]:
    """A positive int as a 1-tuple, or a non-empty tuple of positive ints."""
    if is_int(value):
        return (check_int(value, name, where),)
    return check_shape(value, name, where)


def _bank_cost(
    kind: str,
    kernels: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
    groups: int,
    bias: bool,
    shared_bias: bool,
    where: str,
) -> Cost:
    """A bank of ``kernels`` kernels over an output grid: the formula all four kinds share."""
    check_int(in_channels, "in_channels", where)
    check_int(out_channels, "out_channels", where)
    check_int(groups, "groups", where)
    check_flag(bias, "bias", where)
    check_flag(shared_bias, "shared_bias", where)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{where}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
            f"divisible by groups ({groups})"
        )
    out = _sizes(output_size, "output_size", where)
    kernel = _sizes(kernel_size, "kernel_size", where)
    if is_int(kernel_size):
        kernel = kernel * len(out)
    if len(kernel) != len(out):
        raise ValueError(
            f"{where}: kernel_size {kernel} and output_size {out} must have the same number of "
            f"spatial dimensions"
        )
    fan_in = in_channels // groups * math.prod(kernel)
    weights = kernels * out_channels * fan_in
    biases = 0 if not bias else out_channels if shared_bias else kernels * out_channels
    return Cost(kind, weights + biases, math.prod(out) * out_channels * fan_in)


def dense_cost(in_features: int, out_features: int, bias: bool = True) -> Cost:
    """``torch.nn.Linear(in_features, out_features)``: ``in x out`` weights, as many MACs.

    Example: 4x4x50 feature maps to 500 units is ``dense_cost(800, 500, bias=False)``, 400,000.
    """
    where = "dense_cost"
    check_int(in_features, "in_features", where)
    check_int(out_features, "out_features", where)
    check_flag(bias, "bias", where)
    weights = in_features * out_features
    return Cost("dense", weights + (out_features if bias else 0), weights)


def conv_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
    groups: int = 1,
    bias: bool = True,
) -> Cost:
    """``torch.nn.Conv{d}d`` with the given output size: one kernel shared by every position."""
    return _bank_cost(
        "conv",
        1,
        in_channels,
        out_channels,
        kernel_size,
        output_size,
        groups,
        bias,
        False,
        "conv_cost",
    )


def tiled_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
    tile_size: int | Sequence[int],
    groups: int = 1,
    bias: bool = True,
    shared_bias: bool = False,
) -> Cost:
    """``TiledConv2d`` and kin: ``prod(tile_size)`` kernels, shared a tile apart.

    Counts the parameters the layer holds: all ``prod(tile_size)`` kernels, even when a tile is
    larger than the output and some of them are never used.
    """
    return _blocked_cost(
        "tiled",
        tile_size,
        "tile_size",
        in_channels,
        out_channels,
        kernel_size,
        output_size,
        groups,
        bias,
        shared_bias,
        at_most_output=False,
    )


def _blocked_cost(
    kind: str,
    bank: int | Sequence[int],
    name: str,
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
    groups: int,
    bias: bool,
    shared_bias: bool,
    at_most_output: bool,
) -> Cost:
    """A bank of ``bank`` kernels per dimension (an int for every dimension): tiled, region."""
    where = f"{kind}_cost"
    out = _sizes(output_size, "output_size", where)
    shape = _sizes(bank, name, where)
    if is_int(bank):
        shape = shape * len(out)
    if len(shape) != len(out):
        raise ValueError(f"{where}: {name} {shape} and output_size {out} must have the same length")
    if at_most_output and any(b > n for b, n in zip(shape, out, strict=True)):
        raise ValueError(
            f"{where}: {name} must be at most the output size {out} in every dimension, got {shape}"
        )
    return _bank_cost(
        kind,
        math.prod(shape),
        in_channels,
        out_channels,
        kernel_size,
        out,
        groups,
        bias,
        shared_bias,
        where,
    )


def locally_connected_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
    groups: int = 1,
    bias: bool = True,
    shared_bias: bool = False,
) -> Cost:
    """``LocallyConnected2d`` and kin: one kernel per output position.

    Example: Keras's ``LocallyConnected2D(64, (3, 3))`` on a 32x32x3 input is
    ``locally_connected_cost(3, 64, 3, (30, 30))``: 1,612,800 parameters.
    """
    out = _sizes(output_size, "output_size", "locally_connected_cost")
    return _bank_cost(
        "locally_connected",
        math.prod(out),
        in_channels,
        out_channels,
        kernel_size,
        out,
        groups,
        bias,
        shared_bias,
        "locally_connected_cost",
    )


def region_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
    regions: int | Sequence[int],
    groups: int = 1,
    bias: bool = True,
    shared_bias: bool = False,
) -> Cost:
    """``RegionConv2d`` and kin: ``prod(regions)`` kernels, one per block of output positions.

    Example: DeepID's region-shared layer, 40 -> 60 channels, 3x3 kernels, 2x2 regions on a
    10x8 output, is ``region_cost(40, 60, 3, (10, 8), 2)``: 86,640 parameters.
    """
    return _blocked_cost(
        "region",
        regions,
        "regions",
        in_channels,
        out_channels,
        kernel_size,
        output_size,
        groups,
        bias,
        shared_bias,
        at_most_output=True,
    )


def lowrank_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
    rank: int,
    groups: int = 1,
    bias: bool = True,
    shared_bias: bool = False,
    factorized: bool = False,
) -> Cost:
    """``LowRankLocallyConnected2d`` and kin: ``rank`` basis kernels mixed at every position.

    Parameters: the basis (``rank`` kernels), the combining weights (``rank`` per output
    position, or per output coordinate of each dimension when ``factorized``) and biases as a
    locally connected layer has them (one per position and channel, or one per channel shared).
    Its MACs are those of every kind, output units x ``fan_in`` (one dot product per output
    unit with that position's kernel); the fast path (one convolution with ``rank *
    out_channels`` channels, then the mix) does ``rank`` times as many.
    """
    where = "lowrank_cost"
    out = _sizes(output_size, "output_size", where)
    check_int(rank, "rank", where)
    check_flag(factorized, "factorized", where)
    check_flag(bias, "bias", where)
    basis = _bank_cost(
        "lowrank", rank, in_channels, out_channels, kernel_size, out, groups, False, False, where
    )
    mixing = rank * (sum(out) if factorized else math.prod(out))
    biases = 0 if not bias else out_channels if shared_bias else math.prod(out) * out_channels
    return Cost("lowrank", basis.params + mixing + biases, basis.macs)


def depthwise_separable_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
    depth_multiplier: int = 1,
    bias: bool = True,
) -> Cost:
    """A depthwise convolution (``groups=in_channels``) followed by a 1x1 convolution.

    A different way to save parameters from the four kinds (note 004): it factorises the
    kernel across channels instead of sharing it across positions.
    """
    where = "depthwise_separable_cost"
    mid = check_int(in_channels, "in_channels", where) * check_int(
        depth_multiplier, "depth_multiplier", where
    )
    depthwise = _bank_cost(
        "depthwise", 1, in_channels, mid, kernel_size, output_size, in_channels, bias, False, where
    )
    out = _sizes(output_size, "output_size", where)
    pointwise = _bank_cost(
        "pointwise", 1, mid, out_channels, (1,) * len(out), out, 1, bias, False, where
    )
    return Cost(
        "depthwise_separable",
        depthwise.params + pointwise.params,
        depthwise.macs + pointwise.macs,
    )


def format_count(n: int, power_of_ten: bool = False) -> str:
    """``1000000000000`` -> ``"1,000,000,000,000"``; with ``power_of_ten`` also ``" (10^12)"``.

    The power is exact (``10^12``, ``2.5x10^10``) when ``n`` has at most three significant
    digits and approximate (``~1.61x10^6``) otherwise; it is left out below 10,000.
    """
    check_int(n, "n", "format_count", minimum=None)
    check_flag(power_of_ten, "power_of_ten", "format_count")
    text = f"{n:,}"
    if not power_of_ten or abs(n) < 10_000:
        return text
    exponent = len(str(abs(n))) - 1
    mantissa = abs(n) / 10**exponent
    exact = abs(n) % 10 ** max(exponent - 2, 0) == 0
    digits = f"{mantissa:.2f}".rstrip("0").rstrip(".")
    sign = "-" if n < 0 else ""
    power = f"10^{exponent}" if digits == "1" else f"{digits}x10^{exponent}"
    return f"{text} ({'' if exact else '~'}{sign}{power})"
