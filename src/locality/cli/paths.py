"""Checking the command line's output paths before any work is done."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["output_folder"]


def output_folder(path: str | os.PathLike, option: str = "--out", create: bool = True) -> Path:
    """``path`` as a folder that exists and can be written to, made if needed.

    Called before a command starts its work, so that a run, a tour or a drawing does not end in
    a failed write. Raises ValueError naming ``option`` and the path. With ``create=False`` the
    folder is not made: only a path that is, or lies under, a file is refused (the command makes
    the folder itself once its other arguments are checked).
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {str(folder)!r} is a file; expected a folder")
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise ValueError(f"{option} {str(folder)!r} lies under the file {str(existing)!r}")
    if not create:
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"{option} {str(folder)!r}: cannot create the folder ({error.strerror or error})"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {str(folder)!r}: the folder is not writable")
    return folder
