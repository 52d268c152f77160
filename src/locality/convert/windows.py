"""The references a fully convolutional network is compared against, and finer score maps.

``sliding_window`` evaluates a classifier on every window of an input (all windows in one
batched forward call); ``shift_and_stitch`` gets a fully convolutional network's score map at
a stride finer than the network's own by running it on shifted inputs and interleaving the maps
(FCN's "shift-and-stitch", OverFeat's offset pooling).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from locality._arguments import IntOrTuple, check_int, ntuple
from locality._memory import available_bytes, check_allocations
from locality.convert.geometry import Geometry

__all__ = ["sliding_window", "shift_and_stitch"]


def _check_call(model: object, x: object, where: str) -> int:
    """Check ``model`` and ``x`` before any work; return the number of spatial dims of ``x``."""
    if not callable(model):
        raise TypeError(f"{where}: model must be a callable nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(
            f"{where}: x must be a (N, C, *spatial) tensor, got shape {tuple(x.shape)}"
        )
    return x.dim() - 2


def _run(model: Callable[[torch.Tensor], Any], batch: torch.Tensor, where: str) -> torch.Tensor:
    """``model(batch)``, with what the model says when it cannot take ``batch`` named."""
    try:
        out = model(batch)
    except Exception as error:  # the model's own complaint, whatever its type
        raise ValueError(
            f"{where}: model failed on an input of shape {tuple(batch.shape)} cut from x: "
            f"{type(error).__name__}: {error}"
        ) from error
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{where}: model must return a tensor, got {type(out).__name__}")
    return out


def sliding_window(
    model: nn.Module,
    x: torch.Tensor,
    window: IntOrTuple,
    stride: IntOrTuple,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Apply ``model`` to every ``window`` of ``x`` at ``stride``, in batched calls.

    Args:
        model: a classifier taking ``(B, C, *window)`` and returning ``(B, *scores)``.
        x: ``(N, C, *spatial)``.
        window: the classifier's input size (int or tuple over the spatial dims).
        stride: step between windows (int or tuple).
        batch_size: windows per call of ``model``; ``None`` (default) runs all of them in one
            call. The windows of one call are copied out of ``x`` together, so a call that would
            not fit in the available memory is refused before any work, suggesting a
            ``batch_size`` that fits.

    Returns:
        ``(N, *scores, *n)`` with ``n[i] = (spatial[i] - window[i]) // stride[i] + 1``: the score
        map, laid out as a fully convolutional network's output.

    Against ``fcn = fully_convolutional(model, (C, *window))`` with a padding-free backbone: the
    network has ``(spatial - R) // stride + 1`` cells, ``R = fcn.geometry.receptive_field``,
    which is more than ``n`` when ``R < window`` (poolings whose floors drop the window's last
    rows). Its first ``n`` cells are these windows; all of them are the windows of ``x`` padded
    at the end by ``window - R`` values the model never reads.
    """
    where = "sliding_window"
    d = _check_call(model, x, where)
    size = ntuple(window, d, "window", where=where)
    step = ntuple(stride, d, "stride", where=where)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", where, minimum=1)
    if any(w > n for w, n in zip(size, x.shape[2:], strict=True)):
        raise ValueError(f"{where}: window {size} is larger than the input {tuple(x.shape[2:])}")
    patches = x
    for i, (w, s) in enumerate(zip(size, step, strict=True)):
        patches = patches.unfold(2 + i, w, s)
    counts = tuple(patches.shape[2 : 2 + d])
    total = x.shape[0] * math.prod(counts)
    per_call = max(1, total if batch_size is None else min(batch_size, total))
    window_bytes = x.shape[1] * math.prod(size) * x.element_size()
    available = available_bytes(x.device)
    fits = max(1, available // window_bytes) if available is not None else per_call
    check_allocations(
        [((per_call, x.shape[1], *size), x.dtype)],
        x.device,
        where,
        advice=f"pass batch_size={min(fits, per_call):,} or less to run the {total:,} windows "
        f"in several calls",
    )
    # (N, C, *n, *window) -> (N, *n, C, *window): a view; each call copies its windows out.
    windows = patches.movedim(1, 1 + d)
    outputs = []
    for first in range(0, max(total, 1), per_call):  # an empty batch still calls model once
        index = torch.arange(first, min(first + per_call, total), device=x.device)
        coordinates = torch.unravel_index(index, (x.shape[0], *counts))
        outputs.append(_checked(_run(model, windows[coordinates], where), len(index), where))
    scores = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
    scores = scores.reshape(x.shape[0], *counts, *scores.shape[1:])
    return scores.movedim(tuple(range(1, 1 + d)), tuple(range(scores.dim() - d, scores.dim())))


def _checked(scores: torch.Tensor, windows: int, where: str) -> torch.Tensor:
    if scores.dim() < 1 or scores.shape[0] != windows:
        raise ValueError(
            f"{where}: model must return (B, *scores) for B windows; on {windows} "
            f"windows it returned shape {tuple(scores.shape)}"
        )
    return scores


def shift_and_stitch(
    model: nn.Module, x: torch.Tensor, factor: IntOrTuple, stride: IntOrTuple | None = None
) -> torch.Tensor:
    """Score map at ``stride / factor`` from ``prod(factor)`` passes of a fully convolutional net.

    The pass on ``x`` shifted by ``a * stride / factor`` gives the cells ``i * factor + a`` of the
    finer map. For a padding-free backbone the result equals ``sliding_window`` at stride
    ``stride / factor``; with padding, each pass pads its own shifted input.

    Args:
        model: a fully convolutional network, ``(N, C, *spatial) -> (N, K, *out)``.
        x: ``(N, C, *spatial)``.
        factor: how many times finer (int or tuple); must divide the network's stride.
        stride: the network's output stride; read from ``model.geometry`` (as set by
            ``fully_convolutional``) when ``None``.

    Returns:
        ``(N, K, *fine)``, ``fine[i]`` the largest count every shift can fill. This follows the
        network's grid, which can have more trailing cells than ``sliding_window``'s (see there:
        with ``R`` the receptive field, the cells are windows over ``x`` padded by
        ``window - R``).
    """
    where = "shift_and_stitch"
    d = _check_call(model, x, where)
    if stride is None:
        geometry = getattr(model, "geometry", None)
        if not isinstance(geometry, Geometry):
            raise ValueError(
                f"{where}: pass stride= or a model from fully_convolutional() (it has .geometry)"
            )
        if len(geometry.stride) != d:
            raise ValueError(
                f"{where}: x must have {len(geometry.stride)} spatial dims, as the model's "
                f"geometry has, got shape {tuple(x.shape)}"
            )
        stride = geometry.stride
    step = ntuple(stride, d, "stride", where=where)
    fine = ntuple(factor, d, "factor", where=where)
    if any(s % f for s, f in zip(step, fine, strict=True)):
        raise ValueError(f"{where}: factor {fine} must divide the network's stride {step}")
    shift = tuple(s // f for s, f in zip(step, fine, strict=True))
    reach = tuple((f - 1) * t for f, t in zip(fine, shift, strict=True))
    if any(r >= n for r, n in zip(reach, x.shape[2:], strict=True)):
        raise ValueError(
            f"{where}: factor {fine} shifts x by up to {reach}, which leaves nothing of its "
            f"spatial size {tuple(x.shape[2:])}"
        )
    maps = {}
    for offset in itertools.product(*(range(f) for f in fine)):
        crop: tuple[Any, ...] = (
            ...,
            *(slice(a * t, None) for a, t in zip(offset, shift, strict=True)),
        )
        maps[offset] = _run(model, x[crop], where)
        if maps[offset].dim() != x.dim():
            raise ValueError(
                f"{where}: model must return a (N, K, *spatial) map with as many spatial dims "
                f"as x {tuple(x.shape)}, got shape {tuple(maps[offset].shape)}"
            )
    counts = tuple(
        min(m.shape[-d + i] * f + a[i] for a, m in maps.items()) for i, f in enumerate(fine)
    )
    first = next(iter(maps.values()))
    out = first.new_empty(*first.shape[: first.dim() - d], *counts)
    for offset, m in maps.items():
        ranges = zip(offset, counts, fine, strict=True)
        target: tuple[Any, ...] = (..., *(slice(a, n, f) for a, n, f in ranges))
        source: tuple[Any, ...] = (
            ...,
            *(
                slice(0, math.ceil((n - a) / f))
                for a, n, f in zip(offset, counts, fine, strict=True)
            ),
        )
        out[target] = m[source]
    return out
