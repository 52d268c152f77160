"""locality: fully connected, locally connected, tiled and convolutional layers for PyTorch.

All four are one operation, a bank of kernels plus a map from each output position to its kernel;
this package provides the two that torch.nn lacks and exact moves between all four.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below are imported on first use (see __getattr__)
    from locality import functional
    from locality.convert import (
        conv1x1_to_linear,
        fully_convolutional,
        linear_to_conv,
        linear_to_conv1x1,
        project,
        shift_and_stitch,
        sliding_window,
        to_dense,
        to_locally_connected,
        to_tiled,
        window_boxes,
    )
    from locality.layers import (
        LazyLocallyConnected1d,
        LazyLocallyConnected2d,
        LazyLocallyConnected3d,
        LazyTiledConv1d,
        LazyTiledConv2d,
        LazyTiledConv3d,
        LocallyConnected1d,
        LocallyConnected2d,
        LocallyConnected3d,
        TiledConv1d,
        TiledConv2d,
        TiledConv3d,
    )

__version__ = "0.1.0"

__all__ = [
    "functional",
    "LocallyConnected1d",
    "LocallyConnected2d",
    "LocallyConnected3d",
    "TiledConv1d",
    "TiledConv2d",
    "TiledConv3d",
    "LazyLocallyConnected1d",
    "LazyLocallyConnected2d",
    "LazyLocallyConnected3d",
    "LazyTiledConv1d",
    "LazyTiledConv2d",
    "LazyTiledConv3d",
    "to_dense",
    "to_locally_connected",
    "to_tiled",
    "linear_to_conv",
    "linear_to_conv1x1",
    "conv1x1_to_linear",
    "project",
    "fully_convolutional",
    "sliding_window",
    "shift_and_stitch",
    "window_boxes",
]

# Public names by the module that defines them, and the subpackages, imported on first use:
# ``import locality`` (and ``locality --help``) does not import torch, and
# ``locality.analysis`` works without importing ``locality.analysis`` first.
_LAZY_MODULES = {
    "LocallyConnected1d": "locality.layers",
    "LocallyConnected2d": "locality.layers",
    "LocallyConnected3d": "locality.layers",
    "TiledConv1d": "locality.layers",
    "TiledConv2d": "locality.layers",
    "TiledConv3d": "locality.layers",
    "LazyLocallyConnected1d": "locality.layers",
    "LazyLocallyConnected2d": "locality.layers",
    "LazyLocallyConnected3d": "locality.layers",
    "LazyTiledConv1d": "locality.layers",
    "LazyTiledConv2d": "locality.layers",
    "LazyTiledConv3d": "locality.layers",
    "to_dense": "locality.convert",
    "to_locally_connected": "locality.convert",
    "to_tiled": "locality.convert",
    "linear_to_conv": "locality.convert",
    "linear_to_conv1x1": "locality.convert",
    "conv1x1_to_linear": "locality.convert",
    "project": "locality.convert",
    "fully_convolutional": "locality.convert",
    "sliding_window": "locality.convert",
    "shift_and_stitch": "locality.convert",
    "window_boxes": "locality.convert",
}
_SUBPACKAGES = (
    "analysis",
    "cli",
    "convert",
    "draw",
    "functional",
    "interop",
    "kernels",
    "layers",
    "train",
)


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"locality.{name}")
    if name in _LAZY_MODULES:
        value = getattr(importlib.import_module(_LAZY_MODULES[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'locality' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_MODULES, *_SUBPACKAGES})
