"""The connectivity of a layer: a bank of kernels and a map from each output position to its kernel.

Every kind of layer in this library, and ``torch.nn.Conv*d`` and ``torch.nn.Linear``, is one
operation: output position ``p`` is the convolution-style product of the input window at ``p``
with kernel ``kernels[p]``, and ``kernels = mixing @ bank``. A ``Connectivity`` holds everything
about that except the numbers in the bank:

- the sliding geometry (``kernel_size``, ``stride``, ``padding`` as per-dimension
  ``(before, after)`` pairs, ``dilation``, ``groups``, ``padding_mode``), which is a
  convolution's and says which inputs position ``p`` reads (``sliding.window(p)``);
- the channels, and ``bank_shape``: the leading dimensions of the bank, a tensor of shape
  ``(*bank_shape, out_channels, in_channels // groups, *kernel_size)`` (``num_kernels =
  prod(bank_shape)`` kernels);
- ``input_size``, for the kinds that only work on one input size (``None`` for the others);
- ``map`` (a ``KernelMap``): which bank entry each output position uses.
  ``kernel_index(output_size)`` names it (flat, row-major, as
  ``bank.flatten(0, len(bank_shape) - 1)`` numbers the kernels);
  ``mixing(output_size)`` is the ``(positions, num_kernels)`` matrix, one-hot rows for a hard map;
- the bias: whether there is one and whether it is one per channel (``shared_bias``) or one per
  channel and kernel (shape ``(*bank_shape, out_channels)``); ``bias_shape`` gives its shape
  where that rule does not (a low-rank layer's bias is per output position).

The kinds (``KINDS``, one vocabulary for the API, the CLI, JSON results, tables and pictures):

- ``"conv"``: bank ``(1,) * d``, map ``Periodic()`` (every position uses kernel 0);
- ``"tiled"``: bank ``tile_size``, ``Periodic()`` (position ``i`` uses ``i mod tile_size``);
- ``"locally_connected"``: bank = the output size, ``Periodic()`` (one kernel per position);
- ``"dense"``: bank ``()``, no spatial dimensions, one position;
- ``"region"``, ``"mapped"``: bank ``(number of kernels,)``, map ``Table(index)``;
- ``"lowrank"``: bank ``(rank,)``, map ``Soft(mixing)``.

A dense layer (``torch.nn.Linear``) has ``d = 0`` spatial dimensions: one output position, whose
window is the whole (flattened) input, and its kernel is the ``(out_features, in_features)``
weight. Transposed layers use the kinds ``"locally_connected_transpose"`` and
``"tiled_transpose"``.

Adding a kind (see ``docs/guide/adding-a-kind.md``): write the layer class (on
``locality.layers._base._ConnectivityNd`` when its weight is a position-major bank: set
``_kind`` and return the bank shape from ``_bank_shape``; override ``_kernel_map`` when the map
is not periodic), so that ``layer.connectivity`` returns a ``Connectivity`` with the new kind's
name (add it to ``KINDS``) and map. A hard map that is not periodic is a ``Table``; a soft one is
a ``Soft``; a map computed in another way is a new ``KernelMap`` subclass defining ``index``
(hard) or ``mixing`` (soft). ``Connectivity.of(layer)`` reads ``layer.connectivity``, so it
needs no edit, and the conversions, counts, summary rows and pictures read the ``Connectivity``.

What the consumers assume: the layer's ``weight`` is its bank (``bank_of``), and its ``bias`` is
``(out_channels,)`` or ``(*bank_shape, out_channels)``; ``Connectivity.per_position`` then gives
every position's kernel and bias, for hard and soft maps alike. A transposed kind has no
``sliding`` geometry that the receptive fields or ``to_dense`` understand: ``sliding_of``
returns ``None`` for it and the conversions refuse it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from locality._arguments import check_initialised, check_shape, padding_amounts
from locality.geometry import Sliding, pool_sliding

__all__ = [
    "KINDS",
    "Connectivity",
    "KernelMap",
    "Periodic",
    "Table",
    "Soft",
    "bank_of",
    "kernels_of",
    "sliding_of",
]

KINDS = (
    "dense",
    "locally_connected",
    "tiled",
    "region",
    "mapped",
    "lowrank",
    "conv",
    "locally_connected_transpose",
    "tiled_transpose",
)


class KernelMap:
    """Which kernel of the bank each output position uses.

    A hard map defines ``index`` (one kernel per position); a soft one (``soft = True``) defines
    ``mixing`` (a weighted sum of kernels per position). ``extra_parameters`` counts learned
    numbers the map itself holds (a soft map's coefficients), for the closed-form counts.
    """

    soft: bool = False

    def index(self, output_size: tuple[int, ...], bank_shape: tuple[int, ...]) -> torch.Tensor:
        """An int64 tensor of shape ``output_size`` with values in ``[0, prod(bank_shape))``."""
        raise NotImplementedError

    def mixing(self, output_size: tuple[int, ...], bank_shape: tuple[int, ...]) -> torch.Tensor:
        """``(prod(output_size), prod(bank_shape))``; one-hot rows for a hard map."""
        index = self.index(output_size, bank_shape).reshape(-1)
        return nn.functional.one_hot(index, math.prod(bank_shape)).to(torch.get_default_dtype())

    def extra_parameters(self) -> int:
        return 0


@dataclass(frozen=True)
class Periodic(KernelMap):
    """Position ``i`` uses kernel ``i mod bank_shape`` (per dimension), numbered row-major.

    The map of a convolution (bank ``(1,) * d``), a tiled convolution (bank ``tile_size``), a
    locally connected layer (bank = output size) and a dense layer (``d = 0``).
    """

    def index(self, output_size: tuple[int, ...], bank_shape: tuple[int, ...]) -> torch.Tensor:
        d = len(output_size)
        index = torch.zeros(output_size, dtype=torch.int64)
        for i, (n, g) in enumerate(zip(output_size, bank_shape, strict=True)):
            coordinate = torch.arange(n).view(*(1,) * i, n, *(1,) * (d - i - 1))
            index = index * g + coordinate % g
        return index


@dataclass(frozen=True, eq=False)
class Table(KernelMap):
    """An explicit map: ``table`` (int64, of the output's spatial shape) names each kernel."""

    table: torch.Tensor

    def index(self, output_size: tuple[int, ...], bank_shape: tuple[int, ...]) -> torch.Tensor:
        if tuple(self.table.shape) != tuple(output_size):
            raise ValueError(
                f"Table.index: the table covers output size {tuple(self.table.shape)}, got "
                f"output_size {tuple(output_size)}"
            )
        return self.table.to(torch.int64)


@dataclass(frozen=True, eq=False)
class Soft(KernelMap):
    """A soft map: ``weights`` ``(*output_size, num_kernels)`` mixes the bank at each position."""

    weights: torch.Tensor
    soft: bool = field(default=True, init=False)

    def index(self, output_size: tuple[int, ...], bank_shape: tuple[int, ...]) -> torch.Tensor:
        raise ValueError(
            "Soft.index: a soft map mixes several kernels at each position and has no kernel "
            "index; use mixing()"
        )

    def mixing(self, output_size: tuple[int, ...], bank_shape: tuple[int, ...]) -> torch.Tensor:
        expected = (*output_size, math.prod(bank_shape))
        if tuple(self.weights.shape) != expected:
            raise ValueError(
                f"Soft.mixing: the mixing weights have shape {tuple(self.weights.shape)}, "
                f"expected {expected}"
            )
        return self.weights.reshape(-1, expected[-1])

    def extra_parameters(self) -> int:
        return self.weights.numel()


@dataclass(frozen=True)
class Connectivity:
    """A layer's geometry, channels, kernel-bank shape and position -> kernel map.

    See the module docstring for the fields. Build one with ``Connectivity.of(module)``.

    Example::

        >>> c = Connectivity.of(locality.TiledConv2d(3, 8, 3, tile_size=2))
        >>> c.kind, c.bank_shape, c.num_kernels
        ('tiled', (2, 2), 4)
        >>> c.kernel_index((3, 4))
        tensor([[0, 1, 0, 1],
                [2, 3, 2, 3],
                [0, 1, 0, 1]])
        >>> c.parameters, c.macs((3, 4))
        (896, 2592)
    """

    kind: str
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    bank_shape: tuple[int, ...]
    groups: int = 1
    padding_mode: str = "zeros"
    map: KernelMap = Periodic()
    input_size: tuple[int, ...] | None = None
    bias: bool = True
    shared_bias: bool = True
    # The bias tensor's shape where the rule above does not give it: one per output position
    # (low-rank: (*output_size, out_channels)), or a transposed layer's own output channels.
    bias_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            kinds = ", ".join(map(repr, KINDS))
            raise ValueError(f"Connectivity: kind must be one of {kinds}, got {self.kind!r}")

    # ----- geometry -------------------------------------------------------------------------

    @property
    def d(self) -> int:
        """Number of spatial dimensions (0 for a dense layer)."""
        return len(self.kernel_size)

    @property
    def sliding(self) -> Sliding:
        """Which input coordinates each output position reads (``sliding.window(p)``)."""
        return Sliding(self.kernel_size, self.stride, self.padding, self.dilation)

    @property
    def fan_in(self) -> int:
        """Inputs read by one output unit: ``in_channels / groups * prod(kernel_size)``."""
        return self.in_channels // self.groups * math.prod(self.kernel_size)

    def output_size(self, input_size: Sequence[int] | None = None) -> tuple[int, ...]:
        """The output's spatial size on ``input_size`` (the layer's own fixed one by default)."""
        size = self.input_size if input_size is None else tuple(input_size)
        if size is None:
            raise ValueError(
                f"Connectivity.output_size: a {self.kind!r} connectivity works on any input "
                f"size; give input_size"
            )
        return self.sliding.output_size(size, where="Connectivity.output_size")

    def _output(self, output_size: Sequence[int] | None, where: str) -> tuple[int, ...]:
        """``output_size`` checked against the geometry; the fixed one when ``None``."""
        if self.d == 0:
            if output_size not in (None, ()):
                raise ValueError(f"{where}: a dense layer has one position, got {output_size!r}")
            return ()
        fixed = None if self.input_size is None else self.output_size()
        if output_size is None:
            if fixed is None:
                raise ValueError(
                    f"{where}: a {self.kind!r} connectivity works on any input size; give "
                    f"output_size"
                )
            return fixed
        size = check_shape(output_size, "output_size", where, length=self.d)
        if fixed is not None and size != fixed:
            raise ValueError(
                f"{where}: this {self.kind!r} connectivity has the fixed output size {fixed}, got "
                f"output_size {size}"
            )
        return size

    # ----- the map --------------------------------------------------------------------------

    @property
    def num_kernels(self) -> int:
        """Kernels in the bank: ``prod(bank_shape)``."""
        return math.prod(self.bank_shape)

    def kernel_index(self, output_size: Sequence[int] | None = None) -> torch.Tensor:
        """int64 tensor of shape ``output_size``: the flat bank entry each position uses."""
        return self.map.index(self._output(output_size, "kernel_index"), self.bank_shape)

    def mixing(self, output_size: Sequence[int] | None = None) -> torch.Tensor:
        """``(prod(output_size), num_kernels)``: ``kernels = mixing @ bank`` (flattened)."""
        return self.map.mixing(self._output(output_size, "mixing"), self.bank_shape)

    def per_position(
        self, values: torch.Tensor, output_size: Sequence[int] | None = None
    ) -> torch.Tensor:
        """``values`` ``(*bank_shape, *rest)`` laid out per position: ``(*output_size, *rest)``.

        With the bank as ``values`` this is the effective kernel of every position; with an
        unshared bias ``(*bank_shape, out_channels)``, the bias of every position. A view where no
        copy is needed (one kernel, or one kernel per position in order); a copy otherwise.
        """
        where = "per_position"
        out = self._output(output_size, where)
        b = len(self.bank_shape)
        if tuple(values.shape[:b]) != self.bank_shape:
            raise ValueError(
                f"{where}: values must start with the bank shape {self.bank_shape}, got shape "
                f"{tuple(values.shape)}"
            )
        rest = values.shape[b:]
        flat = values.reshape(self.num_kernels, *rest)
        if self.map.soft:
            mixing = self.mixing(out).to(values.dtype)
            return (mixing @ flat.flatten(1)).reshape(*out, *rest)
        if self.num_kernels == 1:
            return flat[0].expand(*out, *rest)
        if isinstance(self.map, Periodic) and self.bank_shape == out:
            return values
        return flat[self.kernel_index(out).to(values.device)]

    # ----- counts ---------------------------------------------------------------------------

    @property
    def parameters(self) -> int:
        """Learned numbers: the bank, the biases and any the map holds."""
        weights = self.num_kernels * self.out_channels * self.fan_in
        biases = 0
        if self.bias and self.bias_shape is not None:
            biases = math.prod(self.bias_shape)
        elif self.bias:
            biases = self.out_channels if self.shared_bias else self.num_kernels * self.out_channels
        return weights + biases + self.map.extra_parameters()

    def macs(self, output_size: Sequence[int] | None = None) -> int:
        """Multiply-accumulates per example: output units x ``fan_in`` (biases not counted)."""
        out = self._output(output_size, "macs")
        return math.prod(out) * self.out_channels * self.fan_in

    def weight_bytes(self, dtype: torch.dtype = torch.float32) -> int:
        """Bytes to store ``parameters`` in ``dtype``."""
        return self.parameters * dtype.itemsize

    # ----- construction ---------------------------------------------------------------------

    @staticmethod
    def of(module: nn.Module) -> Connectivity:
        """The connectivity of a layer of this library, ``nn.Conv1d/2d/3d`` or ``nn.Linear``.

        A layer of this library says its own (``module.connectivity``), so a new kind needs no
        edit here. Anything else is refused with a ``TypeError``.
        """
        where = "Connectivity.of"
        if isinstance(getattr(type(module), "connectivity", None), property):
            connectivity = module.connectivity
            assert isinstance(connectivity, Connectivity)
            return connectivity
        if isinstance(module, nn.Linear):
            check_initialised(module, "module", where)
            return Connectivity(
                kind="dense",
                in_channels=module.in_features,
                out_channels=module.out_features,
                kernel_size=(),
                stride=(),
                padding=(),
                dilation=(),
                bank_shape=(),
                bias=module.bias is not None,
            )
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            check_initialised(module, "module", where)
            k, s, r = tuple(module.kernel_size), tuple(module.stride), tuple(module.dilation)
            padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
            return Connectivity(
                kind="conv",
                in_channels=module.in_channels,
                out_channels=module.out_channels,
                kernel_size=k,
                stride=s,
                padding=padding_amounts(padding, k, s, r, where),
                dilation=r,
                bank_shape=(1,) * len(k),
                groups=module.groups,
                padding_mode=module.padding_mode,
                bias=module.bias is not None,
            )
        raise TypeError(
            f"{where}: module must be a layer of locality (with a .connectivity), torch.nn.Conv1d/"
            f"2d/3d or torch.nn.Linear, got {type(module).__name__}"
        )


def bank_of(module: nn.Module) -> torch.Tensor:
    """The kernel bank of ``module``: ``(*bank_shape, out_channels, in_channels // groups, *k)``.

    A layer of this library holds it as ``weight``; a ``Conv*d``'s weight gains ``(1,) * d``
    leading dimensions; a ``Linear``'s is its ``(out_features, in_features)`` weight.
    """
    connectivity = Connectivity.of(module)
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight.reshape(*connectivity.bank_shape, *weight.shape[-2 - connectivity.d :])


def kernels_of(module: nn.Module, output_size: Sequence[int] | None = None) -> torch.Tensor:
    """Per-position kernels ``(*output_size, O, C/g, *k)`` of any module ``Connectivity.of`` reads.

    ``module.kernels(output_size)`` for a layer of this library (a kind whose bank is not its
    ``weight`` computes them its own way).
    """
    kernels = getattr(module, "kernels", None)
    if callable(kernels):
        result = kernels(output_size)
        assert isinstance(result, torch.Tensor)
        return result
    return Connectivity.of(module).per_position(bank_of(module), output_size)


def sliding_of(module: nn.Module, d: int) -> Sliding | None:
    """The sliding geometry of ``module`` on a ``d``-D input, or ``None`` when it has none.

    A layer ``Connectivity.of`` reads (with ``d`` spatial dimensions, not transposed) or a
    ``torch.nn`` max or average pooling. The one lookup the receptive fields and
    ``fully_convolutional`` use.
    """
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or isinstance(
        getattr(type(module), "connectivity", None), property
    ):
        connectivity = Connectivity.of(module)
        if connectivity.d == d and not connectivity.kind.endswith("_transpose"):
            return connectivity.sliding
        return None
    return pool_sliding(module, d)
