"""The images the inpainting example trains and tests on, bundled with scikit-image and sklearn.

Offline by construction: ``skimage.data`` ships these files (no download) and
``sklearn.datasets.load_sample_image`` ships ``china.jpg`` and ``flower.jpg``. Grey images are
repeated to three channels. The test images are never seen in training.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TRAIN_IMAGES", "TEST_IMAGES", "load_image", "resize_shorter", "center_crop"]

TRAIN_IMAGES: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "rocket",
    "stereo_motorcycle",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "brick",
    "grass",
    "gravel",
    "camera",
    "china.jpg",
)
TEST_IMAGES: tuple[str, ...] = ("chelsea", "flower.jpg", "coins", "moon")


def _missing(package: str) -> ImportError:
    return ImportError(
        f"locality.inpaint needs {package}: pip install 'locality[inpaint]' (scikit-image, "
        f"scikit-learn, opencv-python-headless)"
    )


def load_image(name: str) -> np.ndarray:
    """A named image as ``(H, W, 3)`` float32 in ``[0, 1]``.

    ``name`` is an attribute of ``skimage.data`` (``stereo_motorcycle`` gives the left view) or a
    file of ``sklearn.datasets.load_sample_image`` (``china.jpg``, ``flower.jpg``).
    """
    if name.endswith(".jpg"):
        try:
            from sklearn.datasets import load_sample_image
        except ImportError as error:
            raise _missing("scikit-learn") from error
        pixels = load_sample_image(name)
    else:
        try:
            from skimage import data
        except ImportError as error:
            raise _missing("scikit-image") from error
        if not hasattr(data, name):
            raise ValueError(f"load_image: skimage.data has no image {name!r}")
        pixels = getattr(data, name)()
        if isinstance(pixels, tuple):
            pixels = pixels[0]
    image = np.asarray(pixels, dtype=np.float32) / 255.0
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def resize_shorter(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` scaled (anti-aliased) so that its shorter side is ``side`` pixels."""
    from skimage.transform import resize

    height, width = image.shape[:2]
    factor = side / min(height, width)
    shape = (max(side, round(height * factor)), max(side, round(width * factor)))
    return resize(image, shape, anti_aliasing=True, preserve_range=True).astype(np.float32)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size x size`` window of an ``(H, W, C)`` image."""
    height, width = image.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return image[top : top + size, left : left + size]
