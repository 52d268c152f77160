"""Refuse allocations that cannot fit, before making them, with the number of bytes they need.

A locally connected layer's weight grows with the product of its output size, channels and
kernel: a 1000x1000 input connected densely needs 10^12 weights (4 TB in float32). Allocating that
would hang the machine in swap or die in the kernel's OOM killer; this check turns it into a
ValueError naming the size. ``meta`` tensors are free and are never refused.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from decimal import Decimal

import torch

from locality._arguments import check_int

__all__ = ["check_allocation", "available_bytes", "format_bytes"]


_BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def format_bytes(n: int) -> str:
    """Bytes in decimal (SI) units, as disks and the notes count, three significant digits.

    ``4_000_000_000_000`` -> ``"4 TB"``; ``1_612_800`` -> ``"1.61 MB"``. Exact for any int (no
    float conversion), so ``10**400`` bytes prints its integer number of exabytes.
    """
    n = check_int(n, "n", "format_bytes", minimum=0)
    unit = 0
    while n >= 1000 ** (unit + 1) and unit < len(_BYTE_UNITS) - 1:
        unit += 1
    if unit == 0:
        return f"{n} B"
    scale = 1000**unit
    if n >= 1000 * scale:  # past the largest unit: an integer, rounded half up
        whole, rest = divmod(n, scale)
        return f"{whole + (2 * rest >= scale):,} {_BYTE_UNITS[unit]}"
    rounded = Decimal(f"{Decimal(n) / Decimal(scale):.3g}")
    if rounded >= 1000:  # 999.6 kB rounds to 1 MB
        return format_bytes(1000 ** (unit + 1))
    return f"{rounded.normalize():f} {_BYTE_UNITS[unit]}"


def available_bytes(device: torch.device) -> int | None:
    """Memory that an allocation on ``device`` may use, or None where it cannot be told.

    CPU: physical memory (``os.sysconf``; allocations beyond it cannot succeed without swapping
    the machine to a halt). CUDA: free memory reported by the driver.
    """
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # not Linux / not POSIX
            return None
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return None


def check_allocation(
    shape: Sequence[int],
    dtype: torch.dtype | None = None,
    device: torch.device | str | int | None = None,
    where: str = "",
) -> None:
    """Raise ValueError if a tensor of ``shape`` and ``dtype`` cannot fit on ``device``.

    Call it before ``torch.empty(shape, dtype=dtype, device=device)``; ``None`` means the same
    defaults as there (``torch.get_default_dtype()``, ``torch.get_default_device()``). The message
    names ``where`` (the layer or function), the shape, the bytes needed and the bytes
    available, and suggests ``device="meta"`` for inspecting a layer too large to build.
    """
    dev = torch.device(device) if device is not None else torch.get_default_device()
    if dev.type == "meta":
        return
    dtype = dtype or torch.get_default_dtype()
    numel = math.prod(int(n) for n in shape)
    needed = numel * dtype.itemsize
    available = available_bytes(dev)
    if available is not None and needed > available:
        prefix = f"{where}: " if where else ""
        raise ValueError(
            f"{prefix}a tensor of shape {tuple(int(n) for n in shape)} ({numel:,} elements of "
            f"{dtype}) needs {format_bytes(needed)} ({needed:,} bytes), more than the "
            f"{format_bytes(available)} available on {dev}; build it with device='meta' to "
            "inspect it"
        )
