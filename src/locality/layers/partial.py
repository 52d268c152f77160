"""Partial convolution (Liu et al., ECCV 2018): layers that see only the valid pixels of an input.

"Image Inpainting for Irregular Holes Using Partial Convolutions", Liu, Reda, Shih, Wang, Tao and
Catanzaro. With a binary mask ``M`` (1 = valid), every output window is renormalised by the
fraction of valid inputs it covers, and the mask is updated: a position becomes valid as soon as
its window saw one valid input. The mechanism depends only on the window, not on how kernels are
shared, so it is one mixin, ``_PartialMixin``, over any layer of this library whose op takes
``(input, weight, bias, ...)``: ``torch.nn.Conv*d`` (``PartialConv*d``), tiled
(``PartialTiledConv*d``) and locally connected (``PartialLocallyConnected*d``) layers.

Memory: the window sums of the mask come from one convolution of the mask with a single-output
kernel of ones; the ratio and the updated mask stay one channel wide and broadcast over the output
channels (the reference code materialises both for every output channel). The layer keeps no
state between calls: ``forward(input)`` after ``forward(input, mask)`` is a fresh all-ones call.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from locality._arguments import check_input, padding_amounts
from locality.connectivity import Connectivity
from locality.functional import pad_input
from locality.layers.local import LocallyConnected1d, LocallyConnected2d, LocallyConnected3d
from locality.layers.region import RegionConv1d, RegionConv2d, RegionConv3d
from locality.layers.tiled import TiledConv1d, TiledConv2d, TiledConv3d

__all__ = [
    "PartialConv1d",
    "PartialConv2d",
    "PartialConv3d",
    "PartialTiledConv1d",
    "PartialTiledConv2d",
    "PartialTiledConv3d",
    "PartialLocallyConnected1d",
    "PartialLocallyConnected2d",
    "PartialLocallyConnected3d",
    "PartialRegionConv1d",
    "PartialRegionConv2d",
    "PartialRegionConv3d",
]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class _PartialMixin(nn.Module):
    """The partial mechanism over a layer's own op; the layer class comes after it in the MRO.

    The layer provides ``in_channels``, ``out_channels``, ``kernel_size``, ``stride``,
    ``padding``, ``dilation``, ``groups``, ``padding_mode``, ``weight`` and ``bias``; a subclass
    says how to run the layer's op without its bias (``_weighted_sum``) and where each output
    position's bias comes from (``_bias_map``).
    """

    _d: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Any
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str
    weight: nn.Parameter
    bias: nn.Parameter | None

    def __init__(
        self, *args: Any, multi_channel: bool = False, return_mask: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        where = type(self).__name__
        for name, value in (("multi_channel", multi_channel), ("return_mask", return_mask)):
            if not isinstance(value, bool):
                raise TypeError(f"{where}: {name} must be a bool, got {type(value).__name__}")
        if self.padding_mode != "zeros":
            raise ValueError(
                f"{where}: padding_mode must be 'zeros' (the paper pads the mask with holes; "
                f"other modes would invent valid pixels), got {self.padding_mode!r}"
            )
        if multi_channel and self.groups != 1:
            raise ValueError(
                f"{where}: multi_channel=True needs groups=1 (the paper's window counts every "
                f"input channel, which a grouped layer does not see), got groups={self.groups}"
            )
        self.multi_channel = multi_channel
        self.return_mask = return_mask

    def _weighted_sum(self, input: torch.Tensor) -> torch.Tensor:
        """The layer's op on a batched ``input`` without the bias: ``W^T X`` per window."""
        raise NotImplementedError

    def _bias_map(self, out_size: tuple[int, ...]) -> torch.Tensor:
        """The bias at every output position, broadcastable to ``(1, out_channels, *out_size)``.

        A bias of shape ``(out_channels,)`` is shared; one of shape ``(*bank, out_channels)``
        follows the layer's kernel map (``connectivity.per_position``), whatever the kind.
        """
        assert self.bias is not None
        if self.bias.dim() == 1:
            return self.bias.view(1, -1, *(1,) * self._d)
        per_position = Connectivity.of(self).per_position(self.bias, out_size)
        return per_position.movedim(-1, 0).unsqueeze(0)

    def _check_mask(self, mask: object, input: torch.Tensor, unbatched: bool) -> torch.Tensor:
        """``mask`` batched, in the input's dtype, detached; a ValueError for anything else."""
        where = type(self).__name__
        channels = self.in_channels if self.multi_channel else 1
        expected = f"(N or 1, {channels}, *spatial) with spatial {tuple(input.shape[2:])}"
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"{where}: mask must be a torch.Tensor or None, got {type(mask)}")
        if mask.dim() != input.dim() - unbatched:
            raise ValueError(
                f"{where}: mask must have the input's {input.dim() - unbatched} dims {expected}, "
                f"got shape {tuple(mask.shape)}"
            )
        if unbatched:
            mask = mask.unsqueeze(0)
        if mask.shape[1] != channels:
            hint = (
                "multi_channel=True masks have one channel per input channel"
                if self.multi_channel
                else "multi_channel=False masks have one channel shared by all input channels"
            )
            raise ValueError(
                f"{where}: mask must have {channels} channel(s) ({hint}), got shape "
                f"{tuple(mask.shape)}"
            )
        if mask.shape[0] not in (1, input.shape[0]):
            raise ValueError(
                f"{where}: mask batch must be 1 or the input's {input.shape[0]}, got shape "
                f"{tuple(mask.shape)}"
            )
        if mask.shape[2:] != input.shape[2:]:
            raise ValueError(
                f"{where}: mask spatial size must equal the input's {tuple(input.shape[2:])}, got "
                f"shape {tuple(mask.shape)}"
            )
        if mask.device != input.device:
            raise ValueError(f"{where}: mask is on {mask.device} but input is on {input.device}")
        mask = mask.detach()
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(
                f"{where}: mask must be binary (0 = hole, 1 = valid); got values other than 0 "
                f"and 1 (min {mask.min().item()}, max {mask.max().item()})"
            )
        return mask.to(input.dtype)

    def forward(
        self, input: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        where = type(self).__name__
        batched, unbatched = check_input(input, self._d, self.in_channels, where)
        channels = self.in_channels if self.multi_channel else 1
        if mask is None:
            valid = batched.new_ones(1, channels, *batched.shape[2:])
            masked = batched
        else:
            valid = self._check_mask(mask, batched, unbatched)
            masked = batched * valid
        # sum(M) per window: one output channel; with multi_channel its kernel spans every channel.
        ones = valid.new_ones(1, channels, *self.kernel_size)
        pads = padding_amounts(self.padding, self.kernel_size, self.stride, self.dilation, where)
        if all(before == after for before, after in pads):  # no padded copy of the mask
            padding, padded = tuple(before for before, _ in pads), valid
        else:
            padding, padded = (0,) * self._d, pad_input(valid, pads, "zeros", where=where)
        counts = _CONV[self._d](
            padded, ones, stride=self.stride, padding=padding, dilation=self.dilation
        )
        # The sums are integers: rounding keeps a fast (Winograd-like) algorithm from blurring them.
        counts = counts.round_()
        updated = (counts > 0).to(valid.dtype)
        # sum(1) / sum(M) where sum(M) > 0, else 0; sum(1) counts the window's channels too.
        ratio = counts.clamp_(min=1).reciprocal_().mul_(channels * math.prod(self.kernel_size))
        ratio = ratio.mul_(updated)
        out = self._weighted_sum(masked).mul_(ratio)
        if self.bias is not None:
            out = out.addcmul_(self._bias_map(tuple(out.shape[2:])), updated)
        if not self.return_mask:
            return out.squeeze(0) if unbatched else out
        mask_channels = self.out_channels if self.multi_channel else 1
        new_mask = updated.expand(out.shape[0], mask_channels, *out.shape[2:])
        if unbatched:
            return out.squeeze(0), new_mask.squeeze(0)
        return out, new_mask

    def extra_repr(self) -> str:
        parts = [super().extra_repr()]
        if self.multi_channel:
            parts.append("multi_channel=True")
        if self.return_mask:
            parts.append("return_mask=True")
        return ", ".join(parts)


class _PartialConvNd(_PartialMixin):
    """Over ``torch.nn.Conv*d``: the same parameters, so checkpoints load strictly both ways."""

    def _weighted_sum(self, input: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(input, self.weight, None)  # type: ignore[operator]


class _PartialConnectivityNd(_PartialMixin):
    """Over this library's layers, through their functional op."""

    _apply_op: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]

    def _weighted_sum(self, input: torch.Tensor) -> torch.Tensor:
        return self._apply_op(input, None)


class PartialConv1d(_PartialConvNd, nn.Conv1d):  # type: ignore[misc]
    _d = 1


class PartialConv2d(_PartialConvNd, nn.Conv2d):  # type: ignore[misc]
    _d = 2


class PartialConv3d(_PartialConvNd, nn.Conv3d):  # type: ignore[misc]
    _d = 3


class PartialTiledConv1d(_PartialConnectivityNd, TiledConv1d):  # type: ignore[misc]
    _d = 1


class PartialTiledConv2d(_PartialConnectivityNd, TiledConv2d):  # type: ignore[misc]
    _d = 2


class PartialTiledConv3d(_PartialConnectivityNd, TiledConv3d):  # type: ignore[misc]
    _d = 3


class PartialLocallyConnected1d(_PartialConnectivityNd, LocallyConnected1d):  # type: ignore[misc]
    _d = 1


class PartialLocallyConnected2d(_PartialConnectivityNd, LocallyConnected2d):  # type: ignore[misc]
    _d = 2


class PartialLocallyConnected3d(_PartialConnectivityNd, LocallyConnected3d):  # type: ignore[misc]
    _d = 3


class PartialRegionConv1d(_PartialConnectivityNd, RegionConv1d):  # type: ignore[misc]
    _d = 1


class PartialRegionConv2d(_PartialConnectivityNd, RegionConv2d):  # type: ignore[misc]
    _d = 2


class PartialRegionConv3d(_PartialConnectivityNd, RegionConv3d):  # type: ignore[misc]
    _d = 3


def _signature(base: type) -> inspect.Signature:
    """``base``'s constructor arguments plus the two keyword-only partial ones."""
    parameters = [
        parameter
        for parameter in inspect.signature(base).parameters.values()
        if parameter.kind != inspect.Parameter.VAR_KEYWORD
    ]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool")
        for name in ("multi_channel", "return_mask")
    ]
    return inspect.Signature(parameters + extra)


_SPATIAL = {1: ("L", "L_out"), 2: ("H, W", "H_out, W_out"), 3: ("D, H, W", "D_out, H_out, W_out")}
_KINDS = {
    "Conv": ("torch.nn.Conv{d}d", "", (PartialConv1d, PartialConv2d, PartialConv3d)),
    "TiledConv": (
        "locality.TiledConv{d}d",
        "tile_size=2, ",
        (PartialTiledConv1d, PartialTiledConv2d, PartialTiledConv3d),
    ),
    "LocallyConnected": (
        "locality.LocallyConnected{d}d",
        "input_size=8, ",
        (PartialLocallyConnected1d, PartialLocallyConnected2d, PartialLocallyConnected3d),
    ),
    "RegionConv": (
        "locality.RegionConv{d}d",
        "input_size=8, regions=2, ",
        (PartialRegionConv1d, PartialRegionConv2d, PartialRegionConv3d),
    ),
}
for _kind, (_base_name, _kind_argument, _classes) in _KINDS.items():
    for _d, _cls in enumerate(_classes, start=1):
        _base = _base_name.format(d=_d)
        _size = ", ".join(["8"] * _d)
        _cls.__signature__ = _signature(_cls.__bases__[1])  # type: ignore[attr-defined]
        _cls.__doc__ = f"""Applies a {_d}-D partial {_kind}: only valid inputs count.

    With a binary mask ``M`` (1 = valid, 0 = hole), per output window::

        out = W^T (X * M) * sum(1) / sum(M) + b    if sum(M) > 0,    else 0

    and the updated mask is 1 where ``sum(M) > 0``, else 0. ``sum(1)`` is the window's volume:
    ``prod(kernel_size)``, times ``in_channels`` with ``multi_channel=True``. Zero padding pads
    the mask with holes, so an all-ones mask equals ``{_base}`` away from the border (and
    everywhere with ``padding=0``). ``mask=None`` means all ones. Nothing is cached between calls.

    Args:
        *args, **kwargs: those of ``{_base}`` (``padding_mode`` must be ``"zeros"``).
        multi_channel: the mask has one channel per input channel (``True``) or one channel
            shared by all of them (``False``, default). ``True`` needs ``groups=1``.
        return_mask: also return the updated mask. Default ``False``.

    Shape:
        - Input: ``(N, C_in, {_SPATIAL[_d][0]})`` or unbatched ``(C_in, {_SPATIAL[_d][0]})``.
        - Mask: ``(N or 1, C_in or 1, {_SPATIAL[_d][0]})`` (unbatched: without ``N``), binary.
        - Output: ``(N, C_out, {_SPATIAL[_d][1]})``, sizes as for ``{_base}``.
        - Updated mask (``return_mask=True``): ``(N, 1, {_SPATIAL[_d][1]})``, or ``C_out`` equal
          channels (an expanded view) with ``multi_channel=True``.

    Attributes:
        weight, bias: exactly those of ``{_base}``, so ``state_dict()`` loads strictly to and
            from it (and from the reference code's ``PartialConv2d``).

    Example::

        >>> layer = Partial{_kind}{_d}d(3, 8, 3, {_kind_argument}padding=1, return_mask=True)
        >>> image = torch.randn(2, 3, {_size})
        >>> mask = (torch.rand(2, 1, {_size}) > 0.3).float()
        >>> out, new_mask = layer(image, mask)
        >>> out.shape, new_mask.shape
        (torch.Size([2, 8, {_size}]), torch.Size([2, 1, {_size}]))
"""
