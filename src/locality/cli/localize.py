"""``locality localize``: swap a model's convolutions for less-shared layers computing the same."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from locality.cli.shapes import shape
from locality.cli.summary import _keywords, load

KINDS = ("locally_connected", "tiled", "region", "lowrank")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "localize",
        help="replace a model's convolutions by locally connected / tiled / region / low-rank "
        "layers that compute the same",
        description="Build a model, replace every Conv1d/2d/3d by a layer of the chosen kind "
        "initialised from it (the converted model computes the same function on inputs of the "
        "given size), print the summary before and after, and save the converted model's state "
        "dict.",
        epilog="examples:\n"
        "  locality localize torchvision.models:resnet18 --input 3x32x32 --to lowrank --rank 4\n"
        "  locality localize my_models.py:make_net --input 1x28x28 --keep-first 1 --keep-1x1 "
        "--noise 0.1 --out local.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="module:callable or path/to/file.py:callable that returns the model",
    )
    parser.add_argument(
        "--input",
        type=shape,
        required=True,
        metavar="SHAPE",
        help="one example's shape without the batch, e.g. 3x32x32",
    )
    parser.add_argument(
        "--to",
        choices=KINDS,
        default="locally_connected",
        help="target kind (default locally_connected)",
    )
    parser.add_argument("--tile-size", type=int, help="tile for --to tiled")
    parser.add_argument("--regions", type=int, help="regions per dimension for --to region")
    parser.add_argument("--rank", type=int, help="basis kernels for --to lowrank")
    parser.add_argument(
        "--untie-bias", action="store_true", help="one bias per position (default: shared)"
    )
    parser.add_argument(
        "--keep-first", type=int, default=0, metavar="N", help="keep the first N convolutions"
    )
    parser.add_argument("--keep-1x1", action="store_true", help="keep 1x1 convolutions")
    parser.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="EPS",
        help="per-position noise, in units of each convolution's weight std (default 0: exact)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the model and the noise")
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keyword argument for the callable (Python literal); repeatable",
    )
    parser.add_argument(
        "--out",
        default="localized.pt",
        help="where the converted state dict goes (default ./localized.pt)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.set_defaults(run=run)


def _check_output(path: Path, force: bool) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a directory; give a file name")
    if path.exists() and not force:
        raise ValueError(f"--out {str(path)!r} exists; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--out {str(path)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"--out {str(path)!r}: folder {str(parent)!r} is not writable")


def _kind_arguments(args: argparse.Namespace) -> dict[str, Any]:
    given = {"tile_size": args.tile_size, "regions": args.regions, "rank": args.rank}
    wanted = {"tiled": "tile_size", "region": "regions", "lowrank": "rank"}.get(args.to)
    for name, value in given.items():
        flag = "--" + name.replace("_", "-")
        if value is not None and name != wanted:
            raise ValueError(f"{flag} is not an argument of --to {args.to}")
        if name == wanted and value is None:
            raise ValueError(f"--to {args.to} needs {flag}")
    kind_args: dict[str, Any] = {wanted: given[wanted]} if wanted else {}
    if args.untie_bias:
        kind_args["shared_bias"] = False
    return kind_args


def run(args: argparse.Namespace) -> int:
    import torch
    from torch import nn

    from locality.analysis.summary import summary
    from locality.convert.localize import keep_1x1, keep_first, localize

    out = Path(args.out)
    try:
        _check_output(out, args.force)
        kind_args = _kind_arguments(args)
        target = load(args.model)
        torch.manual_seed(args.seed)
        if isinstance(target, nn.Module):
            model = target
        elif callable(target):
            model = target(**_keywords(args.arg))
        else:
            raise ValueError(f"MODEL: {args.model!r} is neither a module nor callable")
        if not isinstance(model, nn.Module):
            raise ValueError(f"MODEL: {args.model!r} returned {type(model).__name__}, not a Module")
        model.eval()
        first = keep_first(model, args.keep_first)

        def keep(name: str, module: nn.Module) -> bool:
            return first(name, module) or (args.keep_1x1 and keep_1x1(name, module))

        before = summary(model, args.input)
        converted = localize(
            model,
            torch.randn(1, *args.input),
            to=args.to,
            keep=keep,
            noise=args.noise,
            generator=torch.Generator().manual_seed(args.seed),
            **kind_args,
        )
        after = summary(converted, args.input)
    except (ValueError, TypeError, RuntimeError) as error:
        print(f"locality localize: error: {error}", file=sys.stderr)
        return 2
    print(f"before ({args.model}):")
    print(before)
    print(f"\nafter (--to {args.to}):")
    print(after)
    temporary = out.with_name(out.name + ".tmp")
    torch.save(converted.state_dict(), temporary)
    os.replace(temporary, out)  # never a half-written file at --out
    print(f"\nwrote the converted state dict to {out}")
    return 0
