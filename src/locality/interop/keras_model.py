"""A whole Keras 2 model -> an ``nn.Module`` computing the same function, channels first.

A ``Sequential`` model becomes an ``nn.Sequential`` with one child per Keras layer, named as the
layer; a functional model becomes a ``torch.fx.GraphModule`` whose nodes are the Keras layer calls
(shared layers are one module called twice). The modules are built on the meta device first, which
gives every tensor's shape without computing anything; the file's arrays are then checked against
the shapes Keras stores and copied in.
"""

from __future__ import annotations

import json
import keyword
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn

from locality.interop.keras_file import KerasFile, read_keras_file, read_weights_only
from locality.interop.keras_layers import Shape, Translation, translate

__all__ = ["load_model", "model_from_config", "count_keras_parameters", "input_shapes"]


@dataclass
class _Built:
    """A Keras model as a module, with each layer's translation by Keras name and class."""

    module: nn.Module
    layers: list[tuple[str, str, Translation]]


def _identifier(name: str, taken: set[str]) -> str:
    """A Python identifier close to the Keras name (``nn.Module`` child names must be one)."""
    base = re.sub(r"\W", "_", name) or "layer"
    if base[0].isdigit() or keyword.iskeyword(base):
        base = f"_{base}"
    candidate, counter = base, 1
    while candidate in taken:
        candidate, counter = f"{base}_{counter}", counter + 1
    taken.add(candidate)
    return candidate


def _input_shape(layer_config: Mapping[str, Any], where: str) -> Shape:
    """The module-layout shape (batch 1) of an input with Keras ``batch_input_shape``."""
    shape = layer_config.get("batch_input_shape") or layer_config.get("batch_shape")
    if not shape or any(s is None for s in shape[1:]):
        raise ValueError(
            f"{where}: the model's input shape {shape} is not fully known; locality needs fixed "
            "sizes (build the Keras model with input_shape=...)"
        )
    keras = (1, *(int(s) for s in shape[1:]))
    return (1, keras[-1], *keras[1:-1]) if len(keras) >= 3 else keras


def _meta(shape: Shape) -> torch.Tensor:
    return torch.empty(shape, device="meta")


def _run(module: nn.Module, inputs: list[torch.Tensor], where: str) -> torch.Tensor:
    try:
        with torch.no_grad():
            return module(*inputs)
    except (RuntimeError, ValueError, TypeError) as error:
        detail = str(error).splitlines()[0]
        raise ValueError(
            f"{where}: does not apply to its input of Keras shape "
            f"{[tuple(x.shape) for x in inputs]} (module layout): {detail}"
        ) from error


def _layer_where(source: str, name: str, class_name: str) -> str:
    return f"{source}: layer {name!r} ({class_name})"


def _sequential(config: dict[str, Any], source: str) -> _Built:
    layers = config.get("layers") or []
    if not layers:
        raise ValueError(f"{source}: the Sequential model has no layers")
    first_config = dict(layers[0].get("config", {}))
    if "batch_input_shape" not in first_config and config.get("build_input_shape"):
        first_config["batch_input_shape"] = config["build_input_shape"]  # model.build(shape)
    shape = _input_shape(first_config, f"{source}: the first layer {first_config.get('name')!r}")
    x = _meta(shape)
    children: dict[str, nn.Module] = {}
    built: list[tuple[str, str, Translation]] = []
    taken: set[str] = set()
    for entry in layers:
        class_name, layer_config = entry.get("class_name"), entry.get("config", {})
        name = str(layer_config.get("name", class_name))
        if class_name == "InputLayer":
            continue
        where = _layer_where(source, name, str(class_name))
        translation = translate(str(class_name), layer_config, [tuple(x.shape)], where)
        x = _run(translation.module, [x], where)
        children[_identifier(name, taken)] = translation.module
        built.append((name, str(class_name), translation))
    return _Built(nn.Sequential(OrderedDict(children)), built)


def _inbound(node: Any, where: str) -> list[tuple[str, int, int]]:
    """The ``(layer, node index, tensor index)`` inputs of one call, in either config format."""
    if isinstance(node, dict):  # newer configs: {"args": [...], "kwargs": {...}} with keras_history
        found: list[tuple[str, int, int]] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict) and "keras_history" in value.get("config", {}):
                layer, index, tensor = value["config"]["keras_history"]
                found.append((str(layer), int(index), int(tensor)))
            elif isinstance(value, dict):
                for v in value.values():
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(node.get("args", []))
        return found
    if isinstance(node, list):
        return [(str(item[0]), int(item[1]), int(item[2])) for item in node]
    raise ValueError(f"{where}: cannot read the inbound node {node!r}")


def _functional(config: dict[str, Any], source: str) -> _Built:
    layers = config.get("layers") or []
    graph = torch.fx.Graph()
    root = nn.Module()
    taken: set[str] = set()
    tensors: dict[tuple[str, int, int], tuple[torch.fx.Node, torch.Tensor]] = {}
    modules: dict[str, tuple[str, Translation]] = {}
    built: list[tuple[str, str, Translation]] = []
    calls_done: dict[str, int] = {}
    by_name = {str(entry.get("name") or entry["config"]["name"]): entry for entry in layers}
    for name, _, _ in (tuple(i) for i in config.get("input_layers", [])):
        entry = by_name.get(name)
        if entry is None or entry.get("class_name") != "InputLayer":
            raise ValueError(f"{source}: the model input {name!r} is not an InputLayer")
        shape = _input_shape(entry["config"], _layer_where(source, name, "InputLayer"))
        node = graph.placeholder(_identifier(name, taken))
        tensors[(name, 0, 0)] = (node, _meta(shape))
    pending = [
        (str(entry.get("name") or entry["config"]["name"]), entry)
        for entry in layers
        if entry.get("class_name") != "InputLayer"
    ]
    while pending:
        progressed = False
        for name, entry in list(pending):
            class_name = str(entry.get("class_name"))
            where = _layer_where(source, name, class_name)
            nodes = entry.get("inbound_nodes") or []
            index = calls_done.get(name, 0)
            if index >= len(nodes):
                pending.remove((name, entry))
                progressed = True
                continue
            inputs = _inbound(nodes[index], where)
            if not all(key in tensors for key in inputs):
                continue
            args = [tensors[key] for key in inputs]
            if name not in modules:
                translation = translate(
                    class_name, entry.get("config", {}), [tuple(t.shape) for _, t in args], where
                )
                target = _identifier(name, taken)
                root.add_module(target, translation.module)
                modules[name] = (target, translation)
                built.append((name, class_name, translation))
            target, translation = modules[name]
            out = _run(translation.module, [t for _, t in args], where)
            node = graph.call_module(target, tuple(n for n, _ in args))
            tensors[(name, index, 0)] = (node, out)
            calls_done[name] = index + 1
            progressed = True
        if not progressed:
            names = ", ".join(repr(n) for n, _ in pending)
            raise ValueError(f"{source}: the layers {names} have inputs that are never computed")
    outputs = []
    for item in config.get("output_layers", []):
        key = (str(item[0]), int(item[1]), int(item[2]))
        if key not in tensors:
            raise ValueError(f"{source}: the model output {list(item)} is never computed")
        outputs.append(tensors[key][0])
    graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    return _Built(torch.fx.GraphModule(root, graph, class_name="KerasFunctional"), built)


def _build(config: Mapping[str, Any], source: str) -> _Built:
    class_name = config.get("class_name")
    inner = config.get("config")
    if not isinstance(inner, dict):
        raise ValueError(f"{source}: the model config has no 'config' entry")
    with torch.device("meta"):
        if class_name == "Sequential":
            return _sequential(inner, source)
        if class_name in ("Functional", "Model"):
            return _functional(inner, source)
    raise ValueError(
        f"{source}: the model is a {class_name}; locality reads Sequential and functional models"
    )


def _config(config: Mapping[str, Any] | str | os.PathLike, source: str) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    text = str(config)
    if not text.lstrip().startswith("{"):
        with open(os.fspath(config), encoding="utf8") as f:
            text = f.read()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: the config is not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise ValueError(f"{source}: the config is not a Keras model config")
    return value


def model_from_config(
    config: Mapping[str, Any] | str | os.PathLike, *, device: torch.device | str | None = None
) -> nn.Module:
    """The module for a Keras model config, with PyTorch's default initialisation.

    Args:
        config: ``model.get_config()``-style dict wrapped as ``{"class_name": ..., "config": ...}``
            (what ``model.to_json()`` writes), the JSON text, or a path to a JSON file.
        device: where to build; ``"meta"`` allocates nothing (for counting and summaries of
            models of any size).

    Example::

        >>> config = {"class_name": "Sequential", "config": {"layers": [
        ...     {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 3]}},
        ...     {"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3}},
        ...     {"class_name": "Flatten", "config": {}}]}}
        >>> model_from_config(config, device="meta")(torch.empty(2, 3, 8, 8, device="meta")).shape
        torch.Size([2, 144])
    """
    built = _build(_config(config, "keras: the config"), "keras: the config")
    if str(device) == "meta":
        return built.module
    module = built.module.to_empty(device=device or "cpu")
    for child in module.modules():
        reset = getattr(child, "reset_parameters", None)
        if callable(reset):
            reset()
    return module.eval()


def input_shapes(config: Mapping[str, Any] | str | os.PathLike) -> list[tuple[int, ...]]:
    """Each model input's shape in the module's layout, without the batch (``(C, *spatial)``)."""
    source = "keras: the config"
    value = _config(config, source)
    inner = value.get("config") or {}
    layers = inner.get("layers") or []
    if value.get("class_name") == "Sequential":
        entries = [
            {"config": {"batch_input_shape": inner.get("build_input_shape"), **e["config"]}}
            for e in layers[:1]
        ]
    else:
        names = [str(item[0]) for item in inner.get("input_layers", [])]
        by_name = {str(e.get("name") or e.get("config", {}).get("name")): e for e in layers}
        entries = [by_name[n] for n in names if n in by_name]
    return [_input_shape(e.get("config", {}), source)[1:] for e in entries]


def count_keras_parameters(config: Mapping[str, Any] | str | os.PathLike) -> int:
    """What Keras' ``model.count_params()`` gives for this config, computed without weights.

    The sizes of the arrays Keras stores (a ``BatchNormalization`` counts its moving statistics;
    a ``LocallyConnected`` layer with ``implementation=2`` its whole masked dense kernel).
    """
    built = _build(_config(config, "keras: the config"), "keras: the config")
    return sum(int(np.prod(s)) for _, _, t in built.layers for s in t.weight_shapes)


def _class_key(class_name: str) -> str:
    """Keras' ``to_snake_case`` of a class name: ``LocallyConnected2D -> locally_connected2d``."""
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def _v3_groups(file: KerasFile, layers: list[tuple[str, str, Translation]]) -> dict[str, str]:
    """Keras layer name -> its v3 group, matched by class in the order Keras visits the layers.

    Keras 2.12 numbers the groups of a class ``conv2d, conv2d_2, conv2d_4`` (it counts each
    layer with weights twice), later versions ``conv2d, conv2d_1``: the order is what holds.
    """
    groups: dict[str, str] = {}
    by_class: dict[str, list[str]] = {}
    for name, class_name, _ in layers:
        by_class.setdefault(class_name, []).append(name)
    for class_name, names in by_class.items():
        key = _class_key(class_name)
        pattern = re.compile(rf"^{re.escape(key)}(?:_(\d+))?$")
        matches = [(int(m.group(1) or 0), g) for g in file.weights if (m := pattern.match(g))]
        found = [g for _, g in sorted(matches)]
        if len(found) == len(names):
            groups.update(zip(names, found, strict=True))
        else:  # files whose groups carry the layer names
            groups.update({n: n for n in names if n in file.weights})
    return groups


def _assign(
    built: _Built, weights: Mapping[str, list[np.ndarray]], groups: Mapping[str, str], source: str
) -> None:
    for name, class_name, translation in built.layers:
        where = _layer_where(source, name, class_name)
        group = groups.get(name, name)
        arrays = weights.get(group)
        if not translation.weight_shapes:
            if arrays:
                raise ValueError(
                    f"{where}: the file holds {len(arrays)} arrays for a layer that has no weights"
                )
            continue
        if arrays is None:
            raise ValueError(f"{where}: the file has no weights for this layer")
        got = [tuple(a.shape) for a in arrays]
        if got != translation.weight_shapes:
            raise ValueError(
                f"{where}: the file's arrays have shapes {got}, but the layer's config needs "
                f"{translation.weight_shapes}"
            )
        assert translation.load is not None
        translation.load(arrays)


def load_model(
    path: str | os.PathLike, *, config: Mapping[str, Any] | str | os.PathLike | None = None
) -> nn.Module:
    """Read a Keras 2 model file into an ``nn.Module`` computing the same function, channels first.

    Reads ``model.save("m.h5")`` files (HDF5) and Keras v3 ``.keras`` archives with h5py and
    zipfile only: no TensorFlow. The format is told from the file's bytes. A tensor of rank >= 3 is
    ``(batch, *spatial, channels)`` in Keras and ``(batch, channels, *spatial)`` in the module;
    rank-2 tensors are the same. Keras' element order is kept where it matters (``Flatten``,
    ``Reshape``, ``Permute``), so ``torch.flatten`` of an output is *not* Keras' flatten, while the
    module's own flatten is.

    Args:
        path: the ``.h5`` or ``.keras`` file.
        config: the architecture, for a weights-only file (``model.save_weights``): the dict or
            JSON of ``model.to_json()``, or a path to that JSON. Its layer names must be the
            file's.

    Returns:
        An ``nn.Sequential`` (one child per Keras layer, named as the layer) for ``Sequential``
        models, a ``torch.fx.GraphModule`` for functional ones; in eval mode, float32.

    Raises:
        ValueError: naming the file (and layer and class) for an unsupported layer or option, a
            weights-only file without ``config``, a SavedModel folder, a non-Keras file, or arrays
            that do not fit the config. OSError for a missing, truncated or damaged file.

    Example::

        >>> model = load_model("model.h5")  # doctest: +SKIP
        >>> y = model(x.permute(0, 3, 1, 2))  # doctest: +SKIP
    """
    source = f"keras: {os.fspath(path)!r}"
    if config is None:
        file = read_keras_file(path)
        assert file.config is not None
        built = _build(file.config, source)
        weights = file.weights
        groups = _v3_groups(file, built.layers) if file.format == "keras_v3" else {}
    else:
        built = _build(_config(config, source), source)
        weights = read_weights_only(path)
        groups = {}
    module = built.module.to_empty(device="cpu")
    _assign(built, weights, groups, source)
    return module.eval()
