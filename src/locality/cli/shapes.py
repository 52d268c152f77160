"""Parsing the command line's sizes and counts: ``3x224x224``, ``10^6``, ``1,000,000``."""

from __future__ import annotations

import argparse
import math
import re

__all__ = ["count", "natural", "shape"]

_POWER = re.compile(r"^(\d+)\^(\d+)$")

# Counts past 10^1000 are typos, and computing 10^(10^9) would hang the command.
MAX_DIGITS = 1000


def count(text: str) -> int:
    """A positive integer: ``1000000``, ``1,000,000``, ``1_000_000``, ``10^6`` or ``1e6``."""
    cleaned = text.replace(",", "").replace("_", "").strip()
    power = _POWER.match(cleaned)
    try:
        if power:
            base, power_of = int(power.group(1)), int(power.group(2))
            if base > 1 and power_of * math.log10(base) > MAX_DIGITS:
                raise argparse.ArgumentTypeError(
                    f"expected a positive integer of at most {MAX_DIGITS} digits, got {text!r}"
                )
            value = base**power_of
        elif re.fullmatch(r"\d+(\.\d+)?[eE]\d+", cleaned):
            mantissa, exponent = cleaned.lower().split("e")
            whole, _, fraction = mantissa.partition(".")
            if len(fraction) > int(exponent) or int(exponent) > MAX_DIGITS:
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


def natural(text: str) -> int:
    """A non-negative integer, in any of ``count``'s spellings, or ``0``."""
    if text.strip() == "0":
        return 0
    try:
        return count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer such as 0, 10 or 1000, got {text!r}"
        ) from None


def shape(text: str) -> tuple[int, ...]:
    """Sizes separated by ``x``: ``1000x1000`` -> ``(1000, 1000)``; ``500`` -> ``(500,)``."""
    parts = text.lower().replace("×", "x").split("x")
    if not all(re.fullmatch(r"\s*-?[\d,_^eE.]+\s*", part) for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected sizes separated by 'x', such as 1000x1000 or 3x224x224, got {text!r}"
        )
    sizes = []
    for part in parts:
        try:
            sizes.append(count(part))
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(
                f"every size must be a positive integer, got {part.strip()!r} in {text!r}"
                + ("" if "positive" in str(error) else f" ({error})")
            ) from None
    return tuple(sizes)
