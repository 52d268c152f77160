"""Argument normalisation and validation shared by the functional ops and the layers.

Every check here runs before any computation, so that bad input fails with a message that names
the argument, what was expected and what came, never with an error from deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import TypeGuard

import torch
from torch.nn.modules.lazy import LazyModuleMixin

IntOrTuple = int | Sequence[int]
Padding = str | int | Sequence[int | Sequence[int]]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def is_int(value: object) -> TypeGuard[int]:
    """An integer as ``torch.nn.Conv2d`` takes one: ``int`` or a NumPy integer, not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def ntuple(
    value: IntOrTuple, n: int, name: str, *, minimum: int = 1, where: str = ""
) -> tuple[int, ...]:
    """Expand an int or a length-``n`` sequence of ints to an ``n``-tuple, checking each entry.

    ``minimum`` is the smallest allowed entry (1 for sizes and strides, 0 for padding).
    """
    prefix = f"{where}: " if where else ""
    if isinstance(value, (bool, str)) or not (is_int(value) or isinstance(value, Sequence)):
        raise TypeError(
            f"{prefix}{name} must be an int or a tuple of {n} ints, got {type(value).__name__} "
            f"{value!r}"
        )
    if isinstance(value, Sequence):
        values: tuple = tuple(value)
        if len(values) != n:
            raise ValueError(
                f"{prefix}{name} must be an int or a tuple of {n} ints, got {len(values)} values "
                f"{value!r}"
            )
    else:
        values = (value,) * n
    for v in values:
        if not is_int(v):
            raise TypeError(
                f"{prefix}{name} must contain ints, got {type(v).__name__} {v!r} in {value!r}"
            )
        if v < minimum:
            kind = "positive" if minimum == 1 else "non-negative"
            raise ValueError(f"{prefix}{name} must be {kind}, got {value!r}")
    return tuple(int(v) for v in values)


def check_int(value: object, name: str, where: str, *, minimum: int | None = 1) -> int:
    """``value`` itself, checked to be an int (not a bool) of at least ``minimum`` (0, 1 or no
    bound for ``None``)."""
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{where}: {name} must be {kind}, got {value}")
    return int(value)


def check_shape(
    value: object, name: str, where: str, *, length: int | None = None
) -> tuple[int, ...]:
    """A shape: a non-empty tuple or list of positive ints, ``length`` of them when given.

    A bare int or a string is refused rather than taken as a one-element shape.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{where}: {name} must be a tuple of ints, got {type(value).__name__} {value!r}"
        )
    values = tuple(value)
    if not values or length is not None and len(values) != length:
        expected = "a non-empty tuple of ints" if length is None else f"a tuple of {length} ints"
        raise ValueError(f"{where}: {name} must be {expected}, got {value!r}")
    return ntuple(values, len(values), name, where=where)


def check_flag(value: object, name: str, where: str, *, allow_none: bool = False) -> None:
    """Refuse anything but ``True`` and ``False`` (and ``None`` when it means "keep")."""
    if not (isinstance(value, bool) or allow_none and value is None):
        expected = "True, False or None" if allow_none else "True or False"
        raise TypeError(f"{where}: {name} must be {expected}, got {type(value).__name__} {value!r}")


def check_module(value: object, name: str, where: str) -> None:
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"{where}: {name} must be a torch.nn.Module, got {type(value).__name__}")


def check_initialised(module: torch.nn.Module, name: str, where: str) -> None:
    """Refuse a lazy module whose parameters are not made yet (one forward pass makes them)."""
    if isinstance(module, LazyModuleMixin) and module.has_uninitialized_params():
        raise ValueError(
            f"{where}: {name} is a {type(module).__name__} whose parameters are not initialised "
            f"yet; run it on one input first"
        )


def check_padding_mode(padding_mode: str, where: str = "") -> str:
    prefix = f"{where}: " if where else ""
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"{prefix}padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, "
            f"got {padding_mode!r}"
        )
    return padding_mode


def padding_amounts(
    padding: Padding,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    where: str = "",
) -> tuple[tuple[int, int], ...]:
    """(before, after) padding per spatial dimension, from an int, a tuple, "valid" or "same".

    A tuple holds one entry per spatial dimension, each an int (the same amount before and
    after) or a ``(before, after)`` pair, as ``jax.lax.conv_general_dilated`` and Keras'
    ``ZeroPadding`` take them: ``((1, 2),)`` in 1-D, ``(1, (0, 2))`` in 2-D.

    "same" keeps the spatial size at stride 1 and, as ``torch.nn.Conv*d`` does, puts the odd
    extra element after (on the right/bottom). For "SAME" at any stride (TF/JAX), see
    :func:`same_padding`.
    """
    prefix = f"{where}: " if where else ""
    d = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{prefix}padding='same' is only supported with stride 1 (as in "
                    f"torch.nn.Conv{d}d), got stride={stride}; for TF/JAX 'SAME' at any stride "
                    f"pass padding=locality.same_padding(input_size, kernel_size, stride)"
                )
            totals = [dl * (k - 1) for k, dl in zip(kernel_size, dilation, strict=True)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(
            f"{prefix}padding must be 'valid', 'same', an int or a tuple, got {padding!r}"
        )
    if isinstance(padding, Sequence) and any(
        isinstance(p, Sequence) and not isinstance(p, str) for p in padding
    ):
        if len(padding) != d:
            raise ValueError(
                f"{prefix}padding must hold {d} entries (an int or a (before, after) pair per "
                f"spatial dimension), got {len(padding)} in {padding!r}"
            )
        pairs = []
        for entry in padding:
            if isinstance(entry, Sequence) and not isinstance(entry, str):
                lo, hi = ntuple(entry, 2, "padding (before, after) pair", minimum=0, where=where)
                pairs.append((lo, hi))
            else:
                (p,) = ntuple((entry,), 1, "padding", minimum=0, where=where)  # type: ignore[arg-type]
                pairs.append((p, p))
        return tuple(pairs)
    values = ntuple(padding, d, "padding", minimum=0, where=where)  # type: ignore[arg-type]
    return tuple((p, p) for p in values)


def padding_argument(
    padding: Padding, pads: Sequence[tuple[int, int]]
) -> str | tuple[int, ...] | tuple[tuple[int, int], ...]:
    """The ``padding`` a layer keeps: the string as given, ints when every dimension is
    symmetric (as ``torch.nn.Conv*d`` keeps them), else the ``(before, after)`` pairs."""
    if isinstance(padding, str):
        return padding
    if all(lo == hi for lo, hi in pads):
        return tuple(lo for lo, _ in pads)
    return tuple(pads)


def same_padding(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    dilation: IntOrTuple = 1,
) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` padding per dimension of the TF/JAX ``"SAME"`` convention.

    The output has ``ceil(input_size / stride)`` positions at any stride; the total padding
    ``max((out - 1) * stride + dilation * (kernel_size - 1) + 1 - input_size, 0)`` is split with
    the smaller half before, as ``tf.nn.conv2d`` and ``jax.lax.padtype_to_pads`` split it. At
    stride 1 this is ``padding="same"``. Pass the result as any layer's or op's ``padding``.

    Args:
        input_size: spatial size of the input (int or tuple; its length sets the dimensions,
            ints are broadcast to it).
        kernel_size: kernel size (int or tuple).
        stride: stride (int or tuple).
        dilation: dilation (int or tuple).

    Returns:
        One ``(before, after)`` pair per spatial dimension.

    Example::

        >>> same_padding((7, 8), kernel_size=4, stride=2)
        ((1, 2), (1, 1))
    """
    where = "same_padding"
    given = (input_size, kernel_size, stride, dilation)
    lengths = [len(v) for v in given if isinstance(v, Sequence) and not isinstance(v, str)]
    d = lengths[0] if lengths else 1
    size = ntuple(input_size, d, "input_size", where=where)
    kernel = ntuple(kernel_size, d, "kernel_size", where=where)
    strides = ntuple(stride, d, "stride", where=where)
    dilations = ntuple(dilation, d, "dilation", where=where)
    pairs = []
    for n, k, s, dl in zip(size, kernel, strides, dilations, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + dl * (k - 1) + 1 - n, 0)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def output_size(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    where: str = "",
) -> tuple[int, ...]:
    """Output spatial size: floor((n + before + after - dilation*(k-1) - 1) / stride) + 1.

    Raises a ValueError naming both sizes when the (dilated) kernel does not fit in the padded
    input.
    """
    prefix = f"{where}: " if where else ""
    out = []
    for dim, (n, k, s, (lo, hi), dl) in enumerate(
        zip(input_size, kernel_size, stride, pads, dilation, strict=True)
    ):
        extent = dl * (k - 1) + 1
        padded = n + lo + hi
        if extent > padded:
            raise ValueError(
                f"{prefix}kernel extent {extent} (kernel_size={tuple(kernel_size)}, "
                f"dilation={tuple(dilation)}) is larger than the padded input {padded} "
                f"(input size {n} + padding {lo}+{hi}) in spatial dimension {dim}"
            )
        out.append((padded - extent) // s + 1)
    return tuple(out)


def check_channels(in_channels: int, out_channels: int, groups: int, where: str = "") -> None:
    prefix = f"{where}: " if where else ""
    for name, value in (
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("groups", groups),
    ):
        if not is_int(value):
            raise TypeError(f"{prefix}{name} must be an int, got {type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"{prefix}{name} must be positive, got {value}")
    if in_channels % groups:
        raise ValueError(
            f"{prefix}in_channels ({in_channels}) must be divisible by groups ({groups})"
        )
    if out_channels % groups:
        raise ValueError(
            f"{prefix}out_channels ({out_channels}) must be divisible by groups ({groups})"
        )


def check_input(
    input: torch.Tensor, d: int, in_channels: int, where: str
) -> tuple[torch.Tensor, bool]:
    """Check rank and channels of ``input``; return it batched and whether it came unbatched."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{where}: input must be a torch.Tensor, got {type(input).__name__}")
    if input.dim() not in (d + 1, d + 2):
        raise ValueError(
            f"{where}: expected a {d + 2}-D input (N, C, {_spatial_names(d)}) or a {d + 1}-D "
            f"unbatched input (C, {_spatial_names(d)}), got a {input.dim()}-D input of shape "
            f"{tuple(input.shape)}"
        )
    unbatched = input.dim() == d + 1
    if unbatched:
        input = input.unsqueeze(0)
    if input.shape[1] != in_channels:
        raise ValueError(
            f"{where}: expected input with {in_channels} channels, got {input.shape[1]} channels "
            f"(input shape {tuple(input.shape if not unbatched else input.shape[1:])})"
        )
    if not (input.is_floating_point() or input.is_complex()):
        raise TypeError(f"{where}: input must be a floating point tensor, got {input.dtype}")
    return input, unbatched


def _spatial_names(d: int) -> str:
    return ", ".join(("L",) if d == 1 else ("H", "W") if d == 2 else ("D", "H", "W"))


def fan_in(in_channels: int, groups: int, kernel_size: Sequence[int]) -> int:
    """Inputs seen by one output unit: in_channels/groups x kernel volume (as for Conv*d)."""
    return (in_channels // groups) * math.prod(kernel_size)
