"""The results of the inpainting example: ``docs/results/inpainting.json`` and its figure.

    python -m locality.inpaint.report PARTIAL.pt CONV.pt OUT_DIR

Scores every method on the held-out set (``evaluate``), writes ``inpainting.json`` (schema:
``{"train_images", "test_images", "rows": [{"method", "hole_bin", "psnr", "ssim", "l1"}]}``) and
``inpainting.png`` (one test image per row, a different hole bin each, every method's fill).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from locality.inpaint.checkpoint import load_checkpoint
from locality.inpaint.evaluate import classical_methods, evaluation_samples, network_method, score
from locality.inpaint.figures import comparison_grid, masked_view
from locality.inpaint.files import write_atomically
from locality.inpaint.images import TEST_IMAGES, TRAIN_IMAGES
from locality.inpaint.masks import HOLE_BINS

__all__ = ["results", "write_results"]

METHOD_TITLES = {
    "partial_conv_unet": "partial conv",
    "conv_unet_zero_fill": "conv, zero fill",
    "telea": "Telea",
    "navier_stokes": "Navier-Stokes",
    "biharmonic": "biharmonic",
    "mean_fill": "mean fill",
}


def _methods(partial: str | os.PathLike, conv: str | os.PathLike) -> dict:
    return {
        "partial_conv_unet": network_method(load_checkpoint(partial)[0]),
        "conv_unet_zero_fill": network_method(load_checkpoint(conv)[0]),
        **classical_methods(),
    }


def results(partial: str | os.PathLike, conv: str | os.PathLike, seed: int = 0) -> dict:
    """The results dictionary (see the module docstring) for two checkpoints."""
    samples = evaluation_samples(seed)
    rows = []
    for method, fill in _methods(partial, conv).items():
        for hole_bin, metrics in score(fill, samples).items():
            rows.append({"method": method, "hole_bin": hole_bin, **metrics})
    return {"train_images": list(TRAIN_IMAGES), "test_images": list(TEST_IMAGES), "rows": rows}


def write_results(
    partial: str | os.PathLike, conv: str | os.PathLike, out_dir: str | os.PathLike
) -> dict:
    """Write ``inpainting.json`` and ``inpainting.png`` into ``out_dir``; return the results."""
    out = Path(out_dir)
    table = results(partial, conv)

    def write_json(path: str) -> None:
        with open(path, "w") as handle:
            json.dump(table, handle, indent=1)
            handle.write("\n")

    write_atomically(out / "inpainting.json", write_json)
    methods = _methods(partial, conv)
    samples = evaluation_samples()
    bins = list(HOLE_BINS)
    picked = [
        next(s for s in samples if s.image_name == name and s.hole_bin == bins[i % len(bins)])
        for i, name in enumerate(TEST_IMAGES)
    ]
    grid = [
        (
            f"{sample.image_name}\n{sample.hole_bin} holes",
            [("input", masked_view(sample.image, sample.mask))]
            + [
                (METHOD_TITLES[name], fill(sample.image, sample.mask))
                for name, fill in methods.items()
            ]
            + [("original", sample.image)],
        )
        for sample in picked
    ]
    figure = comparison_grid(grid)
    write_atomically(
        out / "inpainting.png", lambda path: figure.savefig(path, format="png", dpi=110)
    )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score and draw the inpainting results.")
    parser.add_argument("partial", help="checkpoint of the partial-convolution U-Net")
    parser.add_argument("conv", help="checkpoint of the ordinary-convolution zero-fill U-Net")
    parser.add_argument("out_dir", help="folder for inpainting.json and inpainting.png")
    args = parser.parse_args(argv)
    table = write_results(args.partial, args.conv, args.out_dir)
    for row in table["rows"]:
        print(
            f"{row['method']:>20} {row['hole_bin']:>7} psnr {row['psnr']:6.2f} "
            f"ssim {row['ssim']:.3f} l1 {row['l1']:.4f}"
        )


if __name__ == "__main__":
    main()
