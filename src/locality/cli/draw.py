"""``locality draw``: connectivity pictures as PNG and SVG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from locality.cli.paths import output_folder
from locality.cli.shapes import count, shape

FIGURES = ("four-panel", "tile-map", "receptive-field")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "draw",
        help="draw connectivity pictures (PNG and SVG; needs locality[plot])",
        description="Draw a picture: 'four-panel' (dense, local, tiled and conv wiring of a 1-D "
        "row, one colour per distinct weight), 'tile-map' (which kernel each output position "
        "of a 2-D layer uses) or 'receptive-field' (a unit's window, layer by layer).",
        epilog="examples:\n"
        "  locality draw four-panel --inputs 10 --kernel 3 --tile 3\n"
        "  locality draw tile-map --output 8x8 --tile 3\n"
        "  locality draw receptive-field --model my_models.py:make_net --input 1x32x32",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("figure", choices=FIGURES, help="which picture")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="folder for the files (default: the current one)",
    )
    parser.add_argument(
        "--format",
        nargs="+",
        choices=("png", "svg", "pdf"),
        default=["png", "svg"],
        help="file formats (default: png svg)",
    )
    parser.add_argument(
        "--inputs",
        type=count,
        default=8,
        metavar="N",
        help="four-panel: input positions (default 8)",
    )
    parser.add_argument(
        "--kernel",
        type=count,
        default=3,
        metavar="K",
        help="four-panel: kernel size (default 3); tile-map: the layers' kernel size, which "
        "sets their input size (the map itself depends only on --output and --tile)",
    )
    parser.add_argument(
        "--tile",
        type=count,
        default=None,
        metavar="T",
        help="four-panel, tile-map: tile size (default 2 and 3)",
    )
    parser.add_argument(
        "--output",
        type=shape,
        default=(8, 8),
        metavar="HxW",
        help="tile-map: output size (default 8x8)",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="receptive-field: module:callable returning the model (default: "
        "a conv, tiled and locally connected stack)",
    )
    parser.add_argument(
        "--input",
        type=shape,
        default=(1, 16, 16),
        metavar="CxHxW",
        help="receptive-field: input shape (default 1x16x16)",
    )
    parser.set_defaults(run=run)


def demo_stack():
    """Conv 3x3, tiled 3x3 at stride 2, locally connected 3x3 and a 2x2 max pool, on 16x16."""
    from torch import nn

    from locality import LocallyConnected2d, TiledConv2d

    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        TiledConv2d(4, 4, 3, tile_size=2, stride=2),
        nn.ReLU(),
        LocallyConnected2d(4, 4, 3, input_size=7),
        nn.MaxPool2d(2),
    )


def tile_map_layers(output: tuple[int, int], kernel: int, tile: int):
    """A convolution, a tiled convolution and a locally connected layer with this output."""
    from torch import nn

    from locality import LocallyConnected2d, TiledConv2d

    size = tuple(n + kernel - 1 for n in output)
    layers = [
        nn.Conv2d(1, 1, kernel),
        TiledConv2d(1, 1, kernel, tile_size=tile),
        LocallyConnected2d(1, 1, kernel, input_size=size),
    ]
    return layers, size


def make_figure(args: argparse.Namespace):
    """The figure ``args.figure`` asks for, and its file stem."""
    from locality import draw

    if args.figure == "four-panel":
        return draw.four_panel_figure(args.inputs, args.kernel, args.tile or 2), "four_panel"
    if args.figure == "tile-map":
        if len(args.output) != 2:
            raise ValueError(f"--output must be HxW, got {'x'.join(map(str, args.output))}")
        tile = args.tile or 3
        if any(tile > n for n in args.output):
            print(
                f"locality draw: warning: --tile {tile} is larger than the "
                f"{'x'.join(map(str, args.output))} output: the tiled layer stores {tile}x{tile} "
                f"kernels and uses only {'x'.join(str(min(tile, n)) for n in args.output)} of them",
                file=sys.stderr,
            )
        layers, size = tile_map_layers(args.output, args.kernel, tile)
        return draw.tile_map_figure(layers, size), "tile_map"
    if args.model:
        from torch import nn

        from locality.cli.summary import build, load

        target = load(args.model)
        is_maker = callable(target) and not isinstance(target, nn.Module)
        model = build(target, args.model, {}) if is_maker else target
        if not isinstance(model, nn.Module):
            raise ValueError(f"MODEL: {args.model!r} is neither a module nor makes one")
    else:
        model = demo_stack()
    return draw.receptive_field_figure(model, args.input), "receptive_field"


def run(args: argparse.Namespace) -> int:
    from locality.draw import save_figure

    output_folder(args.out)
    figure, stem = make_figure(args)
    for path in save_figure(figure, args.out / stem, args.format):
        print(f"wrote {path}")
    return 0
