"""Connectivity layers: thin 1d/2d/3d classes over one N-d core (``_base``)."""

from locality.layers.lazy import (
    LazyLocallyConnected1d,
    LazyLocallyConnected2d,
    LazyLocallyConnected3d,
    LazyTiledConv1d,
    LazyTiledConv2d,
    LazyTiledConv3d,
)
from locality.layers.local import LocallyConnected1d, LocallyConnected2d, LocallyConnected3d
from locality.layers.partial import (
    PartialConv1d,
    PartialConv2d,
    PartialConv3d,
    PartialLocallyConnected1d,
    PartialLocallyConnected2d,
    PartialLocallyConnected3d,
    PartialTiledConv1d,
    PartialTiledConv2d,
    PartialTiledConv3d,
)
from locality.layers.tiled import TiledConv1d, TiledConv2d, TiledConv3d

__all__ = [
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
    "PartialConv1d",
    "PartialConv2d",
    "PartialConv3d",
    "PartialTiledConv1d",
    "PartialTiledConv2d",
    "PartialTiledConv3d",
    "PartialLocallyConnected1d",
    "PartialLocallyConnected2d",
    "PartialLocallyConnected3d",
]
