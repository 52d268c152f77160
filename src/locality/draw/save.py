"""Write a figure to disk in one or more formats."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["save_figure"]

MIN_DPI, MAX_DPI = 10, 1200


def save_figure(
    figure: Figure, path: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 150
) -> list[Path]:
    """Save ``figure`` as ``path`` with each suffix in ``formats``; return the files written.

    ``path`` is a stem (``out/four_panel``); a suffix it has is replaced. Parent folders are
    created. SVG keeps text as text, so it stays searchable and small.
    """
    where = "save_figure"
    if not isinstance(figure, Figure):
        raise TypeError(f"{where}: figure must be a matplotlib Figure, got {type(figure).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or a Path, got {type(path).__name__}")
    stem = Path(path)
    if not stem.name:
        raise ValueError(f"{where}: path must name a file, got {path!r}")
    supported = figure.canvas.get_supported_filetypes()
    if isinstance(formats, str) or not isinstance(formats, Sequence):
        raise TypeError(
            f"{where}: formats must be a tuple of format names, got {type(formats).__name__} "
            f"{formats!r}"
        )
    for fmt in formats:
        if not isinstance(fmt, str) or fmt not in supported:
            raise ValueError(
                f"{where}: formats must be among {', '.join(sorted(supported))}, got {fmt!r}"
            )
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)):
        raise TypeError(f"{where}: dpi must be a number, got {type(dpi).__name__} {dpi!r}")
    if not MIN_DPI <= dpi <= MAX_DPI:  # below, fonts cannot be rasterised; above, memory runs out
        raise ValueError(f"{where}: dpi must be between {MIN_DPI} and {MAX_DPI}, got {dpi!r}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = stem.with_suffix(f".{fmt}")
        figure.savefig(target, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_metadata(fmt))
        written.append(target)
    return written


def _metadata(fmt: str) -> dict | None:
    # Leave out creation dates so that the same figure gives the same file twice.
    if fmt == "svg":
        return {"Date": None}
    if fmt == "pdf":
        return {"CreationDate": None}
    return None
