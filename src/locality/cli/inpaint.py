"""``locality inpaint``: fill the holes of an image with the shipped partial-convolution U-Net.

    locality inpaint IMAGE --mask MASK.png      # white (>= 128) mask pixels are holes
    locality inpaint IMAGE --holes 0.3          # a generated stroke mask with ~30% holes
    locality inpaint --train [--out CKPT.pt]    # retrain the checkpoint

Writes the inpainted image (``--out``) and a side-by-side figure (``--figure``): the masked input,
the result and the original (with ``--mask``, the image as given). Every path is checked before
any work; user errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


class UserError(Exception):
    """A mistake in the command line or its files: reported in one line, exit status 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inpaint",
        help="fill holes in an image with a partial-convolution U-Net",
        description="Fill the holes of IMAGE with the partial-convolution U-Net shipped with "
        "locality (Liu et al., 2018), or retrain it with --train. Needs the inpaint extra: "
        "pip install 'locality[inpaint]'.",
    )
    parser.add_argument("image", nargs="?", metavar="IMAGE", help="a PNG or JPEG image")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--mask", type=Path, help="mask image of IMAGE's size; white pixels = holes")
    where.add_argument(
        "--holes", type=float, help="hole fraction of a generated stroke mask, in (0, 0.9]"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="inpainted image (default IMAGE-STEM_inpainted.png); with --train, the checkpoint "
        "(default partial_unet.pt)",
    )
    parser.add_argument(
        "--figure", type=Path, default=None, help="figure (default IMAGE-STEM_inpainting.png)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="a checkpoint from --train (default: shipped)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the --holes mask (default 0)")
    parser.add_argument("--train", action="store_true", help="retrain the U-Net instead")
    parser.add_argument(
        "--model",
        choices=("partial", "conv"),
        default="partial",
        help="with --train: partial convolutions, or the zero-fill ablation (default partial)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="with --train: optimiser steps (default 2000)"
    )
    parser.set_defaults(run=run)


def _output(path: Path, suffixes: tuple[str, ...], name: str, inputs: list[Path]) -> Path:
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{name} must end in {', '.join(suffixes)}, got {str(path)!r}")
    if path.is_dir():
        raise UserError(f"{name} {str(path)!r} is a directory")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise UserError(f"{name}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{name}: folder {str(parent)!r} is not writable")
    if any(path.resolve() == source.resolve() for source in inputs):
        raise UserError(f"{name} {str(path)!r} would overwrite an input")
    return path


def _read_image(path: Path, name: str, mode: str):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UserError(f"{name} {str(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"{name} {str(path)!r} is not a readable image ({error})") from None


def _check_arguments(args: argparse.Namespace) -> None:
    if args.train:
        if args.image or args.mask or args.holes is not None or args.figure:
            raise UserError("--train takes no IMAGE, --mask, --holes or --figure")
        if args.steps is not None and args.steps < 1:
            raise UserError(f"--steps must be a positive integer, got {args.steps}")
        return
    if args.image is None:
        raise UserError("give an IMAGE (with --mask or --holes), or --train")
    if args.mask is None and args.holes is None:
        raise UserError("give --mask MASK.png or --holes FRACTION")
    if args.holes is not None and not 0 < args.holes <= 0.9:
        raise UserError(f"--holes must be in (0, 0.9], got {args.holes}")
    if args.steps is not None or args.model != "partial":
        raise UserError("--steps and --model go with --train")


def _train(args: argparse.Namespace) -> int:
    from locality.inpaint.checkpoint import save_checkpoint
    from locality.inpaint.train import TrainConfig, train_inpainting

    out = _output(args.out or Path("partial_unet.pt"), (".pt",), "--out", [])
    config = TrainConfig(partial=args.model == "partial", steps=args.steps or TrainConfig.steps)

    def log(step: int, loss: float, seconds: float) -> None:
        print(f"step {step}/{config.steps}  loss {loss:.4f}  {seconds:.0f} s", flush=True)

    model, summary = train_inpainting(config, log=log)
    save_checkpoint(model, summary, out)
    print(f"wrote {out}")
    return 0


def _inpaint(args: argparse.Namespace) -> int:
    import numpy as np

    image_path = Path(args.image)
    inputs = [image_path] + ([args.mask] if args.mask else [])
    stem = image_path.stem
    out = _output(args.out or Path(f"{stem}_inpainted.png"), IMAGE_SUFFIXES, "--out", inputs)
    figure_path = _output(
        args.figure or Path(f"{stem}_inpainting.png"), FIGURE_SUFFIXES, "--figure", inputs
    )
    if out.resolve() == figure_path.resolve():
        raise UserError(f"--out and --figure are the same file {str(out)!r}")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise UserError(f"--checkpoint {str(args.checkpoint)!r} does not exist")
    image = _read_image(image_path, "IMAGE", "RGB")
    if args.mask is not None:
        mask_pixels = _read_image(args.mask, "--mask", "L")
        if mask_pixels.shape != image.shape[:2]:
            raise UserError(
                f"--mask is {mask_pixels.shape[1]}x{mask_pixels.shape[0]} but IMAGE is "
                f"{image.shape[1]}x{image.shape[0]} (width x height); they must match"
            )
        mask = (mask_pixels < 0.5).astype(np.float32)
        original_title = "image as given"
    else:
        from locality.inpaint.masks import stroke_mask

        if min(image.shape[:2]) < 8:
            raise UserError(
                f"IMAGE must be at least 8x8 pixels, got {image.shape[1]}x{image.shape[0]}"
            )
        low = max(args.holes - 0.025, 0.0)
        mask = stroke_mask(
            image.shape[:2], low, args.holes + 0.025, np.random.default_rng(args.seed)
        )
        original_title = "original"
    if mask.min() == 1:
        raise UserError("--mask has no holes (white pixels); nothing to inpaint")
    if mask.max() == 0:
        raise UserError("--mask is all holes; there is nothing to inpaint from")

    from locality.inpaint.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint
    from locality.inpaint.evaluate import inpaint_image
    from locality.inpaint.figures import masked_view, side_by_side
    from locality.inpaint.files import write_atomically

    try:
        model, _ = load_checkpoint(args.checkpoint or SHIPPED_CHECKPOINT)
    except ValueError as error:
        raise UserError(str(error)) from None
    result = inpaint_image(model, image, mask)

    def write_image(path: str) -> None:
        from PIL import Image

        pixels = np.round(np.clip(result, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, format="JPEG" if out.suffix.lower() != ".png" else "PNG")

    write_atomically(out, write_image)
    figure = side_by_side(
        [
            ("masked input", masked_view(image, mask)),
            ("partial conv" if model.partial else "conv, zero fill", result),
            (original_title, image),
        ]
    )
    write_atomically(
        figure_path,
        lambda path: figure.savefig(path, format=figure_path.suffix[1:].lower(), dpi=110),
    )
    holes = 1 - float(mask.mean())
    line = f"filled {holes:.1%} of {image.shape[1]}x{image.shape[0]} pixels"
    if args.holes is not None:
        mse = float(np.mean((result - image) ** 2))
        line += f"; PSNR against the original {10 * np.log10(1 / max(mse, 1e-12)):.2f} dB"
    print(line)
    print(f"wrote {out}")
    print(f"wrote {figure_path}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        _check_arguments(args)
        return _train(args) if args.train else _inpaint(args)
    except UserError as error:
        print(f"locality inpaint: error: {error}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(
            f"locality inpaint: error: {error} (pip install 'locality[inpaint]')", file=sys.stderr
        )
        return 2
