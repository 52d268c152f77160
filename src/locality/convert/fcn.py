"""Turn a trained classifier into a fully convolutional network, by rewriting its torch.fx graph.

Note 004's move, for any model: the first Linear after the flatten becomes a convolution whose
kernel is the whole feature map, the following Linears become 1x1 convolutions, and the flatten
disappears. On the training size the result computes the same scores (as a 1x1 map); on a larger
input it slides the head over the feature map and returns a map of scores.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from locality._arguments import check_shape
from locality.connectivity import Connectivity, Periodic, sliding_of
from locality.convert.lattice import linear_to_conv, linear_to_conv1x1
from locality.geometry import Geometry

__all__ = ["fully_convolutional"]

WHERE = "fully_convolutional"

_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardshrink,
    nn.Softshrink,
    nn.Tanhshrink,
    nn.Softplus,
    nn.Softsign,
    nn.LogSigmoid,
    nn.Threshold,
    nn.Identity,
    nn.Dropout,
    nn.AlphaDropout,
)
_FUNCTIONS = {
    F.relu,
    F.relu_,
    torch.relu,
    torch.relu_,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.sigmoid,
    torch.sigmoid,
    F.tanh,
    torch.tanh,
    F.hardtanh,
    F.hardswish,
    F.hardsigmoid,
    F.softplus,
    F.logsigmoid,
    F.dropout,
    F.alpha_dropout,
}
_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "contiguous", "clone"}
_ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg}
_SOFTMAX_MODULES = (nn.Softmax, nn.LogSoftmax)
_SOFTMAX_FUNCTIONS = {F.softmax, torch.softmax, F.log_softmax, torch.log_softmax}
_ADAPTIVE = {
    nn.AdaptiveAvgPool1d: nn.AvgPool1d,
    nn.AdaptiveAvgPool2d: nn.AvgPool2d,
    nn.AdaptiveAvgPool3d: nn.AvgPool3d,
    nn.AdaptiveMaxPool1d: nn.MaxPool1d,
    nn.AdaptiveMaxPool2d: nn.MaxPool2d,
    nn.AdaptiveMaxPool3d: nn.MaxPool3d,
}
_ADAPTIVE_FUNCTIONS = {
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
}
_BATCHNORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def fully_convolutional(model: nn.Module, input_shape: Sequence[int]) -> fx.GraphModule:
    """Rewrite a classifier so that it takes larger inputs and returns a map of scores.

    Handles a flatten (``nn.Flatten``, ``torch.flatten``, ``x.view(x.size(0), -1)``, ``reshape``)
    of a ``(N, C, *spatial)`` feature map, also after a permute to channels-last (the first
    Linear's weights are reordered), followed by Linear / BatchNorm1d / activation / Dropout /
    softmax-over-classes layers. An adaptive pooling that is the identity at the training size is
    removed; one that divides its input evenly before the head (a global average pool, say)
    becomes a stride-1 pooling and the first head convolution is dilated by the pooling factor,
    so that the head slides at the backbone's stride. A global average written as
    ``x.mean((2, 3))`` (or ``torch.mean``, with or without ``keepdim``) is such a pooling too, and
    a ``LayerNorm`` over the head's features normalises the features at every position.

    Refused with a ValueError naming the node: a transpose before the flatten other than to
    channels-last (a spatial transpose, or channels swapped with a spatial axis, would be read in
    another order on larger inputs), any axis reordering inside the backbone, and a ``Linear`` or
    matmul applied along a spatial axis of a feature map.

    Args:
        model: any ``nn.Module`` that ``torch.fx.symbolic_trace`` can trace. It is not modified.
        input_shape: ``(C, *spatial)`` the model was trained on (1 to 3 spatial dims).

    Returns:
        A ``torch.fx.GraphModule``. On an input ``(N, C, *size)`` it returns
        ``(N, classes, *out)``; at the training size ``out`` is all ones and the scores are the
        model's. Its ``geometry`` attribute (``Geometry``) gives the output stride, the
        receptive field and the offset of the score map, and ``input_shape`` the training shape.
        An input smaller than the training size is refused with a ValueError naming both.

    Exactness: with a padding-free backbone, cell ``i`` equals ``model`` on the training-size
    window at ``i * stride`` (see ``sliding_window``); with padding, it equals the head slid
    over the backbone's feature map (the windows' own borders would be padded differently).

    Raises:
        ValueError: naming the graph node, for a pattern that cannot be converted.
    """
    shape = check_shape(input_shape, "input_shape", WHERE)
    d = len(shape) - 1
    if d not in (1, 2, 3):
        raise ValueError(
            f"{WHERE}: input_shape must be (C, *spatial) with 1 to 3 spatial dims, got {shape}"
        )
    gm = _trace(model)
    reference = next(iter(model.parameters()), None)
    example = torch.zeros(
        2,
        *shape,
        dtype=reference.dtype if reference is not None else torch.get_default_dtype(),
        device=reference.device if reference is not None else None,
    )
    _propagate(gm, example, shape)
    if _global_means_to_pools(gm, d):
        _propagate(gm, example)
    flattens = [node for node in gm.graph.nodes if _is_flatten(gm, node, d)]
    if not flattens:
        raise ValueError(
            f"{WHERE}: found no flatten of a {d + 2}-D (N, C, *spatial) feature map to "
            f"(N, features) "
            f"in the model ({type(model).__name__}) at input_shape {shape} (looked for nn.Flatten, "
            f"torch.flatten, view and reshape)"
        )
    for node in flattens:
        _convert_head(gm, node, d)
    _remove_identity_pools(gm)
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    _propagate(gm, example)
    periods: list[tuple[int, ...]] = []
    geometry = _fold_tile_periods(gm, _geometry(gm, d, periods), periods)
    # nn.Module.__setattr__ is typed for tensors and modules only.
    gm.geometry = geometry  # type: ignore[assignment]
    gm.input_shape = shape  # type: ignore[assignment]
    gm.register_forward_pre_hook(_check_input_size)
    return gm


class _Tracer(fx.Tracer):
    """Keeps every connectivity layer one ``call_module`` node, so its geometry can be read."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        is_layer = isinstance(getattr(type(m), "connectivity", None), property)
        return is_layer or super().is_leaf_module(m, module_qualified_name)


_AVERAGE_POOLS = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


def _global_means_to_pools(gm: fx.GraphModule, d: int) -> bool:
    """Rewrite ``x.mean((2, 3))`` over every spatial axis of a map as a pooling of the training
    size (stride 1) and a flatten, which the head conversion then treats as any flatten.

    Returns whether anything was rewritten.
    """
    rewritten = False
    for node in list(gm.graph.nodes):
        is_mean = (
            node.op == "call_method"
            and node.target == "mean"
            or node.op == "call_function"
            and node.target is torch.mean
        )
        if not is_mean or not node.args or _shape(node.args[0]) is None:
            continue
        source = node.args[0]
        rank = len(_dims(source))
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        keepdim = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
        dims = (dims,) if isinstance(dims, int) else dims
        if (
            rank != d + 2
            or not isinstance(dims, (tuple, list))
            or not all(isinstance(a, int) for a in dims)
            or sorted(a % rank for a in dims) != list(range(2, d + 2))
            or "dtype" in node.kwargs
        ):
            continue
        name = f"global_mean_{node.name}"
        gm.add_submodule(name, _AVERAGE_POOLS[d](kernel_size=_dims(source)[2:], stride=1))
        with gm.graph.inserting_before(node):
            pooled = gm.graph.call_module(name, (source,))
            result = pooled if keepdim else gm.graph.call_function(torch.flatten, (pooled, 1))
        node.replace_all_uses_with(result)
        gm.graph.erase_node(node)
        rewritten = True
    if rewritten:
        gm.recompile()
    return rewritten


def _check_input_size(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook of a converted network: name the training size for smaller inputs."""
    x, training = args[0] if args else None, getattr(module, "input_shape", None)
    if not isinstance(x, torch.Tensor) or training is None or x.dim() != len(training) + 1:
        return
    size = tuple(x.shape[2:])
    if any(n < t for n, t in zip(size, training[1:], strict=True)):
        raise ValueError(
            f"{WHERE} network: input of spatial size {size} is smaller than the training size "
            f"{tuple(training[1:])}; it needs at least that in every dimension"
        )


class _ChannelLayerNorm(nn.LayerNorm):
    """A head's ``LayerNorm`` over the features, applied at every position of a score map: it
    normalises over dim 1 of ``(N, F, *out)`` (the same parameters and state dict keys)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return super().forward(input.movedim(1, -1)).movedim(-1, 1)


def _trace(model: nn.Module) -> fx.GraphModule:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{WHERE}: model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        root = copy.deepcopy(model)
        return fx.GraphModule(root, _Tracer().trace(root), type(model).__name__)
    except Exception as error:
        raise ValueError(
            f"{WHERE}: torch.fx could not trace {type(model).__name__} ({error}); models with "
            f"data-dependent control flow need to be made traceable first"
        ) from error


def _propagate(
    gm: fx.GraphModule, example: torch.Tensor, shape: tuple[int, ...] | None = None
) -> None:
    """Record every node's output shape, in eval mode (batch statistics need no batch).

    With ``shape`` (the first pass, on the traced model) a plain forward pass runs first, so that
    an ``input_shape`` the model cannot take is refused with the model's own complaint, named.
    """
    modes = {module: module.training for module in gm.modules()}
    gm.eval()
    try:
        with torch.no_grad():
            if shape is not None:
                try:
                    gm.forward(example)  # not gm(): on failure, that prints the generated code
                except Exception as error:  # the model's own complaint, whatever its type
                    raise ValueError(
                        f"{WHERE}: the model cannot take input_shape {shape}: "
                        f"{type(error).__name__}: {error}"
                    ) from error
            ShapeProp(gm).propagate(example)
    finally:
        for module, training in modes.items():
            module.train(training)


def _shape(node: object) -> tuple[int, ...] | None:
    """The output shape ShapeProp recorded for ``node``; None for non-tensors and non-nodes."""
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _dims(node: fx.Node) -> tuple[int, ...]:
    """The output shape of ``node``, which must be a tensor."""
    shape = _shape(node)
    if shape is None:
        raise ValueError(f"{WHERE}: node {node.name!r} does not produce a tensor")
    return shape


def _input(node: fx.Node) -> fx.Node:
    """The node computing ``node``'s first argument."""
    first = node.args[0] if node.args else None
    if not isinstance(first, fx.Node):
        raise ValueError(f"{WHERE}: node {node.name!r} does not take a tensor first")
    return first


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module:
    """The submodule a ``call_module`` node calls."""
    return gm.get_submodule(str(node.target))


def _describe(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        what = f"{node.target}: {type(_module(gm, node)).__name__}"
    elif node.op == "call_method":
        what = f".{node.target}()"
    else:
        what = getattr(node.target, "__name__", str(node.target))
    return f"node {node.name!r} ({what}, output shape {_shape(node)})"


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg(
        (node.args, node.kwargs), lambda a: found.append(a) if _shape(a) is not None else None
    )
    return found


def _tensor_users(node: fx.Node) -> int:
    """Users that compute tensors from ``node`` (reading its ``.shape`` does not count)."""
    return sum(_shape(user) is not None or user.op == "output" for user in node.users)


def _is_flatten(gm: fx.GraphModule, node: fx.Node, d: int) -> bool:
    is_op = (
        node.op == "call_module"
        and isinstance(_module(gm, node), nn.Flatten)
        or node.op == "call_function"
        and node.target in (torch.flatten, torch.reshape)
        or node.op == "call_method"
        and node.target in ("flatten", "view", "reshape")
    )
    if not is_op or not node.args:
        return False
    before, after = _shape(node.args[0]), _shape(node)
    return (
        before is not None
        and after is not None
        and len(before) == d + 2
        and after == (before[0], math.prod(before[1:]))
    )


def _is_pointwise(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Elementwise ops whose meaning does not depend on the layout of the features."""
    if node.op == "call_module":
        return isinstance(_module(gm, node), _ACTIVATIONS)
    if node.op == "call_method":
        return node.target in _METHODS
    if node.op == "call_function":
        if node.target in _ARITHMETIC:
            return len(_tensor_inputs(node)) == 1 and all(
                isinstance(a, (int, float, fx.Node)) for a in node.args
            )
        return node.target in _FUNCTIONS
    return False


def _replace_module(gm: fx.GraphModule, node: fx.Node, new: nn.Module) -> None:
    new.train(_module(gm, node).training)
    gm.add_submodule(str(node.target), new)


def _convert_head(gm: fx.GraphModule, flatten: fx.Node, d: int) -> None:
    """Remove ``flatten`` and convert everything downstream of it to act on maps."""
    source, permutation, dilation = _walk_back(gm, _input(flatten), d)
    features = _dims(source)[1:]
    head, users = _input(flatten), list(flatten.users)
    flatten.replace_all_uses_with(head)
    gm.graph.erase_node(flatten)
    state = {head: "flat"}
    for node in users:
        _visit(gm, node, d, state, features, permutation, dilation)


def _walk_back(
    gm: fx.GraphModule, node: fx.Node, d: int
) -> tuple[fx.Node, tuple[int, ...] | None, tuple[int, ...]]:
    """Before the flatten: drop a channels-last permute and unstride an adaptive pooling.

    Returns the node holding the (N, C, *spatial) map, the flatten's axis order over it, and the
    dilation the first head convolution needs.
    """
    permutation: tuple[int, ...] | None = None
    dilation = (1,) * d
    current = node
    while True:
        if _is_layout(current):
            dims = _permute_dims(current)
            channels_first, channels_last = tuple(range(d + 2)), (0, *range(2, d + 2), 1)
            if (
                permutation is not None
                or _tensor_users(current) != 1
                or dims not in (channels_first, channels_last)
            ):
                raise ValueError(
                    f"{WHERE}: {_describe(gm, current)} reorders the axes of the feature map "
                    f"before the flatten to {dims}, which cannot be folded into the weights "
                    f"(expected one permute to channels-last (N, *spatial, C), used only by the "
                    f"flatten; a transpose of spatial axes or of channels with a spatial axis "
                    f"would be read differently on larger inputs)"
                )
            permutation = dims
            previous = _input(current)
            current.replace_all_uses_with(previous)
            gm.graph.erase_node(current)
            current = previous
        elif _is_adaptive(gm, current) and _dims(current)[2:] != _dims(_input(current))[2:]:
            dilation = _unstride_pool(gm, current, d)
            return current, permutation, dilation
        elif _is_pointwise(gm, current) and _tensor_users(current) == 1:
            current = _tensor_inputs(current)[0]
        else:
            return current, permutation, dilation


_LAYOUT_METHODS = {"permute", "transpose", "swapaxes", "swapdims", "movedim", "moveaxis"}
_LAYOUT_FUNCTIONS = {
    torch.permute,
    torch.transpose,
    torch.swapaxes,
    torch.swapdims,
    torch.movedim,
    torch.moveaxis,
}


def _is_layout(node: fx.Node) -> bool:
    """An op that reorders the axes of a tensor (permute, transpose, movedim, ...)."""
    if node.op == "call_method":
        return node.target in _LAYOUT_METHODS
    return node.op == "call_function" and node.target in _LAYOUT_FUNCTIONS


def _permute_dims(node: fx.Node) -> tuple[int, ...]:
    """The axis order ``node`` produces: output axis ``i`` is input axis ``dims[i]``."""
    rank = len(_dims(node))
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    values: Any = list(node.args[1:]) + list(node.kwargs.values())  # fx arguments
    if name == "permute":
        if len(values) == 1 and isinstance(values[0], (tuple, list)):
            values = values[0]
        return tuple(int(a) % rank for a in values)
    if len(values) != 2 or not all(isinstance(v, int) for v in values):
        raise ValueError(f"{WHERE}: node {node.name!r} moves axes {values}; cannot fold it")
    first, second = (int(v) % rank for v in values)
    order = list(range(rank))
    if name in ("movedim", "moveaxis"):
        order.insert(second, order.pop(first))
    else:
        order[first], order[second] = order[second], order[first]
    return tuple(order)


def _is_adaptive(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return type(_module(gm, node)) in _ADAPTIVE
    return node.op == "call_function" and node.target in _ADAPTIVE_FUNCTIONS


def _unstride_pool(gm: fx.GraphModule, node: fx.Node, d: int) -> tuple[int, ...]:
    """Adaptive pooling ``n -> o`` with ``o | n`` as a stride-1 pooling of window ``n/o``.

    At the training size the head then reads the pooled map at a spacing of ``n/o`` (a
    dilation), which is where the adaptive pooling's cells were.
    """
    before, after = _dims(_input(node))[2:], _dims(node)[2:]
    if (
        node.op != "call_module"
        or any(n % o for n, o in zip(before, after, strict=True))
        or _tensor_users(node) != 1
    ):
        raise ValueError(
            f"{WHERE}: {_describe(gm, node)} pools {before} to {after} at the training size; it "
            f"can be converted only as an nn.Adaptive*Pool module, used only by the head, whose "
            f"output size divides its input size"
        )
    module = _module(gm, node)
    if getattr(module, "return_indices", False):
        raise ValueError(f"{WHERE}: {_describe(gm, node)} returns indices; cannot convert")
    factor = tuple(n // o for n, o in zip(before, after, strict=True))
    _replace_module(gm, node, _ADAPTIVE[type(module)](kernel_size=factor, stride=1))
    return factor


def _visit(gm, node, d, state, features, permutation, dilation) -> None:
    """Convert ``node`` (which reads the flattened features or a head value) and its users."""
    if node in state or node.op == "output":
        return
    inputs = _tensor_inputs(node)
    kinds = {state.get(a) for a in inputs}
    if len(kinds) != 1 or None in kinds:
        raise ValueError(
            f"{WHERE}: {_describe(gm, node)} mixes the classifier head with other values; only "
            f"a chain of Linear, BatchNorm1d, LayerNorm, activation, Dropout and softmax layers "
            f"can follow "
            f"the flatten"
        )
    kind = kinds.pop()
    module = _module(gm, node) if node.op == "call_module" else None
    if isinstance(module, nn.Linear):
        if kind == "flat":
            channels_last = permutation is not None and permutation[1:] != tuple(range(1, d + 2))
            if channels_last:
                _check_channels_last(gm, node, permutation, d)
            conv = linear_to_conv(module, features, channels_last=channels_last, dilation=dilation)
        else:
            conv = linear_to_conv1x1(module, d)
        _replace_module(gm, node, conv)
        state[node] = "vector"
    elif _is_pointwise(gm, node):
        state[node] = kind
    elif kind == "vector" and isinstance(module, nn.BatchNorm1d):
        if d != 1:
            norm = _BATCHNORM[d](
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                device=_device(module),
                dtype=_dtype(module),
            )
            norm.load_state_dict(module.state_dict())
            _replace_module(gm, node, norm)
        state[node] = kind
    elif (
        kind == "vector"
        and isinstance(module, nn.LayerNorm)
        and len(module.normalized_shape) == 1
        and type(module) is nn.LayerNorm
    ):
        layer_norm = _ChannelLayerNorm(
            module.normalized_shape,
            module.eps,
            module.elementwise_affine,
            bias=module.bias is not None,
            device=_device(module),
            dtype=_dtype(module),
        )
        layer_norm.load_state_dict(module.state_dict())
        _replace_module(gm, node, layer_norm)
        state[node] = kind
    elif kind == "vector" and _is_softmax(gm, node, module):
        state[node] = kind
    else:
        raise ValueError(
            f"{WHERE}: cannot convert {_describe(gm, node)} after the flatten (on "
            f"{'the flattened feature map' if kind == 'flat' else 'the head features'}); only "
            f"Linear, BatchNorm1d or LayerNorm (after a Linear), activations, Dropout and softmax "
            f"over the classes are supported there"
        )
    for user in list(node.users):
        _visit(gm, user, d, state, features, permutation, dilation)


def _check_channels_last(gm, node, permutation, d) -> None:
    if permutation != (0, *range(2, d + 2), 1):
        raise ValueError(
            f"{WHERE}: {_describe(gm, node)} reads features flattened in axis order "
            f"{permutation}; only (N, C, *spatial) and channels-last (N, *spatial, C) are supported"
        )


def _is_softmax(gm, node, module) -> bool:
    """A softmax over the classes: make it act on dim 1 of the score map."""
    if isinstance(module, _SOFTMAX_MODULES) and module.dim in (1, -1, None):
        _replace_module(gm, node, type(module)(dim=1))
        return True
    is_call = (
        node.op == "call_function"
        and node.target in _SOFTMAX_FUNCTIONS
        or node.op == "call_method"
        and node.target in ("softmax", "log_softmax")
    )
    if not is_call:
        return False
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    if dim not in (1, -1):
        return False
    node.args = node.args[:1]
    node.kwargs = {**node.kwargs, "dim": 1}
    return True


def _device(module: nn.Module):
    return next(iter(module.state_dict().values())).device


def _dtype(module: nn.Module):
    return next((p.dtype for p in module.parameters()), None)


def _remove_identity_pools(gm: fx.GraphModule) -> None:
    """Drop adaptive poolings that do nothing at the training size; refuse the others."""
    for node in list(gm.graph.nodes):
        fixed = _fixed_connectivity(gm, node)
        if fixed is not None:
            raise ValueError(
                f"{WHERE}: {_describe(gm, node)} is {fixed.kind.replace('_', ' ')}: its input size "
                f"is fixed, so the network cannot take larger inputs (project() it to a "
                f"convolution first)"
            )
        if not _is_adaptive(gm, node):
            continue
        if _dims(node)[2:] != _dims(_input(node))[2:]:
            raise ValueError(
                f"{WHERE}: {_describe(gm, node)} changes spatial size "
                f"{_dims(_input(node))[2:]} -> "
                f"{_dims(node)[2:]} at the training size and is not directly before the head, "
                f"so its output size would stay fixed on larger inputs"
            )
        node.replace_all_uses_with(_input(node))
        gm.graph.erase_node(node)


def _fixed_connectivity(gm: fx.GraphModule, node: fx.Node) -> Connectivity | None:
    """The connectivity of a layer node whose input size is fixed (locally connected), else None."""
    if node.op != "call_module":
        return None
    module = _module(gm, node)
    if not isinstance(getattr(type(module), "connectivity", None), property):
        return None
    connectivity = Connectivity.of(module)
    return connectivity if connectivity.input_size is not None else None


def _tile_period(gm: fx.GraphModule, node: fx.Node, after: Geometry) -> tuple[int, ...] | None:
    """Input positions between score-map cells whose windows see this layer's kernel map as the
    training window does: the layer's output stride times its tile (None for one kernel)."""
    module = _module(gm, node)
    if not isinstance(getattr(type(module), "connectivity", None), property):
        return None
    connectivity = Connectivity.of(module)
    if connectivity.num_kernels == 1:
        return None
    if not isinstance(connectivity.map, Periodic):
        raise ValueError(
            f"{WHERE}: {_describe(gm, node)} ({connectivity.kind}) uses different kernels at "
            f"different positions without a period, so the network has no exact score map"
        )
    return tuple(j * t for j, t in zip(after.stride, connectivity.bank_shape, strict=True))


def _fold_tile_periods(
    gm: fx.GraphModule, geometry: Geometry, periods: list[tuple[int, ...]]
) -> Geometry:
    """Keep only the cells whose windows every tiled layer's kernel map lines up with.

    A tiled layer's kernel at a position depends on the position mod its tile: the score map
    equals the classifier on a window only where the window starts at a multiple of that period,
    so the cell stride becomes the lcm of the network's stride and every tiled layer's period.
    """
    cell = geometry.stride
    for period in periods:
        cell = tuple(math.lcm(c, p) for c, p in zip(cell, period, strict=True))
    step = tuple(c // s for c, s in zip(cell, geometry.stride, strict=True))
    if all(s == 1 for s in step):
        return geometry
    output = next(node for node in gm.graph.nodes if node.op == "output")
    scores = output.args[0]
    if not isinstance(scores, fx.Node):
        raise ValueError(
            f"{WHERE}: the model returns {type(scores).__name__}, not one score tensor, so the "
            f"score map cannot be subsampled to its tiled layers' period {cell}"
        )
    index = (slice(None), slice(None), *(slice(None, None, s) for s in step))
    with gm.graph.inserting_before(output):
        kept = gm.graph.call_function(operator.getitem, (scores, index))
    output.args = (kept,)
    gm.graph.lint()
    gm.recompile()
    return Geometry(cell, geometry.receptive_field, geometry.offset)


def _refuse_axis_ops(gm: fx.GraphModule, node: fx.Node, d: int) -> None:
    """Refuse ops on a feature map that read its spatial axes as fixed-size vectors.

    A transpose of spatial axes, or of channels with a spatial axis, stays correct on the
    training size but reads a larger map in another order; a Linear (or matmul) along the last
    axis only takes that axis' training size.
    """
    rank = len(_dims(node)) if _shape(node) is not None else 0
    if rank != d + 2:
        return
    if _is_layout(node) and _permute_dims(node) != tuple(range(rank)):
        raise ValueError(
            f"{WHERE}: {_describe(gm, node)} reorders the axes {_permute_dims(node)} of a feature "
            f"map inside the backbone; on a larger input its spatial axes would be read in "
            f"another order, so the network cannot be made fully convolutional"
        )
    module = _module(gm, node) if node.op == "call_module" else None
    is_matmul = node.op == "call_function" and node.target in (
        F.linear,
        torch.matmul,
        operator.matmul,
    )
    if isinstance(module, nn.Linear) or is_matmul:
        raise ValueError(
            f"{WHERE}: {_describe(gm, node)} applies a Linear (or matmul) along the last axis of "
            f"a feature map, a spatial axis whose size changes with the input; only Linear "
            f"layers after the flatten can be converted"
        )


def _geometry(gm: fx.GraphModule, d: int, periods: list[tuple[int, ...]] | None = None) -> Geometry:
    """Compose the sliding layers from the input to the output along the graph.

    ``periods`` collects the tile period of every tiled layer (see ``_tile_period``).
    """
    geometry: dict[fx.Node, Geometry] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            geometry[node] = Geometry.identity(d)
            continue
        inputs = [a for a in _tensor_inputs(node) if a in geometry]
        if node.op == "output":
            return geometry[inputs[0]]
        if not inputs or _shape(node) is None:
            continue
        try:
            current = inputs[0]
            g = geometry[current]
            for other in inputs[1:]:
                g = g.union(geometry[other])
        except ValueError as error:
            raise ValueError(f"{WHERE}: {_describe(gm, node)} joins {error}") from error
        _refuse_axis_ops(gm, node, d)
        sliding = sliding_of(_module(gm, node), d) if node.op == "call_module" else None
        if sliding is not None:
            g = g.after(sliding)
            period = _tile_period(gm, node, g)
            if period is not None and periods is not None:
                periods.append(period)
        elif _dims(node)[2:] != _dims(current)[2:]:
            raise ValueError(
                f"{WHERE}: {_describe(gm, node)} changes the spatial size {_dims(current)[2:]} -> "
                f"{_dims(node)[2:]} and is not a Conv, TiledConv or pooling module, so the score "
                f"map's stride and receptive field are unknown"
            )
        geometry[node] = g
    raise ValueError(f"{WHERE}: the graph has no output")
