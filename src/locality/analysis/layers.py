"""Which of the four kinds a module is, and its closed-form cost."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from locality._arguments import check_initialised, check_module, check_shape
from locality.analysis.counts import (
    Cost,
    conv_cost,
    dense_cost,
    locally_connected_cost,
    tiled_cost,
)
from locality.layers._base import _ConnectivityNd
from locality.layers.local import _LocallyConnectedNd
from locality.layers.tiled import _TiledConvNd

__all__ = ["KINDS", "kind_of", "layer_cost"]

KINDS = ("dense", "locally connected", "tiled", "convolution", "other")

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def kind_of(module: nn.Module) -> str:
    """One of ``KINDS``. Transposed convolutions and everything else are ``"other"``."""
    check_module(module, "module", "kind_of")
    if isinstance(module, nn.Linear):
        return "dense"
    if isinstance(module, _LocallyConnectedNd):
        return "locally connected"
    if isinstance(module, _TiledConvNd):
        return "tiled"
    if isinstance(module, _CONVS):
        return "convolution"
    return "other"


def layer_cost(module: nn.Module, output_shape: Sequence[int]) -> Cost | None:
    """Closed-form cost of ``module`` producing one example of ``output_shape`` (no batch).

    ``None`` for modules of kind ``"other"``. A ``Linear`` applied to ``(..., in_features)``
    costs one dense product per leading position.
    """
    where = "layer_cost"
    check_module(module, "module", where)
    bias = getattr(module, "bias", None) is not None
    if isinstance(module, nn.Linear):
        check_initialised(module, "module", where)
        shape = check_shape(output_shape, "output_shape", where)
        if shape[-1] != module.out_features:
            raise ValueError(
                f"{where}: output_shape must end with out_features={module.out_features} for "
                f"this Linear, got {shape}"
            )
        dense = dense_cost(module.in_features, module.out_features, bias)
        positions = math.prod(shape[:-1])
        return Cost("dense", dense.params, dense.macs * positions)
    if not isinstance(module, (*_CONVS, _ConnectivityNd)):  # kind "other"
        return None
    check_initialised(module, "module", where)
    c_in, c_out, groups = module.in_channels, module.out_channels, module.groups
    kernel = tuple(module.kernel_size)
    shape = check_shape(output_shape, "output_shape", where, length=len(kernel) + 1)
    grid = shape[1:]
    if shape[0] != c_out:
        raise ValueError(
            f"{where}: output_shape must start with out_channels={c_out} for this "
            f"{type(module).__name__}, got {shape}"
        )
    if isinstance(module, _LocallyConnectedNd) and grid != module.output_size:
        raise ValueError(
            f"{where}: output_shape must have this {type(module).__name__}'s output size "
            f"{module.output_size}, got {shape}"
        )
    if isinstance(module, _TiledConvNd):
        return tiled_cost(
            c_in, c_out, kernel, grid, module.tile_size, groups, bias, module.shared_bias
        )
    if isinstance(module, _LocallyConnectedNd):
        return locally_connected_cost(
            c_in, c_out, kernel, grid, groups=groups, bias=bias, shared_bias=module.shared_bias
        )
    return conv_cost(c_in, c_out, kernel, grid, groups=groups, bias=bias)
