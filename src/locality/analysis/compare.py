"""The kinds side by side for one input, one set of output units and one kernel.

The worked examples of the notes are all of this form: "a 1000x1000 input, 10^6 hidden units,
each looking at a 10x10 patch: how many parameters if dense, locally connected, or shared?".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from locality.analysis.counts import (
    Cost,
    conv_cost,
    dense_cost,
    depthwise_separable_cost,
    format_bytes,
    format_count,
    locally_connected_cost,
    lowrank_cost,
    region_cost,
    tiled_cost,
)

__all__ = ["Comparison", "compare", "output_size_formula"]


def output_size_formula(n: int, kernel: int, stride: int, padding: int) -> str:
    """The convolution output-size formula with numbers in, e.g. ``(32 + 2*0 - 5)/1 + 1 = 28``."""
    out = (n + 2 * padding - kernel) // stride + 1
    if (n + 2 * padding - kernel) % stride:
        return f"floor(({n} + 2*{padding} - {kernel})/{stride}) + 1 = {out}"
    return f"({n} + 2*{padding} - {kernel})/{stride} + 1 = {out}"


@dataclass(frozen=True)
class Comparison:
    """Parameters, MACs and memory of each kind for one configuration; ``str()`` is a table.

    ``output_size`` is ``None`` when units were given without a stride: then each unit looks at
    one patch somewhere, and only how many units there are matters.
    """

    input_size: tuple[int, ...]
    in_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...] | None
    padding: int
    output_size: tuple[int, ...] | None
    out_channels: int
    units: int
    tile_size: int
    costs: dict[str, Cost] = field(default_factory=dict)
    dtype: torch.dtype = torch.float32
    regions: tuple[int, ...] = ()
    rank: int = 4

    def formulas(self) -> list[str]:
        """The output-size formula per spatial dimension (empty without a grid)."""
        if self.output_size is None or self.stride is None:
            return []
        return [
            output_size_formula(n, k, s, self.padding)
            for n, k, s in zip(self.input_size, self.kernel_size, self.stride, strict=True)
        ]

    def to_dict(self) -> dict:
        return {
            "input_size": list(self.input_size),
            "in_channels": self.in_channels,
            "kernel_size": list(self.kernel_size),
            "stride": None if self.stride is None else list(self.stride),
            "padding": self.padding,
            "output_size": None if self.output_size is None else list(self.output_size),
            "out_channels": self.out_channels,
            "units": self.units,
            "tile_size": self.tile_size,
            "regions": list(self.regions),
            "rank": self.rank,
            "dtype": str(self.dtype).removeprefix("torch."),
            "kinds": {
                kind: {
                    "params": cost.params,
                    "macs": cost.macs,
                    "flops": cost.flops,
                    "weight_bytes": cost.weight_bytes(self.dtype),
                }
                for kind, cost in self.costs.items()
            },
            "formulas": self.formulas(),
        }

    def describe(self) -> list[str]:
        """The configuration: input, units, kernel and the output-size formula."""
        x = "x".join
        size = x(map(str, self.input_size))
        maps = "map" if self.out_channels == 1 else "maps"
        head = (
            f"input {self.in_channels}x{size} -> {self.units:,} units = {self.out_channels} {maps}"
        )
        head += (
            " (not on a grid)"
            if self.output_size is None
            else f" of {x(map(str, self.output_size))}"
        )
        where = f"kernel {x(map(str, self.kernel_size))}"
        if self.stride is not None:
            where += f", stride {x(map(str, self.stride))}"
        if self.padding:
            where += f", padding {self.padding}"
        lines = [head, where]
        formulas = self.formulas()
        if len(set(formulas)) == 1 and len(formulas) > 1:
            formulas = [f"{formulas[0]} (each dimension)"]
        lines += [f"output size: {f}" for f in formulas]
        if self.kernel_size == self.input_size and not self.padding:
            lines.append("the kernel covers the whole input: all the kinds are one dense layer")
        return lines

    def table(self, kinds: Sequence[str] | None = None) -> list[str]:
        """One row per kind (those in ``kinds``, by default all): parameters, MACs, weight memory,
        parameters relative to dense."""
        dtype = str(self.dtype).removeprefix("torch.")
        dense = self.costs["dense"].params
        header = ("kind", "params", "MACs", dtype, "vs dense")
        rows = [
            (
                self._label(kind),
                f"{cost.params:,}",
                f"{cost.macs:,}",
                format_bytes(cost.weight_bytes(self.dtype)),
                _ratio(cost.params, dense),
            )
            for kind, cost in self.costs.items()
            if kinds is None or kind in kinds
        ]
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

        def line(cells: Sequence[str]) -> str:
            first = cells[0].ljust(widths[0])
            return "  ".join(
                [first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
            )

        return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]

    def powers(self) -> str:
        """Parameters of each kind as powers of ten, the way the notes write them."""
        items = [f"{self._label(k)} {_power(c.params)}" for k, c in self.costs.items()]
        lines = ["params:"]
        for i, item in enumerate(items):
            item += "," if i < len(items) - 1 else ""
            if len(lines[-1]) + 1 + len(item) > 80:
                lines.append("       ")
            lines[-1] += " " + item
        return "\n".join(lines)

    def __str__(self) -> str:
        return "\n".join([*self.describe(), "", *self.table(), "", self.powers()])

    def _label(self, kind: str) -> str:
        return _LABELS[kind].format(
            t=self.tile_size, r="x".join(map(str, self.regions)), k=self.rank
        )


_LABELS = {
    "dense": "dense",
    "locally_connected": "locally_connected",
    "lowrank": "lowrank K={k}",
    "region": "region {r}",
    "tiled": "tiled t={t}",
    "conv": "conv",
    "depthwise_separable": "depthwise_separable",
}


def _power(n: int) -> str:
    text = format_count(n, power_of_ten=True)
    return text.split(" (", 1)[1].rstrip(")") if " (" in text else f"{n:,}"


def _ratio(params: int, dense: int) -> str:
    if params == dense:
        return "1"
    if params > dense:
        ratio = f"{params / dense:,.3g}x"
        return f"~{ratio} (+{params - dense:,})" if ratio == "1x" else ratio
    if dense % params == 0:
        return f"1/{dense // params:,}"
    fraction = dense / params
    return f"~1/{fraction:.1f}" if fraction < 100 else f"~1/{round(fraction):,}"


def _sizes(value: int | Sequence[int] | None, d: int, name: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    values = (value,) * d if isinstance(value, int) else tuple(value)
    if len(values) != d or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
    ):
        raise ValueError(
            f"compare: {name} must be a positive int or {d} of them (one per input dimension), "
            f"got {value!r}"
        )
    return values


def compare(
    input_size: int | Sequence[int],
    in_channels: int = 1,
    *,
    units: int | None = None,
    out_channels: int | None = None,
    kernel_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    padding: int = 0,
    tile_size: int = 2,
    regions: int = 2,
    rank: int = 4,
    bias: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Comparison:
    """Dense, locally connected, low-rank, region-shared, tiled and convolutional layers for the
    same units, from the least shared to the most.

    Args:
        input_size: spatial size of the input, e.g. ``(1000, 1000)``.
        in_channels: input channels.
        units: output units in all (``out_channels x output positions``).
        out_channels: output channels (feature maps, "kernels" in the notes).
        kernel_size: patch each unit looks at; ``None``: the whole input, where all the kinds
            are the same dense layer (note 004).
        stride: step between patches. Given (or when ``units`` is not), output positions follow
            the output-size formula and ``units`` must be ``out_channels x positions``. Left out
            with ``units`` given, the units are not laid on a grid: each looks at one patch.
        padding: zero padding on each side.
        tile_size: tile of the tiled convolution in every dimension.
        regions: regions per dimension of the region-shared layer (capped at the output size,
            as a tile is).
        rank: basis kernels of the low-rank locally connected layer (softmax mixes, one set of
            ``rank`` coefficients per position).
        bias: count biases (the notes leave them out; Keras's numbers include them).
        dtype: for the weight memory.

    A depthwise-separable convolution is added when ``in_channels > 1`` and a kernel is given.
    """
    size = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    d = len(size)
    _sizes(size, d, "input_size")
    kernel = _sizes(kernel_size, d, "kernel_size") or size
    if kernel_size is None and (stride is not None or padding):
        raise ValueError("compare: stride and padding need a kernel_size smaller than the input")
    for name, value in (
        ("in_channels", in_channels),
        ("tile_size", tile_size),
        ("regions", regions),
        ("rank", rank),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"compare: {name} must be a positive int, got {value!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"compare: padding must be a non-negative int, got {padding!r}")
    for name, optional in (("units", units), ("out_channels", out_channels)):
        if optional is not None and (
            isinstance(optional, bool) or not isinstance(optional, int) or optional < 1
        ):
            raise ValueError(f"compare: {name} must be a positive int, got {optional!r}")

    strides = _sizes(stride, d, "stride")
    if strides is None and units is not None and kernel_size is not None:  # gridless
        channels = out_channels or 1
        if units % channels:
            raise ValueError(
                f"compare: units ({units:,}) must be a multiple of out_channels ({channels})"
            )
        positions = units // channels
        grid: tuple[int, ...] | None = None
        flat = (positions,) + (1,) * (d - 1)  # only the number of positions matters
    else:
        strides = strides or (1,) * d
        for n, k in zip(size, kernel, strict=True):
            if k > n + 2 * padding:
                raise ValueError(
                    f"compare: kernel_size {kernel} is larger than the padded input "
                    f"{tuple(n + 2 * padding for n in size)}"
                )
        grid = tuple(
            (n + 2 * padding - k) // s + 1 for n, k, s in zip(size, kernel, strides, strict=True)
        )
        positions = math.prod(grid)
        channels = _grid_channels(units, out_channels, positions, grid)
        flat = grid
    units = channels * positions
    fan_in = in_channels * math.prod(size)
    # Region-shared: ``regions`` blocks per dimension, capped at the grid as a tile is; without
    # a grid only the number of kernels matters. Low-rank: a rank above the number of positions
    # adds nothing a locally connected layer lacks, so it is capped there.
    blocks = _tile(regions, grid, d)
    bank = blocks if grid is not None else (min(math.prod(blocks), positions),) + (1,) * (d - 1)
    rank = min(rank, positions)
    costs = {
        "dense": dense_cost(fan_in, units, bias),
        "locally_connected": locally_connected_cost(in_channels, channels, kernel, flat, bias=bias),
        "lowrank": lowrank_cost(in_channels, channels, kernel, flat, rank, bias=bias),
        "region": region_cost(in_channels, channels, kernel, flat, bank, bias=bias),
        "tiled": tiled_cost(
            in_channels, channels, kernel, flat, _tile(tile_size, grid, d), bias=bias
        ),
        "conv": conv_cost(in_channels, channels, kernel, flat, bias=bias),
    }
    if in_channels > 1 and kernel_size is not None:
        costs["depthwise_separable"] = depthwise_separable_cost(
            in_channels, channels, kernel, flat, bias=bias
        )
    return Comparison(
        size,
        in_channels,
        kernel,
        strides,
        padding,
        grid,
        channels,
        units,
        tile_size,
        costs,
        dtype,
        blocks,
        rank,
    )


def _grid_channels(
    units: int | None, out_channels: int | None, positions: int, grid: tuple[int, ...]
) -> int:
    if units is None:
        return out_channels or 1
    if units % positions:
        raise ValueError(
            f"compare: units ({units:,}) must be a multiple of the {positions:,} output positions "
            f"{grid}; leave out the stride to count units without a grid"
        )
    if out_channels is not None and out_channels * positions != units:
        raise ValueError(
            f"compare: units ({units:,}) must equal out_channels ({out_channels}) x output "
            f"positions ({positions:,})"
        )
    return units // positions


def _tile(tile_size: int, grid: tuple[int, ...] | None, d: int) -> tuple[int, ...]:
    """A tiled (or region-shared) layer's bank; a tile larger than the output holds no more
    kernels than it uses."""
    if grid is None:
        return (tile_size,) * d
    return tuple(min(tile_size, n) for n in grid)
