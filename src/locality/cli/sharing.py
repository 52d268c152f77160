"""``locality sharing``: how shared each unshared layer of a (trained) model is."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from locality.cli.shapes import shape
from locality.cli.summary import _keywords, load


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sharing",
        help="weight SNR across positions and the kernel spectrum of each unshared layer",
        description="Build a model (optionally load a state dict, e.g. one written by "
        "`locality localize` and trained since) and print, for every layer that is not a "
        "convolution (locally connected, tiled, region, mapped, low-rank): Pogodin et al.'s "
        "weight SNR across the positions away from the padding (inf: the kernels are equal), "
        "and the ranks of the (positions x kernel) matrix that keep 90% and 99% of its energy "
        "(Elsayed et al.: the rank a low-rank layer needs).",
        epilog="example:\n"
        "  locality localize my.py:net --input 3x32x32 --noise 0.1 --out local.pt\n"
        "  locality sharing my.py:net --input 3x32x32 --localized --state local.pt "
        "--plot spectra.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="module:callable or file.py:callable")
    parser.add_argument(
        "--input", type=shape, required=True, metavar="SHAPE", help="one example's shape"
    )
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keyword argument for the callable (Python literal); repeatable",
    )
    parser.add_argument("--state", default=None, help="a state dict to load into the model")
    parser.add_argument(
        "--localized",
        action="store_true",
        help="the state dict is of the model's localized copy: localize to locally connected "
        "layers before loading it",
    )
    parser.add_argument("--plot", default=None, help="write the spectra to this PNG file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from torch import nn

    from locality.analysis.sharing import sharing_report
    from locality.convert.localize import localize

    try:
        if args.plot is not None and not Path(args.plot).resolve().parent.is_dir():
            raise ValueError(f"--plot {args.plot!r}: its folder does not exist")
        target = load(args.model)
        if isinstance(target, nn.Module):
            model = target
        elif callable(target):
            model = target(**_keywords(args.arg))
        else:
            raise ValueError(f"MODEL: {args.model!r} is neither a module nor callable")
        if not isinstance(model, nn.Module):
            raise ValueError(f"MODEL: {args.model!r} gave {type(model).__name__}, not a Module")
        model.eval()
        if args.localized:
            model = localize(model, torch.zeros(1, *args.input))
        if args.state is not None:
            if not Path(args.state).is_file():
                raise ValueError(f"--state {args.state!r}: no such file")
            model.load_state_dict(torch.load(args.state, weights_only=True))
        rows = sharing_report(model, args.input)
        if not rows:
            raise ValueError(
                f"{args.model}: no layer other than convolutions and Linear layers (use "
                "`locality localize` first, or --localized)"
            )
    except (ValueError, TypeError, RuntimeError) as error:
        print(f"locality sharing: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([_as_dict(row) for row in rows], indent=2))
    else:
        print(f"{'layer':<24} {'kind':<18} {'output':<10} {'SNR':>9} {'rank 90%':>9} {'99%':>5}")
        for row in rows:
            output = "x".join(map(str, row.output_size))
            snr = "inf" if math.isinf(row.snr) else f"{row.snr:.3g}"
            print(
                f"{row.name:<24} {row.kind:<18} {output:<10} {snr:>9} "
                f"{row.spectrum.rank_90:>9} {row.spectrum.rank_99:>5}"
            )
    if args.plot is not None:
        _plot(rows, Path(args.plot))
    return 0


def _as_dict(row) -> dict:
    return {
        "layer": row.name,
        "kind": row.kind,
        "output_size": list(row.output_size),
        "snr": None if math.isnan(row.snr) else row.snr,  # JSON has no NaN; inf is "Infinity"
        "rank_90": row.spectrum.rank_90,
        "rank_99": row.spectrum.rank_99,
        "singular_values": row.spectrum.singular_values.tolist(),
    }


def _plot(rows, path: Path) -> None:
    from matplotlib.figure import Figure

    from locality.draw.spectrum import spectrum_figure

    figure = Figure(figsize=(6.5, 3.4 * len(rows)), layout="constrained")
    for ax, row in zip(figure.subplots(len(rows), 1, squeeze=False)[:, 0], rows, strict=True):
        spectrum_figure(row.spectrum, ax=ax, title=f"{row.name} ({row.kind})")
    temporary = path.with_name(path.name + ".tmp.png")
    figure.savefig(temporary, dpi=110)
    os.replace(temporary, path)
    print(f"spectra in {path}")
