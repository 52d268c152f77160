"""Irregular hole masks drawn procedurally as random thick strokes, binned by hole ratio.

The paper's mask set (Liu et al., 2018) is not downloadable offline; these masks imitate it:
each stroke is a polyline of a few segments with random turns and a random width, rasterised as
the union of capsules (points within ``width / 2`` of a segment). Strokes are added until the
fraction of hole pixels falls in the requested range. Masks are ``1`` for valid pixels and ``0``
for holes, as the partial convolution layers take them. Everything is drawn from a
``numpy.random.Generator``, so a seed fixes the masks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HOLE_BINS", "hole_ratio", "stroke_mask"]

#: The paper's hole-ratio bins used for results (lower bound inclusive, upper exclusive).
HOLE_BINS: dict[str, tuple[float, float]] = {
    "10-20%": (0.10, 0.20),
    "20-30%": (0.20, 0.30),
    "30-40%": (0.30, 0.40),
    "40-50%": (0.40, 0.50),
}


def hole_ratio(mask: np.ndarray) -> float:
    """Fraction of hole (zero) pixels of a ``(H, W)`` mask."""
    return float(1.0 - mask.mean())


def _draw_stroke(holes: np.ndarray, rng: np.random.Generator) -> None:
    """Mark one random thick polyline as holes (``True``) in ``holes``, in place."""
    height, width = holes.shape
    scale = min(height, width)
    thickness = rng.uniform(0.03, 0.09) * scale
    point = rng.uniform((0, 0), (height, width))
    angle = rng.uniform(0, 2 * np.pi)
    rows, cols = np.ogrid[0:height, 0:width]
    for _ in range(rng.integers(2, 7)):
        angle += rng.uniform(-np.pi / 2, np.pi / 2)
        length = rng.uniform(0.1, 0.35) * scale
        end = np.clip(point + length * np.array([np.sin(angle), np.cos(angle)]), 0, (height, width))
        reach = thickness / 2
        top, left = np.maximum(np.floor(np.minimum(point, end) - reach), 0).astype(int)
        bottom, right = np.ceil(np.maximum(point, end) + reach + 1).astype(int)
        box_rows, box_cols = rows[top:bottom], cols[:, left:right]
        direction = end - point
        along = ((box_rows - point[0]) * direction[0] + (box_cols - point[1]) * direction[1]) / max(
            float(direction @ direction), 1e-9
        )
        along = np.clip(along, 0.0, 1.0)
        distance = np.hypot(
            box_rows - (point[0] + along * direction[0]),
            box_cols - (point[1] + along * direction[1]),
        )
        holes[top:bottom, left:right] |= distance <= reach
        point = end


def stroke_mask(
    size: tuple[int, int], low: float, high: float, rng: np.random.Generator
) -> np.ndarray:
    """A ``(H, W)`` float32 mask (1 valid, 0 hole) whose hole ratio lies in ``[low, high)``.

    Strokes are added one at a time; a stroke that overshoots ``high`` is undone and another one
    drawn, and after many failures the mask starts over.

    Args:
        size: ``(H, W)`` in pixels.
        low: smallest hole ratio, in ``[0, 1)``.
        high: largest hole ratio (exclusive), in ``(low, 1]``.
        rng: the source of randomness.
    """
    if not (0.0 <= low < high <= 1.0):
        raise ValueError(f"stroke_mask: need 0 <= low < high <= 1, got low={low}, high={high}")
    height, width = size
    if height < 8 or width < 8:
        raise ValueError(f"stroke_mask: size must be at least 8x8, got {size}")
    while True:
        holes = np.zeros((height, width), dtype=bool)
        for _ in range(200):
            candidate = holes.copy()
            _draw_stroke(candidate, rng)
            ratio = candidate.mean()
            if ratio >= high:
                continue
            holes = candidate
            if ratio >= low:
                return (~holes).astype(np.float32)
