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

__all__ = ["check_allocation", "check_allocations", "available_bytes", "format_bytes"]


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
    """Memory that an allocation on ``device`` may use now, or None where it cannot be told.

    CPU: ``MemAvailable`` of ``/proc/meminfo`` on Linux (free memory plus what the kernel can
    reclaim without swapping: what other processes hold is not available), else the free
    physical pages (``os.sysconf``), else the installed memory. CUDA: free memory reported by
    the driver.
    """
    if device.type == "cpu":
        return (
            _meminfo_available()
            or _sysconf_bytes("SC_AVPHYS_PAGES")
            or _sysconf_bytes("SC_PHYS_PAGES")
        )
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return None


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path) as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    value, unit = line.split()[1:3]
                    return int(value) * (1024 if unit.lower() == "kb" else 1)
    except (OSError, ValueError, IndexError):  # not Linux, or a kernel older than 3.14
        return None
    return None


def _sysconf_bytes(pages: str) -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf(pages)
    except (AttributeError, ValueError, OSError):  # not POSIX, or no such name
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
    check_allocations([(shape, dtype)], device, where)


def check_allocations(
    tensors: Sequence[tuple[Sequence[int], torch.dtype | None]],
    device: torch.device | str | int | None = None,
    where: str = "",
    advice: str = "build it with device='meta' to inspect it",
) -> None:
    """Raise ValueError if the ``(shape, dtype)`` tensors one call allocates together cannot fit.

    Their bytes are summed and compared with :func:`available_bytes` of ``device``, so a call
    that makes several large tensors at once is refused even when each would fit alone.
    ``advice`` ends the message.
    """
    dev = torch.device(device) if device is not None else torch.get_default_device()
    if dev.type == "meta":
        return
    sizes = []
    for shape, dtype in tensors:
        numel = math.prod(int(n) for n in shape)
        sizes.append((tuple(int(n) for n in shape), numel, dtype or torch.get_default_dtype()))
    needed = sum(numel * dtype.itemsize for _, numel, dtype in sizes)
    available = available_bytes(dev)
    if available is not None and needed > available:
        prefix = f"{where}: " if where else ""
        what = " and ".join(
            f"a tensor of shape {shape} ({numel:,} elements of {dtype})"
            for shape, numel, dtype in sizes
        )
        raise ValueError(
            f"{prefix}{what} {'need' if len(sizes) > 1 else 'needs'} {format_bytes(needed)} "
            f"({needed:,} bytes), more than the {format_bytes(available)} available on {dev}; "
            f"{advice}"
        )
