"""How shared an unshared layer's kernels are: weight SNR across positions, and their spectrum.

Two views of the same question, "how far is this layer from a convolution?":

- **Weight signal-to-noise ratio** (Pogodin et al., NeurIPS 2021): for every kernel tap, the mean
  of that tap over the output positions divided by its standard deviation over them, averaged
  over taps. Only positions whose window reads no padding count, since at the border a
  convolution's kernel meets zeros and a learned layer has no reason to keep it. Infinite for a
  layer whose kernels are all equal (one made from a convolution), finite once they differ.
- **Spectrum of the (positions x kernel) matrix** (Elsayed et al., ICML 2020): one row per output
  position, holding that position's whole kernel bank flattened. Its rank is the number of basis
  kernels a low-rank locally connected layer needs to represent the layer exactly: 1 for a layer
  made from a convolution, at most K for a low-rank layer of rank K; the rank that keeps 90% or
  99% of the energy (the sum of squared singular values) is the rank worth training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from locality._arguments import (
    IntOrTuple,
    Padding,
    check_initialised,
    ntuple,
    output_size,
    padding_amounts,
)
from locality.layers.local import _LocallyConnectedNd
from locality.layers.tiled import _TiledConvNd

__all__ = ["Spectrum", "interior_positions", "position_kernels", "weight_snr", "kernel_spectrum"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def position_kernels(layer: nn.Module, input_size: IntOrTuple | None = None) -> torch.Tensor:
    """The kernel each output position uses: ``(*output_size, C_out, C_in // groups, *kernel)``.

    Args:
        layer: ``LocallyConnected1d/2d/3d`` (whose input size is fixed), or a ``TiledConv*d`` or
            ``nn.Conv1d/2d/3d`` together with ``input_size``.
        input_size: the spatial input size, for layers that do not fix it.
    """
    where = "position_kernels"
    if not isinstance(layer, (_LocallyConnectedNd, _TiledConvNd, *_CONVS)):
        raise TypeError(
            f"{where}: layer must be a LocallyConnected*d, TiledConv*d or Conv*d, got "
            f"{type(layer).__name__}"
        )
    check_initialised(layer, "layer", where)
    weight = layer.weight.detach()
    if isinstance(layer, _LocallyConnectedNd):
        return weight
    kernel_size, stride, padding, dilation = _sliding(layer)
    d = len(kernel_size)
    if input_size is None:
        raise ValueError(f"{where}: a {type(layer).__name__} needs input_size, got None")
    size = ntuple(input_size, d, "input_size", where=where)
    pads = padding_amounts(padding, kernel_size, stride, dilation, where)
    out = output_size(size, kernel_size, stride, pads, dilation, where=where)
    if isinstance(layer, _CONVS):
        return weight.expand(*out, *weight.shape)
    index = tuple(
        (torch.arange(n, device=weight.device) % t).view(*(1,) * i, n, *(1,) * (d - i - 1))
        for i, (n, t) in enumerate(zip(out, weight.shape[:d], strict=True))
    )
    return weight[index]


def _sliding(layer: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...], Padding, tuple[int, ...]]:
    """``(kernel_size, stride, padding, dilation)`` of a Conv*d or a layer of this library."""
    sliding: Any = layer  # torch types a Module's attributes as Tensor | Module
    padding = sliding.padding
    return (
        tuple(sliding.kernel_size),
        tuple(sliding.stride),
        padding if isinstance(padding, str) else tuple(padding),
        tuple(sliding.dilation),
    )


def interior_positions(layer: nn.Module, input_size: IntOrTuple | None = None) -> torch.Tensor:
    """Boolean mask of the output grid: ``True`` where the layer's window reads no padding.

    Position ``p`` reads inputs ``p * stride - before + j * dilation`` for ``j < kernel_size``;
    it is interior when all of them lie in ``[0, input_size)`` in every dimension.
    """
    where = "interior_positions"
    kernels = position_kernels(layer, input_size)
    kernel_size, stride, padding, dilation = _sliding(layer)
    d = len(kernel_size)
    fixed = getattr(layer, "input_size", None) if isinstance(layer, _LocallyConnectedNd) else None
    size = ntuple(fixed or input_size, d, "input_size", where=where)  # type: ignore[arg-type]
    pads = padding_amounts(padding, kernel_size, stride, dilation, where)
    masks = []
    for i in range(d):
        p = torch.arange(kernels.shape[i], device=kernels.device)
        first = p * stride[i] - pads[i][0]
        last = first + dilation[i] * (kernel_size[i] - 1)
        inside = (first >= 0) & (last < size[i])
        masks.append(inside.view(*(1,) * i, -1, *(1,) * (d - i - 1)))
    mask = masks[0]
    for m in masks[1:]:
        mask = mask & m
    return mask.expand(kernels.shape[:d])


def weight_snr(layer: nn.Module, input_size: IntOrTuple | None = None) -> float:
    """Pogodin et al.'s weight SNR: ``mean over taps of |mean_p w[p]| / std_p w[p]``.

    ``p`` runs over the interior output positions (:func:`interior_positions`); ``std`` is the
    sample standard deviation. A tap with zero spread and a non-zero mean is infinitely shared,
    so a layer whose interior kernels are all equal returns ``math.inf``; taps that are zero at
    every position carry no signal and are left out.

    Raises:
        ValueError: if fewer than two output positions are interior.
    """
    kernels = position_kernels(layer, input_size)
    mask = interior_positions(layer, input_size)
    if int(mask.sum()) < 2:
        raise ValueError(
            f"weight_snr: the layer has {int(mask.sum())} output position(s) away from the "
            f"padding (output size {tuple(mask.shape)}); the SNR needs at least 2"
        )
    taps = kernels[mask].double().flatten(1)
    mean = taps.mean(0).abs()
    std = taps.std(0)
    signal = (mean > 0) | (std > 0)
    ratio = torch.where(std > 0, mean / std.clamp_min(torch.finfo(std.dtype).tiny), math.inf)
    if not bool(signal.any()):
        return math.nan
    return float(ratio[signal].mean())


@dataclass(frozen=True)
class Spectrum:
    """Singular values of a layer's (positions x kernel) matrix.

    Attributes:
        singular_values: descending, float64, ``min(positions, kernel size)`` of them.
        positions: rows of the matrix (output positions).
        kernel_size: columns (``C_out * C_in / groups * prod(kernel)``).
    """

    singular_values: torch.Tensor
    positions: int
    kernel_size: int

    @property
    def energy(self) -> torch.Tensor:
        """Cumulative fraction of the squared Frobenius norm kept by the first r values."""
        squares = self.singular_values.square()
        total = squares.sum()
        return squares.cumsum(0) / total if total > 0 else torch.ones_like(squares)

    def rank(self, energy: float = 0.99) -> int:
        """The smallest rank whose truncated SVD keeps at least ``energy`` of the energy."""
        if isinstance(energy, bool) or not isinstance(energy, (int, float)) or not 0 < energy <= 1:
            raise ValueError(f"Spectrum.rank: energy must be in (0, 1], got {energy!r}")
        if self.singular_values.square().sum() == 0:
            return 0
        # a small slack, so that an exactly rank-r matrix is not pushed to r + 1 by rounding
        kept = self.energy >= energy - 1e-12
        return int(kept.nonzero()[0]) + 1

    @property
    def rank_90(self) -> int:
        return self.rank(0.90)

    @property
    def rank_99(self) -> int:
        return self.rank(0.99)


def kernel_spectrum(layer: nn.Module, input_size: IntOrTuple | None = None) -> Spectrum:
    """The singular values of the ``(positions, C_out * C_in/g * prod(kernel))`` kernel matrix.

    Every output position counts (the border too: a low-rank layer mixes its basis kernels at
    every position). Computed in float64 with ``torch.linalg.svdvals``.
    """
    kernels = position_kernels(layer, input_size)
    d = len(_sliding(layer)[0])
    matrix = kernels.double().reshape(math.prod(kernels.shape[:d]), -1)
    return Spectrum(torch.linalg.svdvals(matrix), matrix.shape[0], matrix.shape[1])
