"""locality: fully connected, locally connected, tiled and convolutional layers for PyTorch.

All four are one operation, a bank of kernels plus a map from each output position to its kernel;
this package provides the two that torch.nn lacks and exact moves between all four.
"""

from locality import functional
from locality.connectivity import Connectivity
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
    "Connectivity",
]
