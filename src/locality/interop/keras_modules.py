"""Small modules that give Keras layers' meaning to channels-first PyTorch tensors.

A Keras tensor of rank >= 3 is ``(batch, *spatial, channels)``; the module built from it holds
``(batch, channels, *spatial)``. Rank-2 tensors are the same in both. ``to_keras`` and
``from_keras`` move between the two, so that operations defined on Keras' element order
(``Flatten``, ``Reshape``, ``Permute``) are done on that order inside the module, and the result is
right wherever it goes (an output, a concatenation, a dense layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "to_keras",
    "from_keras",
    "KerasReshape",
    "KerasPermute",
    "AxisMoved",
    "Concatenate",
    "Add",
    "Crop",
    "GlobalPool",
    "AveragePoolSame",
    "HardSigmoid",
    "Exponential",
    "constant_pad",
    "is_padding",
]


def to_keras(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, *spatial) -> (N, *spatial, C)``; rank-2 tensors unchanged."""
    return x.movedim(1, -1) if x.dim() >= 3 else x


def from_keras(x: torch.Tensor) -> torch.Tensor:
    """``(N, *spatial, C) -> (N, C, *spatial)``; rank-2 tensors unchanged."""
    return x.movedim(-1, 1) if x.dim() >= 3 else x


class KerasReshape(nn.Module):
    """Keras ``Reshape(target_shape)`` (and ``Flatten``, ``target_shape=(-1,)``) in Keras' order.

    Shape:
        - Input: ``(N, C, *spatial)`` (the module's layout of a Keras tensor).
        - Output: the module's layout of the Keras tensor ``(N, *target_shape)``.
    """

    def __init__(self, target_shape: Sequence[int], channels_first: bool = False) -> None:
        super().__init__()
        self.target_shape = tuple(int(s) for s in target_shape)
        self.channels_first = channels_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keras = to_keras(x)
        if self.channels_first and keras.dim() >= 3:  # Flatten(data_format="channels_first")
            keras = keras.movedim(1, -1)
        return from_keras(keras.reshape(keras.shape[0], *self.target_shape))

    def extra_repr(self) -> str:
        return f"target_shape={self.target_shape}" + (
            ", channels_first=True" if self.channels_first else ""
        )


class KerasPermute(nn.Module):
    """Keras ``Permute(dims)`` (1-based axes of the Keras tensor, batch excluded)."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = tuple(int(d) for d in dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_keras(to_keras(x).permute(0, *self.dims))

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class AxisMoved(nn.Module):
    """Apply ``module`` with axis ``source`` of the input moved to ``destination``, then back.

    ``AxisMoved(nn.Linear(...), 1, -1)`` is a Keras ``Dense`` on a rank >= 3 tensor (it acts on
    the channels); ``AxisMoved(conv, 1, -1)`` runs a channels-first Keras layer.
    """

    def __init__(self, module: nn.Module, source: int, destination: int) -> None:
        super().__init__()
        self.module = module
        self.source = source
        self.destination = destination

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x.movedim(self.source, self.destination))
        return y.movedim(self.destination, self.source)

    def extra_repr(self) -> str:
        return f"source={self.source}, destination={self.destination}"


class Concatenate(nn.Module):
    """``torch.cat`` of the inputs along ``dim`` (Keras ``Concatenate``, axis already mapped)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Add(nn.Module):
    """The sum of the inputs (Keras ``Add``)."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total


class Crop(nn.Module):
    """Remove ``(before, after)`` elements from each spatial dimension (Keras ``Cropping``)."""

    def __init__(self, amounts: Sequence[tuple[int, int]]) -> None:
        super().__init__()
        self.amounts = tuple((int(b), int(a)) for b, a in amounts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = [slice(None), slice(None)]
        index += [slice(b, x.shape[2 + i] - a) for i, (b, a) in enumerate(self.amounts)]
        return x[tuple(index)]

    def extra_repr(self) -> str:
        return f"amounts={self.amounts}"


class GlobalPool(nn.Module):
    """Mean or max over all spatial dimensions (Keras ``GlobalAverage/MaxPooling``).

    Shape:
        - Input: ``(N, C, *spatial)``.
        - Output: ``(N, C)``, or ``(N, C, 1, ...)`` with ``keepdims=True``.
    """

    def __init__(self, mode: str, keepdims: bool = False) -> None:
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"GlobalPool: mode must be 'mean' or 'max', got {mode!r}")
        self.mode = mode
        self.keepdims = keepdims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, x.dim()))
        if self.mode == "mean":
            return x.mean(dim=dims, keepdim=self.keepdims)
        return x.amax(dim=dims, keepdim=self.keepdims)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}" + (", keepdims=True" if self.keepdims else "")


class AveragePoolSame(nn.Module):
    """Average pooling over zero-padded input that counts only the real elements of each window.

    What TensorFlow's ``padding="same"`` average pooling computes, for any ``(before, after)``
    padding (``torch.nn.AvgPool*d(count_include_pad=False)`` allows only symmetric padding).
    """

    def __init__(
        self,
        kernel_size: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[tuple[int, int]],
    ) -> None:
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        self.padding = tuple(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = len(self.kernel_size)
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[d - 1]
        pads = [p for pair in reversed(self.padding) for p in pair]
        ones = torch.ones_like(x[:1, :1])
        total = pool(F.pad(x, pads), self.kernel_size, self.stride)
        count = pool(F.pad(ones, pads), self.kernel_size, self.stride)
        return total / count

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class HardSigmoid(nn.Module):
    """Keras 2's ``hard_sigmoid``: ``clip(0.2 * x + 0.5, 0, 1)`` (torch's uses ``x / 6``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.2 * x + 0.5).clamp(0.0, 1.0)


class Exponential(nn.Module):
    """Keras' ``exponential`` activation, ``exp(x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


def constant_pad(padding: Sequence[tuple[int, int]], value: float = 0.0) -> nn.Module:
    """``nn.ConstantPad{d}d`` padding each spatial dimension by its ``(before, after)`` pair."""
    d = len(padding)
    pads = tuple(p for pair in reversed(tuple(padding)) for p in pair)
    cls: Any = (nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)[d - 1]  # d-tuple sizes
    return cls(pads, value)


def is_padding(padding: Sequence[tuple[int, int]]) -> bool:
    """Whether any ``(before, after)`` pair pads anything."""
    return any(b or a for b, a in padding)
