"""The N-d core shared by every connectivity layer: a bank of kernels and a position-to-kernel map.

``weight`` has shape ``(*bank_shape, out_channels, in_channels // groups, *kernel_size)``:
position-major, so that ``weight[p]`` is an ordinary ``Conv*d`` weight, contiguous, and the
batched product over positions reads the whole bank without a copy. Which kernel an output
position uses is the layer's ``connectivity`` (a ``locality.Connectivity``); a subclass names its
kind (``_kind``), says its bank shape (``_bank_shape``) and, when the map is not periodic
(position ``i`` uses ``weight[i mod bank_shape]``), its map (``_kernel_map``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import fx, nn

from locality._arguments import (
    IntOrTuple,
    Padding,
    check_channels,
    check_input,
    check_padding_mode,
    ntuple,
    padding_amounts,
    padding_argument,
)
from locality._arguments import fan_in as count_fan_in
from locality._memory import check_allocation
from locality.connectivity import Connectivity, KernelMap, Periodic
from locality.geometry import Sliding


class _ConnectivityNd(nn.Module):
    """Holds arguments, parameters and initialisation; subclasses say what the bank is."""

    _kind: ClassVar[str]  # one of locality.connectivity.KINDS
    _defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros"}

    _d: int  # number of spatial dimensions, set by the public 1d/2d/3d classes
    weight: nn.Parameter
    bias: nn.Parameter | None

    def __init__(
        self,
        *,
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
        # ints, as torch.nn.Conv2d keeps them, also when NumPy integers came
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.groups = int(groups)
        self.kernel_size = ntuple(kernel_size, d, "kernel_size", where=where)
        self.stride = ntuple(stride, d, "stride", where=where)
        self.dilation = ntuple(dilation, d, "dilation", where=where)
        self.padding_mode = check_padding_mode(padding_mode, where)
        # Validates padding (and 'same' with stride > 1) now rather than at the first forward.
        self._pads = padding_amounts(padding, self.kernel_size, self.stride, self.dilation, where)
        self.padding = padding_argument(padding, self._pads)
        self.shared_bias = bool(shared_bias)
        self._check_padding_fits(where)
        self._allocate(bias, {"device": device, "dtype": dtype})

    @property
    def padding_amounts(self) -> tuple[tuple[int, int], ...]:
        """Zero (or ``padding_mode``) padding per spatial dimension as ``(before, after)`` pairs.

        What ``padding`` means in elements: ``"same"`` puts the odd extra element after, as
        ``torch.nn.Conv*d`` does.
        """
        return self._pads

    def _check_padding_fits(self, where: str) -> None:
        """A kind with a fixed input size refuses, now, a padding its every forward would refuse."""
        size = self._fixed_input_size()
        if size is None:
            return
        for dim, ((lo, hi), n) in enumerate(zip(self._pads, size, strict=True)):
            if self.padding_mode == "reflect" and max(lo, hi) >= n:
                raise ValueError(
                    f"{where}: padding_mode='reflect' needs padding smaller than the input size, "
                    f"got padding ({lo}, {hi}) for input_size {n} in spatial dimension {dim}"
                )
            if self.padding_mode == "circular" and max(lo, hi) > n:
                raise ValueError(
                    f"{where}: padding_mode='circular' needs padding no larger than the input "
                    f"size, got padding ({lo}, {hi}) for input_size {n} in spatial dimension {dim}"
                )

    def _bank_shape(self) -> tuple[int, ...]:
        """Leading dimensions of the kernel bank, from the layer's arguments."""
        raise NotImplementedError

    def _kernel_map(self) -> KernelMap:
        """Which kernel each output position uses; periodic unless a kind says otherwise."""
        return Periodic()

    def _fixed_input_size(self) -> tuple[int, ...] | None:
        """The one input size a kind works on, or ``None`` for any."""
        return None

    @property
    def _sliding(self) -> Sliding:
        return Sliding(self.kernel_size, self.stride, self._pads, self.dilation)

    @property
    def connectivity(self) -> Connectivity:
        """Geometry, kernel-bank shape and position -> kernel map (a ``locality.Connectivity``)."""
        return Connectivity(
            kind=self._kind,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self._pads,
            dilation=self.dilation,
            bank_shape=self._bank_shape(),
            groups=self.groups,
            padding_mode=self.padding_mode,
            map=self._kernel_map(),
            input_size=self._fixed_input_size(),
            bias=self.bias is not None,
            shared_bias=self.shared_bias,
        )

    def kernels(self, output_size: Sequence[int] | None = None) -> torch.Tensor:
        """The kernel of every output position: ``(*output_size, C_out, C_in // groups, *k)``.

        A view of ``weight`` where no copy is needed. ``output_size`` (spatial) is needed for the
        kinds that work on any input size.
        """
        return self.connectivity.per_position(self.weight, output_size)

    @property
    def fan_in(self) -> int:
        """Inputs read by one output unit: ``in_channels / groups * prod(kernel_size)``.

        ``torch.nn.init``'s fan computation reads the position-major weight's leading (bank)
        dimensions as channels and gets it wrong; pass this instead, e.g.
        ``nn.init.normal_(layer.weight, std=math.sqrt(2 / layer.fan_in))`` for Kaiming
        initialisation.
        """
        return count_fan_in(self.in_channels, self.groups, self.kernel_size)

    def _weight_shape(self) -> tuple[int, ...]:
        """(*bank_shape, out_channels, in_channels // groups, *kernel_size): position-major."""
        kernel = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        return (*self._bank_shape(), *kernel)

    def _bias_shape(self) -> tuple[int, ...]:
        """(out_channels,) if shared, else (*bank_shape, out_channels)."""
        if self.shared_bias:
            return (self.out_channels,)
        return (*self._bank_shape(), self.out_channels)

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
        bound = 1.0 / math.sqrt(self.fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # Under torch.fx tracing the input is a Proxy: the op is recorded, checked when it runs.
        if not isinstance(input, fx.Proxy):
            self._check_input(input)
        return self._apply_op(input, self.bias)

    #: Why a kind's input size is fixed, closing the message that refuses another size
    #: (``{d}``: the number of spatial dimensions).
    _fixed_size_reason = "so its input size is fixed"

    def _required_input_size(self) -> tuple[int, ...] | None:
        """The one spatial input size :meth:`forward` accepts, or ``None`` for any."""
        return self._fixed_input_size()

    def _check_input(self, input: torch.Tensor) -> None:
        """Refuse an input this layer cannot take, naming the layer (the op would name itself)."""
        where = type(self).__name__
        check_input(input, self._d, self.in_channels, where)
        required = self._required_input_size()
        if required is None:
            return
        spatial = tuple(input.shape[-self._d :])
        if spatial != required:
            raise ValueError(
                f"{where}: expected input of spatial size {required}, got {spatial} (input "
                f"shape {tuple(input.shape)}); {self._fixed_size_reason.format(d=self._d)}"
            )

    def _apply_op(self, input: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The functional op with ``bias`` (the layer's, or ``None``), called by a name that
        ``torch.fx.wrap`` records as one node."""
        raise NotImplementedError

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
