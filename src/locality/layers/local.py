"""Locally connected layers: a convolution whose every output position has its own kernel."""

from __future__ import annotations

import torch
from torch import fx

from locality._arguments import IntOrTuple, Padding, ntuple, output_size
from locality.functional import locally_connected
from locality.layers._base import _ConnectivityNd

# Traced as one call (the op's checks need concrete tensors), so models of these layers trace.
fx.wrap("locally_connected")


class _LocallyConnectedNd(_ConnectivityNd):
    _kind = "locally_connected"
    _op = staticmethod(locally_connected)  # for subclasses that call the op with other operands
    input_size: tuple[int, ...]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        input_size: IntOrTuple,
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
        self.input_size = ntuple(input_size, self._d, "input_size", where=type(self).__name__)
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
        return self.output_size

    _fixed_size_reason = (
        "a locally connected layer has one kernel per output position, so its input size is "
        "fixed (use TiledConv{d}d or Conv{d}d for inputs of any size)"
    )

    def _fixed_input_size(self) -> tuple[int, ...] | None:
        return self.input_size

    def _apply_op(self, input: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return locally_connected(
            input,
            self.weight,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
        )

    def _repr_fields(self) -> list[str]:
        return [f"input_size={self.input_size}"]


_ARGS_DOC = """
    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: size of each position's kernel (int or tuple).
        input_size: spatial size of the input (int or tuple); fixed, since every output position
            owns its kernel.
        stride: as in ``torch.nn.Conv{d}d``.
        padding: as in ``torch.nn.Conv{d}d``: an int, a tuple, ``"valid"`` or ``"same"``
            (stride 1).
        dilation: as in ``torch.nn.Conv{d}d``.
        groups: as in ``torch.nn.Conv{d}d``.
        bias: add a learnable bias. Default ``True``.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        shared_bias: one bias per output channel shared over positions (Lasagne's
            ``untie_biases=False``) instead of one per output channel and position.

    Shape:
        - Input: ``(N, C_in, {spatial})`` or ``(C_in, {spatial})`` with spatial size ``input_size``.
        - Output: ``(N, C_out, {spatial_out})`` where
          ``out[i] = floor((input_size[i] + 2 * padding[i] - dilation[i] * (kernel_size[i] - 1) - 1)
          / stride[i] + 1)``.

    Attributes:
        weight: ``(*output_size, C_out, C_in // groups, *kernel_size)``; ``weight[p]`` is the
            ``Conv{d}d`` weight used at output position ``p`` (position-major, so the batched
            product over positions reads it without a copy). Initialised from
            ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
            ``fan_in = C_in / groups * prod(kernel_size)``, as ``Conv{d}d``.
        bias: ``(*output_size, C_out)``, or ``(C_out,)`` with ``shared_bias=True``; same init.
        fan_in: ``C_in / groups * prod(kernel_size)``, the inputs one output unit reads. Use it
            for other initialisations: ``torch.nn.init``'s own fan computation misreads the
            position-major weight (Kaiming: ``nn.init.normal_(layer.weight, std=math.sqrt(2 /
            layer.fan_in))``).
        connectivity: the ``locality.Connectivity`` (geometry, bank shape, kernel map);
            ``kernels(output_size)`` gives every output position's kernel.
"""


_SPATIAL = {1: ("L", "L_out"), 2: ("H, W", "H_out, W_out"), 3: ("D, H, W", "D_out, H_out, W_out")}


def _doc(d: int) -> str:
    size = (6,) * d if d > 1 else 6
    return (
        f"Applies a {d}-D locally connected (unshared) convolution over an input signal.\n\n"
        f"    Like ``torch.nn.Conv{d}d``, but each output position has its own kernel: unfold\n"
        f"    the input into patches, multiply the patch at position ``p`` by ``weight[p]``,\n"
        f"    fold.\n"
        + _ARGS_DOC.format(d=d, spatial=_SPATIAL[d][0], spatial_out=_SPATIAL[d][1])
        + "\n    Example::\n\n"
        f"        >>> layer = LocallyConnected{d}d(4, 8, 3, input_size={size})\n"
        f"        >>> layer(torch.randn(2, 4, {', '.join(['6'] * d)})).shape\n"
        f"        torch.Size([2, 8, {', '.join(['4'] * d)}])\n"
    )


class LocallyConnected1d(_LocallyConnectedNd):
    __doc__ = _doc(1)
    _d = 1


class LocallyConnected2d(_LocallyConnectedNd):
    __doc__ = _doc(2)
    _d = 2


class LocallyConnected3d(_LocallyConnectedNd):
    __doc__ = _doc(3)
    _d = 3
