"""Colours for kernels and weights: one hue per kernel, one shade of it per weight.

So sharing shows at a glance: a convolution's edges all share one hue, a tiled layer's hues
alternate with the tile, and a locally connected layer's are all different.
"""

from __future__ import annotations

import colorsys

from matplotlib import colormaps
from matplotlib.colors import to_rgb

__all__ = ["kernel_colour", "weight_colour"]

RGB = tuple[float, float, float]

# Well-separated hues for the first kernels: a tiled layer's few kernels must not look alike.
_FIRST = [
    to_rgb(c)
    for c in (
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#17becf",
        "#bcbd22",
    )
]


def kernel_colour(kernel: int, kernels: int) -> RGB:
    """The hue of kernel ``kernel`` out of ``kernels``."""
    if kernels <= len(_FIRST):
        return _FIRST[kernel]
    r, g, b, _ = colormaps["hsv"](kernel / kernels * 0.92)
    return (r * 0.85, g * 0.85, b * 0.85)


def weight_colour(kernel: int, kernels: int, tap: int, taps: int) -> RGB:
    """Colour of weight ``tap`` of kernel ``kernel``: the kernel's hue, lightness by tap."""
    h, lightness, s = colorsys.rgb_to_hls(*kernel_colour(kernel, kernels))
    if taps > 1:
        lightness = 0.28 + 0.47 * tap / (taps - 1)
    return colorsys.hls_to_rgb(h, lightness, s)
