"""``locality compare``: every kind side by side for one input, units and kernel."""

from __future__ import annotations

import argparse
import json
import sys

from locality.cli.shapes import count, shape

_DTYPES = ("float32", "float16", "bfloat16", "float64", "int8")

EXAMPLES = """\
examples (the notes' worked examples):
  locality compare --input 1000x1000 --units 10^6 --kernel 10 --stride 10
  locality compare --input 500x500 --units 10^5 --kernel 10
  locality compare --input 500x500 --out-channels 64 --kernel 10
  locality compare --input 4x4 --in-channels 50 --units 500
  locality compare --input 32x32 --in-channels 3 --out-channels 64 --kernel 3 --bias
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="parameters, MACs and memory of dense, local, low-rank, region, tiled and conv layers",
        description="Parameters, multiply-accumulates (FLOPs = 2 x MACs) and weight memory of a "
        "dense, a locally connected, a low-rank locally connected, a region-shared, a tiled and "
        "a convolutional layer with the same output units, side by side. Counts are exact "
        "integers.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input",
        type=shape,
        required=True,
        metavar="SIZE",
        help="spatial input size, e.g. 1000x1000 (channels: --in-channels)",
    )
    parser.add_argument(
        "--in-channels", type=count, default=1, metavar="C", help="input channels (default 1)"
    )
    parser.add_argument(
        "--units",
        type=count,
        metavar="N",
        help="output units in all, e.g. 10^6; without --stride they are not "
        "laid on a grid and only their number matters",
    )
    parser.add_argument(
        "--out-channels",
        type=count,
        metavar="O",
        help="output channels (feature maps; 'kernels' in the notes)",
    )
    parser.add_argument(
        "--kernel",
        type=shape,
        metavar="K",
        help="patch each unit sees, e.g. 10 or 10x10 (default: the whole input)",
    )
    parser.add_argument("--stride", type=shape, metavar="S", help="step between patches")
    parser.add_argument(
        "--padding", type=int, default=0, metavar="P", help="zero padding per side (default 0)"
    )
    parser.add_argument(
        "--tile",
        type=count,
        default=2,
        metavar="T",
        help="tile size of the tiled convolution (default 2)",
    )
    parser.add_argument(
        "--regions",
        type=count,
        default=2,
        metavar="R",
        help="regions per dimension of the region-shared layer (default 2)",
    )
    parser.add_argument(
        "--rank",
        type=count,
        default=4,
        metavar="K",
        help="basis kernels of the low-rank locally connected layer (default 4)",
    )
    parser.add_argument(
        "--bias",
        action="store_true",
        help="count biases too (the notes leave them out; Keras counts them)",
    )
    parser.add_argument(
        "--dtype",
        choices=_DTYPES,
        default="float32",
        help="for the weight memory (default float32)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def _spatial(value: tuple[int, ...] | None, d: int, name: str) -> tuple[int, ...] | None:
    if value is None or len(value) == d:
        return value
    if len(value) == 1:
        return value * d
    raise ValueError(
        f"--{name} must have 1 or {d} sizes (like --input), got {'x'.join(map(str, value))}"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from locality.analysis.compare import compare

    d = len(args.input)
    try:
        result = compare(
            args.input,
            args.in_channels,
            units=args.units,
            out_channels=args.out_channels,
            kernel_size=_spatial(args.kernel, d, "kernel"),
            stride=_spatial(args.stride, d, "stride"),
            padding=args.padding,
            tile_size=args.tile,
            regions=args.regions,
            rank=args.rank,
            bias=args.bias,
            dtype=getattr(torch, args.dtype),
        )
    except ValueError as error:
        print(f"locality compare: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0
