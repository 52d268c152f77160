"""A per-layer table of a model: kind, output shape, parameters, MACs, receptive field, stride.

MACs of the four kinds come from the closed forms in ``locality.analysis.counts``; MACs of
any other module (attention's matmuls, a transposed convolution) are what
``torch.utils.flop_counter.FlopCounterMode`` counts for it, halved. The whole forward pass is
also counted by ``FlopCounterMode``, and the summary shows both, so a difference (work done by
plain functions outside any leaf module) is visible. FLOPs = 2 x MACs throughout.

torchinfo's "Mult-Adds" column is not right for tiled layers: for any module whose class name
contains "Conv" it multiplies the parameter count by the number of output positions, which
for a ``TiledConv2d`` with a t x t tile is t^2 times too many (t^d in d
dimensions). For ``LocallyConnected2d`` it reports the parameter count, which
happens to be right (weights + biases = one MAC each per example).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from locality.analysis.counts import format_bytes, format_count
from locality.analysis.layers import kind_of, layer_cost
from locality.analysis.receptive_field import ReceptiveField, ReceptiveFieldTracker
from locality.analysis.trace import example_input, left_unchanged, run_with_hooks

__all__ = ["LayerRow", "Summary", "summary"]


@dataclass(frozen=True)
class LayerRow:
    """One leaf module's call in the forward pass."""

    name: str
    type: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    receptive_field: ReceptiveField | None

    def to_dict(self) -> dict:
        rf = self.receptive_field
        return {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            "flops": 2 * self.macs,
            "receptive_field": None if rf is None else "all" if rf.whole else list(rf.size or ()),
            "stride": None if rf is None or rf.whole else list(rf.jump),
        }


@dataclass(frozen=True)
class Summary:
    """The result of ``summary``; ``str()`` renders it as a table."""

    model: str
    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    total_params: int
    weight_bytes: int
    counted_flops: int

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "layers": [row.to_dict() for row in self.rows],
            "total_params": self.total_params,
            "total_macs": self.total_macs,
            "total_flops": 2 * self.total_macs,
            "flop_counter_flops": self.counted_flops,
            "weight_bytes": self.weight_bytes,
        }

    def __str__(self) -> str:
        header = ("layer", "kind", "output", "params", "MACs", "RF", "stride")
        body = [_cells(row) for row in self.rows]
        total = ("total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}", "", "")
        widths = [max(len(r[i]) for r in (header, *body, total)) for i in range(len(header))]
        right = (False, False, False, True, True, True, True)

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                c.rjust(w) if r else c.ljust(w)
                for c, w, r in zip(cells, widths, right, strict=True)
            ).rstrip()

        rule = "-" * len(line(["x" * w for w in widths]))
        shape = "x".join(map(str, self.input_shape))
        lines = [f"{self.model} on input {shape}", rule, line(header), rule]
        lines += [line(cells) for cells in body]
        lines += [rule, line(total), ""]
        lines.append(f"weights: {format_bytes(self.weight_bytes)}")
        lines.append(
            f"FLOPs = 2 x MACs = {format_count(2 * self.total_macs)}; FlopCounterMode counts "
            f"{format_count(self.counted_flops)}"
        )
        lines.append("RF: receptive field in input positions; stride: cumulative stride.")
        return "\n".join(lines)


def _dims(values: Sequence[int]) -> str:
    return "x".join(map(str, values)) if values else "-"


def _cells(row: LayerRow) -> tuple[str, ...]:
    rf = row.receptive_field
    if rf is None:
        field, stride = "?", "?"
    elif rf.whole:
        field, stride = "all", "-"
    else:
        field = _dims(rf.size or ())
        stride = str(rf.jump[0]) if len(set(rf.jump)) == 1 else _dims(rf.jump)
    label = f"{row.name} {row.type}" if row.name else row.type
    return (
        label,
        row.kind,
        "x".join(map(str, row.output_shape)),
        f"{row.params:,}",
        f"{row.macs:,}",
        field,
        stride,
    )


def summary(model: nn.Module, input_shape: Sequence[int]) -> Summary:
    """Run one example of shape ``input_shape`` (no batch dimension) through ``model``.

    Args:
        model: any module; its leaf modules become the rows, in the order they run.
        input_shape: e.g. ``(3, 224, 224)``.

    The pass runs on the model's device and dtype without gradients, in eval mode; the model
    comes back unchanged (training flags, BatchNorm statistics, lazy layers still lazy: those are
    summarised on a copy). Build the model with ``device="meta"`` to summarise one too large to
    allocate.

    Example::

        >>> net = torch.nn.Sequential(LocallyConnected2d(3, 64, 3, input_size=32))
        >>> summary(net, (3, 32, 32)).total_params
        1612800
    """
    where = "summary"
    x = example_input(model, input_shape, where)
    with left_unchanged(model) as run:
        return _summary(run, x, tuple(input_shape), where)


def _summary(
    model: nn.Module, x: torch.Tensor, input_shape: tuple[int, ...], where: str
) -> Summary:
    tracker = ReceptiveFieldTracker(x)
    calls: list[tuple[str, nn.Module, tuple[int, ...], ReceptiveField | None]] = []

    def record(name: str, module: nn.Module, input: torch.Tensor, output: torch.Tensor) -> None:
        field = tracker.update(module, input, output)
        calls.append((name, module, tuple(output.shape[1:]), field))

    with FlopCounterMode(display=False) as counter:
        run_with_hooks(model, x, record, where)
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    rows = []
    for name, module, shape, field in calls:
        try:
            cost = layer_cost(module, shape)
        except ValueError as error:  # e.g. a Conv2d given a 3-D input took it as unbatched
            raise ValueError(
                f"{where}: layer {name!r} ({type(module).__name__}) gave output shape {shape} at "
                f"input_shape {tuple(input_shape)}, which it cannot have on a batch ({error})"
            ) from error
        if cost is None:
            counted = per_module.get(f"{root}.{name}" if name else root, {})
            macs = sum(counted.values()) // 2
        else:
            macs = cost.macs
        params = sum(p.numel() for p in module.parameters())
        rows.append(
            LayerRow(name, type(module).__name__, kind_of(module), shape, params, macs, field)
        )
    parameters = list(model.parameters())
    return Summary(
        model=root,
        input_shape=tuple(input_shape),
        rows=tuple(rows),
        total_params=sum(p.numel() for p in parameters),
        weight_bytes=sum(p.numel() * p.element_size() for p in parameters),
        counted_flops=counter.get_total_flops(),
    )
