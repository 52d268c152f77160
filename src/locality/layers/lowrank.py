"""Low-rank locally connected layers (Elsayed, Ramachandran, Shlens and Kornblith, ICML 2020).

"Revisiting Spatial Invariance with Low-Rank Local Connectivity": each position's kernel is a
position-dependent mix of ``rank`` basis kernels, ``W_p = sum_k a[p, k] B_k``, with
``a[p] = softmax(combining_weights[p])`` by default. Between a convolution (rank 1) and a locally
connected layer (rank = positions, one-hot mixes); computed as one convolution with
``rank * C_out`` channels and a per-position mix.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import fx, nn

from locality._arguments import IntOrTuple, Padding, check_flag, check_int, ntuple, output_size
from locality.connectivity import Connectivity, KernelMap, Soft
from locality.functional import lowrank_locally_connected
from locality.layers._base import _ConnectivityNd

# Traced as one call (the op's checks need concrete tensors), so models of these layers trace.
fx.wrap("lowrank_locally_connected")

NORMALIZATIONS = ("softmax", None)


@dataclasses.dataclass(frozen=True, eq=False)
class FactorizedSoft(Soft):
    """A soft map whose mixes come from fewer learned numbers (``learned``): the factorised
    combining weights, one row of logits per coordinate of each dimension."""

    learned: int = 0

    def extra_parameters(self) -> int:
        return self.learned


class _LowRankLocallyConnectedNd(_ConnectivityNd):
    _kind = "lowrank"
    input_size: tuple[int, ...]
    combining_weights: nn.Parameter

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        input_size: IntOrTuple,
        rank: int,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        shared_bias: bool = False,
        normalize: str | None = "softmax",
        device=None,
        dtype=None,
        factorized: bool = False,
    ) -> None:
        where = type(self).__name__
        check_flag(factorized, "factorized", where)
        self.factorized = factorized
        self.input_size = ntuple(input_size, self._d, "input_size", where=where)
        self.rank = check_int(rank, "rank", where)
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"{where}: normalize must be 'softmax' or None, got {normalize!r}")
        self.normalize = normalize
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            shared_bias=shared_bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )

    @property
    def output_size(self) -> tuple[int, ...]:
        """Spatial size of the output, fixed by ``input_size``."""
        return output_size(
            self.input_size,
            self.kernel_size,
            self.stride,
            self._pads,
            self.dilation,
            where=type(self).__name__,
        )

    def _bank_shape(self) -> tuple[int, ...]:
        return (self.rank,)

    def _bias_shape(self) -> tuple[int, ...]:
        """(out_channels,) if shared, else (*output_size, out_channels): as a locally connected
        layer's, since the mixed kernels differ at every position."""
        if self.shared_bias:
            return (self.out_channels,)
        return (*self.output_size, self.out_channels)

    def _combining_shape(self) -> tuple[int, ...]:
        """``(*output_size, rank)``, or ``(sum(output_size), rank)`` factorised: one row of
        logits per coordinate of each dimension, concatenated."""
        if self.factorized:
            return (sum(self.output_size), self.rank)
        return (*self.output_size, self.rank)

    def _allocate(self, bias: bool, factory_kwargs: dict) -> None:
        shape = self._combining_shape()
        self.combining_weights = nn.Parameter(torch.empty(shape, **factory_kwargs))
        super()._allocate(bias, factory_kwargs)

    def reset_parameters(self) -> None:
        """The basis bank and bias as ``Conv*d``'s; the mixes, as the paper, all equal: logits
        zero with softmax, ``1 / rank`` without, so that every position's kernel is the mean
        basis kernel (the layer starts as a convolution)."""
        super().reset_parameters()
        terms = self._d if self.factorized else 1  # factorised logits are summed over dims
        with torch.no_grad():
            value = 0.0 if self.normalize == "softmax" else 1.0 / (self.rank * terms)
            self.combining_weights.fill_(value)

    def _logits(self) -> torch.Tensor:
        """``(*output_size, rank)``; factorised, ``row[i] + column[j]`` (per dimension, summed)."""
        if not self.factorized:
            return self.combining_weights
        out, d = self.output_size, self._d
        parts = self.combining_weights.split(out)
        shapes = [[n if i == j else 1 for i, n in enumerate(out)] + [self.rank] for j in range(d)]
        return sum(
            (part.view(shape) for part, shape in zip(parts, shapes, strict=True)),
            torch.zeros((*out, self.rank), dtype=parts[0].dtype, device=parts[0].device),
        )

    def mixing(self) -> torch.Tensor:
        """``(*output_size, rank)``: the mix of basis kernels at each position."""
        if self.normalize == "softmax":
            return torch.softmax(self._logits(), dim=-1)
        return self._logits()

    def _kernel_map(self) -> KernelMap:
        if self.factorized:
            return FactorizedSoft(self.mixing().detach(), self.combining_weights.numel())
        return Soft(self.mixing().detach())

    @property
    def connectivity(self) -> Connectivity:
        """The basis bank, the soft map of the mixes, and the per-position bias."""
        return dataclasses.replace(super().connectivity, bias_shape=self._bias_shape())

    _fixed_size_reason = "the mixes are per output position, so the input size is fixed"

    def _fixed_input_size(self) -> tuple[int, ...] | None:
        return self.input_size

    def _apply_op(self, input: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return lowrank_locally_connected(
            input,
            self.weight,
            self.mixing(),
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
        )

    def kernels(self, output_size=None) -> torch.Tensor:
        """``sum_k mixing[p, k] * weight[k]`` at every position ``p``:
        ``(*output_size, C_out, C_in // groups, *k)``, differentiable in both."""
        size = self._sliding_output(output_size)
        flat = self.weight.reshape(self.rank, -1)
        mixed = self.mixing().reshape(-1, self.rank) @ flat
        return mixed.reshape(*size, *self.weight.shape[1:])

    def _sliding_output(self, output_size) -> tuple[int, ...]:
        if output_size is not None and tuple(output_size) != self.output_size:
            raise ValueError(
                f"{type(self).__name__}.kernels: the output size is fixed at {self.output_size}, "
                f"got output_size {tuple(output_size)}"
            )
        return self.output_size

    def _repr_fields(self) -> list[str]:
        fields = [f"input_size={self.input_size}", f"rank={self.rank}"]
        fields += [f"normalize={self.normalize!r}"] if self.normalize != "softmax" else []
        return fields + (["factorized=True"] if self.factorized else [])


class LowRankLocallyConnected1d(_LowRankLocallyConnectedNd):
    _d = 1


class LowRankLocallyConnected2d(_LowRankLocallyConnectedNd):
    _d = 2


class LowRankLocallyConnected3d(_LowRankLocallyConnectedNd):
    _d = 3


_SPATIAL = {1: ("L", "L_out"), 2: ("H, W", "H_out, W_out"), 3: ("D, H, W", "D_out, H_out, W_out")}
for _d, _cls in (
    (1, LowRankLocallyConnected1d),
    (2, LowRankLocallyConnected2d),
    (3, LowRankLocallyConnected3d),
):
    _cls.__doc__ = f"""Applies a {_d}-D low-rank locally connected layer (Elsayed et al., 2020).

    Each output position ``p`` has its own kernel, a mix of ``rank`` basis kernels:

    .. math::
        W_p = \\sum_k a[p, k]\\, B_k, \\qquad
        a[p] = \\mathrm{{softmax}}(\\text{{combining\\_weights}}[p])

    (``normalize=None``: ``a[p] = combining_weights[p]`` as is). Computed as one
    ``Conv{_d}d`` with ``rank * C_out`` output channels and a per-position mix, so it costs about
    ``rank`` convolutions; no unfold.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: size of each kernel (int or tuple).
        input_size: spatial size of the input (int or tuple); fixed, since the mixes are per
            output position.
        rank: number of basis kernels ``K``.
        stride: as in ``torch.nn.Conv{_d}d``.
        padding: an int, a tuple of ints or ``(before, after)`` pairs, ``"valid"`` or ``"same"``.
        dilation: as in ``torch.nn.Conv{_d}d``.
        groups: as in ``torch.nn.Conv{_d}d``.
        bias: add a learnable bias. Default ``True``.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        shared_bias: one bias per output channel instead of one per channel and position.
        normalize: ``"softmax"`` (default, as the paper) or ``None``.
        factorized: the paper's spatially factorised combining weights: the logits at ``p`` are
            the sum over dimensions of one row per coordinate (row + column in 2-D), so
            ``combining_weights`` is ``(sum(output_size), rank)``. Default ``False``.

    Shape:
        - Input: ``(N, C_in, {_SPATIAL[_d][0]})`` or ``(C_in, {_SPATIAL[_d][0]})``, spatial size
          ``input_size``.
        - Output: ``(N, C_out, {_SPATIAL[_d][1]})``, the ``torch.nn.Conv{_d}d`` output size.

    Attributes:
        weight: the basis bank ``(rank, C_out, C_in // groups, *kernel_size)``, initialised as
            ``Conv{_d}d``'s weight.
        combining_weights: ``(*output_size, rank)``; zero logits with softmax, ``1 / rank``
            with ``normalize=None``: at initialisation every position uses the mean basis
            kernel, a convolution.
        bias: ``(*output_size, C_out)``, or ``(C_out,)`` with ``shared_bias=True``.

    Example::

        >>> layer = LowRankLocallyConnected{_d}d(4, 8, 3, input_size={(6,) * _d}, rank=2)
        >>> layer(torch.randn(2, 4, {", ".join(["6"] * _d)})).shape
        torch.Size([2, 8, {", ".join(["4"] * _d)}])
"""
