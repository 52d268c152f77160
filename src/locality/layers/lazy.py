"""Lazy connectivity layers: ``in_channels`` (and ``input_size``) are read from the first input.

As ``torch.nn.LazyConv2d``: parameters start uninitialised and the module becomes its non-lazy
class after the first forward (or a dry run), so it can then be saved, loaded and wrapped in DDP.
A state dict loaded into a lazy layer fixes its sizes too. The sizes are fixed only once the
first input has been accepted: an input the layer refuses leaves it lazy.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from locality._arguments import IntOrTuple, Padding, check_channels, check_input
from locality._memory import check_allocation
from locality.connectivity import Connectivity
from locality.layers._base import _ConnectivityNd
from locality.layers.local import (
    LocallyConnected1d,
    LocallyConnected2d,
    LocallyConnected3d,
    _LocallyConnectedNd,
)
from locality.layers.tiled import TiledConv1d, TiledConv2d, TiledConv3d, _TiledConvNd

__all__ = [
    "LazyLocallyConnected1d",
    "LazyLocallyConnected2d",
    "LazyLocallyConnected3d",
    "LazyTiledConv1d",
    "LazyTiledConv2d",
    "LazyTiledConv3d",
]


class _LazyConnectivity(LazyModuleMixin, _ConnectivityNd):
    """Placeholder parameters until the first input (or a state dict) says the sizes."""

    # torch's stubs declare UninitializedParameter a Tensor; at run time it is a Parameter.
    def _allocate(self, bias: bool, factory_kwargs: dict) -> None:
        self.weight = nn.UninitializedParameter(**factory_kwargs)  # type: ignore[assignment]
        if bias:
            self.bias = nn.UninitializedParameter(**factory_kwargs)  # type: ignore[assignment]
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params():
            super().reset_parameters()

    def _sizes_known(self) -> bool:
        return self.in_channels > 0

    def _check_padding_fits(self, where: str) -> None:
        """Checked when the sizes are known (in ``initialize_parameters``), not before."""

    def _check_padding_fits_now(self) -> None:
        _ConnectivityNd._check_padding_fits(self, type(self).__name__)

    def _unknown(self, what: str) -> ValueError:
        return ValueError(
            f"{type(self).__name__}: {what} is known once the first input (or a loaded state "
            f"dict) has fixed the layer's sizes"
        )

    @property
    def connectivity(self) -> Connectivity:
        if not self._sizes_known():
            raise self._unknown("the connectivity")
        return super().connectivity

    def _inferred_sizes(self, input: torch.Tensor) -> dict[str, Any]:
        """The sizes ``input`` gives, checked (the layer is not changed)."""
        d, where = self._d, type(self).__name__
        if not isinstance(input, torch.Tensor) or input.dim() not in (d + 1, d + 2):
            got = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            raise ValueError(
                f"{where}: expected a {d + 2}-D (batched) or {d + 1}-D (unbatched) input to "
                f"infer in_channels from, got {got}"
            )
        in_channels = int(input.shape[-d - 1])
        check_channels(in_channels, self.out_channels, self.groups, where)
        check_input(input, d, in_channels, where)
        return {"in_channels": in_channels}

    def _set_sizes(self, sizes: dict[str, Any]) -> None:
        for name, value in sizes.items():
            setattr(self, name, value)

    def initialize_parameters(self, input: torch.Tensor) -> None:
        sizes = self._inferred_sizes(input)
        if not self.has_uninitialized_params():
            if not self._sizes_known():  # parameters came from a state dict: sizes still unknown
                self._set_sizes(sizes)
                self._check_loaded_shape()
            return
        previous = {name: getattr(self, name) for name in sizes}
        self._set_sizes(sizes)
        try:
            self._check_padding_fits_now()
            shape = self._weight_shape()
            check_allocation(shape, self.weight.dtype, self.weight.device, type(self).__name__)
        except (ValueError, MemoryError):
            self._set_sizes(previous)  # an input the layer refuses leaves it lazy
            raise
        with torch.no_grad():
            cast(nn.UninitializedParameter, self.weight).materialize(shape)
            if self.bias is not None:
                cast(nn.UninitializedParameter, self.bias).materialize(self._bias_shape())
            self.reset_parameters()

    def _check_loaded_shape(self) -> None:
        expected = self._weight_shape()
        if tuple(self.weight.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}: the loaded weight has shape {tuple(self.weight.shape)}, "
                f"but the first input needs {expected}"
            )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if not self.has_uninitialized_params() and not self._sizes_known():
            self._set_sizes(self._sizes_from_weight(tuple(self.weight.shape)))

    def _sizes_from_weight(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """The sizes a loaded ``weight`` of ``shape`` implies."""
        return {"in_channels": shape[self._d + 1] * self.groups}


class _LazyInputSize(_LazyConnectivity):
    """A lazy layer whose ``input_size`` (fixed once known) also comes from the first input."""

    input_size: tuple[int, ...] | None  # type: ignore[assignment]  # None until the first input

    def _sizes_known(self) -> bool:
        return super()._sizes_known() and self.input_size is not None

    def _fixed_input_size(self) -> tuple[int, ...] | None:
        return self.input_size

    @property
    def output_size(self) -> tuple[int, ...]:
        if self.input_size is None:
            raise self._unknown("output_size")
        return super().output_size  # type: ignore[misc]  # of the layer class it is mixed into

    def _inferred_sizes(self, input: torch.Tensor) -> dict[str, Any]:
        sizes = super()._inferred_sizes(input)
        input_size = tuple(int(n) for n in input.shape[-self._d :])
        self._sliding.output_size(input_size, where=type(self).__name__)
        return {**sizes, "input_size": input_size}


class _LazyLocallyConnectedNd(_LazyInputSize, _LocallyConnectedNd):  # type: ignore[misc]
    def __init__(
        self,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        shared_bias: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        # in_channels=groups and input_size=1 stand in until the first input says them.
        super().__init__(
            in_channels=groups,
            out_channels=out_channels,
            kernel_size=kernel_size,
            input_size=1,
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
        self.in_channels, self.input_size = 0, None

    def _sizes_from_weight(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """With stride 1 the loaded bank (the output size) says the input size; else the first
        input will."""
        sizes = super()._sizes_from_weight(shape)
        if all(s == 1 for s in self.stride):
            sizes["input_size"] = tuple(
                n - 1 + e - lo - hi
                for n, e, (lo, hi) in zip(
                    shape[: self._d], self._sliding.extent, self._pads, strict=True
                )
            )
        return sizes


class _LazyTiledConvNd(_LazyConnectivity, _TiledConvNd):
    def __init__(
        self,
        out_channels: int,
        kernel_size: IntOrTuple,
        tile_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        shared_bias: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        # in_channels=groups stands in until the first input says it.
        super().__init__(
            in_channels=groups,
            out_channels=out_channels,
            kernel_size=kernel_size,
            tile_size=tile_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            shared_bias=shared_bias,
            device=device,
            dtype=dtype,
        )
        self.in_channels = 0


_LOCAL_DOC = """A ``LocallyConnected{d}d`` that takes ``in_channels`` and ``input_size`` from input.

    Takes the arguments of ``LocallyConnected{d}d`` except those two, and becomes a
    ``LocallyConnected{d}d`` after the first forward pass (or after ``load_state_dict``).
    ``output_size`` and ``connectivity`` raise a ValueError until then.

    Example::

        >>> layer = LazyLocallyConnected{d}d(8, 3)
        >>> layer(torch.randn(2, 4, {size})).shape
        torch.Size([2, 8, {out}])
        >>> type(layer).__name__, layer.input_size
        ('LocallyConnected{d}d', {input_size})
    """

_TILED_DOC = """A ``TiledConv{d}d`` whose ``in_channels`` comes from the first input.

    Takes the arguments of ``TiledConv{d}d`` except ``in_channels``, and becomes a
    ``TiledConv{d}d`` after the first forward pass (or after ``load_state_dict``).

    Example::

        >>> layer = LazyTiledConv{d}d(8, 3, tile_size=2, padding=1)
        >>> layer(torch.randn(2, 4, {size})).shape
        torch.Size([2, 8, {size}])
        >>> type(layer).__name__, layer.in_channels
        ('TiledConv{d}d', 4)
    """


def _doc(template: str, d: int) -> str:
    return template.format(
        d=d,
        size=", ".join(["6"] * d),
        out=", ".join(["4"] * d),
        input_size=(6,) * d,
    )


class LazyLocallyConnected1d(_LazyLocallyConnectedNd):
    __doc__ = _doc(_LOCAL_DOC, 1)
    _d = 1
    cls_to_become = LocallyConnected1d


class LazyLocallyConnected2d(_LazyLocallyConnectedNd):
    __doc__ = _doc(_LOCAL_DOC, 2)
    _d = 2
    cls_to_become = LocallyConnected2d


class LazyLocallyConnected3d(_LazyLocallyConnectedNd):
    __doc__ = _doc(_LOCAL_DOC, 3)
    _d = 3
    cls_to_become = LocallyConnected3d


class LazyTiledConv1d(_LazyTiledConvNd):
    __doc__ = _doc(_TILED_DOC, 1)
    _d = 1
    cls_to_become = TiledConv1d


class LazyTiledConv2d(_LazyTiledConvNd):
    __doc__ = _doc(_TILED_DOC, 2)
    _d = 2
    cls_to_become = TiledConv2d


class LazyTiledConv3d(_LazyTiledConvNd):
    __doc__ = _doc(_TILED_DOC, 3)
    _d = 3
    cls_to_become = TiledConv3d
