"""Scoring inpainting methods on the held-out images: PSNR, SSIM and L1 per hole-ratio bin.

Protocol: each test image is scaled so that its shorter side is 128 pixels and its central
128x128 window kept; for every hole-ratio bin, ``MASKS_PER_BIN`` stroke masks are drawn from a
generator seeded by ``(seed, image, bin)``. Every method fills the holes; the score is computed
on the composite (known pixels kept, holes filled) against the original, in ``[0, 1]`` RGB: PSNR
and SSIM from scikit-image (``data_range=1``), L1 the mean absolute error over all pixels and
channels. A bin's score is the mean over its samples.

Methods: the two U-Nets (``partial_conv_unet``, ``conv_unet_zero_fill``), OpenCV's Telea and
Navier-Stokes inpainting (radius 3), scikit-image's biharmonic inpainting, and ``mean_fill``
(each channel's mean over the valid pixels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from locality.inpaint.images import TEST_IMAGES, center_crop, load_image, resize_shorter
from locality.inpaint.masks import HOLE_BINS, stroke_mask
from locality.inpaint.train import from_network, to_network
from locality.inpaint.unet import InpaintingUNet

__all__ = [
    "EVALUATION_SIZE",
    "MASKS_PER_BIN",
    "Sample",
    "evaluation_samples",
    "network_method",
    "classical_methods",
    "score",
    "inpaint_image",
]

EVALUATION_SIZE = 128
MASKS_PER_BIN = 3

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Sample:
    image_name: str
    hole_bin: str
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    mask: np.ndarray  # (H, W) float32, 1 valid, 0 hole


def evaluation_samples(seed: int = 0) -> list[Sample]:
    """The fixed held-out set: every test image with ``MASKS_PER_BIN`` masks per bin."""
    samples = []
    for image_index, name in enumerate(TEST_IMAGES):
        image = center_crop(resize_shorter(load_image(name), EVALUATION_SIZE), EVALUATION_SIZE)
        for bin_index, (hole_bin, (low, high)) in enumerate(HOLE_BINS.items()):
            rng = np.random.default_rng((seed, image_index, bin_index))
            for _ in range(MASKS_PER_BIN):
                mask = stroke_mask((EVALUATION_SIZE, EVALUATION_SIZE), low, high, rng)
                samples.append(Sample(name, hole_bin, image, mask))
    return samples


def inpaint_image(model: InpaintingUNet, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the holes of an ``(H, W, 3)`` image with ``model``; known pixels are kept.

    Sizes that are not multiples of the U-Net's total stride are padded by reflection (the
    padding counts as valid: it is made of known pixels) and cropped back.
    """
    factor = 2 ** len(model.channels)
    height, width = mask.shape
    pad_h, pad_w = -height % factor, -width % factor
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    valid = torch.from_numpy(np.ascontiguousarray(mask))[None, None]
    pixels = torch.nn.functional.pad(pixels * valid, (0, pad_w, 0, pad_h), mode="reflect")
    valid = torch.nn.functional.pad(valid, (0, pad_w, 0, pad_h), mode="reflect")
    with torch.no_grad():
        output = from_network(model(to_network(pixels), valid))
    filled = output[0, :, :height, :width].permute(1, 2, 0).numpy()
    return np.where(mask[:, :, None] > 0, image, filled).astype(np.float32)


def network_method(model: InpaintingUNet) -> Method:
    return lambda image, mask: inpaint_image(model, image, mask)


def _opencv(flag_name: str) -> Method:
    def method(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import cv2

        pixels = np.round(image * 255).astype(np.uint8)
        holes = ((mask == 0) * 255).astype(np.uint8)
        filled = cv2.inpaint(pixels, holes, 3, getattr(cv2, flag_name)).astype(np.float32) / 255
        return np.where(mask[:, :, None] > 0, image, filled)

    return method


def _biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    filled = inpaint_biharmonic(image, mask == 0, channel_axis=-1).astype(np.float32)
    return np.where(mask[:, :, None] > 0, image, filled)


def _mean_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mean = image[mask > 0].mean(axis=0)
    return np.where(mask[:, :, None] > 0, image, mean[None, None, :]).astype(np.float32)


def classical_methods() -> dict[str, Method]:
    """The baselines, by their results-file names (OpenCV and scikit-image imported lazily)."""
    return {
        "telea": _opencv("INPAINT_TELEA"),
        "navier_stokes": _opencv("INPAINT_NS"),
        "biharmonic": _biharmonic,
        "mean_fill": _mean_fill,
    }


def score(method: Method, samples: list[Sample]) -> dict[str, dict[str, float]]:
    """Mean PSNR, SSIM and L1 per hole bin of ``method`` over ``samples``."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    per_bin: dict[str, list[tuple[float, float, float]]] = {}
    for sample in samples:
        result = method(sample.image, sample.mask)
        psnr = peak_signal_noise_ratio(sample.image, result, data_range=1.0)
        ssim = structural_similarity(sample.image, result, channel_axis=-1, data_range=1.0)
        l1 = float(np.abs(result - sample.image).mean())
        per_bin.setdefault(sample.hole_bin, []).append((float(psnr), float(ssim), l1))
    return {
        hole_bin: dict(zip(("psnr", "ssim", "l1"), np.mean(values, axis=0).tolist(), strict=True))
        for hole_bin, values in per_bin.items()
    }
