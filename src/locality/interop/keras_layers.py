"""One Keras 2 layer config -> the channels-first PyTorch module that computes the same function.

``translate(class_name, config, input_shapes, where)`` returns a ``Translation``: the module, the
shapes of the arrays Keras stores for the layer (in its ``get_weights()`` order; their sizes are
Keras' parameter count) and a function that copies those arrays into the module.

Keras' ``padding="same"`` is TensorFlow's: ``ceil(n / stride)`` outputs, the total padding split
with the odd element *after* (``before = total // 2``), which at stride > 1 or with even kernels is
asymmetric; locally connected layers instead pad ``kernel_size // 2`` before. Asymmetric amounts
become an explicit ``nn.ConstantPad*d`` in front of a ``padding=0`` layer (``-inf`` for max
pooling; average pooling counts only real elements, as TensorFlow does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from locality.interop.keras_locally_connected import (
    from_keras_arrays,
    keras_kernel_shape,
    keras_output_size,
)
from locality.interop.keras_modules import (
    Add,
    AveragePoolSame,
    AxisMoved,
    Concatenate,
    Crop,
    Exponential,
    GlobalPool,
    HardSigmoid,
    KerasPermute,
    KerasReshape,
    constant_pad,
    is_padding,
)
from locality.layers.local import LocallyConnected1d, LocallyConnected2d

__all__ = ["Translation", "translate", "SUPPORTED_LAYERS", "SUPPORTED_ACTIVATIONS"]

Shape = tuple[int, ...]
Pairs = tuple[tuple[int, int], ...]


@dataclass
class Translation:
    """A Keras layer as a module, and how its Keras arrays go into it."""

    module: nn.Module
    weight_shapes: list[Shape] = field(default_factory=list)
    load: Callable[[Sequence[np.ndarray]], None] | None = None


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),  # Keras' last axis is the channels, dim 1 here
    "elu": nn.ELU,
    "selu": nn.SELU,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "mish": nn.Mish,
    "exponential": Exponential,
    "hard_sigmoid": HardSigmoid,
}
SUPPORTED_ACTIVATIONS = ("linear", *sorted(_ACTIVATIONS))


def _activation(name: Any, where: str) -> nn.Module | None:
    if name in (None, "linear"):
        return None
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise ValueError(
            f"{where}: activation {name!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_ACTIVATIONS)}"
        )
    return _ACTIVATIONS[name]()


def _chain(*modules: nn.Module | None) -> nn.Module:
    present = [m for m in modules if m is not None]
    return present[0] if len(present) == 1 else nn.Sequential(*present)


def _ints(value: Any, d: int, name: str, where: str) -> tuple[int, ...]:
    values = [value] * d if isinstance(value, int) else list(value)
    if len(values) != d or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{where}: {name} must be {d} ints, got {value!r}")
    return tuple(values)


def _pairs(value: Any, d: int, name: str, where: str) -> Pairs:
    """Keras' ``padding``/``cropping`` argument: int, ``d`` ints (symmetric) or ``d`` pairs."""
    if isinstance(value, int):
        return ((value, value),) * d
    items = list(value)
    if d == 1 and len(items) == 2 and all(isinstance(v, int) for v in items):
        return ((items[0], items[1]),)
    if len(items) != d:
        raise ValueError(f"{where}: {name} must be {d} (before, after) pairs, got {value!r}")
    pairs = []
    for item in items:
        pair = (item, item) if isinstance(item, int) else tuple(item)
        if len(pair) != 2:
            raise ValueError(f"{where}: {name} must be {d} (before, after) pairs, got {value!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


def keras_shape(shape: Shape) -> Shape:
    """The Keras shape (batch first) of a tensor whose module layout has shape ``shape``."""
    return (shape[0], *shape[2:], shape[1]) if len(shape) >= 3 else shape


def module_axis(axis: int, rank: int, where: str) -> int:
    """The module-layout axis of Keras axis ``axis`` (batch = 0) of a rank-``rank`` tensor."""
    if not -rank <= axis < rank or axis % rank == 0:
        raise ValueError(f"{where}: axis {axis} is not a non-batch axis of a rank-{rank} tensor")
    axis %= rank
    if rank <= 2:
        return axis
    return 1 if axis == rank - 1 else axis + 1


def _spatial(shape: Shape, d: int, channels_first: bool, where: str) -> tuple[int, Shape]:
    """(channels, spatial size) of a rank-(d + 2) input, in the Keras layer's data format."""
    if len(shape) != d + 2:
        raise ValueError(
            f"{where}: expects a rank-{d + 2} input (batch, {d} spatial, channels), got a Keras "
            f"shape {keras_shape(shape)}"
        )
    keras = keras_shape(shape)[1:]
    if channels_first:
        return keras[0], keras[1:]
    return keras[-1], keras[:-1]


def _data_format(config: dict[str, Any], where: str) -> bool:
    value = config.get("data_format") or "channels_last"
    if value not in ("channels_last", "channels_first"):
        raise ValueError(
            f"{where}: data_format must be channels_last or channels_first, got {value!r}"
        )
    return value == "channels_first"


def _in_layout(module: nn.Module, channels_first: bool) -> nn.Module:
    """Run a channels-first Keras layer: its tensors are the module layout moved by one axis."""
    return AxisMoved(module, 1, -1) if channels_first else module


def _with_activation(
    module: nn.Module, channels_first: bool, config: dict[str, Any], where: str
) -> nn.Module:
    """``module`` (in the layer's data format) followed by the layer's ``activation=``."""
    activation = _activation(config.get("activation"), where)
    if channels_first:
        return _chain(AxisMoved(module, 1, -1), activation)
    parts = list(module) if isinstance(module, nn.Sequential) else [module]
    return _chain(*parts, activation)


def tf_same_padding(n: Shape, k: Shape, s: Shape, dilation: Shape) -> Pairs:
    """TensorFlow's ``"same"``: ``ceil(n / s)`` outputs; the odd element of the total goes after."""
    pairs = []
    for ni, ki, si, di in zip(n, k, s, dilation, strict=True):
        total = max((-(-ni // si) - 1) * si + (ki - 1) * di + 1 - ni, 0)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def _symmetric(pairs: Pairs) -> tuple[int, ...] | None:
    return tuple(b for b, _ in pairs) if all(b == a for b, a in pairs) else None


def _copy(parameter: torch.Tensor | None, array: np.ndarray) -> None:
    assert parameter is not None
    with torch.no_grad():
        parameter.copy_(torch.from_numpy(np.ascontiguousarray(array)).to(parameter.dtype))


def _conv(config: dict[str, Any], shapes: list[Shape], d: int, where: str) -> Translation:
    channels_first = _data_format(config, where)
    channels, n = _spatial(shapes[0], d, channels_first, where)
    filters = int(config["filters"])
    k = _ints(config["kernel_size"], d, "kernel_size", where)
    s = _ints(config.get("strides", 1), d, "strides", where)
    dilation = _ints(config.get("dilation_rate", 1), d, "dilation_rate", where)
    groups = int(config.get("groups", 1))
    use_bias = bool(config.get("use_bias", True))
    padding = config.get("padding", "valid")
    if padding == "valid":
        pads: Pairs = ((0, 0),) * d
    elif padding == "same":
        pads = tf_same_padding(n, k, s, dilation)
    elif padding == "causal" and d == 1:
        pads = (((k[0] - 1) * dilation[0], 0),)
    else:
        raise ValueError(f"{where}: padding {padding!r} is not one Keras allows here")
    if channels % groups or filters % groups:
        raise ValueError(
            f"{where}: groups={groups} must divide the {channels} input channels and filters"
        )
    symmetric = _symmetric(pads)
    conv_class: Any = (nn.Conv1d, nn.Conv2d)[d - 1]  # mypy cannot type the d-tuple sizes
    conv = conv_class(
        channels,
        filters,
        k,
        stride=s,
        padding=symmetric or 0,
        dilation=dilation,
        groups=groups,
        bias=use_bias,
    )
    pad = constant_pad(pads) if symmetric is None else None
    module = _with_activation(_chain(pad, conv), channels_first, config, where)

    def load(arrays: Sequence[np.ndarray]) -> None:
        _copy(conv.weight, np.transpose(arrays[0], (d + 1, d, *range(d))))
        if use_bias:
            _copy(conv.bias, arrays[1])

    shapes_ = [(*k, channels // groups, filters)] + ([(filters,)] if use_bias else [])
    return Translation(module, shapes_, load)


def _locally_connected(
    config: dict[str, Any], shapes: list[Shape], d: int, where: str
) -> Translation:
    channels_first = _data_format(config, where)
    data_format = "channels_first" if channels_first else "channels_last"
    channels, n = _spatial(shapes[0], d, channels_first, where)
    filters = int(config["filters"])
    k = _ints(config["kernel_size"], d, "kernel_size", where)
    s = _ints(config.get("strides", 1), d, "strides", where)
    padding = config.get("padding", "valid")
    implementation = int(config.get("implementation", 1))
    use_bias = bool(config.get("use_bias", True))
    if padding not in ("valid", "same"):
        raise ValueError(f"{where}: padding must be 'valid' or 'same', got {padding!r}")
    out = keras_output_size(n, k, s, padding)
    pads = tuple(
        (ki // 2, max(0, (oi - 1) * si + ki - ni - ki // 2)) if padding == "same" else (0, 0)
        for ni, ki, si, oi in zip(n, k, s, out, strict=True)
    )
    symmetric = _symmetric(pads)
    padded = (
        n
        if symmetric is not None
        else tuple(ni + b + a for ni, (b, a) in zip(n, pads, strict=True))
    )
    cls = (LocallyConnected1d, LocallyConnected2d)[d - 1]
    layer = cls(
        channels, filters, k, input_size=padded, stride=s, padding=symmetric or 0, bias=use_bias
    )
    if layer.output_size != out:  # the padding rule above is Keras'; this guards it
        raise ValueError(f"{where}: output size {layer.output_size} differs from Keras' {out}")
    pad = constant_pad(pads) if symmetric is None else None
    module = _with_activation(_chain(pad, layer), channels_first, config, where)
    with torch.device("cpu"):  # the connection list is computed, even when building on meta
        kernel_shape = keras_kernel_shape(
            channels, filters, k, n, s, padding, implementation, data_format
        )

    def load(arrays: Sequence[np.ndarray]) -> None:
        weight, bias = from_keras_arrays(
            arrays[0],
            arrays[1] if use_bias else None,
            in_channels=channels,
            out_channels=filters,
            kernel_size=k,
            input_size=n,
            stride=s,
            padding=padding,
            implementation=implementation,
            data_format=data_format,
            dtype=layer.weight.dtype,
        )
        _copy(layer.weight, weight.numpy())
        if bias is not None:
            _copy(layer.bias, bias.numpy())

    shapes_ = [kernel_shape] + ([(*out, filters)] if use_bias else [])
    return Translation(module, shapes_, load)


def _dense(config: dict[str, Any], shapes: list[Shape], where: str) -> Translation:
    shape = shapes[0]
    units = int(config["units"])
    use_bias = bool(config.get("use_bias", True))
    features = shape[1]  # the Keras tensor's last axis in either layout
    linear = nn.Linear(features, units, bias=use_bias)
    module = _chain(
        linear if len(shape) == 2 else AxisMoved(linear, 1, -1),
        _activation(config.get("activation"), where),
    )

    def load(arrays: Sequence[np.ndarray]) -> None:
        _copy(linear.weight, arrays[0].T)
        if use_bias:
            _copy(linear.bias, arrays[1])

    return Translation(module, [(features, units)] + ([(units,)] if use_bias else []), load)


def _pool(
    config: dict[str, Any], shapes: list[Shape], d: int, mode: str, where: str
) -> Translation:
    channels_first = _data_format(config, where)
    _, n = _spatial(shapes[0], d, channels_first, where)
    k = _ints(config.get("pool_size", 2), d, "pool_size", where)
    s = _ints(config.get("strides") or k, d, "strides", where)
    padding = config.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise ValueError(f"{where}: padding must be 'valid' or 'same', got {padding!r}")
    pads = tf_same_padding(n, k, s, (1,) * d) if padding == "same" else ((0, 0),) * d
    symmetric = _symmetric(pads)
    fits = symmetric is not None and all(2 * p <= ki for p, ki in zip(symmetric, k, strict=True))
    pool: nn.Module
    average: Any = (nn.AvgPool1d, nn.AvgPool2d)[d - 1]
    if mode == "max":
        cls: Any = (nn.MaxPool1d, nn.MaxPool2d)[d - 1]
        # Padding only after (FbDeepFace's M2: 142 -> 71) is ceil_mode: the last window is cut.
        ceil = all(b == 0 for b, _ in pads) and all(
            ni >= ki and -(-(ni - ki) // si) + 1 == -(-ni // si)
            for ni, ki, si in zip(n, k, s, strict=True)
        )
        if fits:
            pool = cls(k, s, padding=symmetric)
        elif ceil:
            pool = cls(k, s, ceil_mode=True)
        else:
            pool = nn.Sequential(constant_pad(pads, -math.inf), cls(k, s))
    elif not is_padding(pads):
        pool = average(k, s)
    elif fits:
        pool = average(k, s, padding=symmetric, count_include_pad=False)
    else:
        pool = AveragePoolSame(k, s, pads)
    return Translation(_in_layout(pool, channels_first))


def _global_pool(
    config: dict[str, Any], shapes: list[Shape], d: int, mode: str, where: str
) -> Translation:
    channels_first = _data_format(config, where)
    _spatial(shapes[0], d, channels_first, where)
    pool = GlobalPool(mode, keepdims=bool(config.get("keepdims", False)))
    return Translation(_in_layout(pool, channels_first))


def _padding(
    config: dict[str, Any], shapes: list[Shape], d: int, crop: bool, where: str
) -> Translation:
    channels_first = _data_format(config, where)
    _spatial(shapes[0], d, channels_first, where)
    key = "cropping" if crop else "padding"
    pairs = _pairs(config.get(key, 1), d, key, where)
    module = Crop(pairs) if crop else constant_pad(pairs)
    return Translation(_in_layout(module, channels_first))


def _batch_norm(config: dict[str, Any], shapes: list[Shape], where: str) -> Translation:
    shape = shapes[0]
    axis = config.get("axis", -1)
    axes = [axis] if isinstance(axis, int) else list(axis)
    if len(axes) != 1:
        raise ValueError(f"{where}: normalisation over several axes {axis} is not supported")
    if config.get("renorm"):
        raise ValueError(f"{where}: renorm=True is not supported")
    dim = module_axis(int(axes[0]), len(shape), where)
    channels = shape[dim]
    scale, center = bool(config.get("scale", True)), bool(config.get("center", True))
    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(
        len(shape)
    )
    if cls is None:
        raise ValueError(f"{where}: inputs of rank {len(shape)} are not supported")
    norm = cls(channels, eps=float(config.get("epsilon", 1e-3)), affine=scale or center)
    norm.eval()
    if norm.affine:  # Keras' scale=False / center=False: fixed at 1 / 0, not trained
        norm.weight.requires_grad_(scale)
        norm.bias.requires_grad_(center)

    def load(arrays: Sequence[np.ndarray]) -> None:
        values = list(arrays)
        gamma = values.pop(0) if scale else np.ones(channels)
        beta = values.pop(0) if center else np.zeros(channels)
        if norm.affine:
            _copy(norm.weight, gamma)
            _copy(norm.bias, beta)
        _copy(norm.running_mean, values[0])
        _copy(norm.running_var, values[1])
        assert norm.num_batches_tracked is not None
        norm.num_batches_tracked.zero_()

    module = norm if dim == 1 else AxisMoved(norm, dim, 1)
    return Translation(module, [(channels,)] * (int(scale) + int(center) + 2), load)


def _merge(kind: str, config: dict[str, Any], shapes: list[Shape], where: str) -> Translation:
    if len(shapes) < 2 or len({len(s) for s in shapes}) != 1:
        raise ValueError(
            f"{where}: needs two or more inputs of one rank, got Keras shapes "
            f"{[keras_shape(s) for s in shapes]}"
        )
    if kind == "add":
        return Translation(Add())
    return Translation(Concatenate(module_axis(int(config.get("axis", -1)), len(shapes[0]), where)))


_Builder = Callable[[dict[str, Any], list[Shape], str], Translation]

_BUILDERS: dict[str, _Builder] = {
    "Conv1D": lambda c, s, w: _conv(c, s, 1, w),
    "Conv2D": lambda c, s, w: _conv(c, s, 2, w),
    "LocallyConnected1D": lambda c, s, w: _locally_connected(c, s, 1, w),
    "LocallyConnected2D": lambda c, s, w: _locally_connected(c, s, 2, w),
    "Dense": _dense,
    "Flatten": lambda c, s, w: Translation(
        KerasReshape((-1,), channels_first=_data_format(c, w) and len(s[0]) >= 3)
    ),
    "MaxPooling1D": lambda c, s, w: _pool(c, s, 1, "max", w),
    "MaxPooling2D": lambda c, s, w: _pool(c, s, 2, "max", w),
    "AveragePooling1D": lambda c, s, w: _pool(c, s, 1, "mean", w),
    "AveragePooling2D": lambda c, s, w: _pool(c, s, 2, "mean", w),
    "GlobalAveragePooling1D": lambda c, s, w: _global_pool(c, s, 1, "mean", w),
    "GlobalAveragePooling2D": lambda c, s, w: _global_pool(c, s, 2, "mean", w),
    "GlobalMaxPooling1D": lambda c, s, w: _global_pool(c, s, 1, "max", w),
    "GlobalMaxPooling2D": lambda c, s, w: _global_pool(c, s, 2, "max", w),
    "ZeroPadding1D": lambda c, s, w: _padding(c, s, 1, False, w),
    "ZeroPadding2D": lambda c, s, w: _padding(c, s, 2, False, w),
    "Cropping1D": lambda c, s, w: _padding(c, s, 1, True, w),
    "Cropping2D": lambda c, s, w: _padding(c, s, 2, True, w),
    "BatchNormalization": _batch_norm,
    "Dropout": lambda c, s, w: Translation(nn.Dropout(float(c.get("rate", 0.5)))),
    "Activation": lambda c, s, w: Translation(_activation(c.get("activation"), w) or nn.Identity()),
    "Reshape": lambda c, s, w: Translation(KerasReshape(c["target_shape"])),
    "Permute": lambda c, s, w: Translation(KerasPermute(c["dims"])),
    "Concatenate": lambda c, s, w: _merge("concatenate", c, s, w),
    "Add": lambda c, s, w: _merge("add", c, s, w),
}

SUPPORTED_LAYERS = ("InputLayer", *_BUILDERS)


def translate(
    class_name: str, config: dict[str, Any], shapes: list[Shape], where: str
) -> Translation:
    """The module for one Keras layer given its inputs' shapes (module layout, batch first).

    Raises:
        ValueError: naming ``where`` (the file, layer and class) for a layer class or option that
            has no translation, listing the supported layer classes.
    """
    builder = _BUILDERS.get(class_name)
    if builder is None:
        raise ValueError(
            f"{where}: layer class {class_name} is not supported (Lambda, custom, recurrent and "
            f"nested-model layers have no translation); supported: {', '.join(SUPPORTED_LAYERS)}"
        )
    if class_name not in ("Concatenate", "Add") and len(shapes) != 1:
        raise ValueError(f"{where}: expects one input, got {len(shapes)}")
    try:
        return builder(config, shapes, where)
    except (KeyError, TypeError) as error:
        raise ValueError(f"{where}: its config is not one Keras 2 writes ({error!r})") from error
