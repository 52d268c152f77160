"""Connectivity layers: thin 1d/2d/3d classes over one N-d core (``_base``)."""

from locality.layers.lazy import (
    LazyLocallyConnected1d,
    LazyLocallyConnected2d,
    LazyLocallyConnected3d,
    LazyTiledConv1d,
    LazyTiledConv2d,
    LazyTiledConv3d,
)
from locality.layers.lazy_between import (
    LazyLocallyConnectedTranspose1d,
    LazyLocallyConnectedTranspose2d,
    LazyLocallyConnectedTranspose3d,
    LazyLowRankLocallyConnected1d,
    LazyLowRankLocallyConnected2d,
    LazyLowRankLocallyConnected3d,
    LazyRegionConv1d,
    LazyRegionConv2d,
    LazyRegionConv3d,
)
from locality.layers.local import LocallyConnected1d, LocallyConnected2d, LocallyConnected3d
from locality.layers.lowrank import (
    LowRankLocallyConnected1d,
    LowRankLocallyConnected2d,
    LowRankLocallyConnected3d,
)
from locality.layers.mapped import (
    MappedConv1d,
    MappedConv2d,
    MappedConv3d,
)
from locality.layers.region import (
    RegionConv1d,
    RegionConv2d,
    RegionConv3d,
)
from locality.layers.tiled import TiledConv1d, TiledConv2d, TiledConv3d
from locality.layers.transposed import (
    LocallyConnectedTranspose1d,
    LocallyConnectedTranspose2d,
    LocallyConnectedTranspose3d,
    TiledConvTranspose1d,
    TiledConvTranspose2d,
    TiledConvTranspose3d,
)

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
    "RegionConv1d",
    "RegionConv2d",
    "RegionConv3d",
    "MappedConv1d",
    "MappedConv2d",
    "MappedConv3d",
    "LowRankLocallyConnected1d",
    "LowRankLocallyConnected2d",
    "LowRankLocallyConnected3d",
    "LocallyConnectedTranspose1d",
    "LocallyConnectedTranspose2d",
    "LocallyConnectedTranspose3d",
    "TiledConvTranspose1d",
    "TiledConvTranspose2d",
    "TiledConvTranspose3d",
    "LazyRegionConv1d",
    "LazyRegionConv2d",
    "LazyRegionConv3d",
    "LazyLowRankLocallyConnected1d",
    "LazyLowRankLocallyConnected2d",
    "LazyLowRankLocallyConnected3d",
    "LazyLocallyConnectedTranspose1d",
    "LazyLocallyConnectedTranspose2d",
    "LazyLocallyConnectedTranspose3d",
]
