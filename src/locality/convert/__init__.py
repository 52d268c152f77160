"""Moves between the four connectivity kinds, and fully convolutional classifiers.

- ``lattice``: exact conversions (dense, locally connected, tiled,
  convolution, 1x1 convolution);
- ``projection``: least-squares projections towards more sharing;
- ``localize``: whole-model surgery from convolutions to less-shared kinds;
- ``between``: to region-shared, mapped and low-rank layers (exact or least squares);
- ``fcn``: rewrite a classifier's head into convolutions with torch.fx;
- ``windows``: sliding windows, shift-and-stitch;
- ``geometry``: output stride, receptive field, offset, window boxes.
"""

from locality.convert.between import to_lowrank, to_mapped, to_region
from locality.convert.fcn import fully_convolutional
from locality.convert.geometry import Geometry, WindowBoxes, window_boxes
from locality.convert.lattice import (
    conv1x1_to_linear,
    linear_to_conv,
    linear_to_conv1x1,
    to_dense,
    to_locally_connected,
    to_tiled,
)
from locality.convert.localize import keep_1x1, keep_first, localize
from locality.convert.projection import Projection, project
from locality.convert.windows import shift_and_stitch, sliding_window

__all__ = [
    "to_dense",
    "to_locally_connected",
    "to_tiled",
    "linear_to_conv",
    "linear_to_conv1x1",
    "conv1x1_to_linear",
    "project",
    "Projection",
    "fully_convolutional",
    "sliding_window",
    "shift_and_stitch",
    "window_boxes",
    "WindowBoxes",
    "Geometry",
    "localize",
    "keep_first",
    "keep_1x1",
    "to_region",
    "to_mapped",
    "to_lowrank",
]
