"""Colours for kernels and weights: one hue per kernel, one shade of it per weight.

So sharing shows at a glance: a convolution's edges all share one hue, a tiled layer's hues
alternate with the tile, and a locally connected layer's are all different.
"""

from __future__ import annotations

import colorsys

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


# Successive kernels step round the hue circle by the golden angle, so neighbours (in a row and,
# for any row length, between rows) never get similar hues: a locally connected layer's map
# reads as all different, not as bands of slowly changing colour that look like row sharing.
_GOLDEN = 0.618_033_988_749_895
_LIGHTNESS = (0.45, 0.62, 0.32)


def kernel_colour(kernel: int, kernels: int) -> RGB:
    """The colour of kernel ``kernel`` out of ``kernels``: well-separated named hues for up to
    nine kernels, a golden-angle walk over hue and three lightness levels beyond."""
    if kernels <= len(_FIRST):
        return _FIRST[kernel]
    hue = (kernel * _GOLDEN) % 1.0
    return colorsys.hls_to_rgb(hue, _LIGHTNESS[kernel % len(_LIGHTNESS)], 0.75)


def weight_colour(kernel: int, kernels: int, tap: int, taps: int) -> RGB:
    """Colour of weight ``tap`` of kernel ``kernel``: the kernel's hue, lightness by tap."""
    h, lightness, s = colorsys.rgb_to_hls(*kernel_colour(kernel, kernels))
    if taps > 1:
        lightness = 0.28 + 0.47 * tap / (taps - 1)
    return colorsys.hls_to_rgb(h, lightness, s)
