"""The N-d core shared by every connectivity layer: a bank of kernels and a position-to-kernel map.

``weight`` has shape ``(*grid, out_channels, in_channels // groups, *kernel_size)``: position-major,
so that ``weight[p]`` is an ordinary ``Conv*d`` weight, contiguous, and the batched product over
positions reads the whole bank without a copy. Output position ``i`` uses ``weight[i mod grid]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from locality._arguments import (
    IntOrTuple,
    Padding,
    check_channels,
    check_input,
    check_padding_mode,
    fan_in,
    ntuple,
    padding_amounts,
    padding_argument,
)
from locality._memory import check_allocation


class _ConnectivityNd(nn.Module):
    """Holds arguments, parameters and initialisation; subclasses say what the grid is."""

    _op: Callable[..., torch.Tensor]
    _defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros"}

    _d: int  # number of spatial dimensions, set by the public 1d/2d/3d classes
    weight: nn.Parameter
    bias: nn.Parameter | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple,
        padding: Padding,
        dilation: IntOrTuple,
        groups: int,
        bias: bool,
        shared_bias: bool,
        padding_mode: str,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        d = self._d
        where = type(self).__name__
        check_channels(in_channels, out_channels, groups, where)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.kernel_size = ntuple(kernel_size, d, "kernel_size", where=where)
        self.stride = ntuple(stride, d, "stride", where=where)
        self.dilation = ntuple(dilation, d, "dilation", where=where)
        self.padding_mode = check_padding_mode(padding_mode, where)
        # Validates padding (and 'same' with stride > 1) now rather than at the first forward.
        self._pads = padding_amounts(padding, self.kernel_size, self.stride, self.dilation, where)
        self.padding = padding_argument(padding, self._pads)
        self.shared_bias = bool(shared_bias)
        self._allocate(bias, {"device": device, "dtype": dtype})

    def _grid(self) -> tuple[int, ...]:
        """Shape of the kernel bank, from the layer's arguments."""
        raise NotImplementedError

    def _weight_shape(self) -> tuple[int, ...]:
        """(*grid, out_channels, in_channels // groups, *kernel_size): position-major."""
        kernel = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        return (*self._grid(), *kernel)

    def _bias_shape(self) -> tuple[int, ...]:
        """(out_channels,) if shared, else (*grid, out_channels)."""
        return (self.out_channels,) if self.shared_bias else (*self._grid(), self.out_channels)

    def _allocate(self, bias: bool, factory_kwargs: dict) -> None:
        shape = self._weight_shape()
        check_allocation(
            shape, factory_kwargs["dtype"], factory_kwargs["device"], type(self).__name__
        )
        self.weight = nn.Parameter(torch.empty(shape, **factory_kwargs))
        if bias:
            self.bias = nn.Parameter(torch.empty(self._bias_shape(), **factory_kwargs))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, as ``Conv*d`` does.

        ``torch.nn.Conv*d`` uses ``kaiming_uniform_(a=sqrt(5))``, whose bound is
        ``1/sqrt(fan_in)``. The fan-in is computed here from the arguments (in_channels/groups x
        kernel volume): ``nn.init``'s helper would read the grid axes of this position-major weight.
        """
        bound = 1.0 / math.sqrt(fan_in(self.in_channels, self.groups, self.kernel_size))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # The op checks this too; checking here lets the message name the layer.
        check_input(input, self._d, self.in_channels, type(self).__name__)
        return type(self)._op(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.padding_mode,
        )

    def _repr_fields(self) -> list[str]:
        return []

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={self.kernel_size}"]
        parts += self._repr_fields()
        d = len(self.kernel_size)
        for name, default in self._defaults.items():
            value = getattr(self, name)
            if isinstance(default, int) and not isinstance(value, str):
                if value != (default,) * d and value != default:
                    parts.append(f"{name}={value}")
            elif value != default:
                parts.append(f"{name}={value!r}")
        if self.bias is None:
            parts.append("bias=False")
        elif self.shared_bias:
            parts.append("shared_bias=True")
        return ", ".join(parts)
