"""Parsing the command line's sizes and counts: ``3x224x224``, ``10^6``, ``1,000,000``."""

from __future__ import annotations

import argparse
import re

__all__ = ["count", "shape"]

_POWER = re.compile(r"^(\d+)\^(\d+)$")


def count(text: str) -> int:
    """A positive integer: ``1000000``, ``1,000,000``, ``1_000_000``, ``10^6`` or ``1e6``."""
    cleaned = text.replace(",", "").replace("_", "").strip()
    power = _POWER.match(cleaned)
    try:
        if power:
            value = int(power.group(1)) ** int(power.group(2))
        elif re.fullmatch(r"\d+(\.\d+)?[eE]\d+", cleaned):
            mantissa, exponent = cleaned.lower().split("e")
            whole, _, fraction = mantissa.partition(".")
            if len(fraction) > int(exponent):
                raise ValueError
            value = int(whole + fraction) * 10 ** (int(exponent) - len(fraction))
        else:
            value = int(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer such as 1000000, 1,000,000, 10^6 or 1e6, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def shape(text: str) -> tuple[int, ...]:
    """Sizes separated by ``x``: ``1000x1000`` -> ``(1000, 1000)``; ``500`` -> ``(500,)``."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        return tuple(count(part) for part in parts)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected sizes separated by 'x', such as 1000x1000 or 3x224x224, got {text!r}"
        ) from None
