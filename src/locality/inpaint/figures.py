"""Side-by-side pictures of inpainting results (matplotlib's object API, no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["side_by_side", "comparison_grid", "masked_view"]


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("this figure needs matplotlib: pip install 'locality[plot]'") from error
    return Figure(figsize=(width, height), layout="constrained")


def masked_view(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with its holes painted white, as inpainting papers show inputs."""
    return np.where(mask[:, :, None] > 0, image, 1.0)


def side_by_side(panels: Sequence[tuple[str, np.ndarray]], panel_inches: float = 3.0):
    """One row of titled ``(H, W, 3)`` images in ``[0, 1]``; returns a matplotlib Figure."""
    height, width = panels[0][1].shape[:2]
    figure = _figure(panel_inches * len(panels), panel_inches * height / width + 0.4)
    for ax, (title, image) in zip(figure.subplots(1, len(panels)), panels, strict=True):
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    return figure


def comparison_grid(
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]], panel_inches: float = 1.7
):
    """Rows of titled panels, each row labelled; returns a matplotlib Figure."""
    columns = len(rows[0][1])
    figure = _figure(panel_inches * columns, panel_inches * len(rows) + 0.3)
    axes = np.asarray(figure.subplots(len(rows), columns)).reshape(len(rows), columns)
    for r, (label, panels) in enumerate(rows):
        for c, (title, image) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    return figure
