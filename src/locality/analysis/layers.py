"""Which kind a module is, and its closed-form cost, read from its ``Connectivity``."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from locality._arguments import check_initialised, check_module, check_shape
from locality.analysis.counts import Cost
from locality.connectivity import KINDS as CONNECTIVITY_KINDS
from locality.connectivity import Connectivity

__all__ = ["KINDS", "kind_of", "layer_cost"]

# The kinds of locality.Connectivity, and "other" for modules without one.
KINDS = (*CONNECTIVITY_KINDS, "other")


def _connectivity(module: nn.Module) -> Connectivity | None:
    """The module's connectivity, or None for a module of kind "other"."""
    try:
        return Connectivity.of(module)
    except TypeError:
        return None


def kind_of(module: nn.Module) -> str:
    """One of ``KINDS``: the connectivity's kind. Transposed convolutions and everything else
    without a ``Connectivity`` are ``"other"``."""
    check_module(module, "module", "kind_of")
    if isinstance(module, nn.Linear):
        return "dense"  # also before a LazyLinear has its sizes
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return "conv"
    kind = getattr(type(module), "_kind", None)  # this library's layers, also while lazy
    if isinstance(kind, str):
        return kind
    connectivity = _connectivity(module)
    return "other" if connectivity is None else connectivity.kind


def layer_cost(module: nn.Module, output_shape: Sequence[int]) -> Cost | None:
    """Closed-form cost of ``module`` producing one example of ``output_shape`` (no batch).

    ``None`` for modules of kind ``"other"``. A ``Linear`` applied to ``(..., in_features)``
    costs one dense product per leading position.
    """
    where = "layer_cost"
    check_module(module, "module", where)
    if kind_of(module) == "other":
        return None
    check_initialised(module, "module", where)
    connectivity = Connectivity.of(module)
    c_out = connectivity.out_channels
    if connectivity.d == 0:
        shape = check_shape(output_shape, "output_shape", where)
        if shape[-1] != c_out:
            raise ValueError(
                f"{where}: output_shape must end with out_features={c_out} for this "
                f"{type(module).__name__}, got {shape}"
            )
        positions = math.prod(shape[:-1])
        return Cost("dense", connectivity.parameters, connectivity.macs() * positions)
    shape = check_shape(output_shape, "output_shape", where, length=connectivity.d + 1)
    if shape[0] != c_out:
        raise ValueError(
            f"{where}: output_shape must start with out_channels={c_out} for this "
            f"{type(module).__name__}, got {shape}"
        )
    fixed = None if connectivity.input_size is None else connectivity.output_size()
    if fixed is not None and shape[1:] != fixed:
        raise ValueError(
            f"{where}: output_shape must have this {type(module).__name__}'s output size "
            f"{fixed}, got {shape}"
        )
    return Cost(connectivity.kind, connectivity.parameters, connectivity.macs(shape[1:]))
