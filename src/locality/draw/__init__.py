"""Connectivity pictures with matplotlib's object API (no pyplot, no windows; PNG and SVG).

- ``four_panel_figure``: note 000's table as pictures: dense, locally connected, tiled and
  convolutional wiring of one 1-D row, each distinct weight its own colour;
- ``layer_figure``: the same wiring for one 1-D layer instance;
- ``tile_map_figure``: which kernel each output position of a 2-D layer uses;
- ``receptive_field_figure``: how far into the input a stack of layers looks;
- ``spectrum_figure``: the singular values of a layer's kernels across positions.

Needs matplotlib: ``pip install 'locality[plot]'``.
"""

try:
    import matplotlib  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "locality.draw needs matplotlib; install it with: pip install 'locality[plot]'"
    ) from error

from locality.draw.connectivity import (
    Wiring,
    bank_wiring,
    dense_wiring,
    draw_wiring,
    four_panel_figure,
    layer_figure,
    wiring_of,
)
from locality.draw.receptive_field import receptive_field_figure
from locality.draw.save import save_figure
from locality.draw.spectrum import spectrum_figure
from locality.draw.tile_map import kernel_map, tile_map_figure

__all__ = [
    "Wiring",
    "dense_wiring",
    "bank_wiring",
    "wiring_of",
    "draw_wiring",
    "four_panel_figure",
    "layer_figure",
    "kernel_map",
    "tile_map_figure",
    "receptive_field_figure",
    "save_figure",
    "spectrum_figure",
]
