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

import torch
from torch import nn

from locality._arguments import IntOrTuple, check_initialised, ntuple
from locality.analysis.trace import example_input, run_with_hooks
from locality.connectivity import Connectivity, kernels_of

__all__ = [
    "Spectrum",
    "SharingRow",
    "interior_positions",
    "position_kernels",
    "weight_snr",
    "kernel_spectrum",
    "sharing_report",
]


def position_kernels(layer: nn.Module, input_size: IntOrTuple | None = None) -> torch.Tensor:
    """The kernel each output position uses: ``(*output_size, C_out, C_in // groups, *kernel)``.

    Args:
        layer: any sliding layer of this library (read through its ``Connectivity``, so every
            kind works) or an ``nn.Conv1d/2d/3d``.
        input_size: the spatial input size, for layers that do not fix it (tiled, conv).
    """
    connectivity, size = _geometry(layer, input_size, "position_kernels")
    return kernels_of(layer, connectivity.output_size(size)).detach()


def _geometry(
    layer: nn.Module, input_size: IntOrTuple | None, where: str
) -> tuple[Connectivity, tuple[int, ...]]:
    """The layer's connectivity and the input size it works on (its own, or ``input_size``)."""
    try:
        connectivity: Connectivity | None = Connectivity.of(layer)
    except TypeError:
        connectivity = None
    if connectivity is None or connectivity.d == 0 or connectivity.kind.endswith("_transpose"):
        raise TypeError(
            f"{where}: layer must be a sliding layer of locality or an nn.Conv1d/2d/3d, got "
            f"{type(layer).__name__}"
        )
    check_initialised(layer, "layer", where)
    if connectivity.input_size is not None:
        return connectivity, connectivity.input_size
    if input_size is None:
        raise ValueError(
            f"{where}: a {type(layer).__name__} works on any input size; give input_size"
        )
    return connectivity, ntuple(input_size, connectivity.d, "input_size", where=where)


def interior_positions(layer: nn.Module, input_size: IntOrTuple | None = None) -> torch.Tensor:
    """Boolean mask of the output grid: ``True`` where the layer's window reads no padding.

    Position ``p`` reads inputs ``p * stride - before + j * dilation`` for ``j < kernel_size``;
    it is interior when all of them lie in ``[0, input_size)`` in every dimension.
    """
    c, size = _geometry(layer, input_size, "interior_positions")
    out = c.output_size(size)
    mask = torch.ones((), dtype=torch.bool)
    for i in range(c.d):
        first = torch.arange(out[i]) * c.stride[i] - c.padding[i][0]
        last = first + c.dilation[i] * (c.kernel_size[i] - 1)
        mask = mask.unsqueeze(-1) & ((first >= 0) & (last < size[i]))
    return mask


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
    positions = interior_positions(layer, input_size).numel()
    matrix = kernels.double().reshape(positions, -1)
    return Spectrum(torch.linalg.svdvals(matrix), matrix.shape[0], matrix.shape[1])


@dataclass(frozen=True)
class SharingRow:
    """One layer of :func:`sharing_report`.

    Attributes:
        name: qualified module name.
        kind: the ``Connectivity`` kind.
        output_size: spatial output size on the example input.
        snr: :func:`weight_snr` (``inf`` when the interior kernels are equal; ``nan`` when fewer
            than two positions are interior or every tap is zero).
        spectrum: :func:`kernel_spectrum`.
    """

    name: str
    kind: str
    output_size: tuple[int, ...]
    snr: float
    spectrum: Spectrum


def sharing_report(model: nn.Module, input_shape: tuple[int, ...]) -> list[SharingRow]:
    """SNR and spectrum of every sliding layer of ``model`` that is not a convolution.

    One forward pass on zeros of shape ``(1, *input_shape)`` records each layer's input size
    (needed by the kinds that take any size); the layers are reported in the order they run.
    """
    where = "sharing_report"
    x = example_input(model, input_shape, where)
    sizes: dict[str, tuple[nn.Module, tuple[int, ...]]] = {}

    def record(name: str, module: nn.Module, input: torch.Tensor, output: torch.Tensor) -> None:
        try:
            connectivity = Connectivity.of(module)
        except TypeError:
            return
        if connectivity.kind not in ("conv", "dense") and not connectivity.kind.endswith(
            "_transpose"
        ):
            sizes.setdefault(name, (module, tuple(input.shape[-connectivity.d :])))

    run_with_hooks(model, x, record, where)
    rows = []
    for name, (module, size) in sizes.items():
        mask = interior_positions(module, size)
        snr = weight_snr(module, size) if int(mask.sum()) >= 2 else math.nan
        rows.append(
            SharingRow(
                name=name,
                kind=Connectivity.of(module).kind,
                output_size=tuple(mask.shape),
                snr=snr,
                spectrum=kernel_spectrum(module, size),
            )
        )
    return rows
