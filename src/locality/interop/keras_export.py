"""A PyTorch ``nn.Sequential`` of layers that exist in both libraries -> a Keras 2 ``.h5`` file.

The file is what Keras 2's ``model.save("m.h5")`` writes (a ``model_config`` attribute and a
``model_weights`` group), so ``tf.keras.models.load_model`` reads it; the Keras model takes the
channels-last input. Where the two libraries disagree the export adds a layer rather than changing
weights: a padded convolution becomes ``ZeroPadding`` + ``padding="valid"`` (unless it is exactly
Keras' ``"same"``), and ``nn.Flatten`` of a feature map becomes ``Permute`` (channels first) +
``Flatten``, so every later layer sees the elements in PyTorch's order.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from locality.interop.keras_locally_connected import _layer_geometry, export_keras_weights
from locality.layers.local import LocallyConnected1d, LocallyConnected2d

__all__ = ["save_model", "EXPORTABLE"]

KERAS_VERSION = "2.12.0"

_ACTIVATIONS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.SELU: "selu",
    nn.SiLU: "swish",
    nn.Softsign: "softsign",
    nn.Mish: "mish",
}

EXPORTABLE = (
    "Conv1d, Conv2d, LocallyConnected1d, LocallyConnected2d, Linear (on flat inputs), Flatten, "
    "MaxPool1d/2d and AvgPool1d/2d (no padding), BatchNorm1d/2d, ZeroPad1d/2d, Dropout, Identity, "
    "ReLU, Sigmoid, Tanh, ELU (alpha 1), SELU, GELU (exact), SiLU, Softplus, Softsign, Mish, "
    "Softmax (over channels)"
)


class _Layers:
    """The Keras layer configs and weights being assembled, with Keras-style unique names."""

    def __init__(self) -> None:
        self.configs: list[dict[str, Any]] = []
        self.weights: dict[str, list[tuple[str, np.ndarray]]] = {}
        self._counts: dict[str, int] = {}

    def add(
        self,
        class_name: str,
        key: str,
        config: dict[str, Any],
        weights: Sequence[tuple[str, Any]] = (),
    ) -> None:
        count = self._counts.get(key, 0)
        self._counts[key] = count + 1
        name = key if count == 0 else f"{key}_{count}"
        full = {"name": name, "trainable": True, "dtype": "float32", **config}
        self.configs.append({"class_name": class_name, "config": full})
        self.weights[name] = [
            (w, np.ascontiguousarray(np.asarray(a, dtype=np.float32))) for w, a in weights
        ]


def _numpy(tensor: torch.Tensor | None) -> np.ndarray:
    assert tensor is not None
    return tensor.detach().to("cpu", torch.float64).numpy()


def _zero_padding(layers: _Layers, pairs: Sequence[tuple[int, int]]) -> None:
    d = len(pairs)
    value: Any = list(pairs[0]) if d == 1 else [list(p) for p in pairs]
    layers.add(
        f"ZeroPadding{d}D", f"zero_padding{d}d", {"padding": value, "data_format": "channels_last"}
    )


def _conv(layers: _Layers, conv: nn.Conv1d | nn.Conv2d, where: str) -> None:
    d = len(conv.kernel_size)
    if conv.padding_mode != "zeros":
        raise ValueError(
            f"{where}: Keras pads with zeros only, got padding_mode={conv.padding_mode!r}"
        )
    if any(s > 1 for s in conv.stride) and any(dl > 1 for dl in conv.dilation):
        raise ValueError(f"{where}: Keras has no convolution with both stride > 1 and dilation > 1")
    if isinstance(conv.padding, str):
        pads = [(0, 0)] * d if conv.padding == "valid" else None
        if pads is None:  # torch's "same" (stride 1): the odd element after, as TensorFlow's
            padding = "same"
    else:
        pads = [(int(p), int(p)) for p in conv.padding]
    if pads is not None:
        same = all(s == 1 for s in conv.stride) and all(
            p == (k - 1) * dl / 2
            for (p, _), k, dl in zip(pads, conv.kernel_size, conv.dilation, strict=True)
        )
        padding = "same" if same and any(p for p, _ in pads) else "valid"
        if padding == "valid" and any(p for p, _ in pads):
            _zero_padding(layers, pads)
    weights = [("kernel", _numpy(conv.weight).transpose(*range(2, d + 2), 1, 0))]
    if conv.bias is not None:
        weights.append(("bias", _numpy(conv.bias)))
    config = {
        "filters": conv.out_channels,
        "kernel_size": list(conv.kernel_size),
        "strides": list(conv.stride),
        "padding": padding,
        "data_format": "channels_last",
        "dilation_rate": list(conv.dilation),
        "groups": conv.groups,
        "activation": "linear",
        "use_bias": conv.bias is not None,
    }
    layers.add(f"Conv{d}D", f"conv{d}d", config, weights)


def _locally_connected(
    layers: _Layers, layer: LocallyConnected1d | LocallyConnected2d, where: str
) -> None:
    d = len(layer.kernel_size)
    padding = _layer_geometry(layer, 2)["padding"]
    implementation = 1 if padding == "valid" else 2
    kernel, bias = export_keras_weights(layer, implementation=implementation)
    weights = [("kernel", kernel)] + ([("bias", bias)] if bias is not None else [])
    if layer.bias is not None and layer.shared_bias:
        raise ValueError(
            f"{where}: Keras biases are per position; export a shared_bias=False layer"
        )
    config = {
        "filters": layer.out_channels,
        "kernel_size": list(layer.kernel_size),
        "strides": list(layer.stride),
        "padding": padding,
        "data_format": "channels_last",
        "activation": "linear",
        "use_bias": layer.bias is not None,
        "implementation": implementation,
    }
    layers.add(f"LocallyConnected{d}D", f"locally_connected{d}d", config, weights)


def _pool(layers: _Layers, pool: Any, d: int, where: str) -> None:
    maximum = isinstance(pool, (nn.MaxPool1d, nn.MaxPool2d))
    padding = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,) * d
    if any(padding) or pool.ceil_mode:
        raise ValueError(f"{where}: only padding=0 and ceil_mode=False pooling has a Keras equal")
    if maximum and any(v != 1 for v in np.atleast_1d(pool.dilation)):
        raise ValueError(f"{where}: Keras pooling has no dilation")
    if not maximum and getattr(pool, "divisor_override", None) is not None:
        raise ValueError(f"{where}: Keras pooling has no divisor_override")
    k = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * d
    s = pool.stride if isinstance(pool.stride, tuple) else (pool.stride,) * d
    kind = "Max" if maximum else "Average"
    config = {
        "pool_size": list(k),
        "strides": list(s),
        "padding": "valid",
        "data_format": "channels_last",
    }
    layers.add(f"{kind}Pooling{d}D", f"{kind.lower()}_pooling{d}d", config)


def _batch_norm(
    layers: _Layers, norm: nn.BatchNorm1d | nn.BatchNorm2d, rank: int, where: str
) -> None:
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(f"{where}: a BatchNorm without running statistics has no Keras equal")
    weights = []
    if norm.affine:
        weights += [("gamma", _numpy(norm.weight)), ("beta", _numpy(norm.bias))]
    weights += [
        ("moving_mean", _numpy(norm.running_mean)),
        ("moving_variance", _numpy(norm.running_var)),
    ]
    config = {
        "axis": rank - 1,
        "epsilon": float(norm.eps),
        "center": norm.affine,
        "scale": norm.affine,
    }
    layers.add("BatchNormalization", "batch_normalization", config, weights)


def _activation(module: nn.Module, rank: int, where: str) -> str:
    if isinstance(module, nn.ELU) and module.alpha == 1.0:
        return "elu"
    if isinstance(module, nn.GELU) and module.approximate == "none":
        return "gelu"
    if isinstance(module, nn.Softplus) and module.beta == 1.0:
        return "softplus"
    if isinstance(module, nn.Softmax) and module.dim in (1, -1 if rank == 2 else 1):
        return "softmax"
    name = _ACTIVATIONS.get(type(module))
    if name is None:
        raise ValueError(
            f"{where}: {type(module).__name__} has no Keras counterpart; exportable: {EXPORTABLE}"
        )
    return name


def _translate(layers: _Layers, module: nn.Module, shape: tuple[int, ...], where: str) -> None:
    rank = len(shape)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        _conv(layers, module, where)
    elif isinstance(module, (LocallyConnected1d, LocallyConnected2d)):
        _locally_connected(layers, module, where)
    elif isinstance(module, nn.Linear):
        if rank != 2:
            raise ValueError(
                f"{where}: a Linear on a rank-{rank} input acts on PyTorch's last axis, which is "
                "not Keras' channels axis; flatten first"
            )
        weights = [("kernel", _numpy(module.weight).T)]
        if module.bias is not None:
            weights.append(("bias", _numpy(module.bias)))
        config = {
            "units": module.out_features,
            "activation": "linear",
            "use_bias": module.bias is not None,
        }
        layers.add("Dense", "dense", config, weights)
    elif isinstance(module, nn.Flatten):
        if module.start_dim != 1 or module.end_dim != -1:
            raise ValueError(f"{where}: only Flatten(start_dim=1, end_dim=-1) has a Keras equal")
        if rank >= 3:  # Keras' tensor is (N, *spatial, C): put C first, then flatten
            layers.add("Permute", "permute", {"dims": [rank - 1, *range(1, rank - 1)]})
        layers.add("Flatten", "flatten", {"data_format": "channels_last"})
    elif isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
        _pool(layers, module, rank - 2, where)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        _batch_norm(layers, module, rank, where)
    elif isinstance(module, (nn.ZeroPad1d, nn.ZeroPad2d)):
        p = module.padding
        pairs = [(p[i], p[i + 1]) for i in range(len(p) - 2, -1, -2)]
        _zero_padding(layers, pairs)
    elif isinstance(module, nn.Dropout):
        layers.add("Dropout", "dropout", {"rate": float(module.p)})
    elif isinstance(module, nn.Identity):
        return
    else:
        layers.add("Activation", "activation", {"activation": _activation(module, rank, where)})


def _leaves(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    if isinstance(module, nn.Sequential):
        found: list[tuple[str, nn.Module]] = []
        for name, child in module.named_children():
            found += _leaves(child, f"{prefix}.{name}" if prefix else name)
        return found
    return [(prefix, module)]


def save_model(
    model: nn.Sequential,
    path: str | os.PathLike,
    *,
    input_shape: Sequence[int],
    overwrite: bool = False,
) -> None:
    """Write ``model`` as a Keras 2 ``.h5`` file that ``tf.keras.models.load_model`` reads.

    Args:
        model: an ``nn.Sequential`` (nested ones are flattened) of the layers in ``EXPORTABLE``.
        path: the ``.h5`` file to write (written to a temporary name, then renamed).
        input_shape: one example's shape in PyTorch's layout, without the batch, e.g.
            ``(3, 32, 32)``; the Keras model takes ``(batch, 32, 32, 3)``.
        overwrite: replace an existing file; otherwise an existing ``path`` is refused.

    Raises:
        ValueError: before writing anything, for a module with no Keras counterpart (naming it)
            or an existing ``path``.

    Example::

        >>> save_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), "m.h5",
        ...            input_shape=(3, 8, 8))  # doctest: +SKIP
    """
    target = Path(os.fspath(path))
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"save_model: model must be an nn.Sequential, got {type(model).__name__}")
    if target.exists() and not overwrite:
        raise ValueError(f"save_model: {str(target)!r} exists; pass overwrite=True to replace it")
    if not target.parent.is_dir():
        raise ValueError(f"save_model: the folder of {str(target)!r} does not exist")
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(
            f"save_model: input_shape must be positive sizes, got {tuple(input_shape)}"
        )
    parameter = next(model.parameters(), None)
    x = torch.zeros(
        1,
        *shape,
        dtype=parameter.dtype if parameter is not None else torch.float32,
        device="meta" if parameter is None else parameter.device,
    )
    layers = _Layers()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for name, module in _leaves(model, ""):
                where = f"save_model: layer {name!r} ({type(module).__name__})"
                _translate(layers, module, tuple(x.shape), where)
                x = module(x)
    finally:
        model.train(was_training)
    keras_input = [None, *shape[1:], shape[0]] if len(shape) >= 2 else [None, *shape]
    input_layer = {
        "class_name": "InputLayer",
        "config": {
            "batch_input_shape": keras_input,
            "dtype": "float32",
            "sparse": False,
            "ragged": False,
            "name": "input_1",
        },
    }
    config = {
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": [input_layer, *layers.configs]},
    }
    _write(target, config, layers)


def _write(target: Path, config: dict[str, Any], layers: _Layers) -> None:
    try:
        import h5py
    except ImportError as error:
        raise ImportError("save_model needs h5py: pip install 'locality[keras]'") from error
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        with h5py.File(temporary, "w") as f:
            f.attrs["backend"] = "tensorflow"
            f.attrs["keras_version"] = KERAS_VERSION
            f.attrs["model_config"] = json.dumps(config)
            group = f.create_group("model_weights")
            group.attrs["backend"] = "tensorflow"
            group.attrs["keras_version"] = KERAS_VERSION
            group.attrs["layer_names"] = np.array([n.encode("utf8") for n in layers.weights])
            for name, weights in layers.weights.items():
                layer = group.create_group(name)
                names = [f"{name}/{w}:0".encode() for w, _ in weights]
                layer.attrs["weight_names"] = np.array(names) if names else np.array([], "float64")
                for (_, array), full in zip(weights, names, strict=True):
                    layer[full.decode("utf8")] = array
            top = group.create_group("top_level_model_weights")
            top.attrs["weight_names"] = np.array([], "float64")
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's file is private; a saved model is not
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
