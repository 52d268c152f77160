"""Keras 2 ``LocallyConnected1D`` / ``LocallyConnected2D`` weights, to and from our layout.

Keras 2 (the layers were dropped in Keras 3) stores a locally connected layer's kernel in one of
three shapes, chosen by the layer's ``implementation`` argument. With ``d`` spatial dimensions,
input size ``in``, output size ``out``, kernel size ``k``, ``C`` input and ``O`` output channels:

1. ``(prod(out), prod(k) * C, O)``: one ``(features, O)`` matrix per output position, positions in
   C order; a patch is flattened in the input's memory order, ``(*k, C)`` for ``channels_last`` and
   ``(C, *k)`` for ``channels_first``. Keras allows only ``padding="valid"`` here.
2. ``(*in, C, *out, O)`` (``channels_last``) or ``(C, *in, O, *out)`` (``channels_first``): the
   dense input-to-output matrix, multiplied by a 0/1 mask of the connections before use; entries
   outside the mask are ignored.
3. ``(M,)``: the values of a sparse ``(prod(out) * O, prod(in) * C)`` matrix at its M connections,
   listed in sorted order of (output index, input index); the indices flatten ``(*out, O)`` and
   ``(*in, C)`` (``channels_last``) or ``(O, *out)`` and ``(C, *in)`` (``channels_first``).

The bias has shape ``(*out, O)`` in every mode; with ``channels_first`` Keras *reshapes* it (does
not transpose it) to ``(O, *out)`` before adding, so its memory is read in that order.

Keras' ``padding="same"`` (modes 2 and 3) pads ``k // 2`` before each spatial dimension and gives
``ceil(in / stride)`` outputs. A layer here with ``padding=k // 2`` (for odd kernels also
``padding="same"``) has exactly those connections; Keras has no dilation and no groups.

Our layout is position-major, ``weight: (*out, O, C, *k)`` and ``bias: (*out, O)``; see
``locality.layers``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from locality.layers.local import LocallyConnected1d, LocallyConnected2d, _LocallyConnectedNd

__all__ = [
    "load_keras_weights",
    "export_keras_weights",
    "keras_output_size",
    "keras_kernel_shape",
]

IMPLEMENTATIONS = (1, 2, 3)
DATA_FORMATS = ("channels_last", "channels_first")
KERAS_PADDINGS = ("valid", "same")


def _sizes(value: int | Sequence[int], d: int, name: str) -> tuple[int, ...]:
    values = (value,) * d if isinstance(value, int) else tuple(value)
    if len(values) != d or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
    ):
        raise ValueError(
            f"keras: {name} must be a positive int or {d} positive ints, got {value!r}"
        )
    return values


def _check_options(implementation: int, data_format: str, padding: str) -> None:
    if implementation not in IMPLEMENTATIONS or isinstance(implementation, bool):
        raise ValueError(f"keras: implementation must be 1, 2 or 3, got {implementation!r}")
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"keras: data_format must be 'channels_last' or 'channels_first', got {data_format!r}"
        )
    if padding not in KERAS_PADDINGS:
        raise ValueError(f"keras: padding must be 'valid' or 'same', got {padding!r}")
    if implementation == 1 and padding != "valid":
        raise ValueError(
            "keras: implementation=1 supports only padding='valid' (as in Keras); "
            "padding='same' layers were built with implementation 2 or 3"
        )


def keras_output_size(
    input_size: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int], padding: str
) -> tuple[int, ...]:
    """Output size of a Keras 2 locally connected layer.

    ``ceil((in - k + 1) / s)`` for ``padding="valid"``, ``ceil(in / s)`` for ``"same"``.
    """
    out = []
    for n, k, s in zip(input_size, kernel_size, stride, strict=True):
        length = n - k + 1 if padding == "valid" else n
        if length < 1:
            raise ValueError(
                f"keras: kernel_size {tuple(kernel_size)} does not fit input_size "
                f"{tuple(input_size)} with padding='valid'"
            )
        out.append(-(-length // s))
    return tuple(out)


class _Geometry:
    """Sizes of one layer and the list of its (output position, kernel offset) connections."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        input_size: int | Sequence[int],
        stride: int | Sequence[int],
        padding: str,
    ) -> None:
        d = 1 if isinstance(input_size, int) else len(tuple(input_size))
        if d not in (1, 2):
            raise ValueError(
                f"keras: Keras 2 has LocallyConnected1D and LocallyConnected2D only, got "
                f"input_size={input_size!r} ({d} spatial dimensions)"
            )
        self.d = d
        self.C, self.O = (
            _sizes(in_channels, 1, "in_channels")[0],
            _sizes(out_channels, 1, "out_channels")[0],
        )
        self.k = _sizes(kernel_size, d, "kernel_size")
        self.n = _sizes(input_size, d, "input_size")
        self.s = _sizes(stride, d, "stride")
        self.padding = padding
        self.out = keras_output_size(self.n, self.k, self.s, padding)
        self.before = tuple(k // 2 if padding == "same" else 0 for k in self.k)
        self.P, self.K, self.J = math.prod(self.out), math.prod(self.k), math.prod(self.n)

        def grid(sizes: tuple[int, ...]) -> torch.Tensor:  # (d, prod(sizes)), C order
            axes = torch.meshgrid(*(torch.arange(m) for m in sizes), indexing="ij")
            return torch.stack(axes).reshape(d, -1)

        p, k = grid(self.out), grid(self.k)
        shape = lambda t: torch.tensor(t).view(d, 1, 1)  # noqa: E731
        j = p[:, :, None] * shape(self.s) + k[:, None, :] - shape(self.before)  # (d, P, K)
        self.valid = ((j >= 0) & (j < shape(self.n))).all(0)  # (P, K)
        j = torch.minimum(j.clamp(min=0), shape(self.n) - 1)
        strides = [math.prod(self.n[i + 1 :]) for i in range(d)]
        # (P, K): input position, C order
        self.j_flat = (j * torch.tensor(strides).view(d, 1, 1)).sum(0)
        self.p_flat = torch.arange(self.P).view(-1, 1).expand(self.P, self.K)

    def name(self) -> str:
        return f"LocallyConnected{self.d}D"

    def kernel_shape(self, implementation: int, data_format: str) -> tuple[int, ...]:
        C, O, K = self.C, self.O, self.K  # noqa: E741  (O: output channels, the module docstring's notation)
        if implementation == 1:
            return (self.P, K * C, O)
        if implementation == 2:
            if data_format == "channels_last":
                return (*self.n, C, *self.out, O)
            return (C, *self.n, O, *self.out)
        return (int(self.valid.sum()) * C * O,)

    def sparse_order(self, data_format: str) -> torch.Tensor:
        """Permutation from our connection order to Keras' sorted (out_idx, in_idx) order."""
        C, O, P, J = self.C, self.O, self.P, self.J  # noqa: E741  (O: output channels, the module docstring's notation)
        p = self.p_flat[:, :, None, None]
        j = self.j_flat[:, :, None, None]
        c = torch.arange(C).view(1, 1, C, 1)
        o = torch.arange(O).view(1, 1, 1, O)
        if data_format == "channels_last":
            out_idx, in_idx = p * O + o, j * C + c
        else:
            out_idx, in_idx = o * P + p, c * J + j
        key = out_idx * (J * C) + in_idx  # (P, K, C, O), int64
        return torch.argsort(key[self.valid].reshape(-1))


def keras_kernel_shape(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    input_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: str = "valid",
    implementation: int = 1,
    data_format: str = "channels_last",
) -> tuple[int, ...]:
    """Shape of the ``kernel`` a Keras 2 locally connected layer with these arguments stores."""
    _check_options(implementation, data_format, padding)
    geometry = _Geometry(in_channels, out_channels, kernel_size, input_size, stride, padding)
    return geometry.kernel_shape(implementation, data_format)


def _as_tensor(array: Any, name: str) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu()
    try:
        value = np.asarray(array)
    except Exception as error:  # h5py datasets, lists, anything array-like
        raise TypeError(
            f"keras: {name} must be an array or a tensor, got {type(array).__name__}"
        ) from error
    if value.dtype.kind not in "fiu":
        raise TypeError(f"keras: {name} must hold real numbers, got dtype {value.dtype}")
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float64))


def from_keras_arrays(
    kernel: Any,
    bias: Any = None,
    *,
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    input_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: str = "valid",
    implementation: int = 1,
    data_format: str = "channels_last",
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Convert Keras 2 ``LocallyConnected1D/2D`` arrays to ``(weight, bias)`` in our layout.

    Args:
        kernel: the kernel the Keras layer stores (``layer.get_weights()[0]``): a numpy array,
            tensor or h5py dataset.
        bias: the Keras layer's bias, ``(*out, O)``, or ``None`` (``use_bias=False``).
        in_channels: the Keras layer's input channels.
        out_channels: the Keras layer's ``filters``.
        kernel_size: the Keras layer's ``kernel_size`` (int or tuple).
        input_size: the Keras layer's spatial input size (int or tuple).
        stride: the Keras layer's ``strides``.
        padding: the Keras layer's ``padding``, ``"valid"`` or ``"same"``.
        implementation: the Keras layer's ``implementation`` (1, 2 or 3).
        data_format: the Keras layer's ``data_format``.
        dtype: dtype of the returned tensors (default: ``torch.get_default_dtype()``).

    Returns:
        ``weight`` of shape ``(*out, O, C, *k)`` and ``bias`` of shape ``(*out, O)`` (or ``None``).

    Raises:
        ValueError: if an array does not have the shape Keras stores for this configuration (the
            message names the expected Keras shape).
    """
    _check_options(implementation, data_format, padding)
    g = _Geometry(in_channels, out_channels, kernel_size, input_size, stride, padding)
    expected = g.kernel_shape(implementation, data_format)
    k = _as_tensor(kernel, "kernel")
    if tuple(k.shape) != expected:
        raise ValueError(
            f"keras: a Keras {g.name()} kernel (implementation={implementation}, {data_format}) "
            f"for {g.C} -> {g.O} channels, kernel_size={g.k}, input size {g.n}, strides={g.s}, "
            f"padding={padding!r} has shape {expected}, got {tuple(k.shape)}"
        )
    C, O, P, K = g.C, g.O, g.P, g.K  # noqa: E741  (O: output channels, the module docstring's notation)
    if implementation == 1:
        if data_format == "channels_last":
            conn = k.reshape(P, K, C, O)
        else:
            conn = k.reshape(P, C, K, O).transpose(1, 2)
    else:
        conn = torch.zeros(P, K, C, O, dtype=k.dtype)
        if implementation == 2:
            dense = (
                k.reshape(g.J, C, P, O)
                if data_format == "channels_last"
                else (k.reshape(C, g.J, O, P).permute(1, 0, 3, 2))
            )
            gathered = dense[g.j_flat, :, g.p_flat, :]  # (P, K, C, O)
            conn[g.valid] = gathered[g.valid]
        else:
            values = torch.empty_like(k)
            values[g.sparse_order(data_format)] = k
            conn[g.valid] = values.reshape(-1, C, O)
    weight = conn.permute(0, 3, 2, 1).reshape(*g.out, O, C, *g.k)
    out_bias = None
    if bias is not None:
        b = _as_tensor(bias, "bias")
        if tuple(b.shape) != (*g.out, O):
            raise ValueError(
                f"keras: a Keras {g.name()} bias for output size {g.out} and {O} filters has shape "
                f"{(*g.out, O)}, got {tuple(b.shape)}"
            )
        if data_format == "channels_first":
            b = b.reshape(O, P).T.reshape(*g.out, O)
        out_bias = b
    dtype = dtype or torch.get_default_dtype()
    return weight.to(dtype).contiguous(), None if out_bias is None else out_bias.to(
        dtype
    ).contiguous()


def to_keras_arrays(
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    input_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: str = "valid",
    implementation: int = 1,
    data_format: str = "channels_last",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert our ``(weight, bias)`` to the arrays a Keras 2 ``LocallyConnected1D/2D`` stores.

    The inverse of ``from_keras_arrays``: ``weight`` is ``(*out, O, C, *k)``, ``bias`` is
    ``None``, ``(O,)`` (shared; expanded over positions) or ``(*out, O)``. Returns numpy arrays
    ready for Keras' ``layer.set_weights([kernel, bias])`` (float32 for half-precision weights).
    Weights of connections that only read zero padding have no Keras counterpart and are dropped.
    """
    _check_options(implementation, data_format, padding)
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (4, 6):
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(
            f"keras: weight must be a (*out, O, C, *k) tensor with 1 or 2 spatial dims, got {got}"
        )
    d = (weight.dim() - 2) // 2
    O, C = weight.shape[d], weight.shape[d + 1]  # noqa: E741  (O: output channels, the module docstring's notation)
    g = _Geometry(C, O, tuple(weight.shape[d + 2 :]), input_size, stride, padding)
    if tuple(weight.shape[:d]) != g.out:
        raise ValueError(
            f"keras: weight holds kernels for output size {tuple(weight.shape[:d])}, but Keras "
            f"with input size {g.n}, kernel_size={g.k}, strides={g.s}, padding={padding!r} gives "
            f"{g.out}"
        )
    w = weight.detach().cpu()
    if w.dtype in (torch.float16, torch.bfloat16):
        w = w.float()
    conn = w.reshape(g.P, O, C, g.K).permute(0, 3, 2, 1)  # (P, K, C, O)
    if implementation == 1:
        if data_format == "channels_first":
            conn = conn.transpose(1, 2)
        kernel = conn.reshape(g.P, g.K * C, O)
    elif implementation == 2:
        dense = torch.zeros(g.J, C, g.P, O, dtype=w.dtype)
        dense[g.j_flat[g.valid], :, g.p_flat[g.valid], :] = conn[g.valid]
        if data_format == "channels_first":
            dense = dense.permute(1, 0, 3, 2)
        kernel = dense.reshape(g.kernel_shape(2, data_format))
    else:
        kernel = conn[g.valid].reshape(-1)[g.sparse_order(data_format)]
    out_bias = None
    if bias is not None:
        b = bias.detach().cpu()
        if b.dtype in (torch.float16, torch.bfloat16):
            b = b.float()
        if tuple(b.shape) == (O,):
            b = b.expand(*g.out, O)
        if tuple(b.shape) != (*g.out, O):
            raise ValueError(
                f"keras: bias must have shape ({O},) or {(*g.out, O)}, got {tuple(b.shape)}"
            )
        if data_format == "channels_first":
            b = b.reshape(g.P, O).T.reshape(*g.out, O)
        out_bias = b.contiguous().numpy()
    return kernel.contiguous().numpy(), out_bias


def _layer_geometry(layer: _LocallyConnectedNd, implementation: int) -> dict[str, Any]:
    """The Keras configuration with the same connections as a locally connected ``layer``."""
    name = type(layer).__name__
    d = len(layer.kernel_size)
    if d not in (1, 2):
        raise TypeError(
            f"{name}: Keras 2 has LocallyConnected1D and LocallyConnected2D only; a {d}-D locally "
            f"connected layer has no Keras counterpart"
        )
    uninitialized = getattr(layer, "has_uninitialized_params", None)
    if uninitialized is not None and uninitialized():
        raise ValueError(
            f"{name}: the lazy layer does not know its input yet; run one forward pass (or build "
            f"the non-lazy layer) before moving Keras weights"
        )
    if layer.groups != 1:
        raise ValueError(
            f"{name}: Keras locally connected layers have no groups, got groups={layer.groups}"
        )
    if any(dl != 1 for dl in layer.dilation):
        raise ValueError(
            f"{name}: Keras locally connected layers have no dilation, got {layer.dilation}"
        )
    befores = tuple(before for before, _ in layer.padding_amounts)
    for padding, wanted in (
        ("valid", (0,) * d),
        ("same", tuple(k // 2 for k in layer.kernel_size)),
    ):
        if befores != wanted:
            continue
        if padding == "same" and layer.padding_mode != "zeros":
            continue
        if (
            keras_output_size(layer.input_size, layer.kernel_size, layer.stride, padding)
            == layer.output_size
        ):
            if padding == "same" and implementation == 1:
                raise ValueError(
                    f"{name}: padding {layer.padding!r} corresponds to Keras padding='same', which "
                    f"Keras supports only with implementation 2 or 3, got implementation=1"
                )
            return {"input_size": layer.input_size, "stride": layer.stride, "padding": padding}
    raise ValueError(
        f"{name}: padding={layer.padding!r} (padding_mode={layer.padding_mode!r}) matches neither "
        f"Keras padding='valid' (padding=0) nor padding='same' (zero padding kernel_size // 2 = "
        f"{tuple(k // 2 for k in layer.kernel_size)} before, output size ceil(input_size / "
        f"stride)); got output size {layer.output_size}"
    )


def load_keras_weights(
    layer: LocallyConnected1d | LocallyConnected2d,
    kernel: Any,
    bias: Any = None,
    *,
    implementation: int = 1,
    data_format: str = "channels_last",
) -> None:
    """Copy a Keras 2 ``LocallyConnected1D/2D`` layer's ``kernel`` and ``bias`` into ``layer``.

    Afterwards ``layer`` gives the Keras layer's outputs on the same input, channels first. Keras
    ``padding="same"`` corresponds to ``padding=kernel_size // 2`` before each dimension here.

    Args:
        layer: a ``LocallyConnected1d`` or ``LocallyConnected2d`` (or a materialised lazy one)
            with the Keras layer's geometry and ``shared_bias=False``.
        kernel: the Keras layer's kernel (``keras_layer.get_weights()[0]``): numpy array, tensor
            or h5py dataset, in any of the three ``implementation`` layouts.
        bias: the Keras layer's bias, ``(*out, O)``, or ``None`` (``use_bias=False``; a bias of
            ``layer`` is then set to zero).
        implementation: the Keras layer's ``implementation`` (1, 2 or 3).
        data_format: the Keras layer's ``data_format``.

    Raises:
        ValueError: if the arrays do not have the shapes Keras stores for ``layer``'s geometry
            (the message names the expected Keras shape), or ``layer`` has no Keras counterpart.

    Example::

        >>> layer = LocallyConnected2d(2, 3, 2, input_size=(4, 4))
        >>> load_keras_weights(layer, np.zeros((9, 8, 3)), np.zeros((3, 3, 3)))
    """
    geometry = _layer_geometry(layer, implementation)
    weight, new_bias = from_keras_arrays(
        kernel,
        bias,
        in_channels=layer.in_channels,
        out_channels=layer.out_channels,
        kernel_size=layer.kernel_size,
        implementation=implementation,
        data_format=data_format,
        dtype=layer.weight.dtype,
        **geometry,
    )
    name = type(layer).__name__
    if new_bias is not None and layer.bias is None:
        raise ValueError(f"{name}: got a Keras bias but the layer was built with bias=False")
    if (
        new_bias is not None
        and layer.bias is not None
        and tuple(layer.bias.shape) != tuple(new_bias.shape)
    ):
        raise ValueError(
            f"{name}: Keras biases are per position, shape {tuple(new_bias.shape)}, but the layer "
            f"has shared_bias=True (bias shape {tuple(layer.bias.shape)}); build it with "
            "shared_bias=False"
        )
    with torch.no_grad():
        layer.weight.copy_(weight)
        if layer.bias is not None:
            if new_bias is None:
                layer.bias.zero_()
            else:
                layer.bias.copy_(new_bias)


def export_keras_weights(
    layer: LocallyConnected1d | LocallyConnected2d,
    *,
    implementation: int = 1,
    data_format: str = "channels_last",
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``(kernel, bias)`` arrays of the Keras 2 ``LocallyConnected1D/2D`` equal to ``layer``.

    The inverse of ``load_keras_weights``: ready for ``keras_layer.set_weights([kernel, bias])``
    (``bias`` is ``None`` for ``bias=False``; float32 for half-precision weights). Weights of
    connections that only read zero padding have no Keras counterpart and are dropped.

    Example::

        >>> layer = LocallyConnected1d(2, 3, 3, input_size=7)
        >>> [a.shape for a in export_keras_weights(layer)]
        [(5, 6, 3), (5, 3)]
    """
    geometry = _layer_geometry(layer, implementation)
    return to_keras_arrays(
        layer.weight, layer.bias, implementation=implementation, data_format=data_format, **geometry
    )
