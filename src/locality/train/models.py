"""Model families that differ only in connectivity: dense, locally connected, tiled, convolution.

Every family has the same skeleton: three connectivity layers, each followed by ReLU, then a
linear classifier on the flattened features. Every layer produces the same activation shape
``(channels, *grid)`` in every family; only which inputs each output reads, and which outputs share
weights, changes:

- ``conv``: ``torch.nn.Conv{d}d``, one kernel for all positions;
- ``tiled``: :class:`~locality.TiledConv1d` etc., ``tile_size`` kernels per dimension, repeating;
- ``locally_connected``: :class:`~locality.LocallyConnected1d` etc., one kernel per position;
- ``dense``: every output unit reads every input unit (a ``Linear`` between the flattened shapes);
- ``region``: :class:`~locality.RegionConv1d` etc., ``regions`` blocks per dimension (DeepID);
- ``lowrank``: :class:`~locality.LowRankLocallyConnected1d` etc., ``rank`` basis kernels mixed
  per position (Elsayed et al., 2020).

The 1-D skeleton is the MNIST-1D authors' ``ConvBase`` (Greydanus & Kobak, 2020): 25 channels,
kernels 5, 3, 3, stride 2, padding 1, so ``conv`` on MNIST-1D is their CNN exactly (5210
parameters). The 2-D skeleton, for small images such as the 8x8 digits, uses 16 channels, 3x3
kernels, strides 1, 2, 2 and padding 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from locality._arguments import output_size
from locality.layers import (
    LocallyConnected1d,
    LocallyConnected2d,
    LocallyConnected3d,
    LowRankLocallyConnected1d,
    LowRankLocallyConnected2d,
    LowRankLocallyConnected3d,
    RegionConv1d,
    RegionConv2d,
    RegionConv3d,
    TiledConv1d,
    TiledConv2d,
    TiledConv3d,
)

# Named by the kind (locality.Connectivity) of their connectivity layers.
FAMILIES = ("dense", "locally_connected", "tiled", "conv", "region", "lowrank")
# The one int a family takes, by the family's name: how much it shares.
FAMILY_PARAMETER = {"tiled": "tile_size", "region": "regions", "lowrank": "rank"}


@dataclass(frozen=True)
class LayerSpec:
    """One connectivity layer of the skeleton, in ``Conv*d`` terms (same in every dimension)."""

    out_channels: int
    kernel_size: int
    stride: int
    padding: int


SKELETONS: dict[int, tuple[LayerSpec, ...]] = {
    1: (LayerSpec(25, 5, 2, 1), LayerSpec(25, 3, 2, 1), LayerSpec(25, 3, 2, 1)),
    2: (LayerSpec(16, 3, 1, 1), LayerSpec(16, 3, 2, 1), LayerSpec(16, 3, 2, 1)),
    3: (LayerSpec(8, 3, 1, 1), LayerSpec(8, 3, 2, 1), LayerSpec(8, 3, 2, 1)),
}

_CONV: dict[int, Callable[..., nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_LOCAL: dict[int, Callable[..., nn.Module]] = {
    1: LocallyConnected1d,
    2: LocallyConnected2d,
    3: LocallyConnected3d,
}
_TILED: dict[int, Callable[..., nn.Module]] = {1: TiledConv1d, 2: TiledConv2d, 3: TiledConv3d}
_REGION: dict[int, Callable[..., nn.Module]] = {1: RegionConv1d, 2: RegionConv2d, 3: RegionConv3d}
_LOWRANK: dict[int, Callable[..., nn.Module]] = {
    1: LowRankLocallyConnected1d,
    2: LowRankLocallyConnected2d,
    3: LowRankLocallyConnected3d,
}


class FullyConnected(nn.Module):
    """A ``Linear`` between two feature-map shapes: every output unit reads every input unit.

    Shape:
        - Input: ``(N, *in_shape)``.
        - Output: ``(N, *out_shape)``.
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        self.linear = nn.Linear(math.prod(self.in_shape), math.prod(self.out_shape))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        flat = input.flatten(start_dim=input.dim() - len(self.in_shape))
        return self.linear(flat).unflatten(-1, self.out_shape)

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}"


def model_name(
    family: str, tile_size: int | None = None, regions: int | None = None, rank: int | None = None
) -> str:
    """``"tiled-2"`` for a tiled model with tile size 2 (``"region-2"``, ``"lowrank-4"``
    likewise), otherwise the family."""
    value = {"tiled": tile_size, "region": regions, "lowrank": rank}.get(family)
    return f"{family}-{value}" if family in FAMILY_PARAMETER else family


def build_model(
    family: str,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    tile_size: int | None = None,
    layers: Sequence[LayerSpec] | None = None,
    regions: int | None = None,
    rank: int | None = None,
) -> nn.Sequential:
    """The classifier of one family on inputs ``(N, *input_shape)``, giving logits ``(N, classes)``.

    Args:
        family: one of :data:`FAMILIES`.
        input_shape: ``(C, *spatial)`` of one example, with 1 to 3 spatial dimensions.
        num_classes: outputs of the final linear layer.
        tile_size: period of the kernel map for ``tiled`` (required there, refused elsewhere),
            capped per layer at that layer's output size.
        regions: regions per dimension for ``region`` (required there, refused elsewhere),
            capped per layer at that layer's output size.
        rank: basis kernels for ``lowrank`` (required there, refused elsewhere).
        layers: the skeleton; defaults to :data:`SKELETONS` for the input's dimension.

    Initialisation follows the layers' defaults (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for all),
    so seed ``torch`` before calling for a reproducible model.
    """
    if family not in FAMILIES:
        raise ValueError(
            f"build_model: family must be one of {', '.join(FAMILIES)}, got {family!r}"
        )
    given = {"tile_size": tile_size, "regions": regions, "rank": rank}
    for name, value in given.items():
        if FAMILY_PARAMETER.get(family) == name:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"build_model: family {family!r} needs a positive int {name}, got {value!r}"
                )
        elif value is not None:
            owner = next(f for f, n in FAMILY_PARAMETER.items() if n == name)
            raise ValueError(
                f"build_model: {name} is only for family {owner!r}, got {value!r} for {family!r}"
            )
    input_shape = tuple(input_shape)
    d = len(input_shape) - 1
    if d not in SKELETONS:
        raise ValueError(
            f"build_model: input_shape must be (C, *spatial) with 1 to 3 spatial dimensions, got "
            f"{input_shape}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"build_model: num_classes must be an int >= 2, got {num_classes!r}")
    specs = tuple(layers) if layers is not None else SKELETONS[d]

    modules: list[nn.Module] = []
    channels, grid = input_shape[0], input_shape[1:]
    for spec in specs:
        k, s, p = (spec.kernel_size,) * d, (spec.stride,) * d, (spec.padding,) * d
        out_grid = output_size(
            grid, k, s, ((spec.padding,) * 2,) * d, (1,) * d, where="build_model"
        )
        if family == "conv":
            layer: nn.Module = _CONV[d](channels, spec.out_channels, k, stride=s, padding=p)
        elif family == "tiled":
            # A tile at least as large as the output is locally connected; capping it keeps
            # kernels that no position would use out of the parameter count.
            assert tile_size is not None  # checked above
            tile = tuple(min(tile_size, n) for n in out_grid)
            layer = _TILED[d](channels, spec.out_channels, k, tile, stride=s, padding=p)
        elif family == "locally_connected":
            layer = _LOCAL[d](channels, spec.out_channels, k, grid, stride=s, padding=p)
        elif family == "region":
            assert regions is not None  # checked above
            cut = tuple(min(regions, n) for n in out_grid)
            layer = _REGION[d](channels, spec.out_channels, k, grid, cut, stride=s, padding=p)
        elif family == "lowrank":
            assert rank is not None  # checked above
            layer = _LOWRANK[d](channels, spec.out_channels, k, grid, rank, stride=s, padding=p)
        else:
            layer = FullyConnected((channels, *grid), (spec.out_channels, *out_grid))
        modules += [layer, nn.ReLU()]
        channels, grid = spec.out_channels, out_grid
    modules += [nn.Flatten(), nn.Linear(channels * math.prod(grid), num_classes)]
    return nn.Sequential(*modules)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
