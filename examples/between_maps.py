"""The kernel maps between convolution and locally connected, drawn for docs/guide/between.md.

    python examples/between_maps.py                          # print the maps' kernel counts
    python examples/between_maps.py --write-gallery docs/gallery  # and write the two PNGs

Writes ``between_maps.png``: the tile map (kernel index at each of 8x8 output positions) of a
convolution, a tiled convolution, a region-shared layer (2x2 regions, DeepID), a mapped layer
(an arbitrary map: a face-like layout of eyes, nose and mouth) and a locally connected layer;
and ``between_lowrank.png``: the mixing weights of a low-rank layer (rank 2, each position a
blend of two basis kernels), which has no hard map to draw.
"""

from __future__ import annotations

import sys

import torch
from matplotlib.figure import Figure

import locality
from locality import draw


def face_map() -> torch.Tensor:
    """8x8: 0 forehead and cheeks, 1 left eye, 2 right eye, 3 nose, 4 mouth."""
    kernel_map = torch.zeros(8, 8, dtype=torch.long)
    kernel_map[2:4, 1:3], kernel_map[2:4, 5:7] = 1, 2
    kernel_map[3:6, 3:5] = 3
    kernel_map[6, 2:6] = 4
    return kernel_map


def layers() -> list[torch.nn.Module]:
    return [
        torch.nn.Conv2d(1, 1, 3),
        locality.TiledConv2d(1, 1, 3, tile_size=2),
        locality.RegionConv2d(1, 1, 3, input_size=10, regions=2),
        locality.MappedConv2d(1, 1, 3, face_map()),
        locality.LocallyConnected2d(1, 1, 3, input_size=10),
    ]


def lowrank_figure() -> Figure:
    """A rank-2 low-rank layer whose mixes move from kernel 0 on the left to kernel 1 on the
    right: the weight of each basis kernel at each output position."""
    layer = locality.LowRankLocallyConnected2d(1, 1, 3, input_size=10, rank=2)
    with torch.no_grad():
        ramp = torch.linspace(-3, 3, 8).view(1, 8)
        layer.combining_weights[..., 0] = -ramp
        layer.combining_weights[..., 1] = ramp
    mixing = layer.mixing().detach()
    figure = Figure(figsize=(7.6, 3.8), layout="constrained")
    axes = figure.subplots(1, 2)
    for k, ax in enumerate(axes):
        image = ax.imshow(mixing[..., k], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"weight of basis kernel {k}", fontsize=10)
    figure.colorbar(image, ax=list(axes), shrink=0.8)
    figure.suptitle("LowRankLocallyConnected2d, rank 2, over 8x8 outputs", fontsize=12)
    return figure


def main(argv: list[str]) -> None:
    maps = draw.tile_map_figure(layers(), input_size=(10, 10))
    mixes = lowrank_figure()
    for layer in layers():
        used = draw.kernel_map(layer, input_size=(10, 10)).unique().numel()
        print(f"{type(layer).__name__:20} {used:3} kernels over 8x8 outputs")
    assert draw.kernel_map(layers()[3], input_size=(10, 10)).unique().tolist() == [0, 1, 2, 3, 4]
    if argv[:1] == ["--write-gallery"]:
        out_dir = argv[1] if len(argv) > 1 else "docs/gallery"
        draw.save_figure(maps, f"{out_dir}/between_maps", formats=("png",))
        draw.save_figure(mixes, f"{out_dir}/between_lowrank", formats=("png",))


if __name__ == "__main__":
    main(sys.argv[1:])
