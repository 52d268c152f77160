"""Write a figure to disk in one or more formats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["save_figure"]


def save_figure(
    figure: Figure, path: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 150
) -> list[Path]:
    """Save ``figure`` as ``path`` with each suffix in ``formats``; return the files written.

    ``path`` is a stem (``out/four_panel``); a suffix it has is replaced. Parent folders are
    created. SVG keeps text as text, so it stays searchable and small.
    """
    stem = Path(path)
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
