"""Hostile inputs for the conversions, the analyses and the pictures (issue 7).

tests/test_hostile.py covers the layers and ``locality.functional``; this file covers every other
public function: ``locality.convert``, ``locality.analysis`` and ``locality.draw``. Each example
draws a random valid call and checks its answer against an independent reference (the converted
module computes what the original computes; counts equal the parameters of a real module; drawn
edges are a Jacobian's nonzeros). Then it corrupts each argument in turn with every bad value
listed for it (a wrong type, a bool or float for a size, zero or negative sizes, a shape that
does not match the layer or model, a tile smaller than 1, a module of the wrong kind, a tensor of
the wrong rank): each must raise a ValueError or TypeError whose message starts with the
function's name and names the argument at fault. Never another exception, a message from deep
inside torch, a hang or a result of the wrong shape.
"""

from __future__ import annotations

import functools
import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import locality
from locality import analysis, convert
from locality import draw as pictures

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
SLOW = settings(SETTINGS, max_examples=25)  # each example converts or traces models
FEW = settings(SETTINGS, max_examples=10)  # the pictures: each example builds figures

F64 = torch.float64
MODES = ("zeros", "reflect", "replicate", "circular")
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TILED = {1: locality.TiledConv1d, 2: locality.TiledConv2d, 3: locality.TiledConv3d}
LOCAL = {1: locality.LocallyConnected1d, 2: locality.LocallyConnected2d}
POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d}
MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}

# Values no int argument (a size, a count, a stride) accepts.
BAD_INTS = (0, -1, 2.5, "3", None, True)
# Values no shape argument (a tuple of positive ints) accepts.
BAD_SHAPES = (None, 3, "2x3", 2.5, True, (), [0], (2, -1))
BAD_FLAGS = ("yes", 1, 0.0)


def assert_clear(error: Exception, where: str, *words: str) -> None:
    """The message is the function's own (it starts with its name) and names the argument."""
    message = str(error)
    assert message.startswith(f"{where}: "), f"not a message of {where}: {message}"
    assert any(word in message for word in words), f"names none of {words}: {message}"


def refused(call, where: str, *words: str) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert_clear(info.value, where, *words)


# What a message says about an argument whose name is too short to look for.
WORDS = {"to": "to must be", "n": "n must be", "x": "x "}


def refuses_each(fn, args: dict, options: dict[str, list], *also: str) -> None:
    """Each bad value in ``options``, put in place of its argument in the valid call ``args``,
    is refused by ``fn`` with a message naming that argument (or one of ``also``)."""
    for name, values in options.items():
        for value in values:
            call = functools.partial(fn, **{**args, name: value})
            refused(call, fn.__name__, WORDS.get(name, name), *also)


def spatial(d: int, lo: int, hi: int):
    return st.tuples(*[st.integers(lo, hi)] * d)


def extent(kernel, dilation) -> tuple[int, ...]:
    return tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation, strict=True))


def positions(grid):
    return itertools.product(*(range(n) for n in grid))


# ------------------------------------------------------------------------------------------------
# locality.convert: exact moves along the lattice


@st.composite
def bank_layers(draw):
    """A convolution, tiled convolution or locally connected layer, and an input size it takes."""
    d = draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["conv", "tiled", "local"]))
    groups = draw(st.sampled_from([1, 1, 2]))
    kernel = draw(spatial(d, 1, 3))
    dilation = draw(spatial(d, 1, 2))
    padding = draw(st.sampled_from([0, 1, "valid", "same"]))
    stride = (1,) * d if padding == "same" else draw(spatial(d, 1, 2))
    # at least 2, so that reflect padding (which needs padding < size) always works
    size = tuple(draw(st.integers(max(e, 2), e + 2)) for e in extent(kernel, dilation))
    common = dict(
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        padding_mode=draw(st.sampled_from(MODES)),
        dtype=F64,
    )
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    if kind == "conv":
        layer = CONV[d](cin, cout, kernel, **common)
    elif kind == "tiled":
        tile = draw(spatial(d, 1, 3))
        layer = TILED[d](cin, cout, kernel, tile, shared_bias=draw(st.booleans()), **common)
    else:
        layer = LOCAL[d](cin, cout, kernel, size, shared_bias=draw(st.booleans()), **common)
    return layer, size


def bad_layers() -> list:
    return [nn.ReLU(), nn.ConvTranspose1d(1, 1, 2), "conv", None, nn.LazyConv1d(1, 2)]


def is_local(layer: object) -> bool:
    return isinstance(layer, tuple(LOCAL.values()))


def untied_bias(layer: nn.Module) -> bool:
    return layer.bias is not None and layer.bias.dim() > 1


@SETTINGS
@given(bank_layers())
def test_to_dense_is_the_same_function_or_refuses(case):
    layer, size = case
    cin = layer.in_channels
    shape = (cin, *size)
    args = {"layer": layer, "input_shape": shape}
    dense = convert.to_dense(**args)
    x = torch.randn(2, *shape, dtype=F64)
    torch.testing.assert_close(dense(x.flatten(1)), layer(x).flatten(1))
    bad_shapes = [*BAD_SHAPES, (cin,), (*shape, 1), (cin + 1, *size), (float(cin), *size)]
    if is_local(layer):
        bad_shapes.append((cin, *(n + 1 for n in size)))  # not its input size
    refuses_each(convert.to_dense, args, {"input_shape": bad_shapes, "layer": bad_layers()})


@SETTINGS
@given(bank_layers(), st.sampled_from([None, True, False]))
def test_to_locally_connected_is_the_same_function_or_refuses(case, shared_bias):
    layer, size = case
    d = len(size)
    move = convert.to_locally_connected
    args = {"layer": layer, "input_size": size, "shared_bias": shared_bias}
    if is_local(layer):
        refused(functools.partial(move, **args), move.__name__, "layer")
    elif shared_bias and untied_bias(layer):
        refused(functools.partial(move, **args), move.__name__, "shared_bias")
    else:
        local = move(**args)
        assert isinstance(local, LOCAL[d]) and local.input_size == size
        x = torch.randn(2, layer.in_channels, *size, dtype=F64)
        torch.testing.assert_close(local(x), layer(x))
    options = {
        "input_size": [*BAD_INTS, (1,) * (d + 1), (0,) * d],
        "shared_bias": list(BAD_FLAGS),
        "layer": bad_layers(),
    }
    refuses_each(move, args, options, *["layer"] * is_local(layer))  # either is at fault


@pytest.mark.parametrize("move", ["to_tiled", "to_locally_connected"])
def test_a_bias_per_kernel_cannot_be_shared(move):
    untied = locality.TiledConv1d(1, 2, 2, tile_size=2)
    size = 2 if move == "to_tiled" else 5
    refused(lambda: getattr(convert, move)(untied, size, shared_bias=True), move, "shared_bias")
    again = getattr(convert, move)(untied, size)  # keeping the sharing is exact
    assert not again.shared_bias and again.bias.dim() == 2


@SETTINGS
@given(bank_layers(), st.sampled_from([None, True, False]), st.data())
def test_to_tiled_is_the_same_function_or_refuses(case, shared_bias, data):
    layer, size = case
    d = len(size)
    own = tuple(getattr(layer, "tile_size", (1,) * d))
    tile = tuple(t * m for t, m in zip(own, data.draw(spatial(d, 1, 2)), strict=True))
    args = {"layer": layer, "tile_size": tile, "shared_bias": shared_bias}
    if is_local(layer):
        refused(functools.partial(convert.to_tiled, **args), "to_tiled", "layer")
    elif shared_bias and untied_bias(layer):
        refused(functools.partial(convert.to_tiled, **args), "to_tiled", "shared_bias")
    else:
        tiled = convert.to_tiled(**args)
        assert isinstance(tiled, TILED[d]) and tiled.tile_size == tile
        x = torch.randn(2, layer.in_channels, *size, dtype=F64)
        torch.testing.assert_close(tiled(x), layer(x))
    bad_tiles = [*BAD_INTS, (1,) * (d + 1)]
    if max(own) > 1:
        bad_tiles.append(tuple(t + 1 for t in own))  # not a multiple of the layer's tile
    options = {"tile_size": bad_tiles, "shared_bias": list(BAD_FLAGS), "layer": bad_layers()}
    refuses_each(convert.to_tiled, args, options, *["layer"] * is_local(layer))


@SETTINGS
@given(st.integers(1, 3), st.data())
def test_linear_to_conv_is_the_linear_on_its_window_or_refuses(d, data):
    c, sizes, classes = data.draw(st.integers(1, 2)), data.draw(spatial(d, 1, 3)), 3
    linear = nn.Linear(c * math.prod(sizes), classes, bias=data.draw(st.booleans()), dtype=F64)
    channels_last, dilation = data.draw(st.booleans()), data.draw(st.integers(1, 2))
    shape = (c, *sizes)
    args = {"linear": linear, "input_shape": shape}
    args |= {"channels_last": channels_last, "dilation": dilation}
    options = {
        "input_shape": [*BAD_SHAPES, (c * math.prod(sizes),), (c + 1, *sizes), (*shape, 1, 1, 1)],
        "linear": [nn.Conv1d(1, 1, 1), "linear", None, nn.LazyLinear(3)],
        "channels_last": [*BAD_FLAGS, None],
        "dilation": [*BAD_INTS, (1,) * (d + 1)],
    }
    refuses_each(convert.linear_to_conv, args, options)
    conv = convert.linear_to_conv(**args)
    x = torch.randn(2, c, *(dilation * (n - 1) + 1 for n in sizes), dtype=F64)
    seen = x[(..., *[slice(None, None, dilation)] * d)]  # the taps of the dilated kernel
    flat = seen.movedim(1, -1).flatten(1) if channels_last else seen.flatten(1)
    out = conv(x)
    assert out.shape == (2, classes, *(1,) * d)
    torch.testing.assert_close(out.flatten(1), linear(flat))


@SETTINGS
@given(st.sampled_from(["linear_to_conv1x1", "conv1x1_to_linear"]), st.integers(1, 3), st.data())
def test_pointwise_moves_are_the_same_function_or_refuse(move, d, data):
    groups = data.draw(st.sampled_from([1, 2]))
    cin, cout = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    bias = data.draw(st.booleans())
    x = torch.randn(2, cin, *data.draw(spatial(d, 1, 3)), dtype=F64)
    if move == "linear_to_conv1x1":
        linear = nn.Linear(cin, cout, bias=bias, dtype=F64)
        args = {"linear": linear, "dim": d}
        options = {
            "dim": [0, 4, -1, 2.0, "2", True, None, [2]],
            "linear": [nn.Conv1d(1, 1, 1), None, nn.LazyLinear(2)],
        }
        refuses_each(convert.linear_to_conv1x1, args, options)
        conv = convert.linear_to_conv1x1(**args)
    else:
        conv = CONV[d](cin, cout, 1, groups=groups, bias=bias, dtype=F64)
        for word, bad in [
            ("kernel_size", CONV[d](cin, cout, 2)),
            ("stride", CONV[d](cin, cout, 1, stride=2)),
            ("padding", CONV[d](cin, cout, 1, padding=1)),
            *(("conv", m) for m in [nn.Linear(2, 2), locality.TiledConv1d(1, 1, 1, 2), None]),
            ("conv", nn.LazyConv1d(2, 1)),
        ]:
            refused(functools.partial(convert.conv1x1_to_linear, bad), move, word)
        linear = convert.conv1x1_to_linear(conv)
    torch.testing.assert_close(conv(x), linear(x.movedim(1, -1)).movedim(-1, 1))


def kernels_at(layer: nn.Module, grid: tuple[int, ...]):
    """``(kernel, bias)`` of ``layer`` at every position of ``grid``, from its public weights."""
    d = len(layer.kernel_size)
    weight = layer.weight.detach()
    bias = None if layer.bias is None else layer.bias.detach()
    if isinstance(layer, nn.modules.conv._ConvNd):
        weight = weight.reshape(*(1,) * d, *weight.shape)
    own = weight.shape[:d]
    for p in positions(grid):
        q = tuple(i % n for i, n in zip(p, own, strict=True))
        yield p, weight[q], None if bias is None else bias if bias.dim() == 1 else bias[q]


@SETTINGS
@given(bank_layers(), st.data())
def test_project_averages_the_kernels_or_refuses(case, data):
    layer, size = case
    d = len(size)
    local = is_local(layer)
    own = layer.output_size if local else tuple(getattr(layer, "tile_size", (1,) * d))
    to = data.draw(st.sampled_from(["conv", "tiled"]))
    # a local layer's grid is its output: a tile larger than that has nothing to average
    tile = tuple(data.draw(st.integers(1, min(3, n) if local else 3)) for n in own)
    args = {"layer": layer, "to": to, "tile_size": tile if to == "tiled" else None}
    options = {"to": ["dense", None, 3, "Conv"], "layer": [nn.Linear(2, 2), "layer", None]}
    if to == "conv":  # a convolution has one kernel: any tile is refused
        options["tile_size"] = [tile]
    else:
        options["tile_size"] = [*BAD_INTS, (1,) * (d + 1)]
        if local:
            options["tile_size"].append(tuple(n + 1 for n in own))  # larger than its output
    refuses_each(convert.project, args, options)
    result = convert.project(**args)
    target = (1,) * d if to == "conv" else tile
    # every position once: a local layer's own grid, else one period of both tilings
    grid = own if local else tuple(math.lcm(a, b) for a, b in zip(own, target, strict=True))
    classes: dict[tuple, list] = {}  # kernel index -> (kernel, bias) of its positions, flat
    for p, kernel, bias in kernels_at(layer, grid):
        r = tuple(i % t for i, t in zip(p, target, strict=True))
        flat = [kernel.flatten(), *([] if bias is None else [bias])]
        classes.setdefault(r, []).append(torch.cat(flat))
    mean = {r: torch.stack(v).mean(0) for r, v in classes.items()}
    residual = sum(float((torch.stack(v) - mean[r]).square().sum()) for r, v in classes.items())
    norm = sum(float(torch.stack(v).square().sum()) for v in classes.values())
    weight = result.layer.weight.detach()
    assert isinstance(result.layer, CONV[d] if to == "conv" else TILED[d])
    if to == "tiled":
        assert result.layer.tile_size == tile
    for r, m in mean.items():
        kernel = weight if to == "conv" else weight[r]
        torch.testing.assert_close(kernel, m[: kernel.numel()].reshape(kernel.shape))
    assert result.relative_error == pytest.approx(math.sqrt(residual / norm), abs=1e-12)


# ------------------------------------------------------------------------------------------------
# locality.convert: fully convolutional networks and their references


@st.composite
def classifiers(draw):
    """A padding-free classifier: conv, ReLU, maybe a max pool, flatten, one or two Linears."""
    d = draw(st.integers(1, 2))
    c, k, s = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    n = draw(st.integers(4, 7))
    feature = (n - k) // s + 1
    pool = feature >= 2 and draw(st.booleans())
    layers = [CONV[d](c, 2, k, stride=s, dtype=F64), nn.ReLU()]
    if pool:
        layers.append(MAXPOOL[d](2))
        feature //= 2
    classes, features = draw(st.integers(1, 3)), 2 * feature**d
    if draw(st.booleans()):
        head = [nn.Linear(features, classes, dtype=F64)]
    else:
        head = [nn.Linear(features, 3, dtype=F64), nn.ReLU(), nn.Linear(3, classes, dtype=F64)]
    model = nn.Sequential(*layers, nn.Flatten(), *head)
    return model, (c, *(n,) * d), s * (2 if pool else 1)


@SLOW
@given(classifiers(), st.data())
def test_fully_convolutional_slides_the_classifier_or_refuses(case, data):
    model, shape, stride = case
    c, n, d = shape[0], shape[1], len(shape) - 1
    args = {"model": model, "input_shape": shape}
    fcn = convert.fully_convolutional(**args)
    x = torch.randn(2, *shape, dtype=F64)
    out = fcn(x)
    assert out.shape == (2, model[-1].out_features, *(1,) * d)
    torch.testing.assert_close(out.flatten(1), model(x))
    assert fcn.geometry.stride == (stride,) * d
    big = torch.randn(1, c, *(n + stride * e for e in data.draw(spatial(d, 0, 2))), dtype=F64)
    torch.testing.assert_close(fcn(big), convert.sliding_window(model, big, n, stride))
    options = {
        "input_shape": [
            *BAD_SHAPES,
            (c,),
            (c + 1, *shape[1:]),  # the model cannot take it
            (c, *(n + stride,) * d),  # another feature size than the head's
            (*shape, 2),
            (float(c), *shape[1:]),
        ],
        "model": ["net", None, CONV[d](c, 2, 1)],  # the last one: no flatten to convert
    }
    refuses_each(convert.fully_convolutional, args, options)


@SLOW
@given(classifiers(), st.data())
def test_shift_and_stitch_is_a_finer_sliding_window_or_refuses(case, data):
    model, shape, stride = case
    c, n, d = shape[0], shape[1], len(shape) - 1
    fcn = convert.fully_convolutional(model, shape)
    factor = data.draw(st.sampled_from([f for f in range(1, stride + 1) if stride % f == 0]))
    x = torch.randn(1, c, *(n + stride * e for e in data.draw(spatial(d, 1, 2))), dtype=F64)
    args = {"model": fcn, "x": x, "factor": factor}
    options = {
        "factor": [*BAD_INTS, (1,) * (d + 1), stride + 1],
        "model": ["model", None, nn.Identity()],  # the last one has no .geometry
        "stride": [0, "8", (stride,) * (d + 1)],
    }
    refuses_each(convert.shift_and_stitch, args, options)
    bad_x = [None, "x", x[0], x[:, :1].expand(1, c + 1, *x.shape[2:])]
    refuses_each(convert.shift_and_stitch, args, {"x": bad_x}, "model")  # model fails on it

    def scores(batch: torch.Tensor) -> torch.Tensor:  # a vector of scores, not a map
        return fcn(batch).flatten(1)

    refuses_each(convert.shift_and_stitch, {**args, "stride": stride}, {"model": [scores]})
    fine = convert.shift_and_stitch(**args)
    windows = convert.sliding_window(model, x, n, stride // factor)
    # A classifier that ignores the end of its window (receptive field < n) has cells past the
    # last whole window, which shift-and-stitch fills too; the cells in common are the same.
    assert fine.shape[:2] == windows.shape[:2]
    assert all(f >= w for f, w in zip(fine.shape[2:], windows.shape[2:], strict=True))
    if fcn.geometry.receptive_field == (n,) * d:
        assert fine.shape == windows.shape
    torch.testing.assert_close(fine[(..., *(slice(m) for m in windows.shape[2:]))], windows)


@SETTINGS
@given(st.integers(1, 2), st.data())
def test_sliding_window_scores_every_window_or_refuses(d, data):
    c, window, step = (
        data.draw(st.integers(1, 2)),
        data.draw(spatial(d, 1, 3)),
        data.draw(spatial(d, 1, 2)),
    )
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * math.prod(window), 3, dtype=F64))
    size = tuple(w + data.draw(st.integers(0, 3)) for w in window)
    x = torch.randn(data.draw(st.integers(0, 2)), c, *size, dtype=F64)
    bad_x = [None, "x", torch.zeros(c, *size), torch.zeros(1, c + 1, *size, dtype=F64)]
    if max(window) > 1:
        bad_x.append(torch.zeros(1, c, *(max(w - 1, 1) for w in window), dtype=F64))
    args = {"model": model, "x": x, "window": window, "stride": step}
    options = {
        "window": [*BAD_INTS, (1,) * (d + 1)],
        "stride": [*BAD_INTS, (1,) * (d + 1)],
        # not callable; returns no tensor; returns a row too many
        "model": ["model", None, 3, lambda b: "scores", lambda b: torch.zeros(len(b) + 1, 3)],
    }
    refuses_each(convert.sliding_window, args, options)
    # a tensor of another rank changes the number of spatial dims (so the window's), and a
    # model fails on windows with other channels or another dtype
    refuses_each(convert.sliding_window, args, {"x": [*bad_x, x.long()]}, "window", "model")
    out = convert.sliding_window(**args)
    counts = tuple((n - w) // s + 1 for n, w, s in zip(size, window, step, strict=True))
    assert out.shape == (x.shape[0], 3, *counts)
    for b, i in itertools.product(range(x.shape[0]), positions(counts)):
        cut = (slice(b, b + 1), slice(None))
        cut += tuple(slice(j * s, j * s + w) for j, s, w in zip(i, step, window, strict=True))
        torch.testing.assert_close(out[(b, slice(None), *i)], model(x[cut])[0])


@SETTINGS
@given(st.integers(1, 3), st.data())
def test_window_boxes_are_the_cells_windows_or_refuse(d, data):
    geometry = convert.Geometry(
        data.draw(spatial(d, 1, 3)), data.draw(spatial(d, 1, 4)), data.draw(spatial(d, -2, 1))
    )
    out, size = data.draw(spatial(d, 1, 3)), data.draw(spatial(d, 1, 6))
    args = {"geometry": geometry, "output_size": out, "input_size": size}
    options = {
        "output_size": [*BAD_SHAPES, (1,) * (d + 1), (0,) * d],
        "input_size": [*BAD_SHAPES, (1,) * (d + 1)],
        "geometry": [None, (1, 2), "geometry"],
    }
    refuses_each(convert.window_boxes, args, options)
    boxes, inside = convert.window_boxes(**args)
    assert boxes.shape == (*out, 2 * d) and inside.shape == out
    for i in positions(out):
        starts = [o + j * s for o, j, s in zip(geometry.offset, i, geometry.stride, strict=True)]
        stops = [a + f for a, f in zip(starts, geometry.receptive_field, strict=True)]
        assert boxes[i].tolist() == starts + stops
        within = all(a >= 0 and b <= n for a, b, n in zip(starts, stops, size, strict=True))
        assert bool(inside[i]) == within


# ------------------------------------------------------------------------------------------------
# locality.analysis: closed forms against real modules


def macs_of(module: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


@SETTINGS
@given(
    st.sampled_from(["dense", "conv", "tiled", "local", "depthwise"]), st.integers(1, 3), st.data()
)
def test_counts_are_a_real_modules_or_refuse(kind, d, data):
    draw = data.draw
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = draw(st.one_of(st.integers(1, 2), spatial(d, 1, 2)))
    out = draw(spatial(d, 1, 3))
    out_arg = out[0] if d == 1 and draw(st.booleans()) else out
    bias, shared = draw(st.booleans()), draw(st.booleans())
    sizes = [*BAD_INTS, (), (0,) * d]
    if kind == "dense":
        fn, args = analysis.dense_cost, {"in_features": cin, "out_features": cout, "bias": bias}
        options = {"in_features": list(BAD_INTS), "out_features": list(BAD_INTS)}
    else:
        args = {"in_channels": cin, "out_channels": cout, "kernel_size": kernel}
        args |= {"output_size": out_arg, "bias": bias}
        options = {
            "in_channels": list(BAD_INTS),
            "out_channels": list(BAD_INTS),
            "kernel_size": [*sizes, (1,) * (d + 1)],
            "output_size": sizes,
        }
        if kind == "depthwise":
            fn, multiplier = analysis.depthwise_separable_cost, draw(st.integers(1, 2))
            args["depth_multiplier"] = multiplier
            options["depth_multiplier"] = list(BAD_INTS)
        else:
            args["groups"] = groups
            options["groups"] = [*BAD_INTS, 3]  # 3 divides no channel count drawn here
            fn = {"conv": analysis.conv_cost, "tiled": analysis.tiled_cost}.get(
                kind, analysis.locally_connected_cost
            )
        if kind in ("tiled", "local"):
            args["shared_bias"] = shared
            options["shared_bias"] = [*BAD_FLAGS, None]
        if kind == "tiled":
            tile = draw(st.one_of(st.integers(1, 3), spatial(d, 1, 3)))
            args["tile_size"] = tile
            options["tile_size"] = [*sizes, (1,) * (d + 1)]
    options["bias"] = [*BAD_FLAGS, None]
    refuses_each(fn, args, options)
    cost = fn(**args)
    if kind == "dense":
        reference = nn.Linear(cin, cout, bias=bias)
        x = torch.zeros(1, cin)
    else:
        k = (kernel,) * d if isinstance(kernel, int) else kernel
        size = tuple(o + kk - 1 for o, kk in zip(out, k, strict=True))
        x = torch.zeros(1, cin, *size)
        if kind == "depthwise":
            reference = nn.Sequential(
                CONV[d](cin, cin * multiplier, k, groups=cin, bias=bias),
                CONV[d](cin * multiplier, cout, 1, bias=bias),
            )
        else:
            # the three kinds differ in parameters only: their MACs are the convolution's
            reference = CONV[d](cin, cout, k, groups=groups, bias=bias)
            assert cost.macs == macs_of(reference, x)
            common = dict(groups=groups, bias=bias, shared_bias=shared)
            if kind == "tiled":
                reference = TILED[d](cin, cout, k, tile, **common)
            elif kind == "local" and d in LOCAL:
                reference = LOCAL[d](cin, cout, k, size, **common)
            elif kind == "local":  # no 3-D locally connected layer: count by hand
                kernels, fan_in = math.prod(out), cin // groups * math.prod(k)
                biases = 0 if not bias else cout if shared else kernels * cout
                assert cost.params == kernels * cout * fan_in + biases
                return
    assert cost.params == sum(p.numel() for p in reference.parameters())
    if kind in ("dense", "depthwise"):
        assert cost.macs == macs_of(reference, x)
    assert cost.flops == 2 * cost.macs


@SETTINGS
@given(
    st.one_of(
        st.integers(-(10**16), 10**16),
        st.integers(-(10**6), 10**6),
        st.sampled_from([None, 2.5, "12", True, float("nan"), [1]]),
    ),
    st.sampled_from([False, True, True, "yes", None]),
)
def test_format_count_round_trips_or_refuses(n, power):
    if isinstance(n, bool) or not isinstance(n, int):
        refused(lambda: analysis.format_count(n, power), "format_count", "n must be")
        return
    if not isinstance(power, bool):
        refused(lambda: analysis.format_count(n, power), "format_count", "power_of_ten")
        return
    text = analysis.format_count(n, power)
    digits, _, rest = text.partition(" ")
    assert int(digits.replace(",", "")) == n
    if not power or abs(n) < 10_000:
        assert rest == ""
        return
    exponent = len(str(abs(n))) - 1
    match = re.fullmatch(r"\((~?)(-?)(?:([\d.]+)x)?10\^(\d+)\)", rest)
    assert match is not None, text
    tilde, sign, mantissa, power_shown = match.groups()
    assert int(power_shown) == exponent and sign == ("-" if n < 0 else "")
    assert (tilde == "") == (abs(n) % 10 ** (exponent - 2) == 0)
    assert float(mantissa or 1) * 10**exponent == pytest.approx(abs(n), rel=5e-3)


@SETTINGS
@given(
    st.one_of(
        st.integers(0, 10**21), st.integers(0, 5000), st.sampled_from([-1, None, 2.5, "1", True])
    )
)
def test_format_bytes_round_trips_or_refuses(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        refused(lambda: analysis.format_bytes(n), "format_bytes", "n must be")
        return
    text = analysis.format_bytes(n)
    if n < 1000:
        assert text == f"{n} B"
        return
    value, unit = text.split(" ")
    power = ("kB", "MB", "GB", "TB", "PB", "EB").index(unit) + 1
    assert float(value.replace(",", "")) * 1000**power == pytest.approx(n, rel=5e-3)


@st.composite
def any_modules(draw):
    """A module of any kind (dense, one of the bank kinds, other), and an input it takes."""
    kind = draw(st.sampled_from(["dense", "bank", "bank", "other"]))
    if kind == "dense":
        n, lead = draw(st.integers(1, 4)), draw(st.lists(st.integers(1, 3), max_size=2))
        linear = nn.Linear(n, draw(st.integers(1, 3)), bias=draw(st.booleans()), dtype=F64)
        return linear, (*lead, n)
    if kind == "other":
        other = [nn.ReLU(), nn.Flatten(), nn.ConvTranspose1d(1, 1, 2, dtype=F64)]
        return draw(st.sampled_from(other)), (1, 4)
    layer, size = draw(bank_layers())
    return layer, (layer.in_channels, *size)


KIND_OF = {
    nn.Linear: "dense",
    nn.Conv1d: "conv",
    nn.Conv2d: "conv",
    **{cls: "tiled" for cls in TILED.values()},
    **{cls: "locally_connected" for cls in LOCAL.values()},
}


@SETTINGS
@given(any_modules())
def test_kind_of_and_layer_cost_or_refuse(case):
    module, input_shape = case
    kind = KIND_OF.get(type(module), "other")
    with torch.no_grad():
        shape = tuple(module(torch.randn(1, *input_shape, dtype=F64)).shape[1:])
    channels = len(shape) - 1 if kind == "dense" else 0  # where the channels are
    wrong_channels = tuple(n + (i == channels) for i, n in enumerate(shape))
    wrong_rank = (*shape, shape[-1] + 1) if kind == "dense" else (*shape, 1)
    args = {"module": module, "output_shape": shape}
    bad_modules = [None, "conv", 3]
    refuses_each(analysis.kind_of, {"module": module}, {"module": bad_modules})
    bad_shapes = [*BAD_SHAPES, wrong_channels, wrong_rank]
    assert analysis.kind_of(module) == kind
    if kind == "other":  # nothing to count, whatever the shape
        refuses_each(analysis.layer_cost, args, {"module": bad_modules})
        assert all(analysis.layer_cost(module, bad) is None for bad in bad_shapes)
        assert analysis.layer_cost(**args) is None
    else:
        refuses_each(analysis.layer_cost, args, {"module": bad_modules, "output_shape": bad_shapes})
        cost = analysis.layer_cost(**args)
        assert cost.kind == kind
        assert cost.params == sum(p.numel() for p in module.parameters())
        fan_in = (
            module.in_features
            if kind == "dense"
            else module.in_channels // module.groups * math.prod(module.kernel_size)
        )
        assert cost.macs == math.prod(shape) * fan_in


@st.composite
def stacks(draw):
    """A padding-free chain of sliding layers (and tanh), sometimes with a dense head."""
    d, c, n = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(6, 9))
    channels, size, layers, sliding = c, (n,) * d, [], False
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "tiled", "local", "pool", "tanh"]))
        k = draw(st.integers(1, min(3, *size)))
        dl = draw(st.integers(1, 2)) if 2 * (k - 1) + 1 <= min(size) else 1
        s, out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        common = dict(stride=s, dilation=dl, dtype=F64)
        if kind == "conv":
            layers.append(CONV[d](channels, out, k, **common))
        elif kind == "tiled":
            layers.append(TILED[d](channels, out, k, draw(st.integers(1, 2)), **common))
        elif kind == "local":
            layers.append(LOCAL[d](channels, out, k, size, **common))
        elif kind == "pool" and min(size) >= 2:
            layers.append(POOL[d](2))
            size = tuple(m // 2 for m in size)
            continue
        else:
            layers.append(nn.Tanh())
            continue
        channels, sliding = out, True
        size = tuple((m - dl * (k - 1) - 1) // s + 1 for m in size)
    if not sliding:  # something that cares about channels and rank
        layers.append(CONV[d](channels, 1, 1, dtype=F64))
        channels = 1
    if draw(st.booleans()):
        layers += [nn.Flatten(), nn.Linear(channels * math.prod(size), 2, dtype=F64)]
    return nn.Sequential(*layers), (c, *(n,) * d)


@SLOW
@given(stacks(), st.sampled_from(["summary", "receptive_field"]))
def test_summary_and_receptive_field_are_right_or_refuse(case, fn):
    model, shape = case
    c, d = shape[0], len(shape) - 1
    args = {"model": model, "input_shape": shape}
    options = {
        "input_shape": [*BAD_SHAPES, (c + 1, *shape[1:]), (*shape, 2), (float(c), *shape[1:])],
        "model": [None, "model", 3],
    }
    refuses_each(getattr(analysis, fn), args, options)
    if fn == "summary":
        result = analysis.summary(**args)
        assert result.total_params == sum(p.numel() for p in model.parameters())
        y = torch.zeros(1, *shape, dtype=F64)
        assert len(result.rows) == len(model)
        for row, module in zip(result.rows, model, strict=True):
            y = module(y)
            assert row.type == type(module).__name__ and row.output_shape == tuple(y.shape[1:])
            assert row.params == sum(p.numel() for p in module.parameters())
        return
    field = analysis.receptive_field(**args)
    if isinstance(model[-1], nn.Linear):
        assert field.whole
        return
    # where the output units at 0 and at 1 look: the nonzeros of their input gradients
    x = torch.randn(1, *shape, dtype=F64, requires_grad=True)
    y = model(x)
    for unit in (0, 1):
        for i in range(d):
            if y.shape[2 + i] <= unit:
                continue
            index = [0] * d
            index[i] = unit
            (grad,) = torch.autograd.grad(y[(0, 0, *index)], x, retain_graph=True)
            seen = grad[0].abs().sum(dim=tuple(j for j in range(d + 1) if j != i + 1)).nonzero()
            start = field.start[i] + unit * field.jump[i]
            assert (int(seen.min()), int(seen.max())) == (start, start + field.size[i] - 1)


def test_summary_refuses_a_layer_that_took_the_batch_for_a_channel():
    # (1, 5, 6) is an unbatched input to a Conv2d with 1 channel: its output has no batch
    refused(lambda: analysis.summary(nn.Conv2d(1, 2, 3), (5, 6)), "summary", "input_shape")


def test_a_field_is_lost_where_a_reshape_changes_the_number_of_spatial_dims():
    model = nn.Sequential(nn.Conv1d(1, 1, 3), nn.Unflatten(2, (2, 7)), nn.Conv2d(1, 2, 2))
    rows = analysis.summary(model, (1, 16)).rows
    assert [row.receptive_field for row in rows] == [
        analysis.ReceptiveField((3,), (1,), (0,)),
        analysis.ReceptiveField((3,), (1,), (0,)),
        None,
    ]
    assert analysis.receptive_field(model, (1, 16)) is None


# ------------------------------------------------------------------------------------------------
# locality.draw


def nonzeros(jacobian: torch.Tensor) -> set[tuple[int, int]]:
    return {(i, j) for i, j in jacobian.nonzero().tolist()}


def conv1d_jacobian(n_in, weight, stride, padding, dilation) -> torch.Tensor:
    """``(n_out, n_in)``: d output / d input of a 1-channel convolution."""

    def conv(x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, weight, stride=stride, padding=padding, dilation=dilation)

    jacobian = torch.autograd.functional.jacobian(conv, torch.zeros(1, 1, n_in, dtype=F64))
    return jacobian.reshape(-1, n_in)


@SETTINGS
@given(st.sampled_from(["dense_wiring", "bank_wiring"]), st.data())
def test_wirings_are_the_jacobians_nonzeros_or_refuse(fn, data):
    draw = data.draw
    if fn == "dense_wiring":
        args = {"n_in": draw(st.integers(1, 6)), "n_out": draw(st.integers(1, 6))}
        options = {"n_in": [*BAD_INTS, 10**5], "n_out": list(BAD_INTS)}
    else:
        k, dl, p = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 2))
        n_in = draw(st.integers(max(1, dl * (k - 1) + 1 - 2 * p), 8))
        args = {"n_in": n_in, "kernel_size": k, "grid": draw(st.sampled_from([None, 1, 2, 3]))}
        args |= {"stride": draw(st.integers(1, 2)), "padding": p, "dilation": dl}
        options = {
            "n_in": [*BAD_INTS, 10**5],
            "kernel_size": [*BAD_INTS, n_in + 2 * p + 1],
            "grid": [0, -1, 2.5, "2", True],
            "stride": list(BAD_INTS),
            "padding": [-1, 2.5, "1", None, True],
            "dilation": list(BAD_INTS),
        }
    refuses_each(getattr(pictures, fn), args, options)
    wiring = getattr(pictures, fn)(**args)
    if fn == "dense_wiring":
        pairs = list(itertools.product(range(args["n_out"]), range(args["n_in"])))
        assert sorted((i, j) for i, j, _, _ in wiring.edges) == pairs
        assert all((kern, tap) == (i, j) for i, j, kern, tap in wiring.edges)
        assert wiring.weights == args["n_in"] * args["n_out"]
        return
    taps = torch.arange(1.0, k + 1, dtype=F64).reshape(1, 1, k)
    jacobian = conv1d_jacobian(n_in, taps, args["stride"], p, dl)
    n_out, grid = jacobian.shape[0], args["grid"]
    assert wiring.n_out == n_out and wiring.taps == k
    assert wiring.kernels == (n_out if grid is None else min(grid, n_out))
    assert {(i, j) for i, j, _, _ in wiring.edges} == nonzeros(jacobian)
    for i, j, kern, tap in wiring.edges:
        assert jacobian[i, j] == tap + 1 and kern == (i if grid is None else i % grid)


@st.composite
def layers_1d(draw):
    """A 1-channel 1-D layer of one of the four kinds, and its input length."""
    kind = draw(st.sampled_from(["linear", "conv", "tiled", "local"]))
    n = draw(st.integers(3, 7))
    if kind == "linear":
        return nn.Linear(n, draw(st.integers(1, 4)), bias=False, dtype=F64), n
    k, p = draw(st.integers(1, 3)), draw(st.integers(0, 1))
    common = dict(stride=draw(st.integers(1, 2)), padding=p, bias=False, dtype=F64)
    if kind == "conv":
        return nn.Conv1d(1, 1, k, **common), n
    if kind == "tiled":
        return locality.TiledConv1d(1, 1, k, draw(st.integers(1, 3)), **common), n
    return locality.LocallyConnected1d(1, 1, k, n, **common), n


@SLOW
@given(layers_1d(), st.sampled_from(["wiring_of", "wiring_of", "layer_figure"]))
def test_wiring_of_and_layer_figure_are_the_jacobians_or_refuse(case, fn):
    layer, n = case
    with torch.no_grad():
        for p in layer.parameters():  # distinct weights, so that the Jacobian tells them apart
            p.copy_(torch.arange(1, p.numel() + 1, dtype=F64).reshape(p.shape))
    linear = isinstance(layer, nn.Linear)
    bad_n = [0, -1, 2.5, "4", True]
    if linear or isinstance(layer, locality.LocallyConnected1d):
        bad_n.append(n + 1)  # not the layer's own input length
    else:
        bad_n.append(None)  # a convolution does not know it
        if layer.kernel_size[0] > 1 + 2 * layer.padding[0]:
            bad_n.append(1)  # too short for the kernel
    args = {"layer": layer, "n_in": n}
    options = {
        "n_in": bad_n,
        "layer": [nn.Conv2d(1, 1, 1), nn.ReLU(), "layer", None, nn.LazyConv1d(1, 2)],
    }
    call = getattr(pictures, fn)
    refuses_each(call, args, options)
    if fn == "layer_figure":
        figure = call(**args)
        params = sum(p.numel() for p in layer.parameters())
        texts = " ".join(t.get_text() for ax in figure.axes for t in ax.texts)
        assert f"the layer holds {params:,} parameters" in texts
        return
    wiring = call(**args)
    x = torch.zeros((n,) if linear else (1, 1, n), dtype=F64)
    jacobian = torch.autograd.functional.jacobian(layer, x).reshape(-1, n)
    assert wiring.n_out == jacobian.shape[0]
    assert {(i, j) for i, j, _, _ in wiring.edges} == nonzeros(jacobian)
    value = {}
    for i, j, kern, tap in wiring.edges:  # one swatch, one weight
        assert value.setdefault((kern, tap), float(jacobian[i, j])) == float(jacobian[i, j])


@SETTINGS
@given(st.integers(1, 2), st.sampled_from(["conv", "tiled", "local"]), st.data())
def test_kernel_map_is_what_a_layer_of_kernel_indices_computes_or_refuses(d, kind, data):
    k, s, dl = data.draw(spatial(d, 1, 2)), data.draw(spatial(d, 1, 2)), data.draw(spatial(d, 1, 2))
    size = tuple(e + data.draw(st.integers(0, 3)) for e in extent(k, dl))
    common = dict(stride=s, dilation=dl, bias=False, dtype=F64)
    if kind == "conv":
        layer = CONV[d](1, 1, k, **common)
    elif kind == "tiled":
        layer = TILED[d](1, 1, k, data.draw(spatial(d, 1, 3)), **common)
    else:
        layer = LOCAL[d](1, 1, k, size, **common)
    args = {"layer": layer, "input_size": size}
    bad_sizes = [3, "5", (), (1,) * (d + 1), (0,) * d]
    if kind == "local":
        bad_sizes.append(tuple(n + 1 for n in size))  # not its own
    else:
        bad_sizes.append(None)  # a convolution does not know it
    options = {
        "input_size": bad_sizes,
        "layer": [nn.Linear(2, 2), nn.ReLU(), None, nn.LazyConv1d(1, 2)],
    }
    refuses_each(pictures.kernel_map, args, options)
    if kind != "local" and max(extent(k, dl)) > 1:  # an input smaller than the kernel
        refused(lambda: pictures.kernel_map(layer, (1,) * d), "kernel_map", "kernel_size")
    index = pictures.kernel_map(**args)
    # the kernels a position can use, numbered in row-major order; kernel number i's taps sum
    # to i, so on an input of ones each output is the number of its kernel
    ones = torch.ones(1, 1, *size, dtype=F64)
    with torch.no_grad():
        out = layer(ones).shape[2:]
        if kind != "conv":
            used = tuple(min(b, o) for b, o in zip(layer.weight.shape[:d], out, strict=True))
            for number, r in enumerate(positions(used)):
                layer.weight[r] = number / math.prod(k)
        expected = layer(ones)[0, 0].round().long()
    assert torch.equal(index, expected if kind != "conv" else torch.zeros(out, dtype=torch.long))


@st.composite
def maps_2d(draw):
    k = draw(st.integers(1, 3))
    size = (draw(st.integers(k, 6)), draw(st.integers(k, 6)))
    choices = [
        nn.Conv2d(1, 1, k),
        locality.TiledConv2d(1, 1, k, draw(st.integers(1, 3))),
        locality.LocallyConnected2d(1, 1, k, size),
    ]
    return draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3)), size


@FEW
@given(maps_2d())
def test_tile_map_figure_draws_every_position_or_refuses(case):
    layers, size = case
    local = [isinstance(m, locality.LocallyConnected2d) for m in layers]
    bad_sizes = [(5,), "5x5", (0, 5), 5]
    if not all(local):
        bad_sizes += [None, (200, 200)]  # not given; too many positions to draw
    else:
        bad_sizes.append((size[0] + 1, size[1]))  # not the layers' own
    args = {"layers": layers, "input_size": size}
    options = {
        "input_size": bad_sizes,
        "layers": [None, 3, "conv", [], [nn.Conv2d(1, 1, 1), 3], nn.Conv1d(1, 1, 2)],
    }
    refuses_each(pictures.tile_map_figure, args, options)
    figure = pictures.tile_map_figure(**args)
    assert len(figure.axes) == len(layers)
    for ax, layer in zip(figure.axes, layers, strict=True):
        assert len(ax.patches) == pictures.kernel_map(layer, size).numel()


@FEW
@given(st.integers(6, 10), st.data())
def test_receptive_field_figure_draws_each_window_or_refuses(n, data):
    k, s = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    model = nn.Sequential(nn.Conv2d(1, 2, k), locality.TiledConv2d(2, 2, k, tile_size=2, stride=s))
    centre = data.draw(st.sampled_from([None, (1.5, 2), (0, n - 1)]))
    args = {"model": model, "input_shape": (1, n, n), "centre": centre}
    options = {
        "input_shape": [None, (1, n), (2, n, n), (1, 600, 600), "1x8x8", (1, n, 0)],
        "centre": [(1,), "c", (float("nan"), 1.0), (True, 1), 3],
        "model": [None, "model", nn.Sequential(nn.Flatten(), nn.Linear(n * n, 2))],
    }
    refuses_each(pictures.receptive_field_figure, args, options)
    figure = pictures.receptive_field_figure(**args)
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    steps = 1 if k == 1 and s == 1 else 2  # 1x1 at stride 1 does not move the field
    assert len(legend) == steps and all(text.startswith("after ") for text in legend)


@FEW
@given(st.integers(2, 9), st.data())
def test_four_panel_figure_counts_the_weights_or_refuses(n_in, data):
    k, t = data.draw(st.integers(1, min(3, n_in))), data.draw(st.integers(1, 3))
    args = {"n_in": n_in, "kernel_size": k, "tile_size": t}
    options = {
        "n_in": [*BAD_INTS, 1000],  # 1000: too many connections to draw
        "kernel_size": [*BAD_INTS, n_in + 1],
        "tile_size": list(BAD_INTS),
    }
    refuses_each(pictures.four_panel_figure, args, options)
    figure = pictures.four_panel_figure(**args)
    n_out = n_in - k + 1
    expected = [n_in * n_out, k * n_out, k * min(t, n_out), k]  # dense, local, tiled, conv
    assert [len(ax.patches) for ax in figure.axes] == expected  # one swatch per weight


@FEW
@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_draw_wiring_or_refuses(n_in, n_out, data):
    wiring = pictures.dense_wiring(n_in, n_out)
    caption = data.draw(st.sampled_from([None, "a caption"]))
    args = {"wiring": wiring, "ax": None, "caption": caption}
    options = {
        "wiring": [None, "wiring", (n_in, n_out)],
        "ax": ["ax", 3, Figure()],
        "caption": [3, b"caption"],
    }
    refuses_each(pictures.draw_wiring, args, options)
    ax = pictures.draw_wiring(**args)
    assert isinstance(ax, Axes) and len(ax.patches) == n_in * n_out  # a swatch per weight
    texts = [t.get_text() for t in ax.texts]
    assert (
        caption in texts
        if caption
        else any(t.startswith(f"{n_in * n_out} parameters") for t in texts)
    )


def small_figure() -> Figure:
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    return figure


@pytest.mark.parametrize(
    "argument, value",
    [
        ("figure", None),
        ("figure", "figure.png"),
        ("path", None),
        ("path", 3),
        ("path", ""),
        ("path", "/"),
        ("formats", "png"),
        ("formats", None),
        ("formats", ("png", "bmp-ish")),
        ("formats", [3]),
        ("formats", [["png"]]),
        ("dpi", 0),
        ("dpi", 2),
        ("dpi", 10**5),
        ("dpi", "150"),
        ("dpi", None),
        ("dpi", True),
        ("dpi", float("nan")),
    ],
)
def test_save_figure_refuses_clearly(tmp_path, argument, value):
    args = {"figure": small_figure(), "path": tmp_path / "out", "formats": ("png",), "dpi": 50}
    args[argument] = value
    refused(functools.partial(pictures.save_figure, **args), "save_figure", argument)
    assert list(tmp_path.iterdir()) == []  # refused before writing anything


def test_save_figure_writes_each_format(tmp_path):
    written = pictures.save_figure(small_figure(), tmp_path / "sub" / "out.pdf", ["png", "svg"])
    assert written == [tmp_path / "sub" / "out.png", tmp_path / "sub" / "out.svg"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------
# huge arguments fail fast, before allocating or drawing


@pytest.mark.parametrize(
    "where, call",
    [
        ("to_locally_connected", lambda: convert.to_locally_connected(nn.Conv2d(1, 1, 1), 10**6)),
        ("to_tiled", lambda: convert.to_tiled(nn.Conv2d(1, 1, 1), 10**6)),
        ("to_dense", lambda: convert.to_dense(nn.Conv2d(1, 1, 1), (1, 10**5, 10**5))),
        ("project", lambda: convert.project(nn.Conv2d(1, 1, 1), "tiled", 10**6)),
        (
            "window_boxes",
            lambda: convert.window_boxes(
                convert.Geometry.identity(2), (10**6, 10**6), (10**6, 10**6)
            ),
        ),
        (
            "shift_and_stitch",
            lambda: convert.shift_and_stitch(nn.Identity(), torch.zeros(1, 1, 4), 10**6, 10**6),
        ),
        ("summary", lambda: analysis.summary(nn.Conv2d(1, 1, 1), (1, 10**6, 10**6))),
        (
            "receptive_field",
            lambda: analysis.receptive_field(nn.Conv2d(1, 1, 1), (1, 10**6, 10**6)),
        ),
        ("kernel_map", lambda: pictures.kernel_map(nn.Conv2d(1, 1, 1), (10**6, 10**6))),
        ("dense_wiring", lambda: pictures.dense_wiring(10**6, 10**6)),
        ("bank_wiring", lambda: pictures.bank_wiring(10**9, 1, None)),
        ("four_panel_figure", lambda: pictures.four_panel_figure(10**6)),
        ("tile_map_figure", lambda: pictures.tile_map_figure(nn.Conv2d(1, 1, 1), (1000, 1000))),
        (
            "receptive_field_figure",
            lambda: pictures.receptive_field_figure(nn.Conv2d(1, 1, 1), (1, 10**4, 10**4)),
        ),
    ],
)
def test_huge_arguments_fail_fast(where, call):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(f"{where}: ")
