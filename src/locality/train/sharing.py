"""Restore weight sharing while training locally connected layers (Pogodin et al., NeurIPS 2021).

"Towards biologically plausible convolutional networks" trains locally connected networks and,
every ``N`` optimiser steps, pulls the kernels that a convolution would tie back together:

- **instant** sharing sets every group of tied kernels to its mean. That is the least-squares
  projection (:func:`locality.convert.project`) onto a tiled convolution whose tile is the
  ``period``, written back into the locally connected layer, so after the step the layer computes
  exactly what that tiled convolution (or, with ``period=1``, convolution) computes.
- **dynamic** sharing reaches the same point by a local learning rule: the layer is shown noise
  that repeats with the period of the tie (so tied positions see identical inputs), each output is
  compared with the mean of its tied neighbours (lateral inhibition), and every kernel takes a
  Hebbian step, input patch times that difference, towards the others:
  ``W_p <- W_p - lr * (mean_b (z_p - zbar_p) x_p + gamma * (W_p - W_p^start))``.
  With white noise the expected step shrinks each kernel's deviation from its group's mean by the
  factor ``1 - lr``. The update is the gradient of ``sum_p mean_b (z_p - zbar_p)^2 / 2`` (the
  mean's own gradient cancels over a group), so it is computed with autograd for any layer.

Pogodin et al. tie with period = kernel size (their noise repeats every ``k`` pixels, at stride 1),
which is also the default here. Their constants, used as defaults: 100 Hebbian steps per sharing
event, batches of 128 noise images of standard normal pixels, ``lr = 0.1``, ``gamma = 1e-5``
(a weak pull back to the weights the event started from). As in their code, only positions whose
window reads no padding take part in dynamic sharing (the border sees zeros, not the noise), and
the bias follows the same rule (an input that is always 1); instant sharing averages every
position, the border too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from locality._arguments import IntOrTuple, check_int, ntuple
from locality.analysis.sharing import interior_positions
from locality.convert.lattice import to_locally_connected
from locality.convert.projection import project
from locality.layers.local import _LocallyConnectedNd

__all__ = [
    "WeightSharing",
    "share_weights",
    "MODES",
    "HEBBIAN_STEPS",
    "NOISE_BATCH",
    "HEBBIAN_LR",
    "ANCHOR",
]

MODES = ("instant", "dynamic")
HEBBIAN_STEPS = 100
NOISE_BATCH = 128
HEBBIAN_LR = 0.1
ANCHOR = 1e-5


def share_weights(
    model: nn.Module,
    mode: str = "instant",
    period: IntOrTuple | None = None,
    *,
    steps: int = HEBBIAN_STEPS,
    batch_size: int = NOISE_BATCH,
    lr: float = HEBBIAN_LR,
    gamma: float = ANCHOR,
    generator: torch.Generator | None = None,
) -> int:
    """Share the kernels of every locally connected layer of ``model`` now, in place.

    Usable in any training loop (call it between optimiser steps); :class:`WeightSharing` is the
    same as a callback that acts every ``N`` steps.

    Args:
        model: a model containing ``LocallyConnected1d/2d/3d`` layers (or one such layer).
        mode: ``"instant"`` (each group of tied kernels set to its mean) or ``"dynamic"``
            (Hebbian steps on periodic noise).
        period: the tie, per dimension: output positions ``p`` and ``q`` are tied when
            ``p = q mod period``. ``None`` (default) is each layer's kernel size, as in Pogodin
            et al.; ``1`` ties every position (a convolution). Capped at each layer's output size.
        steps, batch_size, lr, gamma: the dynamic rule's number of Hebbian steps, noise images
            per step, learning rate and pull towards the starting weights (ignored by instant).
        generator: the random generator for the noise (default: torch's global one).

    Returns:
        The number of layers shared.
    """
    where = "share_weights"
    layers = _layers(model, where)
    _check(mode, steps, batch_size, lr, gamma, where)
    for layer in layers:
        tile = _tile(layer, period, where)
        if mode == "instant":
            _share_instantly(layer, tile)
        else:
            _share_dynamically(layer, tile, steps, batch_size, lr, gamma, generator)
    return len(layers)


class WeightSharing:
    """A training-loop callback: every ``every`` steps, :func:`share_weights` on ``model``.

    Pass it as ``train(..., after_step=WeightSharing(model, every=10))`` or call it yourself after
    each optimiser step with the step number (counted from 1).

    Args:
        model: the model being trained; its locally connected layers are shared in place.
        every: steps between sharing events (Pogodin et al. share every 10 steps on ImageNet).
        mode, period, steps, batch_size, lr, gamma, generator: as in :func:`share_weights`.

    Examples:
        >>> from torch import nn
        >>> from locality import LocallyConnected1d
        >>> model = nn.Sequential(LocallyConnected1d(1, 2, 3, input_size=8), nn.Flatten())
        >>> sharing = WeightSharing(model, every=10, period=1)
        >>> sharing(10)  # a sharing step: the layer is now a convolution
        True
        >>> sharing(11)
        False
    """

    def __init__(
        self,
        model: nn.Module,
        every: int,
        mode: str = "instant",
        period: IntOrTuple | None = None,
        *,
        steps: int = HEBBIAN_STEPS,
        batch_size: int = NOISE_BATCH,
        lr: float = HEBBIAN_LR,
        gamma: float = ANCHOR,
        generator: torch.Generator | None = None,
    ) -> None:
        where = "WeightSharing"
        self.layers = _layers(model, where)
        self.every = check_int(every, "every", where)
        _check(mode, steps, batch_size, lr, gamma, where)
        for layer in self.layers:
            _tile(layer, period, where)
        self.model, self.mode, self.period = model, mode, period
        self.steps, self.batch_size, self.lr, self.gamma = steps, batch_size, lr, gamma
        self.generator = generator

    def __call__(self, step: int) -> bool:
        """Share if ``step`` is a multiple of ``every``; return whether it did."""
        if check_int(step, "step", "WeightSharing", minimum=0) % self.every:
            return False
        share_weights(
            self.model,
            self.mode,
            self.period,
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            gamma=self.gamma,
            generator=self.generator,
        )
        return True

    def __repr__(self) -> str:
        return (
            f"WeightSharing(every={self.every}, mode={self.mode!r}, period={self.period!r}, "
            f"layers={len(self.layers)})"
        )


def _layers(model: nn.Module, where: str) -> list[_LocallyConnectedNd]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{where}: model must be an nn.Module, got {type(model).__name__}")
    layers = [m for m in model.modules() if isinstance(m, _LocallyConnectedNd)]
    if not layers:
        raise ValueError(
            f"{where}: model has no LocallyConnected1d/2d/3d layer to share (convert its "
            f"convolutions with locality.convert.localize first)"
        )
    return layers


def _check(mode: str, steps: int, batch_size: int, lr: float, gamma: float, where: str) -> None:
    if mode not in MODES:
        raise ValueError(f"{where}: mode must be 'instant' or 'dynamic', got {mode!r}")
    check_int(steps, "steps", where)
    check_int(batch_size, "batch_size", where)
    for name, value in (("lr", lr), ("gamma", gamma)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{where}: {name} must be a number >= 0, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where}: {name} must be finite, got {value!r}")


def _tile(layer: _LocallyConnectedNd, period: IntOrTuple | None, where: str) -> tuple[int, ...]:
    d = len(layer.kernel_size)
    wanted = layer.kernel_size if period is None else ntuple(period, d, "period", where=where)
    return tuple(min(t, n) for t, n in zip(wanted, layer.output_size, strict=True))


def _share_instantly(layer: _LocallyConnectedNd, tile: Sequence[int]) -> None:
    if all(t == 1 for t in tile):
        tied = project(layer, to="conv").layer
    else:
        tied = project(layer, to="tiled", tile_size=tuple(tile)).layer
    untied: Any = to_locally_connected(tied, layer.input_size)
    with torch.no_grad():
        layer.weight.copy_(untied.weight)
        if layer.bias is not None and untied.bias is not None:
            layer.bias.copy_(untied.bias.expand_as(layer.bias))


def _share_dynamically(
    layer: _LocallyConnectedNd,
    tile: Sequence[int],
    steps: int,
    batch_size: int,
    lr: float,
    gamma: float,
    generator: torch.Generator | None,
) -> None:
    weight = layer.weight
    params = [weight] if layer.bias is None else [weight, layer.bias]
    start = [p.detach().clone() for p in params]
    # tied positions p = q mod tile read inputs stride * tile apart: the noise repeats with that
    noise_period = tuple(s * t for s, t in zip(layer.stride, tile, strict=True))
    repeats = [math.ceil(n / q) for n, q in zip(layer.input_size, noise_period, strict=True)]
    crop: tuple[Any, ...] = (..., *(slice(0, n) for n in layer.input_size))
    interior = interior_positions(layer).flatten()
    ids = _class_ids(layer.output_size, tile, weight.device).flatten()[interior]
    classes = math.prod(tile)
    counts = torch.bincount(ids, minlength=classes).clamp_min(1).to(weight.dtype)
    for _ in range(steps):
        noise = torch.randn(
            (batch_size, layer.in_channels, *noise_period), generator=generator, dtype=weight.dtype
        ).to(weight.device)
        x = noise.repeat(1, 1, *repeats)[crop]
        with torch.enable_grad():
            z = layer(x).flatten(2)  # (batch, C_out, positions)
            with torch.no_grad():
                inside = z[..., interior]
                mean = inside.new_zeros(*inside.shape[:2], classes).index_add_(2, ids, inside)
                centred = torch.zeros_like(z)
                centred[..., interior] = inside - (mean / counts)[..., ids]
            hebbian = torch.autograd.grad((centred * z).sum() / batch_size, params)
        with torch.no_grad():
            for p, h, p0 in zip(params, hebbian, start, strict=True):
                p.sub_(lr * (h + gamma * (p - p0)))


def _class_ids(grid: Sequence[int], tile: Sequence[int], device: torch.device) -> torch.Tensor:
    """For each output position, the row-major index of ``position mod tile``."""
    ids = torch.zeros((), dtype=torch.long, device=device)
    for i, (n, t) in enumerate(zip(grid, tile, strict=True)):
        along = (torch.arange(n, device=device) % t).view(*(1,) * i, n)
        ids = ids.unsqueeze(-1) * t + along
    return ids
