"""Writing files whole or not at all: to a temporary name in the same folder, then a rename.

A run killed mid-write (SIGKILL, a full disk, a pre-empted job) leaves the previous file or no
file, never a truncated one that breaks the next read. ``os.replace`` is atomic on POSIX and
Windows when both names are on one file system, which a sibling temporary name guarantees.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomically", "write_text_atomically"]


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    The parent folder must exist. On any error the temporary file is removed and ``path`` is
    left as it was.
    """
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        os.chmod(temporary, 0o644)  # mkstemp's 0o600 would make results private to their writer
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """``Path(path).write_text(text)`` (UTF-8), all or nothing."""
    return write_atomically(path, lambda file: file.write(text.encode("utf-8")))
